"""What the GPU suite runs and how big: the H200 sizes, the dry-run sizes, and the time budget.

The budget is arithmetic, not a measurement (nothing here has run on a GPU
yet). Each stage's estimate is its FLOPs at a stated fraction of the H200's
measured bf16 matrix rate (790 TFLOP/s on 8192^3 random data, KINDS.md) plus
the fixed costs that dominate at these sizes: a Python process with torch and
transformers imported (about 8 s), the 5.5 GB phi-2-shaped model read from the
page cache (about 3 s) and, for each `riskdpo train`, the final model written
(5.5 GB bf16 or 11 GB fp32 at about 2 GB/s). N = 2.5e9 parameters in phi-2's
blocks; a token costs 2N FLOPs forward, 4N forward+backward with frozen
weights (LoRA), 6N with trained weights; the reference pass 2N.

    stage        work (H200 sizes)                                   FLOPs     at       compute  fixed   estimate
    environment  nvidia-smi, versions, SDPA probes, 11 8192^3 GEMMs  1e13      100%     0.03 s   12 s    15 s
    correctness  gpu tests + 6 tiny-model runs + eval, tiny model    ~0        -        0 s      ~90 s   100 s
    kernels      2 shapes x 4 L x 5 backends, 2 layers, batch 4      3e14      20%      2 s      ~25 s
                 + phi-2 build (11 GB init, 5.5 GB written)                            3 s      ~20 s
                 + generate 64 tokens at batch 8 and 64 (phi-2)      memory-bound: 128 steps x ~25 ms   60 s
    train        3 configs x (riskdpo, TRL), 8 steps of batch 8:
                 riskdpo labels 64 x 310 tok x 6N                    3.0e14
                 TRL labels 64 x 610 x 6N                            5.9e14
                 riskdpo CoT 64 x 1360 x 6N; TRL 64 x 1660 x 6N      1.3e15 + 1.6e15
                 full labels 64 x (310 | 610) x 8N                   4.0e14 + 7.8e14
                 total                                               5.0e15    30%      21 s     6 x 25 s  175 s
    memory       3 runs of 2 steps (LoRA+GC labels, LoRA+GC CoT,     4e14      30%      2 s      3 x 15 s  50 s
                 full CoT at batch 4); LoRA and full on labels and
                 LoRA on CoT reuse the train stage's measured peaks
    eval         riskdpo: 200 situations logprob (2N x 300 tok)      1.2e14             1 s
                 + generate 128 tokens at batch 64: 4 waves x 128 steps x ~30 ms       15 s
                 baseline: 10 situations x 128 tokens x ~25 ms (one at a time)         32 s
                 + two processes, situations generated                                  32 s   80 s
    qlora        optional, needs bitsandbytes (a second carry)                          -       skipped
    total                                                                                       480 s

The estimates are the stages' start thresholds too: a stage starts only when
the budget left is at least its estimate ("skipped for time" otherwise), and it
runs under a time box of twice its estimate or the budget left, whichever is
less. Eval comes last, so a slow machine loses the eval speed first.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """Every size of the suite; `H200` are the real ones, `DRY` a CPU's seconds."""

    name: str
    #: phi-2-shaped model: phi-2's config (benchmarks/workloads.PHI2_SHAPE) or a tiny one of the same architecture
    phi2: dict
    #: Qwen3-shaped layers (head dim 128, grouped key/value heads) for the kernel stage
    qwen3: dict
    #: layers of the kernel stage's random models (both shapes)
    kernel_layers: int
    kernel_lengths: tuple[int, ...]
    kernel_batch: int
    kernel_completion: int
    generate_batches: tuple[int, ...]
    generate_new_tokens: int
    generate_check_prompts: int
    # correctness (the tiny test model; both sizes)
    correctness_steps: int
    correctness_situations: int
    # train against TRL
    train_steps: int
    train_warmup: int
    train_batch: int
    train_max_length: int
    # memory
    memory_steps: int
    memory_cot_batch: int
    # eval
    eval_situations: int
    eval_baseline_situations: int
    eval_batch: int
    eval_generate_batch: int
    eval_new_tokens: int


PHI2 = dict(
    hidden_size=2560, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
    intermediate_size=10240, vocab_size=51200, partial_rotary_factor=0.4, max_position_embeddings=2048,
)
#: Qwen3-4B's attention and MLP widths (32 query heads, 8 key/value heads, head dim 128).
QWEN3 = dict(
    hidden_size=2560, num_attention_heads=32, num_key_value_heads=8, head_dim=128, intermediate_size=9728,
    vocab_size=151936, max_position_embeddings=4096,
)

H200 = Sizes(
    name="h200",
    phi2=PHI2,
    qwen3=QWEN3,
    kernel_layers=2,
    kernel_lengths=(1664, 1700, 1728, 1792),
    kernel_batch=4,
    kernel_completion=128,
    generate_batches=(8, 64),
    generate_new_tokens=64,
    generate_check_prompts=12,
    correctness_steps=4,
    correctness_situations=24,
    train_steps=8,
    train_warmup=2,
    train_batch=8,
    train_max_length=2048,
    memory_steps=2,
    memory_cot_batch=4,
    eval_situations=200,
    eval_baseline_situations=10,
    eval_batch=64,
    eval_generate_batch=64,
    eval_new_tokens=128,
)

DRY = Sizes(
    name="dry-run",
    phi2=dict(PHI2, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
              intermediate_size=128, vocab_size=512),
    qwen3=dict(QWEN3, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
               intermediate_size=128, vocab_size=512),
    kernel_layers=1,
    kernel_lengths=(40, 44),
    kernel_batch=2,
    kernel_completion=8,
    generate_batches=(2, 4),
    generate_new_tokens=4,
    generate_check_prompts=3,
    correctness_steps=2,
    correctness_situations=4,
    train_steps=3,
    train_warmup=1,
    train_batch=2,
    train_max_length=512,
    memory_steps=1,
    memory_cot_batch=1,
    eval_situations=4,
    eval_baseline_situations=2,
    eval_batch=4,
    eval_generate_batch=4,
    eval_new_tokens=4,
)


@dataclass(frozen=True)
class Stage:
    """A stage of the suite: its module, and its estimated seconds on an H200 and in a dry run."""

    name: str
    title: str
    estimate_s: float
    dry_estimate_s: float
    optional: bool = False


#: In priority order: the suite runs them in this order and drops the last ones when time runs out.
STAGES = (
    Stage("environment", "Environment", 15, 5),
    Stage("correctness", "Correctness on CUDA", 100, 30),
    Stage("kernels", "Attention kernels, NaNs and generation", 60, 10),
    Stage("train", "Training throughput against TRL DPOTrainer", 175, 40),
    Stage("memory", "Memory estimate against measured", 50, 10),
    Stage("eval", "Evaluation speed", 80, 15),
    Stage("qlora", "QLoRA (optional, bitsandbytes)", 40, 3, optional=True),
)
