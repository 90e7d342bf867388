"""Reading which option a generated answer names.

A model asked to "output the label of your chosen option" answers in many
ways: ``b``, ``B``, ``(b)``, ``b.``, ``Option b``, ``I choose b``,
``{"answer": "b"}``, or a paragraph of reasoning that ends in the label. The
parser knows the situation's labels (canonical, e.g. ``"b"`` or ``"10"``) and
their answer variants, and tries, from most to least explicit:

1. a JSON object with an ``answer`` / ``choice`` / ``option`` / ``label`` key;
2. the whole answer, or its last line after lines of reasoning, being one
   label or one of its variants (``(1).``, or ``Option b`` on the last line);
3. the last *cue*: "option b", "choice: b", "answer is b", "I choose b",
   "I'd go with (b)", "prefer b" ... (the last, because reasoning that compares
   options ends with the one picked);
4. the label mentions in the text: when all name one label, that label;
   otherwise a label opening the answer and followed by punctuation
   (``b. Because ... than a``), else a final standalone label: the last
   mention, alone after a sentence break and ending the answer
   (``Comparing a with c: b.``).

A label is only a *mention* when it stands alone: ``10`` is never read as
``1`` (no digit, decimal point, ``$``, ``%`` or comma may touch a number), the
article in "I have a preference for b" is not option ``a`` (a bare ``a``
followed by a word is the article), and "I" followed by a word is the pronoun.
Anything else is unparsed (``None``): the caller counts it as invalid, never
guesses.
"""

from __future__ import annotations

import json
import re
from typing import Mapping, Sequence

from riskdpo.data.labels import canonical_label

#: Keys of a JSON answer object that hold the chosen label.
_JSON_KEYS = ("answer", "choice", "option", "label", "chosen", "selection")

#: Words after which a label names the choice ("I choose b", "answer: (b)").
_CUES = (
    r"option",
    r"choice(?:\s+is)?",
    r"answer(?:\s+is)?",
    r"choose",
    r"chose",
    r"choosing",
    r"pick(?:ed)?",
    r"select(?:ed)?",
    r"go(?:ing)?\s+(?:with|for)",
    r"went\s+(?:with|for)",
    r"prefer(?:ence\s+(?:is|for))?",
    r"best(?:\s+(?:option|choice))?\s+is",
    r"take",
    r"opt\s+for",
)
_CUE_AT_END = re.compile(
    r"\b(?:" + "|".join(_CUES) + r")\b\s*[:=\-]?\s*(?:is\s+)?(?:option\s+)?[*\"']*$",
    re.IGNORECASE,
)

#: One label written alone: optional bracket, a letter or a 1-2 digit number,
#: optional closing bracket; the guards keep "10" from reading as "1" and
#: "$5", "5%", "1,000", "0.5" from reading as labels.
_MENTION = re.compile(
    r"(?<![\w$.,])(?P<open>\()?(?P<label>[A-Za-z]|\d{1,2})(?P<close>\))?(?![\w%$]|[.,]\d)"
)

#: Words that follow a label but never the article "a".
_LABEL_FOLLOWERS = frozenset(
    "and or vs versus is has offers gives was would seems because since than over instead then".split()
)

#: What may follow a label that ends the answer: punctuation, markdown, quotes.
_TRAILER = re.compile(r"^[\s.,;:!?)\]\"'*`_]*$")
#: What must precede a final standalone label: a line or sentence break.
_STANDALONE_BEFORE = re.compile(r"(?:^|[\n.:!?;,=>\-\u2013\u2014])[ \t]*[\"'*`_(\[]*$")
#: What may precede a label that starts the answer.
_LEADER = re.compile(r"^[\s\"'*`_(\[]*$")


