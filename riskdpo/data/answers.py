"""Reading which option a generated answer names, as a careful person reads it.

A model asked to "output the label of your chosen option" answers in many
ways: ``b``, ``(B).``, ``Option b``, ``{"answer": "b"}``, ``I choose b``,
``Answer: b`` followed by an explanation that mentions other options, or a
paragraph of reasoning that ends in the label. The parser knows the
situation's labels (canonical, e.g. ``"b"`` or ``"10"``) and their answer
variants, and never guesses: an answer it cannot read is *invalid*, with a
reason.

Part read. A reasoning model writes ``<think> ... </think> visible answer``.
The visible part (after the last ``</think>``) is read; the reasoning is read
only when nothing follows it (`ParsedAnswer.source` says which). A ``<think>``
that is never closed was cut off: invalid, ``truncated``. A ``</think>``
without an opening tag (chat templates that put ``<think>`` in the prompt)
closes a reasoning part all the same.

Mentions. A label is only *mentioned* where it stands alone: ``10`` is never
``1`` (no digit, decimal point, ``$``, ``%`` or comma may touch a number); the
article in "I have a preference for b" is not option ``a`` and the pronoun "I"
is not option ``i`` (a bare ``a``/``I`` followed by a word, unless after
"option"); a number followed by a word counts something ("3 probabilities");
letters of contractions (``I'd``), abbreviations (``e.g.``) and letters touching
decoding debris (``\\ufffd``, ``&``, ``#``...) are not labels, so sampled noise
such as ``') lotter\\ufffde&'`` names nothing. A mention is *negated* right after
"not", "neither", "nor", "rather than", "instead of" or "except" (``not a``,
``Neither a nor b.``), and *echoed* inside a question that names two or more
labels (``Option A or B? B.``): neither kind is an answer.

Rules, in priority order (the first that yields a label or a verdict wins):

1. Structured answer: a JSON object with an ``answer``/``choice``/``option``/
   ``label``/``chosen``/``selection`` key or a LaTeX ``\\boxed{b}``; else the whole answer, or its last
   line after lines of reasoning, being one label or one of its variants
   (``(1).``, ``**b**``, ``Option b``, a sheet's ``Lottery B``). Structured
   answers naming different labels are contradictory.
2. Explicit final-answer cue: "Answer: b", "Final answer - (b)", "my choice is
   b", "it's b", "I choose b", "I'd go with b", "I pick/select/prefer/take/want
   b", "the best option is b", and after the label "b is preferred.", "Option c
   is the best choice", "b is my answer". A noun is a cue only with a colon, a copula or a
   possessive ("Choice A is risky" names an option). Verbs count only in the
   first person ("A risk-neutral agent would choose a" is a mention, not an
   answer) and outside a sentence that opens with "If";
   a cue after a negation ("I don't choose b") is a negated mention. When all
   cues name one label, that label, whatever the explanation mentions after it;
   cues naming different labels (``I choose b. Answer: c``) are contradictory.
3. Sole label mention: when every remaining (not negated, not echoed) mention
   names one label, that label. With several, a label that opens the answer
   followed by punctuation (``b. It is safer than a.``) or a final standalone
   label after a sentence break (``Comparing a with c: b.``) is the answer.
4. Otherwise invalid: ``no_label`` (nothing names a label), ``negated`` (only
   negated mentions), ``several_labels`` (mentions of different labels and no
   rule above decides).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from riskdpo.data.labels import canonical_label

#: Why an answer names no choice, as written to the CSV and counted in the report.
INVALID_REASONS = ("no_label", "several_labels", "negated", "contradictory", "truncated")
#: The part of an answer the label was read from.
SOURCES = ("visible", "reasoning")

#: A LaTeX boxed answer, as reasoning models write it: ``\\boxed{b}``, ``\\boxed{\\text{(B)}}``.
_BOXED = re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{)?([^{}]*)\}?\s*\}")
#: Keys of a JSON answer object that hold the chosen label.
_JSON_KEYS = ("answer", "choice", "option", "label", "chosen", "selection")

#: Nouns that introduce the answer whoever speaks: "Answer: b", "my final choice is b".
_NOUN = r"(?:final\s+)?(?:answer|choice|decision|selection)"
#: Nouns that introduce the answer whoever speaks: "Answer: b", "my final choice is b", "it's b".
#: Without a colon, copula or possessive ("Choice A is risky") the noun only names an option.
_NOUN_CUE = (
    rf"{_NOUN}\s+(?:is|would\s+be|will\s+be)|{_NOUN}(?=\s*[:=\-\u2013\u2014])"
    rf"|(?:my|final)\s+(?:{_NOUN}|pick)(?:\s+(?:is|would\s+be|will\s+be))?"
    r"|it(?:['\u2019]s|\s+is|\s+has\s+to\s+be|\s+must\s+be)"
)
#: Judgements that name the answer: "the best option is b".
_BEST_CUE = (
    r"(?:best|better|right|correct|optimal|preferred|safest)(?:\s+(?:option|choice|lottery|bet))?\s+(?:is|would\s+be)"
)
#: Verbs that name the answer when the speaker is the model: "I choose b", "I'd go with b".
_VERB_CUE = (
    r"(?:choose|chose|choosing|pick(?:ed|ing)?|select(?:ed|ing)?|prefer(?:ence\s+(?:is|for))?"
    r"|go(?:ing)?\s+(?:with|for)|went\s+(?:with|for)|take|taking|opt(?:ing)?\s+for|want)"
)
_CUE_TAIL = r"\s*(?:[:=\-\u2013\u2014]\s*)?(?:option\s+|lottery\s+|choice\s+)?[*\"'`_]*\s*$"
_CUE_AT_END = re.compile(
    rf"\b(?:(?P<noun>{_NOUN_CUE})|(?P<best>{_BEST_CUE})|(?P<verb>{_VERB_CUE})){_CUE_TAIL}", re.IGNORECASE
)
#: A verdict right after a label that ends its clause: "b is preferred.", "Option c is the best choice", "b is my answer".
_CUE_AFTER = re.compile(
    r"^[)*\"'`_]*\s+(?:is|would\s+be)\s+(?:the\s+|my\s+|our\s+)?"
    r"(?:(?:preferred|best|safest|wisest|right|correct|optimal|most\s+\w+)(?:\s+(?:choice|option|pick|bet|answer))?"
    r"|answer|choice|pick|selection)(?:\s+(?:here|overall|for\s+me))?\s*(?:[.,;!\n]|$)",
    re.IGNORECASE,
)
#: A negation right before a cue verb: "I don't choose", "I would not pick", "never go with".
_NEGATED_CUE = re.compile(r"(?:\bnot|n['\u2019]t|\bnever|\bno)\s+(?:\w+\s+)?$", re.IGNORECASE)
#: A first-person speaker (or none) in the clause before a cue verb.
_FIRST_PERSON = re.compile(r"^\W*$|\b(?:I|I['\u2019](?:d|ll|m)|we|my|me|let['\u2019]s)\b[^.;!?\n]*$", re.IGNORECASE)
#: Words after which a mention is rejected: "not a", "neither a nor b", "rather than c".
_NEGATION_BEFORE = re.compile(
    r"\b(?:not|neither|nor|rather\s+than|instead\s+of|except|avoid(?:ing)?)\s+(?:option\s+)?[*\"'`(]*$", re.IGNORECASE
)

#: One label written alone: optional bracket, a letter or a 1-2 digit number,
#: optional closing bracket. Guards: "10" is not "1"; "$5", "5%", "1,000",
#: "0.5" are amounts; "I'd", "e.g." and letters touching debris are not labels.
_DEBRIS = "\ufffd&@^~|\\\\<>{}\\[\\]"
_MENTION = re.compile(
    rf"(?<![\w$.,{_DEBRIS}])(?<!\w['\u2019])(?P<open>\()?(?P<label>[A-Za-z]|\d{{1,2}})(?P<close>\))?"
    rf"(?![\w%$#{_DEBRIS}]|[.,]\d|\.[A-Za-z]|['\u2019][A-Za-z])"
)

#: Words that follow a label but never the article "a" nor a count ("3 probabilities").
_LABEL_FOLLOWERS = frozenset(
    "and or vs versus is has offers gives was would seems because since than over instead then "
    "nor looks appears provides yields wins dominates".split()
)

#: What may follow a label that ends the answer: punctuation, markdown, quotes.
_TRAILER = re.compile(r"^[\s.,;:!?)\]\"'*`_]*$")
#: What must precede a final standalone label: a line or sentence break.
_STANDALONE_BEFORE = re.compile(
    r"(?:^|[\n.:!?;,=>\-\u2013\u2014]|\b(?:so|thus|therefore|hence))[ \t]*(?:option\s+)?[\"'*`_(\[]*$", re.IGNORECASE
)
#: What may precede a label that starts the answer.
_LEADER = re.compile(r"^[\s\"'*`_(\[]*(?:option\s+)?$", re.IGNORECASE)
#: What may follow a label that opens the answer before its explanation: "b.", "b:", "b, because", "b - since".
_LEADING_END = re.compile(
    r"[.:\n]|$|,?\s+(?:because|since|as|which|given|for)\b|\s+[-\u2013\u2014]\s", re.IGNORECASE
)
#: Clause and sentence boundaries.
_CLAUSE_BREAK = re.compile(r"[.;!?\n,]")


@dataclass(frozen=True)
class ParsedAnswer:
    """What an answer chooses, where that was read, and why not when it chooses nothing.

    ``label``: the canonical label or None; ``reason``: None for a valid answer,
    else one of `INVALID_REASONS`; ``source``: "visible" or "reasoning"
    (`SOURCES`); ``rule``: "structured", "cue", "mention" or "none";
    ``reasoning_chars``: characters of ``<think>`` reasoning (0 without).
    """

    label: str | None
    reason: str | None
    source: str
    rule: str
    reasoning_chars: int = 0


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    label: str
    cued: bool
    negated: bool


def read_answer(
    text: str,
    labels: Sequence[str],
    variants: Mapping[str, Sequence[str]] | None = None,
) -> ParsedAnswer:
    """Read `text` by the module's rules: the chosen label or the reason there is none.

    `labels` are canonical (``"b"``, ``"10"``) or as written (``"(b)."``);
    `variants` maps a label to other ways it may be written (``"Lottery B"``).
    """
    allowed = [canonical_label(label) for label in labels]
    visible, reasoning, truncated = _split_reasoning(text)
    chars = len(reasoning or "")
    if truncated:
        return ParsedAnswer(None, "truncated", "reasoning", "none", chars)
    source, part = ("visible", visible) if visible.strip() or reasoning is None else ("reasoning", reasoning)
    label, reason, rule = _read_part(part.strip(), allowed, variants or {})
    return ParsedAnswer(label, reason, source, rule, chars)


def parse_answer(
    text: str,
    labels: Sequence[str],
    variants: Mapping[str, Sequence[str]] | None = None,
) -> str | None:
    """The canonical label `text` names among `labels`, or None when it names no single choice."""
    return read_answer(text, labels, variants).label


def _split_reasoning(text: str) -> tuple[str, str | None, bool]:
    """(visible part, reasoning part or None, truncated) of an answer with ``<think>`` tags."""
    close = text.rfind("</think>")
    if close >= 0:
        opening = text.find("<think>")
        start = opening + len("<think>") if 0 <= opening < close else 0
        return text[close + len("</think>") :], text[start:close], False
    opening = text.find("<think>")
    if opening >= 0:
        return text[:opening], text[opening + len("<think>") :], True
    return text, None, False


def _read_part(
    text: str, allowed: list[str], variants: Mapping[str, Sequence[str]]
) -> tuple[str | None, str | None, str]:
    """(label, invalid reason, rule) of one part of an answer."""
    structured = _structured_answers(text, allowed)
    if len(structured) > 1:
        return None, "contradictory", "structured"
    if structured:
        return structured.pop(), None, "structured"
    for candidate in (text, _last_line(text)):
        label = _whole_answer(candidate, allowed, variants) if candidate is not None else None
        if label is not None:
            return label, None, "structured"

    mentions = _mentions(text, allowed)
    cued = {m.label for m in mentions if m.cued and not m.negated}
    if len(cued) > 1:
        return None, "contradictory", "cue"
    if cued:
        return cued.pop(), None, "cue"

    kept = [m for m in mentions if not m.negated]
    named = {m.label for m in kept}
    if len(named) == 1:
        return named.pop(), None, "mention"
    if not kept:
        return None, ("negated" if mentions else "no_label"), "none"
    first, last = kept[0], kept[-1]
    bracketed = text[first.start] == "(" or text[first.end - 1] == ")"
    if _LEADER.match(text[: first.start]) and (bracketed or _LEADING_END.match(text[first.end :])):
        return first.label, None, "mention"
    if _STANDALONE_BEFORE.search(text[: last.start]) and _TRAILER.match(text[last.end :]):
        return last.label, None, "mention"
    return None, "several_labels", "none"


def _structured_answers(text: str, allowed: list[str]) -> set[str]:
    """The labels held by JSON objects such as ``{"answer": "b"}`` and LaTeX ``\\boxed{b}`` in the text."""
    found = set()
    for match in _BOXED.finditer(text):
        label = _as_label(match.group(1), allowed)
        if label is not None:
            found.add(label)
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
                    found.add(label)
                    break
    return found


def _last_line(text: str) -> str | None:
    """The last non-empty line when the text has several (reasoning, then the answer)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if len(lines) > 1 else None


