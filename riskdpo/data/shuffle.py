"""Shuffling which lottery each label offers, to separate risk aversion from label priors.

A tuned model might "become risk-averse" only by preferring a label ("a", or
the first option) that happens to be the risk-averse one more often in its
training pairs. Shuffling moves the lotteries between the option lines while
the labels stay in place: line k keeps its label but offers lottery order[k].
A model that reads the lotteries keeps its risk-averse rate; one that prefers a
label does not. Label sets, options and the cooperate labels move with their
lotteries; answer variants belong to labels, so they stay.
"""

from __future__ import annotations

import dataclasses
import random

from riskdpo.data.labels import find_option_texts
from riskdpo.data.situations import Option, Situation, situation_digest


def situation_rng(seed: int, situation: Situation) -> random.Random:
    """A generator fixed by the seed and the situation alone (not by its position in a list)."""
    digest = situation_digest(seed, situation.sheet, situation.situation_id)
    return random.Random(int.from_bytes(digest[:8], "big"))


def _matched_option_texts(situation: Situation) -> list[tuple[str, str, str]] | None:
    """The prompt's option lines (`find_option_texts`) when they carry the situation's labels in order, else None."""
    found = find_option_texts(situation.prompt)
    return found if [canonical for _, canonical, _ in found] == situation.option_labels else None


def can_move_options(situation: Situation) -> bool:
    """Whether the prompt's option lines match the situation's labels, one line per label in order."""
    return _matched_option_texts(situation) is not None


def shuffle_options(situation: Situation, rng: random.Random) -> Situation:
    """The situation with its lotteries moved between option lines (labels stay put) by a random order.

    Returns the situation unchanged when its prompt's option lines cannot be
    matched with its labels (nothing can be moved safely).
    """
    if not can_move_options(situation):
        return situation
    order = list(range(len(situation.option_labels)))
    rng.shuffle(order)
    return permute_options(situation, order)


def rotation(count: int, offset: int) -> list[int]:
    """The order that moves every lottery `offset` lines down, wrapping around:
    line k offers the lottery of line (k - offset) mod `count`."""
    return [(line - offset) % count for line in range(count)]


def permute_options(situation: Situation, order: list[int]) -> Situation:
    """The situation with line k offering the lottery of line ``order[k]`` (labels stay put).

    `order` is a permutation of the option lines' indices (0-based). Label sets,
    options and the cooperate labels move with their lotteries, and
    ``meta["shuffled_order"]`` records which original label's lottery each
    line now offers. Returns the situation unchanged when its prompt's option
    lines cannot be matched with its labels (see `can_move_options`).
    """
    found = _matched_option_texts(situation)
    if found is None:
        return situation
    if sorted(order) != list(range(len(found))):
        raise ValueError(f"order {order} is not a permutation of the {len(found)} option lines")
    new_label = {situation.option_labels[old]: situation.option_labels[new] for new, old in enumerate(order)}

    lines = situation.prompt.split("\n")
    position = 0
    for number, line in enumerate(lines):
        if position < len(found):
            written, _, text = found[position]
            if line.lstrip().startswith(written) and line.rstrip().endswith(text):
                lines[number] = line[: len(line.rstrip()) - len(text)] + found[order[position]][2]
                position += 1

    def moved(labels: list[str]) -> list[str]:
        return sorted((new_label[label] for label in labels), key=situation.option_labels.index)

    by_label = {option.label: option for option in situation.options}
    options = [
        Option(label, by_label[old].prizes, by_label[old].probs, by_label[old].type)
        for label, old in zip(situation.option_labels, (situation.option_labels[i] for i in order))
        if old in by_label
    ]
    return dataclasses.replace(
        situation,
        prompt="\n".join(lines),
        options=options if len(options) == len(situation.options) else situation.options,
        risk_averse=moved(situation.risk_averse),
        risk_neutral=moved(situation.risk_neutral),
        too_risk_averse=moved(situation.too_risk_averse),
        cooperate=moved(situation.cooperate),
        meta={**situation.meta, "shuffled_order": [situation.option_labels[i] for i in order]},
    )


def shuffle_all(situations: list[Situation], seed: int) -> list[Situation]:
    """Every situation shuffled with its own seeded generator."""
    return [shuffle_options(situation, situation_rng(seed, situation)) for situation in situations]
