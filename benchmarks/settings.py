"""Sizes of every benchmark, for the full run, `--quick` and the CI smoke run.

The full sizes are the issue's: a 10,000-situation workbook for the data
targets, 1k/10k/50k situations for growth, 200 held-out situations for
evaluation, and enough training steps that per-step time is steady. `--quick`
keeps every table and target and the data sizes (minutes on 2 cores) but
shrinks training and evaluation to minutes; `--smoke` (the test suite) shrinks
everything to seconds and uses the tiny model everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

SAMPLE_WORKBOOK = Path(__file__).resolve().parents[1] / "data" / "sample.xlsx"


@dataclass(frozen=True)
class Settings:
    """What to run and how big; `run.py` fills in the paths, device and cores."""

    mode: str
    work: Path = Path("benchmarks/.work")
    #: The workbook whose `train` and `train_cot` sheets give the training pairs.
    sample: Path = SAMPLE_WORKBOOK
    device: str = "cpu"
    #: CPUs each measured subprocess is pinned to (the data targets are for a 2-core machine); None = all.
    cores: int | None = 2
    #: Repeats of each data measurement; the median wall time is reported.
    repeats: int = 3
    peak_tflops: float | None = None

    # data
    data_situations: int = 10_000
    data_seed: int = 1
    growth_data_sizes: tuple[int, ...] = (1_000, 10_000, 50_000)

    # train: models on the CPU (tiny, smollm2) or the GPU (phi2), completions, fine-tuning modes
    cpu_train_models: tuple[str, ...] = ("tiny", "smollm2")
    gpu_train_models: tuple[str, ...] = ("phi2",)
    completions: tuple[str, ...] = ("label", "cot")
    gpu_finetune_modes: tuple[str, ...] = ("lora", "full")
    train_steps: int = 30
    warmup_steps: int = 5
    batch_size: int = 4
    gpu_batch_size: int = 8
    max_length: int = 1024
    learning_rate: float = 5e-5
    beta: float = 0.1
    lora_r: int = 8
    lora_alpha: int = 16
    seed: int = 0
    growth_train_lengths: tuple[int, ...] = (128, 256, 512, 1024)
    growth_train_batches: tuple[int, ...] = (1, 2, 4, 8)
    growth_train_steps: int = 12

    # eval
    eval_model: str = "smollm2"
    eval_situations: int = 200
    eval_seed: int = 11  # no sheet of data/sample.xlsx uses it
    eval_batch_size: int = 16
    #: Generate mode's batch: decoding a row costs far less than streaming the weights once per step on
    #: this CPU, so larger batches pay (see BENCHMARKS.md, evaluation section).
    eval_generate_batch_size: int = 64
    #: None: prompts keep their own closing instruction ("You can think about which you'd choose and then
    #: output your answer."), as users evaluate; a text replaces it on both sides.
    eval_instruction: str | None = None
    max_new_tokens: int = 128
    #: Also time the whole `riskdpo eval-choices` command, once per mode.
    eval_whole_command: bool = True
    growth_eval_sizes: tuple[int, ...] = (25, 50, 100, 200)

    @property
    def train_models(self) -> tuple[str, ...]:
        return self.gpu_train_models if self.device.startswith("cuda") else self.cpu_train_models

    @property
    def finetune_modes(self) -> tuple[str, ...]:
        return self.gpu_finetune_modes if self.device.startswith("cuda") else ("lora",)

    @property
    def train_batch_size(self) -> int:
        return self.gpu_batch_size if self.device.startswith("cuda") else self.batch_size


FULL = Settings(mode="full")

QUICK = replace(
    FULL,
    mode="quick",
    repeats=1,
    train_steps=10,
    warmup_steps=2,
    growth_train_lengths=(128, 256, 512),
    growth_train_batches=(1, 2, 4),
    growth_train_steps=6,
    eval_situations=40,
    growth_eval_sizes=(10, 20, 40),
)

SMOKE = replace(
    FULL,
    mode="smoke",
    repeats=1,
    data_situations=60,
    growth_data_sizes=(30, 60),
    cpu_train_models=("tiny",),
    completions=("label",),
    train_steps=4,
    warmup_steps=1,
    batch_size=2,
    max_length=256,
    growth_train_lengths=(64, 128),
    growth_train_batches=(2,),
    growth_train_steps=3,
    eval_model="tiny",
    eval_situations=6,
    eval_batch_size=4,
    eval_generate_batch_size=4,
    max_new_tokens=4,
    eval_whole_command=False,
    growth_eval_sizes=(3, 6),
)

MODES = {"full": FULL, "quick": QUICK, "smoke": SMOKE}
