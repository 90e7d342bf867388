"""Preference pairs from situations: chosen = risk-averse, rejected per policy.

A pair's *chosen* answer is the risk-averse agent's best option (CARA,
alpha = 0.01). Its *rejected* answer comes from one of two agents:

- ``risk_neutral``: the linear agent's best option (the usual rejected answer);
- ``too_risk_averse``: the alpha = 0.10 agent's best option, so that the model
  learns alpha = 0.01 and not "as timid as possible".

`POLICIES` pick the rejected agent per situation: always one of the two, or
``bucket``, which follows the sheet's `low_bucket_label` (``010_only`` ->
too_risk_averse, ``lin_only`` -> risk_neutral, ``both`` -> a coin flip). The
coin is a hash of (seed, sheet, situation_id), so it does not depend on which
other situations are read, sampled or in what order.

A situation is kept when its risk-averse set and the rejected agent's set are
both non-empty and share no label; for the risk-neutral agent that is exactly a
*disagreement*. When a set holds several (tied) labels, the first in prompt
order is used. Splits go by situation, so a situation's pairs (augmented answer
variants included) never sit on both sides of a train/validation split.

Responses (`RESPONSES`) are the bare canonical label, the label as the prompt
writes it, or chain-of-thought answers (`riskdpo.pairs.cot`): the sheet's
`chosen_full`/`rejected_full`, kept only where their final answers name the
pair's options (`rejected_full` holds *one* agent's reasoning, so under
another policy those situations are skipped and counted), or, without those
columns, reasoning written from the lotteries for both agents alike.

With `balance_positions` K (`riskdpo.pairs.balance`), each sampled situation
is rendered with up to K rotations of its lotteries across the option lines,
so that every line is the chosen one (and the rejected one) equally often.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

from riskdpo.core.errors import UserError
from riskdpo.data.labels import answer_variants as default_answer_variants
from riskdpo.pairs.balance import Lines, balance_summary, lines_of, render_rotations
from riskdpo.pairs.cot import ReasoningMismatch, reasoning_pair, reasoning_summary
from riskdpo.pairs.prompting import rewrite_instruction
from riskdpo.pairs.records import pair_problem
from riskdpo.data.situations import Situation, situation_digest

#: --rejected values -> the rejected agent (None: decided per situation by its bucket).
POLICIES: dict[str, str | None] = {
    "risk-neutral": "risk_neutral",
    "too-risk-averse": "too_risk_averse",
    "bucket": None,
}
#: How a response is written: the canonical label ("b"), the label as the prompt
#: writes it ("(b)"), or chain-of-thought answers (the sheet's, checked, or written from the lotteries).
RESPONSES = ("label", "as-written", "cot")
#: low_bucket_label values -> rejected agent; "both" flips a seeded coin.
BUCKETS: dict[str, str | None] = {"010_only": "too_risk_averse", "lin_only": "risk_neutral", "both": None}


@dataclass
class Eligible:
    """Situations that can make a pair under a policy, and why the others cannot."""

    kept: list[tuple[Situation, str]]  # (situation, rejected agent)
    read: int
    skipped: Counter = field(default_factory=Counter)  # reason -> situations

    def describe_skips(self) -> str:
        return ", ".join(f"{count} {reason}" for reason, count in self.skipped.most_common()) or "none"


def bucket_coin(seed: int, sheet: str, situation_id: str) -> str:
    """The rejected agent of a ``both`` situation: a fair coin from `situation_digest`."""
    return "risk_neutral" if situation_digest(seed, sheet, situation_id)[0] % 2 == 0 else "too_risk_averse"


def rejected_agent(situation: Situation, policy: str, seed: int = 0) -> tuple[str | None, str | None]:
    """``(agent, None)`` for the rejected agent of `situation`, or ``(None, reason)`` to skip it."""
    if POLICIES[policy] is not None:
        return POLICIES[policy], None
    bucket = situation.meta.get("low_bucket_label")
    if bucket in (None, ""):
        return None, "without low_bucket_label"
    if bucket not in BUCKETS:
        return None, f"with unknown low_bucket_label {bucket!r}"
    return BUCKETS[bucket] or bucket_coin(seed, situation.sheet, situation.situation_id), None


def skip_reason(situation: Situation, agent: str) -> str | None:
    """Why `situation` cannot make a pair with `agent` rejected, or None when it can."""
    rejected = getattr(situation, agent)
    if not situation.risk_averse:
        return "without risk_averse labels"
    if not rejected:
        return f"without {agent} labels"
    if set(rejected) & set(situation.risk_averse):
        return f"where the {agent} best is also risk-averse best"
    return None


def find_eligible(
    situations: Sequence[Situation], policy: str = "risk-neutral", *, seed: int = 0, sheets: Sequence[str] | None = None
) -> Eligible:
    """The situations of `sheets` (all when None) that make a pair under `policy`.

    Raises `UserError` for an unknown policy or a sheet no situation comes from.
    """
    if policy not in POLICIES:
        raise UserError(f"--rejected {policy!r}: expected one of {', '.join(POLICIES)}")
    present = list(dict.fromkeys(situation.sheet for situation in situations))
    absent = [sheet for sheet in sheets or () if sheet not in present]
    if absent:
        raise UserError(f"no situations from sheet {', '.join(map(repr, absent))} (sheets: {', '.join(present)})")
    eligible = Eligible(kept=[], read=len(situations))
    for situation in situations:
        if sheets and situation.sheet not in sheets:
            eligible.skipped["from other sheets"] += 1
            continue
        agent, reason = rejected_agent(situation, policy, seed)
        reason = reason or skip_reason(situation, agent)
        if reason:
            eligible.skipped[reason] += 1
        else:
            eligible.kept.append((situation, agent))
    return eligible


def sample_situations(kept: list, sample_size: int | None, seed: int = 0) -> list:
    """`sample_size` items of `kept` drawn with `random.Random(seed)`, in their original order.

    All of `kept` when `sample_size` is None or at least its length.
    """
    if sample_size is not None and sample_size < 1:
        raise UserError(f"--sample-size {sample_size}: must be at least 1")
    if sample_size is None or sample_size >= len(kept):
        return list(kept)
    picked = sorted(random.Random(seed).sample(range(len(kept)), sample_size))
    return [kept[index] for index in picked]


def _first_in_prompt_order(situation: Situation, labels: list[str]) -> str:
    """The label of `labels` that comes first in the prompt (ties broken by prompt order)."""
    order = {label: position for position, label in enumerate(situation.option_labels)}
    return min(labels, key=lambda label: order.get(label, len(order)))


def _response(situation: Situation, label: str, response: str) -> str:
    """The answer text for `label` in the `response` form "label" or "as-written"."""
    if response == "label":
        return label
    if label not in situation.option_labels:
        raise UserError(
            f"sheet '{situation.sheet}', situation {situation.situation_id}: label {label!r} is not among the prompt's options"
        )
    return situation.written(label)


def pair_labels(situation: Situation, agent: str) -> tuple[str, str]:
    """The labels of the pair's chosen (risk-averse) and rejected (`agent`) options, first in prompt order on ties."""
    return _first_in_prompt_order(situation, situation.risk_averse), _first_in_prompt_order(situation, getattr(situation, agent))