def _whole_answer(text: str, allowed: list[str], variants: Mapping[str, Sequence[str]]) -> str | None:
    """The label when the whole of `text` is a label or one of its variants."""
    bare = text.strip(" \t\n\"'`*_")
    label = _as_label(bare, allowed)
    if label is not None:
        return label
    owners = {
        canonical_label(label)
        for label, forms in variants.items()
        if canonical_label(label) in allowed and any(bare.lower() == str(form).strip().lower() for form in forms)
    }
    return owners.pop() if len(owners) == 1 else None


def _as_label(text: str, allowed: list[str]) -> str | None:
    """`text` as a canonical label when it is one (``"(B)."`` -> ``"b"``), or after "Option"."""
    stripped = re.sub(r"^(?:option|answer)\s*:?\s+", "", text.strip(), flags=re.IGNORECASE)
    if not re.fullmatch(r"\(?\s*(?:[A-Za-z]|\d{1,2})\s*\)?\.?", stripped):
        return None
    label = canonical_label(stripped)
    return label if label in allowed else None


def _mentions(text: str, allowed: list[str]) -> list[_Mention]:
    """Label mentions in text order, each marked cued (rule 2) and negated; echoes dropped."""
    found = []
    for match in _MENTION.finditer(text):
        label = canonical_label(match.group("label"))
        if label not in allowed or _in_echoed_question(text, match.start(), match.end(), allowed):
            continue
        before = text[max(0, match.start() - 60) : match.start()]
        cue = _CUE_AT_END.search(before)
        after_option = re.search(r"\b(?:option|lottery|choice)\s*[:*\"'`_]*\s*$", before, re.IGNORECASE) is not None
        bracketed = bool(match.group("close"))  # "(a)", "a)"; a lone "(" may open an aside: "(a sure $500)"
        if not bracketed and not after_option and _is_word_use(match.group("label"), text[match.end() :]):
            continue
        negated = _NEGATION_BEFORE.search(before) is not None
        cued = False
        if cue is not None:
            clause = _clause_before(text, match.start() - len(before) + cue.start())
            if cue.group("verb") and _NEGATED_CUE.search(clause):
                negated = True
            elif cue.group("noun") or cue.group("best") or _FIRST_PERSON.search(clause):
                cued = not _hypothetical(text, match.start())
        if not negated and _CUE_AFTER.match(text[match.end() :]):
            cued = not _hypothetical(text, match.start())
        found.append(_Mention(match.start(), match.end(), label, cued, negated))
    return found


