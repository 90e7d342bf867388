"""Generated answers: greedy or sampled decoding, one random stream per answer.

`generate_rows` decodes prompts in batches of similar length, left-padded so
every row's next token follows its last real token (positions count real
tokens only: ``position = cumsum(attention_mask) - 1``). It keeps the
key/value cache itself instead of calling ``model.generate``, for two reasons:

- **A finished row leaves the batch.** When a row emits EOS (or reaches
  ``max_new_tokens``) it is yielded at once and its cache rows are dropped
  (`DynamicCache.batch_select_indices`), so a batch never decodes until its
  longest answer; the remaining rows' computation is unchanged, so greedy text
  is the same as decoding each prompt alone.
- **Each answer has its own random stream.** Answer k of a situation samples
  from a `torch.Generator` seeded by ``sha256(seed / sheet / situation_id)``
  and k (`answer_seed`), so what it draws depends neither on which other rows
  share its batch, nor on the batch size, nor on whether the run was resumed.

The next token of a row, from its last logits ``z`` (HF's warper order):

    greedy (temperature 0):  argmax_v z_v
    sampled:                 p = softmax(z / T); keep the top_k largest p (top_k 0: all);
                             keep the smallest set of most probable tokens whose mass
                             reaches top_p (the most probable always stays);
                             renormalise and draw one token from the row's generator.

top_k 1 therefore equals greedy decoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from riskdpo.data.situations import Situation, situation_digest
from riskdpo.data.answers import read_answer
from riskdpo.evaluation.choices import categorize

@dataclass(frozen=True)
class Decoding:
    """How answers are decoded; temperature 0 is greedy (top_p, top_k then unused)."""

    max_new_tokens: int = 32
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0


@dataclass(frozen=True)
class Generated:
    """One finished answer: its token ids and whether it ended with EOS (else it was cut at the limit)."""

    index: int
    token_ids: list[int]
    ended: bool


def answer_seed(seed: int, situation: Situation, sample: int) -> int:
    """The seed of answer `sample` of `situation`: stable under batching, sampling and resume."""
    digest = situation_digest(seed, situation.sheet, situation.situation_id)
    return (int.from_bytes(digest[:8], "big") + sample) % 2**63


def next_tokens(logits: Any, decoding: Decoding, generators: Sequence[Any]) -> Any:
    """The next token of every row (see the module docstring for the rule)."""
    import torch

    if decoding.temperature == 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / decoding.temperature, dim=-1)
    if 0 < decoding.top_k < probs.shape[-1]:  # the k largest, sorted: no need to sort the whole vocabulary
        sorted_probs, order = probs.topk(decoding.top_k, dim=-1)
    else:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
    keep = torch.ones_like(sorted_probs, dtype=torch.bool)
    if decoding.top_p < 1.0:
        mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
        keep &= mass_before < decoding.top_p
    keep[:, 0] = True
    sorted_probs = sorted_probs * keep
    drawn = [
        torch.multinomial(sorted_probs[row], 1, generator=generator) for row, generator in enumerate(generators)
    ]
    return order.gather(1, torch.stack(drawn)).squeeze(1)


def generate_rows(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    decoding: Decoding,
    batch_size: int = 8,
) -> Iterator[Generated]:
    """Decode every prompt; yield each answer as soon as it finishes (not in input order)."""
    import torch

    from riskdpo.models.logps import length_grouped_order

    lengths = [len(tokenizer(prompt).input_ids) for prompt in prompts]
    device = next(model.parameters()).device
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    try:
        for indices in length_grouped_order(lengths, batch_size):
            encoded = tokenizer([prompts[i] for i in indices], return_tensors="pt", padding=True).to(device)
            generators = [torch.Generator(device=device).manual_seed(seeds[i]) for i in indices]
            yield from _decode_batch(model, tokenizer, encoded, list(indices), generators, decoding)
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)


def _decode_batch(model, tokenizer, encoded, indices, generators, decoding) -> Iterator[Generated]:
    """One left-padded batch, shrinking as rows finish."""
    import torch
    from transformers import DynamicCache

    mask = encoded["attention_mask"]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    inputs = encoded["input_ids"]
    cache = DynamicCache(config=model.config)
    produced: list[list[int]] = [[] for _ in indices]
    stops = stop_ids(model, tokenizer)
    while indices:
        with torch.no_grad():  # not around the yields: the caller's code runs between them
            logits = model(
                input_ids=inputs, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1
            ).logits[:, -1, :]
            tokens = next_tokens(logits, decoding, generators).tolist()
        keep = []
        for row, token in enumerate(tokens):
            ended = token in stops
            if not ended:
                produced[row].append(token)
            if ended or len(produced[row]) >= decoding.max_new_tokens:
                yield Generated(indices[row], produced[row], ended)
            else:
                keep.append(row)
        if len(keep) < len(tokens) and keep:
            cache.batch_select_indices(torch.tensor(keep, device=mask.device))
        select = torch.tensor(keep, dtype=torch.long, device=mask.device)
        indices = [indices[row] for row in keep]
        produced = [produced[row] for row in keep]
        generators = [generators[row] for row in keep]
        last = torch.tensor(tokens, device=mask.device)[select].unsqueeze(1)
        mask = torch.cat([mask[select], torch.ones_like(last)], dim=1)
        positions = positions[select, -1:] + 1
        inputs = last


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end an answer: the tokenizer's EOS and the model's generation EOS ids."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    listed = configured if isinstance(configured, list) else [configured]
    return {token for token in [tokenizer.eos_token_id, *listed] if token is not None}


def answer_record(situation: Situation, text: str, token_count: int, ended: bool) -> dict[str, Any]:
    """The choice an answer names and its evidence, as a record.

    `riskdpo.data.answers.read_answer` reads the label by its rules and says
    which part of a thinking model's answer it read (``answer_source``), how
    long the reasoning is and, for an invalid answer, why. ``new_tokens`` is
    the answer's length in tokens, ``truncated`` whether it was cut at
    ``--max-new-tokens``; an invalid answer that was cut is invalid because it
    was cut (reason ``truncated``), whatever else it lacks.
    """
    parsed = read_answer(text, situation.option_labels, situation.answer_variants)
    reason = parsed.reason if parsed.label is not None or ended else "truncated"
    return {
        "label": parsed.label,
        "category": categorize(situation, parsed.label),
        "answer": text,
        "answer_source": parsed.source,
        "invalid_reason": reason,
        "reasoning_chars": parsed.reasoning_chars,
        "new_tokens": token_count,
        "truncated": not ended,
    }


def generate_records(
    model: Any,
    tokenizer: Any,
    work: Sequence[tuple[Situation, int, str]],
    decoding: Decoding,
    batch_size: int,
    on_answer: Callable[[int, dict[str, Any]], None],
) -> None:
    """Generate and read an answer for each (situation, sample, prompt); report each as it finishes."""
    seeds = [answer_seed(decoding.seed, situation, sample) for situation, sample, _ in work]
    prompts = [prompt for _, _, prompt in work]
    for done in generate_rows(model, tokenizer, prompts, seeds, decoding, batch_size):
        text = tokenizer.decode(done.token_ids, skip_special_tokens=True)
        on_answer(done.index, answer_record(work[done.index][0], text, len(done.token_ids), done.ended))