def _variant_shape(variant: str, label: str) -> str:
    """`variant` with its label replaced by a placeholder: ``"Option b"`` -> ``"Option {}"``.

    Lower and upper case get different placeholders, so ``"B"`` pairs with
    ``"A"`` and ``"b"`` with ``"a"``. The label must stand alone (not inside a
    word), so ``"Option"`` keeps its letters.
    """
    pattern = re.compile(rf"(?<![0-9A-Za-z]){re.escape(label)}(?![0-9A-Za-z])", re.IGNORECASE)
    return pattern.sub(lambda match: "{}" if match.group(0) == label else "{U}", variant)


def variant_pairs(situation: Situation, chosen: str, rejected: str) -> list[tuple[str, str]]:
    """Answer variants of the two labels written the same way: ``[("(b)", "(a)"), ("B", "A"), ...]``.

    Variants come from `Situation.answer_variants`; a label it lacks gets
    `riskdpo.data.labels.answer_variants` of the label as written.
    """

    def variants(label: str) -> list[str]:
        written = situation.written(label) if label in situation.option_labels else None
        return situation.answer_variants.get(label) or default_answer_variants(label, written)

    rejected_by_shape = {}
    for variant in variants(rejected):
        rejected_by_shape.setdefault(_variant_shape(variant, rejected), variant)
    pairs = []
    for variant in variants(chosen):
        match = rejected_by_shape.get(_variant_shape(variant, chosen))
        if match is not None and (variant, match) not in pairs:
            pairs.append((variant, match))
    return pairs


