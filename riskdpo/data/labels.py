"""Option labels: canonical form, finding them in prompts, and answer variants.

Prompts write labels in many styles: ``a.``  ``(a)``  ``a``  ``1.``  ``(1)``
``1``  ``(a).``  ``(1).``. The *canonical* label drops brackets, dots and
spaces and lower-cases letters, so ``"(1)."`` -> ``"1"`` and ``"(B)"`` -> ``"b"``.
Canonical labels are what situations, pairs and reports store; the form as
written is kept beside them for prompts and answers.
"""

from __future__ import annotations

import re
import string

_STRIP = re.compile(r"[()\[\].\s]")

#: An option line: optional "(", a letter or a number, optional ")", optional ".",
#: then at least one space and the lottery text.
_OPTION_LINE = re.compile(r"^\s*(?P<written>\(?(?P<label>[A-Za-z]|\d{1,2})\)?\.?)\s+(?P<rest>\S.*)$")


def canonical_label(text: object) -> str:
    """Canonical form of a label: brackets, dots and spaces removed, lower case.

    Numbers given as floats by spreadsheets ("2.0") keep their integer value, so
    that label 10 stays "10" and never becomes "1" or "100".
    """
    if isinstance(text, float) and text.is_integer():
        text = int(text)
    raw = str(text).strip()
    if re.fullmatch(r"-?\d+\.0+", raw):
        raw = raw.split(".")[0]
    return _STRIP.sub("", raw).lower()


def _label_sequence(first: str, count: int) -> list[str]:
    """The labels a run of `count` options starting at `first` must carry."""
    if first.isdigit():
        start = int(first)
        return [str(start + i) for i in range(count)]
    letters = string.ascii_lowercase
    start = letters.index(first)
    return [letters[start + i] for i in range(count) if start + i < len(letters)]


def find_option_lines(prompt: str) -> list[tuple[str, str]]:
    """Find the option lines of a prompt, in prompt order.

    Returns ``[(label_as_written, canonical_label), ...]``; see
    `find_option_texts` for the rules.
    """
    return [(written, canonical) for written, canonical, _ in find_option_texts(prompt)]


def find_option_texts(prompt: str) -> list[tuple[str, str, str]]:
    """Find the option lines of a prompt with their text, in prompt order.

    Returns ``[(label_as_written, canonical_label, text_after_label), ...]``,
    the text being the lottery the option offers. An option line starts
    with a label in any of the styles above and offers money (contains ``$``).
    The options are the longest run of consecutive such lines whose labels count
    up from ``a`` or ``1`` (or ``0``); a scenario sentence such as "A farmer has
    $5" cannot start such a run on its own because its successor would have to be
    labelled "b".
    """
    candidates: list[tuple[str, str, str] | None] = []
    for line in prompt.splitlines():
        match = _OPTION_LINE.match(line)
        if match and "$" in match.group("rest"):
            candidates.append((match.group("written"), canonical_label(match.group("label")), match.group("rest")))
        else:
            candidates.append(None)

    best: list[tuple[str, str, str]] = []
    for start, candidate in enumerate(candidates):
        if candidate is None or candidate[1] not in ("a", "1", "0"):
            continue
        run = [candidate]
        for following in candidates[start + 1 :]:
            if following is None:
                break
            expected = _label_sequence(candidate[1], len(run) + 1)
            if len(expected) <= len(run) or following[1] != expected[len(run)]:
                break
            run.append(following)
        if len(run) > len(best):
            best = run
    return best


def answer_variants(canonical: str, written: str | None = None, extra: list[str] | None = None) -> list[str]:
    """Ways a model may write label `canonical`, most literal first, no duplicates.

    Includes the label as written in the prompt, the bare label, upper case for
    letters, ``(b)``, ``b.``, ``b)``, ``Option b`` and any sheet-supplied variants.
    """
    forms = [written or canonical, canonical]
    if canonical.isalpha():
        forms.append(canonical.upper())
    forms += [f"({canonical})", f"{canonical}.", f"{canonical})", f"Option {canonical}", f"option {canonical}"]
    forms += list(extra or [])
    seen: list[str] = []
    for form in forms:
        form = str(form).strip()
        if form and form not in seen:
            seen.append(form)
    return seen


def label_style(written: str) -> str:
    """Name of the style a label is written in, e.g. ``"(a)."`` or ``"1."``.

    Letters become ``a`` and numbers ``1`` so that styles can be compared and
    used as an evaluation stratum.
    """
    return re.sub(r"\d{1,2}", "1", re.sub(r"[A-Za-z]", "a", written.strip()))
