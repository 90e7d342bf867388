"""`riskdpo demo`: the whole pipeline on the bundled sample, before and after.

convert -> make-pairs (training pairs from the low-stakes ``train`` sheet) ->
eval-choices of the base model on held-out situations (other stakes, other
framing) -> train (LoRA DPO) -> eval-choices of the trained model, compared with
the base on the same situations (paired difference, McNemar's test).

Sizes are chosen so that the default model (the bundled SmolLM2-135M-Instruct)
finishes within about 15 minutes on a 2-core CPU; ``--model tiny`` builds a tiny
random phi model and runs in well under a minute (mechanics only).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import check_output, write_json, write_jsonl
from riskdpo.data.situations import Situation, save_situations

#: The closing instruction used for training pairs and for scoring, so both agree.
INSTRUCTION = "Output the label of your chosen option only."
TRAIN_SHEET = "train"
HELD_OUT_PREFIX = "test_"


@dataclass(frozen=True)
class DemoSize:
    """How much work the demo does; the defaults per model fit the time budget."""

    train_situations: int
    held_out: int
    epochs: int
    lr: float
    batch_size: int
    beta: float = 0.5
    max_length: int = 512


#: Per model: the real model gets the largest run that fits ~15 min on 2 cores.
SIZES = {
    "smollm2-135m": DemoSize(train_situations=96, held_out=100, epochs=2, lr=5e-4, batch_size=8),
    "tiny": DemoSize(train_situations=24, held_out=40, epochs=2, lr=5e-3, batch_size=4),
}


@dataclass
class DemoResult:
    """Where the outputs are and the headline numbers."""

    out_dir: Path
    report: dict
    paths: dict[str, Path]
    seconds: float


def default_sample() -> Path:
    """The bundled `data/sample.xlsx` of a checkout (beside the package or in the cwd)."""
    for candidate in (Path(__file__).resolve().parents[1] / "data" / "sample.xlsx", Path("data/sample.xlsx")):
        if candidate.is_file():
            return candidate
    raise UserError("cannot find data/sample.xlsx; run from a riskdpo checkout or pass --data FILE.xlsx")


def held_out_sheets(situations: list[Situation]) -> list[str]:
    """The sheets whose names start with ``test_``, in order of first appearance."""
    return list(dict.fromkeys(s.sheet for s in situations if s.sheet.startswith(HELD_OUT_PREFIX)))


def run_demo(
    out_dir: str | Path,
    model: str = "smollm2-135m",
    data: str | Path | None = None,
    size: DemoSize | None = None,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> DemoResult:
    """Run convert -> make-pairs -> eval (base) -> train -> eval (tuned) into `out_dir`."""
    from riskdpo.data.convert import read_situations, summarize
    from riskdpo.evaluation.report import format_table, write_evaluation
    from riskdpo.evaluation.evaluate import EvalOptions, FormatOverrides, evaluate_choices, select_situations
    from riskdpo.pairs.build import select_pairs
    from riskdpo.training.config import TrainConfig
    from riskdpo.training.run import train

    started = time.perf_counter()
    out = Path(out_dir)
    size = size or sized(model)
    source = Path(data) if data else default_sample()
    check_output(out, directory=True, inputs=[source])
    paths = {"situations": out / "situations.json", "pairs": out / "pairs.jsonl", "held_out": out / "held_out.json"}

    say(f"[1/5] convert {source}")
    conversion = read_situations(source)
    pairs = select_pairs(
        conversion.situations,
        "risk-neutral",
        sample_size=size.train_situations,
        seed=seed,
        sheets=[TRAIN_SHEET],
        instruction=INSTRUCTION,
    )
    sheets = held_out_sheets(conversion.situations)
    if not sheets:
        raise UserError(f"{source}: no held-out sheets (names starting with {HELD_OUT_PREFIX!r}) to evaluate on")
    held_out, selection = select_situations(
        [s for s in conversion.situations if s.sheet in sheets], sample=size.held_out, seed=seed
    )
    # Written only once every input has proved usable: a refused --data leaves no files.
    save_situations(conversion.situations, paths["situations"])
    say(summarize(conversion, paths["situations"], limit=3))
    say(f"[2/5] make-pairs: {size.train_situations} low-stakes situations from sheet '{TRAIN_SHEET}'")
    write_jsonl(paths["pairs"], pairs)
    save_situations(held_out, paths["held_out"])
    say(f"      {len(pairs)} pairs -> {paths['pairs']}; {len(held_out)} held-out situations from {', '.join(sheets)}")

    base = model
    if model == "tiny":
        from riskdpo.models.tiny import build_tiny_model

        texts = [s.prompt for s in conversion.situations] + [INSTRUCTION]
        base = str(build_tiny_model(out / "tiny-model", texts, seed=seed))

    options = EvalOptions(seed=seed, progress=True)
    overrides = FormatOverrides(instruction=INSTRUCTION)
    say(f"[3/5] eval-choices: base model {model}")
    before = evaluate_choices([base], held_out, options=options, overrides=overrides, selection=selection)
    paths["eval_base"] = write_evaluation(before, out / "eval_base.json")[0]

    say(f"[4/5] train: LoRA DPO, {size.epochs} epochs, beta {size.beta}, lr {size.lr}")
    tuned = str(train(
        TrainConfig(
            dataset=str(paths["pairs"]),
            output_dir=str(out / "run"),
            model=base,
            epochs=size.epochs,
            lr=size.lr,
            beta=size.beta,
            batch_size=size.batch_size,
            max_length=size.max_length,
            seed=seed,
            overwrite=True,  # the demo rewrites its whole folder each time it runs, its run too
        )
    ))
    paths["model"] = Path(tuned)

    say("[5/5] eval-choices: trained model, compared with the base on the same situations")
    after = evaluate_choices(
        [base, tuned], held_out, options=options, overrides=overrides, selection=selection, scored=before
    )
    paths["eval"] = write_evaluation(after, out / "eval.json")[0]
    write_json(out / "demo.json", {"model": model, "size": size.__dict__, "seed": seed, "data": str(source)})
    say(format_table(after.report))
    return DemoResult(out, after.report, paths, time.perf_counter() - started)


def headline(result: DemoResult) -> str:
    """The before/after lines the demo ends with, and what so small a run can show."""
    base, tuned = result.report["models"][:2]
    comparison = result.report["comparisons"][0]

    def rate(summary: dict) -> str:
        low, high = summary["intervals"]["risk_averse"]
        return f"{summary['rates']['risk_averse']:.3f} [{low:.3f}, {high:.3f}] (n = {summary['n']})"

    low, high = comparison["interval"]
    lines = [
        "",
        "Risk-averse choice rate on held-out situations (95% Wilson interval):",
        f"  before (base):  {rate(base)}",
        f"  after (tuned):  {rate(tuned)}",
        f"  difference:     {comparison['risk_averse_diff']:+.3f} [{low:+.3f}, {high:+.3f}], "
        f"McNemar p = {comparison['p_value']:.3g} on {comparison['n']} paired situations",
        "",
        "What this small run can show: whether a short LoRA DPO run on low-stakes pairs moves a model's",
        f"choices on situations it never saw. With {base['n']} held-out situations a rate is known to about",
        f"+-{0.98 / math.sqrt(base['n']):.2f}, so only a large shift stands out from noise, and the per-stakes",
        "and per-framing strata in eval.json are smaller still. Nor can it tell risk aversion from a learned",
        "label preference (eval-choices --shuffle-options can), or say anything of larger models or runs.",
        "",
        f"Outputs in {result.out_dir} ({result.seconds / 60:.1f} min):",
    ]
    lines += [f"  {name:<10} {path}" for name, path in result.paths.items()]
    lines.append(f"  figures    riskdpo report {result.out_dir / 'run'} --eval {result.paths['eval']}")
    return "\n".join(lines)


def sized(model: str, **changes: int | float) -> DemoSize:
    """The default size for `model` with the given fields changed (None values ignored)."""
    base = SIZES.get(model, SIZES["smollm2-135m"])
    return replace(base, **{key: value for key, value in changes.items() if value is not None})