def situation_pairs(
    situation: Situation,
    agent: str,
    *,
    response: str = "label",
    instruction: str | None = None,
    augment_variants: int = 0,
) -> list[dict]:
    """The pair of one situation (plus up to `augment_variants` answer-variant pairs).

    Raises `ReasoningMismatch` when cot reasoning does not answer the pair's options.
    """
    chosen_label, rejected_label = pair_labels(situation, agent)
    extra_fields = {}
    if response == "cot":
        chosen, rejected, extra_fields["reasoning"] = reasoning_pair(situation, chosen_label, rejected_label, agent)
        answers = [(chosen, rejected)]
    else:
        answers = [(_response(situation, chosen_label, response), _response(situation, rejected_label, response))]
    if augment_variants:
        extra = [pair for pair in variant_pairs(situation, chosen_label, rejected_label) if pair != answers[0]]
        answers += [(chosen, rejected) for chosen, rejected in extra if chosen.strip() != rejected.strip()][:augment_variants]
    prompt = rewrite_instruction(situation.prompt, instruction)
    pairs = [
        {
            "prompt": prompt,
            "chosen": chosen,
            "rejected": rejected,
            "situation_id": situation.situation_id,
            "sheet": situation.sheet,
            "rejected_kind": agent,
            "response": response,
            "instruction": instruction,
            **extra_fields,
        }
        for chosen, rejected in answers
    ]
    problem = pair_problem(pairs[0])
    if problem:
        raise UserError(f"sheet '{situation.sheet}', situation {situation.situation_id}: cannot make a pair: {problem}")
    return pairs


@dataclass
class BuiltPairs:
    """The pairs of `build_pairs` and what the summary reports about them."""

    pairs: list[dict]
    lines_before: list[Lines]  # (options, chosen line, rejected line) of each sampled situation as written
    lines_after: list[Lines]  # the same for each rendered situation (the same as before without balancing)
    dropped: Counter = field(default_factory=Counter)  # reason -> sampled situations (or renderings) left out


def build_pairs(
    eligible: Eligible,
    *,
    sample_size: int | None = None,
    seed: int = 0,
    response: str = "label",
    instruction: str | None = None,
    augment_variants: int = 0,
    balance_positions: int | None = None,
) -> BuiltPairs:
    """Sample the eligible situations, render each (balanced: up to K rotations), and turn each into its pair(s).

    Situations whose cot reasoning does not answer the pair's options, and
    (balancing) those whose lotteries cannot be moved, are left out and
    counted. Raises `UserError` when no situation is eligible or no pair is
    left (saying why), or an option is out of range.
    """
    if response not in RESPONSES:
        raise UserError(f"--response {response!r}: expected one of {', '.join(RESPONSES)}")
    if augment_variants < 0:
        raise UserError(f"--augment-variants {augment_variants}: must be 0 or more")
    if augment_variants and response == "cot":
        raise UserError("--augment-variants works with --response label or as-written, not cot")
    if balance_positions is not None and balance_positions < 1:
        raise UserError(f"--balance-positions {balance_positions}: must be at least 1")
    if not eligible.kept:
        raise UserError(f"no situation can make a pair: of {eligible.read} read, {eligible.describe_skips()}")
    sampled = sample_situations(eligible.kept, sample_size, seed)
    lines = [lines_of(situation, *pair_labels(situation, agent)) for situation, agent in sampled]
    built = BuiltPairs(pairs=[], lines_before=[line for line in lines if line], lines_after=[])
    if balance_positions is None:
        rendered = [(situation, agent, line) for (situation, agent), line in zip(sampled, lines)]
    else:
        rendered, unmovable = render_rotations(sampled, lines, balance_positions, seed)
        if unmovable:
            built.dropped["whose option lines cannot be rotated"] += unmovable
    for situation, agent, line in rendered:
        try:
            made = situation_pairs(
                situation, agent, response=response, instruction=instruction, augment_variants=augment_variants
            )
        except ReasoningMismatch as mismatch:
            built.dropped[str(mismatch)] += 1
            continue
        if balance_positions is not None:
            made = [{**pair, "option_order": situation.meta["shuffled_order"]} for pair in made]
        built.pairs += made
        if line:
            built.lines_after.append(line)
    if not built.pairs:
        dropped = ", ".join(f"{count} {reason}" for reason, count in built.dropped.most_common())
        raise UserError(f"no pair left to write: of {len(sampled)} sampled situations, {dropped}")
    return built


