"""Stage 6, evaluation speed on the phi-2-shaped model: eval-choices against the one-at-a-time loop.

The benchmark's own comparison (`benchmarks/bench_eval.eval_section`):
``eval_situations`` held-out situations (generated with seed 11), riskdpo's
logprob mode and batched greedy generate (`riskdpo_eval.py`, one model load)
against `baseline_eval.py` (chat template, ``model.generate`` and a regex, one
situation at a time), both in bf16 with the same prompts and max_new_tokens.
The baseline runs the first ``eval_baseline_situations`` situations only: one
at a time, its situations/s does not depend on how many, and 200 would take
minutes. With random weights every answer runs to max_new_tokens, the worst
case for both sides. Targets (issue 23): logprob >= 30x the baseline's
situations/s, generate >= 5x.
"""

from __future__ import annotations

from common import Context, SectionResult, bench_settings, phi2_model

LOGPROB_TARGET = 30.0


def run(ctx: Context) -> SectionResult:
    from bench_eval import eval_section

    sizes = ctx.sizes
    settings = bench_settings(ctx, eval_situations=sizes.eval_situations, eval_batch_size=sizes.eval_batch,
                              eval_generate_batch_size=sizes.eval_generate_batch, max_new_tokens=sizes.eval_new_tokens,
                              eval_whole_command=False)
    section = eval_section(settings, model=phi2_model(ctx), baseline_count=sizes.eval_baseline_situations,
                           logprob_target=LOGPROB_TARGET)
    section.title = "GPU suite: evaluation speed (phi-2-shaped, random weights)"
    section.description = __doc__.split("\n\n", 1)[1].strip()
    return section
