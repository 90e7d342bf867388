"""Packed single pass vs the KV-cache pass for completion log-probs, timed in one process.

riskdpo computes log pi(completion | prompt) for K completions of a prompt in one
packed pass (`riskdpo.models.logps`, a block attention mask). Earlier versions
ran the prompt once with ``use_cache=True``, repeated the cache K times and ran
the completions on top of it (two forwards); that pass is kept here, written
against transformers' current cache argument (``cache=``), as the yardstick.

For each model and mode (``eval``: no gradients; ``train``: forward and backward
of the summed log-probs) the two passes run in turn on the same batches (A B A B
...), after one untimed warm-up each, and the medians of the per-round times are
printed with their ratio. Both passes' log-probs are checked to agree first.

    python benchmarks/logps_passes.py --model tiny --rounds 15
    python benchmarks/logps_passes.py --model smollm2-135m --rounds 7
    python benchmarks/logps_passes.py --model smollm2-135m --rounds 5 --reasoning-words 100

The tiny model is built into --work (like the benchmark sections do); SmolLM2
is the bundled model (converted once into riskdpo's cache).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from riskdpo.models.loading import load_model, load_tokenizer
from riskdpo.models.logps import CompletionBatch, batch_logps, collate, tokenize_group

HERE = Path(__file__).resolve().parent


def cached_logps(model, batch: CompletionBatch) -> torch.Tensor:
    """The earlier two-forward pass: prompt with a cache, then the completions on K copies of it."""
    k = batch.num_completions
    prompt_out = model(
        input_ids=batch.prompt_ids,
        attention_mask=batch.prompt_mask,
        position_ids=(batch.prompt_mask.cumsum(-1) - 1).clamp(min=0),
        use_cache=True,
        logits_to_keep=1,
    )
    cache = prompt_out.cache
    cache.batch_repeat_interleave(k)
    steps = torch.arange(batch.completion_ids.shape[1])
    completion_out = model(
        input_ids=batch.completion_ids,
        attention_mask=torch.cat([batch.prompt_mask.repeat_interleave(k, dim=0), batch.completion_mask], dim=1),
        position_ids=batch.prompt_mask.sum(-1).repeat_interleave(k).unsqueeze(1) + steps.unsqueeze(0),
        cache=cache,
        use_cache=True,
    )
    first = prompt_out.logits[:, -1:, :].repeat_interleave(k, dim=0)
    logits = torch.cat([first, completion_out.logits[:, :-1, :]], dim=1).float()
    token = torch.log_softmax(logits, dim=-1).gather(-1, batch.completion_ids.unsqueeze(-1)).squeeze(-1)
    return (token * batch.completion_mask).sum(-1).view(-1, k)


def packed_logps(model, batch: CompletionBatch) -> torch.Tensor:
    return batch_logps(model, batch)[0]


def batches(tokenizer, prompts: list[str], completions: list[list[str]], batch_size: int) -> list[CompletionBatch]:
    groups = [tokenize_group(tokenizer, p, c) for p, c in zip(prompts, completions)]
    return [collate(groups[i : i + batch_size], tokenizer.pad_token_id) for i in range(0, len(groups), batch_size)]


def run_round(model, pass_fn, work: list[CompletionBatch], train: bool) -> float:
    start = time.perf_counter()
    for batch in work:
        if train:
            model.zero_grad(set_to_none=True)
            pass_fn(model, batch).sum().backward()
        else:
            with torch.no_grad():
                pass_fn(model, batch)
    return time.perf_counter() - start


def workload(name: str, work_dir: Path) -> tuple[str, list[str], list[list[str]]]:
    """(model path, prompts, completions): the test suite's 16 hand-written choice prompts, twice,
    with label completions (chosen, rejected)."""
    sys.path.insert(0, str(HERE.parent / "tests"))
    from helpers import choice_pairs

    pairs = choice_pairs() * 2
    if name == "tiny":
        from riskdpo.models.tiny import build_tiny_model

        path = work_dir / "logps-tiny-model"
        if not (path / "config.json").exists():
            build_tiny_model(path, [p["prompt"] for p in pairs] + [p["chosen"] for p in pairs], seed=0)
        name = str(path)
    return name, [p["prompt"] for p in pairs], [[p["chosen"], p["rejected"]] for p in pairs]


def reasoned(completions: list[list[str]], words: int) -> list[list[str]]:
    """Completions lengthened by `words` words of reasoning before the label (chain-of-thought-like)."""
    text = " ".join(["the sure amount is worth more to me than a gamble"] * (words // 10 + 1)).split()[:words]
    return [[f"{' '.join(text)} so {c}" for c in group] for group in completions] if words else completions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="tiny, smollm2-135m, or a model path")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--modes", default="eval,train", help="eval (no gradients), train (forward and backward)")
    parser.add_argument("--reasoning-words", type=int, default=0, help="lengthen each completion by this many words")
    parser.add_argument("--work", type=Path, default=HERE / ".work")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    path, prompts, completions = workload(args.model, args.work)
    completions = reasoned(completions, args.reasoning_words)
    tokenizer = load_tokenizer(path)
    model = load_model(path)
    work = batches(tokenizer, prompts, completions, args.batch_size)
    tokens = sum(b.num_tokens for b in work)
    with torch.no_grad():
        for batch in work:
            assert torch.allclose(packed_logps(model.eval(), batch), cached_logps(model, batch), atol=1e-3)
    print(f"# {args.model}: {len(prompts)} prompts x 2 completions (+{args.reasoning_words} words), {tokens} tokens, batch {args.batch_size}, "
          f"{args.threads} thread(s), {args.rounds} rounds; {platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    print("| mode | packed s (median) | cached s (median) | packed / cached |")
    print("|---|---|---|---|")
    for mode in args.modes.split(","):
        train = mode == "train"
        model.train(train)
        times: dict[str, list[float]] = {"packed": [], "cached": []}
        for name, fn in (("packed", packed_logps), ("cached", cached_logps)):
            run_round(model, fn, work, train)  # warm-up
        for _ in range(args.rounds):
            for name, fn in (("packed", packed_logps), ("cached", cached_logps)):
                times[name].append(run_round(model, fn, work, train))
        packed, cached = statistics.median(times["packed"]), statistics.median(times["cached"])
        print(f"| {mode} | {packed:.3f} | {cached:.3f} | {packed / cached:.2f} |")


if __name__ == "__main__":
    main()
