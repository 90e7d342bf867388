"""Stage 4, training throughput against TRL's DPOTrainer on a phi-2-shaped model with random weights.

The benchmark's own comparison (`benchmarks/bench_train.compare`: each trainer
in its own process, same pairs, batch, lengths, LoRA settings (r 8, alpha 16,
all linear layers, dropout 0), lr 5e-5 with linear decay, clipping, seed,
steps and sigmoid DPO with beta 0.1; TRL in its best configuration:
reference log-probs precomputed, LoRA through peft, bf16, fused AdamW, no
gradient checkpointing) on three configurations: LoRA on label completions,
LoRA on chain-of-thought completions (the sample's ``train_cot`` sheet,
~700-token chosen and ~360-token rejected answers after a ~300-token prompt
with the SmolLM2 tokenizer), and full fine-tuning on label completions.
Reported: pairs/s and tokens/s after the warm-up steps, peak
``torch.cuda.max_memory_allocated``, the loss after the same steps, and MFU
counting only the FLOPs that run (bench_train's docstring has the formula).
Targets: >= 2.0x TRL's pairs/s on labels, >= 1.3x on chain of thought; peak
memory <= 0.6x TRL's with LoRA and <= 0.9x with full fine-tuning; MFU >= 40 %
for full fine-tuning.
"""

from __future__ import annotations

from common import Context, SectionResult, bench_settings, phi2_model

#: (completions, fine-tuning), in the order they run.
CONFIGS = (("label", "lora"), ("cot", "lora"), ("label", "full"))


def run(ctx: Context) -> SectionResult:
    from bench_train import compare, train_result

    sizes = ctx.sizes
    settings = bench_settings(ctx, train_steps=sizes.train_steps, warmup_steps=sizes.train_warmup,
                              batch_size=sizes.train_batch, gpu_batch_size=sizes.train_batch,
                              max_length=sizes.train_max_length)
    model = phi2_model(ctx)
    results = [compare(settings, "phi2", completions, finetune, model=model) for completions, finetune in CONFIGS]
    section = train_result(settings, results)
    section.section = "train"
    section.title = "GPU suite: training throughput against TRL DPOTrainer (phi-2-shaped, random weights)"
    section.description = __doc__.split("\n\n", 1)[1].strip()
    return section
