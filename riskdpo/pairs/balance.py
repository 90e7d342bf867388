"""Position-balanced pairs: which rotations of its lotteries each situation is rendered with.

A model tuned on pairs whose chosen answer sits on one option line more often
than on the others can learn the line instead of the lotteries (RESULTS.md).
Balancing renders each situation K times with its lotteries moved across the
option lines (labels stay in place; `riskdpo.data.shuffle.permute_options`), so
that over the pairs file every line is the chosen one equally often, and the
rejected one too.

Renderings are cyclic rotations: rotation s moves the lottery of line j to
line (j + s) mod n, so the chosen lottery on line c lands on (c + s) mod n and
the rejected one on (r + s) mod n. With K >= n a situation is rendered with all
n rotations: every lottery on every line exactly once, so every line is chosen
(and rejected) equally often, exactly. With K < n each situation gets K distinct
rotations picked greedily, per number of options n: situations in a seeded
random order, each rotation the one whose chosen line has been chosen least so
far, then whose rejected line has been rejected least, remaining ties broken by
the seeded generator. Adding one to K distinct least-filled lines keeps the
chosen-line counts of each n within one of each other; the rejected-line counts
follow as evenly as the situations' chosen-rejected distances allow.

A sheet's chain-of-thought columns describe the lotteries as written, so the
renderings drop them: `--response cot` then writes every rendering's reasoning
from its rotated lotteries (`riskdpo.pairs.cot`).
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from typing import Sequence

from riskdpo.data.shuffle import can_move_options, permute_options, rotation
from riskdpo.data.situations import Situation
from riskdpo.pairs.cot import COT_COLUMNS

#: A situation's place in the balance: (number of options, chosen line, rejected line), lines 0-based.
Lines = tuple[int, int, int]


def balanced_rotations(items: Sequence[Lines], renderings: int, seed: int = 0) -> list[list[int]]:
    """The rotation offsets each item is rendered with, in increasing order.

    An item with n options gets min(`renderings`, n) distinct offsets in 0..n-1
    (see the module docstring for how they are picked). Deterministic in
    `seed` and `items`.
    """
    if renderings < 1:
        raise ValueError(f"renderings must be at least 1, got {renderings}")
    rng = random.Random(seed)
    chosen_counts: dict[int, list[int]] = {}
    rejected_counts: dict[int, list[int]] = {}
    visit = list(range(len(items)))
    rng.shuffle(visit)
    offsets: list[list[int]] = [[] for _ in items]
    for index in visit:
        count, chosen_line, rejected_line = items[index]
        chosen = chosen_counts.setdefault(count, [0] * count)
        rejected = rejected_counts.setdefault(count, [0] * count)
        picked: list[int] = []
        for _ in range(min(renderings, count)):
            candidates = [offset for offset in range(count) if offset not in picked]
            rng.shuffle(candidates)
            best = min(
                candidates,
                key=lambda offset: (chosen[(chosen_line + offset) % count], rejected[(rejected_line + offset) % count]),
            )
            picked.append(best)
            chosen[(chosen_line + best) % count] += 1
            rejected[(rejected_line + best) % count] += 1
        offsets[index] = sorted(picked)
    return offsets


def render_rotations(
    items: Sequence[tuple[Situation, str]], lines: Sequence[Lines | None], renderings: int, seed: int = 0
) -> tuple[list[tuple[Situation, str, Lines]], int]:
    """Each ``(situation, agent)`` of `items` rendered with its `balanced_rotations`.

    `lines` gives each item's `Lines` as written (None when its chosen or
    rejected label is not one of its option lines). Returns the renderings
    ``(rotated situation, agent, lines after rotation)`` in item order, and how
    many items were left out because their lotteries cannot be moved.
    """
    movable = [index for index, (situation, _) in enumerate(items) if lines[index] and can_move_options(situation)]
    offsets = balanced_rotations([lines[index] for index in movable], renderings, seed)
    rendered = []
    for index, item_offsets in zip(movable, offsets):
        situation, agent = items[index]
        for offset in item_offsets:
            moved = permute_options(situation, rotation(len(situation.option_labels), offset))
            meta = {key: value for key, value in moved.meta.items() if key not in COT_COLUMNS}
            rendered.append((dataclasses.replace(moved, meta=meta), agent, rotated(lines[index], offset)))
    return rendered, len(items) - len(movable)


def rotated(lines: Lines, offset: int) -> Lines:
    """Where the chosen and rejected lotteries sit after rotation `offset`."""
    count, chosen_line, rejected_line = lines
    return count, (chosen_line + offset) % count, (rejected_line + offset) % count


def line_counts(items: Sequence[Lines]) -> dict[int, tuple[Counter, Counter]]:
    """Per number of options: how often each line (0-based) is chosen, and how often rejected."""
    counts: dict[int, tuple[Counter, Counter]] = {}
    for count, chosen_line, rejected_line in items:
        chosen, rejected = counts.setdefault(count, (Counter(), Counter()))
        chosen[chosen_line] += 1
        rejected[rejected_line] += 1
    return counts


def describe_lines(items: Sequence[Lines], which: int) -> str:
    """``"2 options: line 1 40, line 2 38; 3 options: ..."`` for the chosen (`which` 0) or rejected (1) lines."""
    parts = []
    for count, counters in sorted(line_counts(items).items()):
        counter = counters[which]
        parts.append(f"{count} options: " + ", ".join(f"line {line + 1} {counter[line]}" for line in range(count)))
    return "; ".join(parts) or "none"


def lines_of(situation: Situation, chosen_label: str, rejected_label: str) -> Lines | None:
    """(options, chosen line, rejected line) of a pair, lines 0-based; None when a label is no option line."""
    if chosen_label not in situation.option_labels or rejected_label not in situation.option_labels:
        return None
    index = situation.option_labels.index
    return len(situation.option_labels), index(chosen_label), index(rejected_label)


def balance_summary(before: Sequence[Lines], after: Sequence[Lines]) -> list[str]:
    """The chosen- and rejected-line distributions before and after balancing, one a line."""
    return [
        f"chosen line, as written: {describe_lines(before, 0)}",
        f"rejected line, as written: {describe_lines(before, 1)}",
        f"chosen line, balanced: {describe_lines(after, 0)}",
        f"rejected line, balanced: {describe_lines(after, 1)}",
    ]