def _hypothetical(text: str, position: int) -> bool:
    """True inside a sentence that opens with "If" ("If I cared only about the mean I would pick a.")."""
    sentence_start = max(text.rfind(mark, 0, position) for mark in ".!?\n") + 1
    return re.match(r"\W*if\b", text[sentence_start:position], re.IGNORECASE) is not None


def _clause_before(text: str, position: int) -> str:
    """The text from the last clause break before `position` up to it."""
    breaks = [match.end() for match in _CLAUSE_BREAK.finditer(text, 0, position)]
    return text[breaks[-1] if breaks else 0 : position]


def _in_echoed_question(text: str, start: int, end: int, allowed: list[str]) -> bool:
    """True inside a question that names two or more labels (``Option A or B?``): an echo, not an answer."""
    sentence_start = max(text.rfind(mark, 0, start) for mark in ".!?\n") + 1
    stops = [position for position in (text.find(mark, end) for mark in ".!\n") if position >= 0]
    question = text.find("?", end)
    if question < 0 or (stops and min(stops) < question):
        return False
    sentence = text[sentence_start : question + 1]
    named = {canonical_label(m.group("label")) for m in _MENTION.finditer(sentence)} & set(allowed)
    return len(named) >= 2


def _is_word_use(token: str, rest: str) -> bool:
    """True for the article "a"/"A", the pronoun "I" or a count ("3 probabilities") followed by a word.

    Words that follow a label but never an article ("a and b", "a is safer",
    "a vs b") keep the token a label.
    """
    if token not in ("a", "A", "I") and not token.isdigit():
        return False
    follower = re.match(r"[ \t]+([A-Za-z]+)", rest)
    return follower is not None and follower.group(1).lower() not in _LABEL_FOLLOWERS
