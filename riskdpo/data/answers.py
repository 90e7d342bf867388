"""Reading which option a generated answer chooses, as a careful person reads it.

A model asked which lottery it would pick answers in many ways: ``b``,
``(B).``, ``{"answer": "b"}``, ``I choose b``, ``Answer: b`` followed by an
explanation that mentions other options, a page of markdown analysis ending
``Therefore, my choice is **Option 2.**``, or prose that concludes ``option (1)
seems to be the most attractive``. A careful reader looks for the model's
**final commitment**: the last statement that chooses one option, in the first
or the third person. The reader knows the situation's labels (canonical, e.g.
``"b"`` or ``"10"``) and their answer variants, and never guesses: an answer it
cannot read is *invalid*, with a reason.

Text read. The visible part of a reasoning model's answer (after ``</think>``,
or the answer text when a server returns the reasoning apart) is read; the
reasoning only when nothing is visible (`ParsedAnswer.source`). An answer cut
inside its reasoning is ``truncated``. Markdown is seen through first
(`riskdpo.data.answer_text.plain_lines`: ``**Option 2.**`` is ``Option 2.``,
``### ✅ Final Answer:`` a heading, ``\\boxed{\\text{(a)}}`` is ``(a)``).

Mentions. A label is only *mentioned* where it stands alone: ``10`` is never
``1`` (no digit, decimal point, ``$``, ``%`` or comma may touch a number); the
article in "I have a preference for b" is not option ``a`` and the pronoun "I"
is not option ``i`` (a bare ``a``/``I`` followed by a word, unless after
"option"); a number followed by a word counts something ("3 probabilities");
letters of contractions (``I'd``), abbreviations (``e.g.``) and letters touching
decoding debris (``\\ufffd``, ``&``, ``#``...) are not labels. ``(b)``, ``b)``
and ``[b]`` are labels. A mention is *negated* right after "not", "neither",
"nor", "rather than", "instead of", "avoid" or "except", and *echoed* inside a
question that names two or more labels (``Option A or B? B.``): neither kind is
an answer. A mention in a *heading* (``### Option A:``, ``For option (1):``) or
at the head of one of several option lines (``1. 54% of $35,800``) introduces
or restates an option: it is never an answer by itself.

Commitments. A mention is a commitment when

- a **final cue** names it: an answer noun with a colon, copula or possessive
  ("Answer: b", "Final Answer:\\nOption 3", "my choice is b", "it's b"), or a
  first-person verb ("I choose b", "I'd go with b", "I would select option
  (a)", "I prefer the sure thing, option (a)", "I recommend b") outside a
  sentence that opens with "If" and not after a negation ("I don't choose b"
  is a negated mention); "A risk-neutral agent would choose a" is a mention;
- a **verdict** names it, in the third person: "option (1) seems to be the most
  attractive", "Option c is the best choice", "the most attractive option would
  be option 1", "Best Option: Option 3", and "This is the most attractive
  option" after a sentence naming one option; weaker, a comparative ("option
  a is more attractive, with …"); weakest, a verdict narrowed to a criterion
  ("Based purely on expected value, b is the most attractive", or a closing
  sentence "option b has the highest expected value"). A verdict for a third
  party ("for a risk-neutral agent") or in a sentence opening with "If" is not
  the model's;
- or it **revises** an earlier one: a sentence opening with "Actually", "Wait",
  "On reflection", "On second thought" or "Correction" that names one label
  ("The answer is b. Actually, on reflection, a." is a).

A cue naming two labels ("Answer: 1 or 2") commits to neither.

Rules, in order (the first that decides wins; `ParsedAnswer.rule` says which):

1. ``structured``: a JSON object with an ``answer``/``choice``/``option``/
   ``label``/``chosen``/``selection`` key or a LaTeX ``\\boxed{b}``; else the
   whole answer, or its last line after lines of reasoning, being one label or
   one of its variants (``(1).``, ``**b**``, ``Option b``, ``Lottery B``).
   Structured answers naming different labels are ``contradictory``.
2. ``final-cue``: the last final cue; two that name different labels are
   ``contradictory``, unless the later one revises the earlier. Else
   ``commitment``: the last superlative verdict, else the last comparative,
   else the last verdict narrowed to a criterion.
3. Only in an answer that was finished (``finished`` is not False, and it does
   not end in a degenerate loop); a cut answer that committed to nothing is
   ``truncated``:
   - ``final-label``: a standalone label that ends the answer after a sentence
     break (``Comparing a with c: b.``);
   - in a short answer (at most `SHORT_ANSWER_CHARS` characters) only, where a
     lone label is what a careful reader takes as the answer:
     ``leading-label``, a label that opens the answer followed by punctuation
     (``b. It is safer than a.``), and ``sole-mention``, every remaining
     mention naming one label.
4. Otherwise invalid: ``no_label`` (nothing states a choice), ``negated`` (only
   negated mentions), ``several_labels`` (mentions of different labels and no
   rule above decides).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from riskdpo.data.answer_mentions import Mention, anaphoric_commitments, mentions
from riskdpo.data.answer_text import ends_in_loop, plain_lines, split_reasoning
from riskdpo.data.labels import canonical_label

#: Why an answer names no choice, as written to the CSV and counted in the report.
INVALID_REASONS = ("no_label", "several_labels", "negated", "contradictory", "truncated")
#: The part of an answer the label was read from.
SOURCES = ("visible", "reasoning")
#: The rule that decided an answer (the CSV's ``rule`` column), in the order they are tried.
RULES = ("structured", "final-cue", "commitment", "final-label", "leading-label", "sole-mention", "none")
#: Longest answer (characters of the part read) in which a lone label mention is taken as the answer.
SHORT_ANSWER_CHARS = 300

#: A LaTeX boxed answer, as reasoning models write it: ``\\boxed{b}``, ``\\boxed{\\text{(B)}}``.
_BOXED = re.compile(r"\\boxed\{\s*(?:\\text(?:bf)?\{)?([^{}]*)\}?\s*\}")
#: Keys of a JSON answer object that hold the chosen label.
_JSON_KEYS = ("answer", "choice", "option", "label", "chosen", "selection")


#: What may follow a label that ends the answer: punctuation, quotes.
_TRAILER = re.compile(r"^[\s.,;:!?)\]\"']*$")
#: What must precede a final standalone label: a line or sentence break.
_STANDALONE_BEFORE = re.compile(
    r"(?:^|[\n.:!?;,=>\-\u2013\u2014]|\b(?:so|thus|therefore|hence))[ \t]*(?:option\s+)?[\"'(\[]*$", re.IGNORECASE
)
#: What may precede a label that starts the answer.
_LEADER = re.compile(r"^[\s\"'(\[]*(?:option\s+)?$", re.IGNORECASE)
#: What may follow a label that opens the answer before its explanation: "b.", "b:", "b, because", "b - since".
_LEADING_END = re.compile(
    r"[.:\n]|$|,?\s+(?:because|since|as|which|given|for)\b|\s+[-\u2013\u2014]\s", re.IGNORECASE
)
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_LABEL_PREFIX = re.compile(r"^(?:option|answer)\s*:?\s+", re.IGNORECASE)
_LONE_LABEL = re.compile(r"[(\[]?\s*(?:[A-Za-z]|\d{1,2})\s*[)\]]?\.?")


@dataclass(frozen=True)
class ParsedAnswer:
    """What an answer chooses, where that was read, and why not when it chooses nothing.

    ``label``: the canonical label or None; ``reason``: None for a valid answer,
    else one of `INVALID_REASONS`; ``source``: "visible" or "reasoning"
    (`SOURCES`); ``rule``: the rule that decided (`RULES`);
    ``reasoning_chars``: characters of reasoning (0 without).
    """

    label: str | None
    reason: str | None
    source: str
    rule: str
    reasoning_chars: int = 0




def read_answer(
    text: str,
    labels: Sequence[str],
    variants: Mapping[str, Sequence[str]] | None = None,
    *,
    finished: bool | None = None,
    reasoning: str | None = None,
) -> ParsedAnswer:
    """Read `text` by the module's rules: the chosen label or the reason there is none.

    `labels` are canonical (``"b"``, ``"10"``) or as written (``"(b)."``);
    `variants` maps a label to other ways it may be written (``"Lottery B"``).
    `finished`: False when generation stopped at its token limit (finish reason
    ``length``), True when the model ended it, None when unknown (then an answer
    ending in a degenerate loop counts as cut). `reasoning`: the reasoning when it
    was returned apart from the answer text (as serving engines do).
    """
    allowed = [canonical_label(label) for label in labels]
    visible, thought, cut_in_reasoning = split_reasoning(text)
    if thought is None and reasoning is not None:
        thought = reasoning
    chars = len(thought or "")
    if cut_in_reasoning:
        return ParsedAnswer(None, "truncated", "reasoning", "none", chars)
    source, part = ("visible", visible) if visible.strip() or thought is None else ("reasoning", thought)
    if source == "reasoning" and finished is False:  # cut before any visible answer
        return ParsedAnswer(None, "truncated", source, "none", chars)
    part = part.strip()
    complete = finished is not False and not ends_in_loop(part)
    label, reason, rule = _read_part(part, allowed, variants or {}, complete)
    return ParsedAnswer(label, reason, source, rule, chars)


def parse_answer(
    text: str,
    labels: Sequence[str],
    variants: Mapping[str, Sequence[str]] | None = None,
) -> str | None:
    """The canonical label `text` names among `labels`, or None when it names no single choice."""
    return read_answer(text, labels, variants).label


def _read_part(
    text: str, allowed: list[str], variants: Mapping[str, Sequence[str]], complete: bool
) -> tuple[str | None, str | None, str]:
    """(label, invalid reason, rule) of one part of an answer."""
    structured = _structured_answers(text, allowed)
    if len(structured) > 1:
        return None, "contradictory", "structured"
    if structured:
        return structured.pop(), None, "structured"
    plain = plain_lines(text)
    whole = _whole_answer(plain.text, allowed, variants)
    if whole is not None:
        return whole, None, "structured"
    found = mentions(plain, allowed)
    commitments = found + anaphoric_commitments(plain.text, found)
    last_line = _last_line(plain.text) if complete else None
    closing = _whole_answer(last_line, allowed, variants) if last_line is not None else None
    if closing is not None:  # a label alone on the last line: the answer, unless a commitment names another
        others = {m.label for m in commitments if m.cue and not m.negated and not m.disjunctive} - {closing}
        return (None, "contradictory", "structured") if others else (closing, None, "structured")
    decided = _final_commitment(commitments)
    if decided is not None:
        return decided
    if not complete:
        return None, "truncated", "none"
    return _fallback(plain.text, found)


def _final_commitment(commitments: list[Mention]) -> tuple[str | None, str | None, str] | None:
    """The final commitment, by kind: the last final cue (contradictory when two name different labels
    and the later does not revise the earlier); else the last superlative verdict; else the last
    comparative one; else the last verdict narrowed to a criterion. None when there is none."""
    usable = sorted((m for m in commitments if m.cue and not m.negated and not m.disjunctive), key=lambda m: m.start)
    final = None
    for mention in (m for m in usable if m.cue == "final-cue"):
        if final is not None and mention.label != final.label and not mention.revises:
            return None, "contradictory", "final-cue"
        final = mention
    if final is not None:
        return final.label, None, "final-cue"
    for kind in ("commitment", "comparison", "criterion"):
        verdicts = [m for m in usable if m.cue == kind]
        if verdicts:
            return verdicts[-1].label, None, "commitment"
    return None


def _fallback(text: str, found: list[Mention]) -> tuple[str | None, str | None, str]:
    """Rules 3 and 4 for a finished answer that states no commitment."""
    kept = [m for m in found if not m.negated and m.answer_like]
    if not kept:
        return None, ("negated" if any(m.negated for m in found) else "no_label"), "none"
    last = kept[-1]
    if _STANDALONE_BEFORE.search(text[: last.start]) and _TRAILER.match(text[last.end :]):
        return last.label, None, "final-label"
    if len(text) <= SHORT_ANSWER_CHARS:
        first = kept[0]
        bracketed = text[first.start] in "([" or text[first.end - 1] in ")]"
        if _LEADER.match(text[: first.start]) and (bracketed or _LEADING_END.match(text[first.end :])):
            return first.label, None, "leading-label"
        if len({m.label for m in kept}) == 1:
            return last.label, None, "sole-mention"
        return None, "several_labels", "none"
    return None, ("several_labels" if len({m.label for m in kept}) > 1 else "no_label"), "none"


def _structured_answers(text: str, allowed: list[str]) -> set[str]:
    """The labels held by JSON objects such as ``{"answer": "b"}`` and LaTeX ``\\boxed{b}`` in the text."""
    found = set()
    for match in _BOXED.finditer(text):
        label = _as_label(match.group(1), allowed)
        if label is not None:
            found.add(label)
    for match in _JSON_OBJECT.finditer(text):
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
    bare = text.strip(" \t\n\"'")
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
    stripped = _LABEL_PREFIX.sub("", text.strip(" *_`")).strip(" *_`")
    if not _LONE_LABEL.fullmatch(stripped):
        return None
    label = canonical_label(stripped)
    return label if label in allowed else None