def parse_answer(
    text: str,
    labels: Sequence[str],
    variants: Mapping[str, Sequence[str]] | None = None,
) -> str | None:
    """The canonical label `text` names among `labels`, or None when unclear.

    `labels` are canonical (``"b"``, ``"10"``); `variants` maps a label to the
    other ways it may be written (``"B"``, ``"Option b"``, sheet-supplied forms).
    """
    allowed = [canonical_label(label) for label in labels]
    text = text.strip()
    for rule in (_json_answer, _whole_answer, _final_line):
        found = rule(text, allowed, variants or {})
        if found is not None:
            return found
    cued = _mentions(text, allowed, after_cue=True)
    if cued:
        return cued[-1][1]
    mentions = _mentions(text, allowed, after_cue=False)
    if not mentions:
        return None
    named = {label for _, label, _ in mentions}
    if len(named) == 1:
        return named.pop()
    first_start, first_label, first_end = mentions[0]
    bracketed = text[first_start] == "(" or text[first_end - 1] == ")"
    if _LEADER.match(text[:first_start]) and (bracketed or re.match(r"[.:\n]|$", text[first_end:])):
        return first_label
    last_start, last_label, last_end = mentions[-1]
    if _STANDALONE_BEFORE.search(text[:last_start]) and _TRAILER.match(text[last_end:]):
        return last_label
    return None


def _json_answer(text: str, allowed: list[str], _variants: Mapping[str, Sequence[str]]) -> str | None:
    """The label held by a JSON object such as ``{"answer": "b"}`` inside the text."""
    for match in re.finditer(r"\{[^{}]*\}", text):
        try:
            data = json.loads(match.group(0))
        except json.JSONDecodeError:
            continue
        if not isinstance(data, dict):
            continue
        lowered = {str(key).lower(): value for key, value in data.items()}
        for key in _JSON_KEYS:
            if key in lowered and not isinstance(lowered[key], (dict, list)):
                label = _as_label(str(lowered[key]), allowed)
                if label is not None:
                    return label
    return None


def _whole_answer(text: str, allowed: list[str], variants: Mapping[str, Sequence[str]]) -> str | None:
    """The label when the whole answer is a label or one of its variants."""
    bare = text.strip(" \t\n\"'`*_")
    label = _as_label(bare, allowed)
    if label is not None:
        return label
    owners = [
        canonical_label(label)
        for label, forms in variants.items()
        if canonical_label(label) in allowed and any(bare.lower() == str(form).strip().lower() for form in forms)
    ]
    return owners[0] if len(set(owners)) == 1 else None


def _final_line(text: str, allowed: list[str], variants: Mapping[str, Sequence[str]]) -> str | None:
    """The label when the answer's last line is a label alone (reasoning, then the answer)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return _whole_answer(lines[-1], allowed, variants) if len(lines) > 1 else None


def _as_label(text: str, allowed: list[str]) -> str | None:
    """`text` as a canonical label when it is one (``"(B)."`` -> ``"b"``), or after "Option"."""
    stripped = re.sub(r"^option\s+", "", text.strip(), flags=re.IGNORECASE)
    if not re.fullmatch(r"\(?\s*(?:[A-Za-z]|\d{1,2})\s*\)?\.?", stripped):
        return None
    label = canonical_label(stripped)
    return label if label in allowed else None


def _mentions(text: str, allowed: list[str], *, after_cue: bool) -> list[tuple[int, str, int]]:
    """Label mentions ``(start, label, end)`` in text order.

    With `after_cue` only those directly after a cue word; an article "a" or a
    pronoun "I" followed by a word is not a mention, except after "option".
    """
    found = []
    for match in _MENTION.finditer(text):
        label = canonical_label(match.group("label"))
        if label not in allowed:
            continue
        cue = _cue_before(text, match.start())
        if after_cue and cue is None:
            continue
        bracketed = bool(match.group("open") or match.group("close"))
        after_option = cue is not None and cue.lower().rstrip(" :*=-").endswith("option")
        if not bracketed and not after_option and _is_word_use(match.group("label"), text[match.end():]):
            continue
        found.append((match.start(), label, match.end()))
    return found


def _cue_before(text: str, position: int) -> str | None:
    """The cue that ends exactly at `position`, if any."""
    match = _CUE_AT_END.search(text[max(0, position - 40):position])
    return match.group(0) if match else None


def _is_word_use(letter: str, rest: str) -> bool:
    """True for the article "a"/"A" or the pronoun "I" followed by another word.

    Words that follow a label but never an article ("a and b", "a is safer",
    "a vs b") keep the letter a label.
    """
    if letter not in ("a", "A", "I"):
        return False
    follower = re.match(r"\s+([A-Za-z]+)", rest)
    return follower is not None and follower.group(1).lower() not in _LABEL_FOLLOWERS