def select_pairs(
    situations: Sequence[Situation],
    policy: str = "risk-neutral",
    *,
    sample_size: int | None = None,
    seed: int = 0,
    sheets: Sequence[str] | None = None,
    response: str = "label",
    instruction: str | None = None,
    augment_variants: int = 0,
    balance_positions: int | None = None,
) -> list[dict]:
    """Pairs (chosen = risk-averse, rejected per `policy`) from `situations`, sampled with `seed`."""
    eligible = find_eligible(situations, policy, seed=seed, sheets=sheets)
    return build_pairs(
        eligible,
        sample_size=sample_size,
        seed=seed,
        response=response,
        instruction=instruction,
        augment_variants=augment_variants,
        balance_positions=balance_positions,
    ).pairs


def split_by_situation(pairs: list[dict], fraction: float, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Split pairs into (train, validation) with about `fraction` of the situations in validation.

    Situations are keyed by (sheet, situation_id) and shuffled with
    `random.Random(seed)`; the validation side gets round(fraction * n)
    situations (at least one) and the train side keeps at least one. Pairs keep
    their order within each side.
    """
    if not 0 < fraction < 1:
        raise UserError(f"--val-fraction {fraction}: must lie strictly between 0 and 1")
    keys = list(dict.fromkeys((pair["sheet"], pair["situation_id"]) for pair in pairs))
    if len(keys) < 2:
        raise UserError(f"--val-fraction needs at least 2 situations to split; there are {len(keys)}")
    random.Random(seed).shuffle(keys)
    held_out = set(keys[: min(len(keys) - 1, max(1, round(fraction * len(keys))))])
    train = [pair for pair in pairs if (pair["sheet"], pair["situation_id"]) not in held_out]
    validation = [pair for pair in pairs if (pair["sheet"], pair["situation_id"]) in held_out]
    return train, validation


def summary_lines(eligible: Eligible, train: list[dict], validation: list[dict] | None, sample_size: int | None) -> list[str]:
    """What `make-pairs` did, one fact a line."""
    lines = [
        f"situations read: {eligible.read}",
        f"kept: {len(eligible.kept)}",
        f"skipped: {eligible.describe_skips()}",
    ]
    if sample_size is not None and sample_size < len(eligible.kept):
        lines.append(f"sampled: {sample_size} of the {len(eligible.kept)} kept situations")
    elif sample_size is not None:
        lines.append(f"sample size {sample_size} is not below the {len(eligible.kept)} kept situations: all are used")
    lines.append(f"pairs written: {len(train)} train" + (f", {len(validation)} validation" if validation is not None else ""))
    kinds = Counter(pair["rejected_kind"] for pair in train + (validation or []))
    lines.append("rejected_kind: " + ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items())))
    return lines


def recipe_summary_lines(built: BuiltPairs, balanced: bool) -> list[str]:
    """What balancing and the cot checks did: situations left out, line distributions, length ratio."""
    lines = []
    if built.dropped:
        lines.append("left out: " + ", ".join(f"{count} {reason}" for reason, count in built.dropped.most_common()))
    if balanced:
        lines += balance_summary(built.lines_before, built.lines_after)
    return lines + reasoning_summary(built.pairs)
