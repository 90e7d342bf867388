"""Generated answers: greedy or sampled decoding, one random stream per answer.

`generate_rows` decodes prompts in a batch of rows, left-padded so every row's
next token follows its last real token (positions count real tokens only:
``position = cumsum(attention_mask) - 1``). It keeps the key/value cache itself
instead of calling ``model.generate``, for three reasons:

- **The batch is refilled (continuous batching).** When a row emits EOS (or
  reaches ``max_new_tokens``) its answer is yielded at once; the row runs along,
  its output ignored, until an eighth of the batch is done. Then the done rows are
  cut out of the cache and the next prompts of the queue take their slots: they
  are prefilled among themselves (left-padded), their first token is drawn, and
  their cache is joined to the running one (`riskdpo.evaluation.cache_rows`: the
  shorter cache and mask are padded on the left, hidden by the mask, and the rows
  stacked). Joining copies the cache and cutting moves rows within it, so both are
  done for several rows at once. A batch of answers of mixed lengths therefore never decodes with a free
  slot while prompts wait, nor until its longest answer; only when the queue is
  empty does it shrink. (Models with sliding-window layers, whose cache cannot be
  joined, get the next batch only when the last has emptied.) The queue is in
  length order, so newcomers are about as long as the prompts they join. Every
  row keeps its own positions, generator and tokens, and padding gets no
  attention, so greedy text is the same as decoding each prompt alone and as
  transformers' ``model.generate(do_sample=False)`` (tested on the CPU over prompts
  of 13 to 250 tokens and answers cut by EOS and by the limit, on phi, Llama and
  Mistral). On a GPU that holds up to near-ties only: bf16 matrix products are not
  batch-invariant, so a row's logits move in their last bits with its batch, and
  where two tokens are that close another batch picks the other one.
- **The cache appends in place.** Its layers keep spare columns
  (`riskdpo.evaluation.cache_rows.ReservedLayer`), so a decoding step writes one
  column instead of copying the whole cache as transformers' own layers do.
- **Each answer has its own random stream.** Answer k of a situation samples
  from a `torch.Generator` seeded by ``sha256(seed / sheet / situation_id)``
  and k (`answer_seed`), so what it draws depends neither on which other rows
  share its batch, nor on the batch size, nor on whether the run was resumed (the
  sampled text itself: identical on the CPU, up to near-ties on a GPU, as above; a
  CUDA generator draws other numbers than a CPU one from the same seed).

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
from riskdpo.models.cache_keyword import cache_keyword

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
    lengths = [len(tokenizer(prompt).input_ids) for prompt in prompts]
    queue = sorted(range(len(prompts)), key=lengths.__getitem__)  # prompts that join a batch are as long as its own
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    was_training = model.training
    model.eval()
    try:
        yield from _decode(model, tokenizer, prompts, seeds, queue, lengths, decoding, batch_size)
    finally:
        tokenizer.padding_side = padding_side
        model.train(was_training)


@dataclass(frozen=True)
class _Rows:
    """Rows being decoded. ``inputs`` [rows, q] are tokens not yet in ``cache``, at ``positions``
    [rows, q]; ``mask`` covers the cache's columns and then them. A row whose answer is ``done``
    has been yielded already and only runs along until the batch is compacted (`_compact`)."""

    indices: list[int]
    generators: list[Any]
    produced: list[list[int]]
    done: list[bool]
    inputs: Any
    positions: Any
    mask: Any
    cache: Any


#: Most prompt tokens (rows x padded width) prefilled in one forward pass: past a few thousand, a pass's
#: activations outgrow the CPU's caches and every prompt costs more (2.3 times as much at 64 rows of 200
#: tokens as at 8, SmolLM2 on the 2-core CPU). Groups of prompts prefilled apart are joined at once.
PREFILL_TOKENS = 4096


def _decode(model, tokenizer, prompts, seeds, queue, lengths, decoding, batch_size) -> Iterator[Generated]:
    """Keep up to `batch_size` rows decoding, refilling from `queue` and compacting in bulk.

    A finished answer is yielded at once, but its row runs along (its output ignored)
    until `compact_at` rows are done: then the done rows are cut out of the cache and,
    while prompts wait, the freed slots are refilled with the next prompts, prefilled
    and joined in the same round. Joining copies the whole cache and cutting moves rows
    within it, each about as costly as decoding a few rows for several steps, so they
    are done for several rows at once (an eighth of the batch) instead of for each
    answer as it ends. A cache that cannot be joined (sliding-window layers) gets the
    next prompts only when the last batch has ended: its batches shrink, as without
    refilling."""
    from riskdpo.evaluation.cache_rows import joinable, reserved_cache

    compact_at = max(1, batch_size // 8)
    can_join = joinable(reserved_cache(model.config, 1))  # the model's layer kinds: the same for every batch
    stops = stop_ids(model, tokenizer)
    running: _Rows | None = None
    while queue or running:
        if running is not None:
            done = sum(running.done)
            if done >= compact_at or done == len(running.done):
                running = _compact(running, can_join)
                if running is None and not queue:
                    return
        free = batch_size - (len(running.indices) if running else 0)
        if queue and (running is None or (free >= compact_at and can_join)):
            taken, queue = queue[:free], queue[free:]
            parts = [] if running is None else [running]
            for group in prefill_groups(taken, lengths) if can_join else [taken]:
                newcomers = _prompt_rows(model, tokenizer, prompts, seeds, group, decoding.max_new_tokens)
                finished, newcomers = _step(model, newcomers, decoding, stops)
                parts.append(newcomers)
                yield from finished
            running = _join(parts)
        else:
            finished, running = _step(model, running, decoding, stops)
            yield from finished


def _prompt_rows(model, tokenizer, prompts, seeds, indices, reserve: int) -> _Rows:
    """Prompts `indices`, left-padded among themselves, with an empty cache that has room for
    `reserve` more columns (`riskdpo.evaluation.cache_rows.reserved_cache`)."""
    import torch

    from riskdpo.evaluation.cache_rows import reserved_cache

    device = next(model.parameters()).device
    encoded = tokenizer([prompts[i] for i in indices], return_tensors="pt", padding=True).to(device)
    mask = encoded["attention_mask"]
    generators = [torch.Generator(device=device).manual_seed(seeds[i]) for i in indices]
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # padding does not shift a row's positions
    return _Rows(
        list(indices), generators, [[] for _ in indices], [False] * len(indices), encoded["input_ids"], positions,
        mask, reserved_cache(model.config, reserve),
    )


def _step(model, rows: _Rows, decoding, stops) -> tuple[list[Generated], _Rows]:
    """One forward pass: every row's next token; the answers that finished, and the rows advanced.
    A prefill pass (several new columns) gets a 4D mask in which padding queries see themselves
    (`prefill_mask`), where the attention takes one."""
    import torch

    from riskdpo.models.logps import PACKED_ATTENTION, attention_implementation, compute_dtype

    prefill = rows.inputs.shape[1] > 1 and attention_implementation(model) in PACKED_ATTENTION
    mask = prefill_mask(rows.mask, rows.cache, compute_dtype(model)) if prefill else rows.mask
    with torch.no_grad():
        logits = model(
            input_ids=rows.inputs, attention_mask=mask, position_ids=rows.positions,
            use_cache=True, logits_to_keep=1, **{cache_keyword(model): rows.cache},
        ).logits[:, -1, :]
        tokens = next_tokens(logits, decoding, rows.generators)
    finished, produced, done = [], [], []
    for index, so_far, was_done, token in zip(rows.indices, rows.produced, rows.done, tokens.tolist()):
        ended = token in stops
        now = so_far if was_done or ended else [*so_far, token]
        ends = not was_done and (ended or len(now) >= decoding.max_new_tokens)
        if ends:
            finished.append(Generated(index, now, ended))
        produced.append(now)
        done.append(was_done or ends)
    mask = torch.cat([rows.mask, torch.ones_like(rows.mask[:, :1])], dim=1)
    return finished, _Rows(
        rows.indices, rows.generators, produced, done, tokens.unsqueeze(1), rows.positions[:, -1:] + 1, mask,
        rows.cache,
    )


def prefill_allowed(mask: Any, window: int | None = None) -> Any:
    """[rows, q, q] True where query i of a left-padded prefill may attend to key j: j <= i, j a real
    token and, under a sliding `window`, i - j < window (left padding keeps real tokens contiguous, so
    column distance is position distance); and every query attends to itself. Without the diagonal
    a padding query would see nothing: an empty softmax row, NaN on some GPU kernels (transformers 5
    no longer repairs such rows), where the packed pass already gives padding its diagonal."""
    import torch

    columns = torch.arange(mask.shape[1], device=mask.device)
    allowed = (columns[:, None] >= columns[None, :])[None] & mask.bool()[:, None, :]
    if window is not None:
        allowed &= (columns[:, None] - columns[None, :] < window)[None]
    return allowed | torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)


def prefill_mask(mask: Any, cache: Any, dtype: Any) -> Any:
    """The 4D additive mask of a prefill pass into an empty `cache` (`prefill_allowed`), which
    transformers hands to the attention untouched: one tensor when every layer attends alike, else
    one per layer kind (``full_attention``, ``sliding_attention``), as mixed models take it."""
    from riskdpo.models.logps import attention_mask_for

    windows = {getattr(layer, "sliding_window", None) for layer in cache.layers}
    masks = {window: attention_mask_for(prefill_allowed(mask, window), dtype) for window in windows}
    if len(masks) == 1:
        return next(iter(masks.values()))
    return {("full_attention" if window is None else "sliding_attention"): value for window, value in masks.items()}


def _compact(rows: _Rows, can_join: bool) -> _Rows | None:
    """The rows whose answers are not done, None if none (`can_join`: whether the cache's rows may be
    cut apart, see `riskdpo.evaluation.cache_rows`; a sliding-window cache drops rows in place)."""
    import torch

    from riskdpo.evaluation.cache_rows import keep_rows

    kept = [row for row, done in enumerate(rows.done) if not done]
    if not kept:
        return None
    select = torch.tensor(kept, device=rows.mask.device)
    if can_join:
        cache, mask = keep_rows(rows.cache, rows.mask, select)
    else:
        cache, mask = rows.cache, rows.mask[select]
        cache.batch_select_indices(select)
    return _Rows(
        [rows.indices[row] for row in kept], [rows.generators[row] for row in kept],
        [rows.produced[row] for row in kept], [False] * len(kept), rows.inputs[select], rows.positions[select],
        mask, cache,
    )


def prefill_groups(indices: Sequence[int], lengths: Sequence[int]) -> list[list[int]]:
    """`indices` (in length order) cut into consecutive groups of at most `PREFILL_TOKENS` padded tokens
    (rows x the group's longest prompt), at least one prompt each."""
    groups: list[list[int]] = []
    for index in indices:
        group = groups[-1] if groups else None
        if group is None or (len(group) + 1) * max(lengths[index], *(lengths[i] for i in group)) > PREFILL_TOKENS:
            groups.append([index])
        else:
            group.append(index)
    return groups


def _join(parts: Sequence[_Rows]) -> _Rows:
    """The rows of all `parts`, in order, as one batch (see `riskdpo.evaluation.cache_rows.join_rows`)."""
    import torch

    from riskdpo.evaluation.cache_rows import join_rows

    if len(parts) == 1:
        return parts[0]
    cache, mask = join_rows([(part.cache, part.mask) for part in parts])
    return _Rows(
        [i for part in parts for i in part.indices], [g for part in parts for g in part.generators],
        [p for part in parts for p in part.produced], [d for part in parts for d in part.done],
        torch.cat([part.inputs for part in parts]), torch.cat([part.positions for part in parts]), mask, cache,
    )


def stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """Token ids that end an answer: the tokenizer's EOS and the model's generation EOS ids."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    listed = configured if isinstance(configured, list) else [configured]
    return {token for token in [tokenizer.eos_token_id, *listed] if token is not None}


def answer_record(situation: Situation, text: str, token_count: int, ended: bool) -> dict[str, Any]:
    """The choice an answer names and its evidence, as a record.

    `riskdpo.data.answers.read_answer` reads the label by its rules, told
    whether the model ended the answer (`ended`) or it was cut at
    ``--max-new-tokens``, and says which rule decided (``rule``), which part
    of a thinking model's answer it read (``answer_source``), how long the
    reasoning is and, for an invalid answer, why. ``new_tokens`` is the
    answer's length in tokens, ``truncated`` whether it was cut; an invalid
    answer that was cut is invalid because it was cut (reason ``truncated``),
    whatever else it lacks.
    """
    parsed = read_answer(text, situation.option_labels, situation.answer_variants, finished=ended)
    reason = parsed.reason if parsed.label is not None or ended else "truncated"
    return {
        "label": parsed.label,
        "category": categorize(situation, parsed.label),
        "answer": text,
        "answer_source": parsed.source,
        "rule": parsed.rule,
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
