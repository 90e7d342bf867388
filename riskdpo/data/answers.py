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

from riskdpo.data import answer_cues as cues
from riskdpo.data.answer_text import PlainText, ends_in_loop, plain_lines, split_reasoning
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

#: One label written alone: optional bracket, a letter or a 1-2 digit number,
#: optional closing bracket. Guards: "10" is not "1"; "$5", "5%", "1,000",
#: "0.5" are amounts; "I'd", "e.g." and letters touching debris are not labels.
_DEBRIS = "\ufffd&@^~|\\\\<>{}\\[\\]"
_MENTION = re.compile(
    rf"(?<![\w$.,{_DEBRIS}])(?<!\w['\u2019])(?P<open>[(\[])?(?P<label>[A-Za-z]|\d{{1,2}})(?P<close>[)\]])?"
    rf"(?![\w%$#{_DEBRIS}]|[.,]\d|\.[A-Za-z]|['\u2019][A-Za-z])"
)

#: Words that follow a label but never the article "a" nor a count ("3 probabilities").
_LABEL_FOLLOWERS = frozenset(
    "and or vs versus is has offers gives was would seems because since than over instead then "
    "nor looks appears provides yields wins dominates".split()
)

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
#: A label at the head of an option line: "1. 54% of $35,800", "- (b) a sure $40", "Option a: EV $50".
_OPTION_LINE_HEAD = re.compile(  # used with .match(text, line_start)
    r"[-\u2022\u25cf+ \t]*(?:option|lottery)?\s*[(\[]?(?P<label>[A-Za-z]|\d{1,2})[)\]]?\s*[.):\-\u2013\u2014]", re.IGNORECASE
)
#: What may follow a label on the line after its cue ("Final Answer:\nOption 3", "…\nOption a — the $2,134 lottery").
_LABEL_LINE_REST = re.compile(r"^[)\]\"']*\s*(?:$|\n|[.!]?[ \t]*(?:$|\n)|[:(\-\u2013\u2014])")
_JSON_OBJECT = re.compile(r"\{[^{}]*\}")
_LABEL_PREFIX = re.compile(r"^(?:option|answer)\s*:?\s+", re.IGNORECASE)
_LONE_LABEL = re.compile(r"[(\[]?\s*(?:[A-Za-z]|\d{1,2})\s*[)\]]?\.?")
_AFTER_OPTION_WORD = re.compile(r"\b(?:option|lottery|choice)\s*[:\"']*\s*$", re.IGNORECASE)
_IF = re.compile(r"\W*if\b", re.IGNORECASE)
_FOLLOWING_WORD = re.compile(r"[ \t]+([A-Za-z]+)")
#: Characters after a mention that its rules look at: more than the longest verdict phrase can span.
_AFTER_WINDOW = 200
#: Clause and sentence boundaries.
_CLAUSE_BREAK = re.compile(r"[.;!?\n,]")


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


@dataclass(frozen=True)
class _Mention:
    """A label standing alone in the plain text, and what the words around it make of it."""

    start: int
    end: int
    label: str
    negated: bool
    cue: str | None  # the kind of commitment that names it (see `_cue`), or None
    revises: bool  # opens a sentence that takes back an earlier commitment
    disjunctive: bool  # "Answer: 1 or 2": a cue naming two labels commits to neither
    answer_like: bool  # not in a heading, not at the head of one of several option lines


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
    mentions = _mentions(plain, allowed)
    commitments = mentions + _anaphoric_commitments(plain.text, mentions)
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
    return _fallback(plain.text, mentions)


def _final_commitment(commitments: list[_Mention]) -> tuple[str | None, str | None, str] | None:
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


def _fallback(text: str, mentions: list[_Mention]) -> tuple[str | None, str | None, str]:
    """Rules 3 and 4 for a finished answer that states no commitment."""
    kept = [m for m in mentions if not m.negated and m.answer_like]
    if not kept:
        return None, ("negated" if any(m.negated for m in mentions) else "no_label"), "none"
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


def _mentions(plain: PlainText, allowed: list[str]) -> list[_Mention]:
    """Label mentions in text order, each with what the words around it make of it; echoes dropped."""
    text = plain.text
    option_lines = _option_line_labels(text, allowed)
    found = []
    for match in _MENTION.finditer(text):
        label = match.group("label").lower()  # a bare letter or number: already canonical but for case
        if label not in allowed or _in_echoed_question(text, match.start(), match.end(), allowed):
            continue
        before = text[max(0, match.start() - 60) : match.start()]
        after = text[match.end() : match.end() + _AFTER_WINDOW]
        after_option = _AFTER_OPTION_WORD.search(before) is not None
        bracketed = bool(match.group("close"))  # "(a)", "a)"; a lone "(" may open an aside: "(a sure $500)"
        if not bracketed and not after_option and _is_word_use(match.group("label"), after):
            continue
        negated = cues.NEGATION_BEFORE.search(before) is not None
        cue, negated = _cue(text, match.start(), before, after, negated)
        line = plain.line_of(match.start())
        line_start = text.rfind("\n", 0, match.start()) + 1
        heads_option_line = len(option_lines) > 1 and match.start() == line_start + _head_offset(text, line_start)
        revises = cues.REVISION.match(text[_sentence_start(text, match.start()) : match.start()]) is not None
        found.append(_Mention(
            match.start(), match.end(), label, negated, cue or ("final-cue" if revises and not negated else None),
            revises=revises,
            disjunctive=cue is not None and cues.DISJUNCTION_AFTER.match(after) is not None,
            answer_like=line not in plain.heading_lines and not heads_option_line
            and not _hypothetical(text, match.start()),
        ))  # fmt: skip
    return _with_sentence_cues(text, found)


def _cue(text: str, start: int, before: str, after: str, negated: bool) -> tuple[str | None, bool]:
    """(kind of commitment or None, negated) for the mention at `start`.

    Kinds, strongest first: "final-cue" (an answer noun, a first-person verb, "b is my answer"),
    "commitment" (a superlative verdict), "comparison" (a comparative verdict), "criterion" (a verdict
    narrowed to a criterion).
    """
    if negated:
        return None, True
    cue = cues.CUE_AT_END.search(before)
    if cue is not None and "\n" in cue.group(0) and not _LABEL_LINE_REST.match(after):
        cue = None  # "Conclusion:\nOption A has …" opens a paragraph about A, it does not answer A
    hypothetical = _hypothetical(text, start)
    if cue is not None:
        clause = _clause_before(text, start - len(before) + cue.start())
        if cue.group("verb") and cues.NEGATED_CUE.search(clause):
            return None, True
        if hypothetical or (cue.group("verb") and cues.HEDGED_CUE.search(clause)):
            return None, False
        if cue.group("noun") or (cue.group("verb") and cues.FIRST_PERSON.search(clause)):
            return "final-cue", False
        if cue.group("best"):
            return _verdict_kind(text, start, "commitment" if cue.group("superlative") else "comparison"), False
    if hypothetical:
        return None, False
    if cues.ANSWER_AFTER.match(after):
        return "final-cue", False
    for pattern, kind in ((cues.SUPERLATIVE_AFTER, "commitment"), (cues.COMPARATIVE_AFTER, "comparison")):
        if pattern.match(after):
            return _verdict_kind(text, start, kind), False
    if cues.HIGHEST_AFTER.match(after) and _sentence_end(text, start) >= len(text.rstrip(" .\n")):
        return _verdict_kind(text, start, "criterion"), False  # the criterion's best, as the answer's last word
    return None, False


def _verdict_kind(text: str, position: int, kind: str) -> str | None:
    """A verdict's kind in its sentence: None when it is someone else's, "criterion" when narrowed to one."""
    sentence = text[_sentence_start(text, position) : _sentence_end(text, position)]
    if cues.THIRD_PARTY.search(sentence):
        return None
    return "criterion" if cues.CRITERION.search(sentence) else kind


def _with_sentence_cues(text: str, mentions: list[_Mention]) -> list[_Mention]:
    """Mark the one label a first-person choice verb governs further on in its sentence:
    "I prefer the sure thing, option (a)", "I would select the option with the guaranteed outcome, which is c"."""
    marked = list(mentions)
    for verb in cues.FIRST_PERSON_VERB.finditer(text):
        if _hypothetical(text, verb.start()) or cues.NEGATED_CUE.search(text[max(0, verb.start() - 30) : verb.start()]):
            continue
        end = _sentence_end(text, verb.end())
        inside = [i for i, m in enumerate(marked) if verb.end() <= m.start < end]
        if not inside or any(marked[i].cue for i in inside):
            continue
        named = {marked[i].label for i in inside if not marked[i].negated}
        if len(named) == 1:
            for i in inside:
                if not marked[i].negated:
                    marked[i] = _replace_cue(marked[i], "final-cue")
    return marked


def _anaphoric_commitments(text: str, mentions: list[_Mention]) -> list[_Mention]:
    """Verdicts on "this"/"it" ("This is the most attractive option"), each given the one label
    its own sentence names before it, or else the one label the sentence before names."""
    found = []
    for verdict in cues.ANAPHORIC_VERDICT.finditer(text):
        start = _sentence_start(text, verdict.start())
        kind = None if _hypothetical(text, verdict.start()) else _verdict_kind(text, verdict.start(), "commitment")
        if kind is None:
            continue
        own = {m.label for m in mentions if start <= m.start < verdict.start() and not m.negated}
        if not own:
            previous = _sentence_start(text, max(start - 2, 0))
            own = {m.label for m in mentions if previous <= m.start < start and not m.negated}
        if len(own) == 1:
            label = own.pop()
            found.append(_Mention(verdict.start(), verdict.end(), label, False, kind, False, False, True))
    return found


def _replace_cue(mention: _Mention, cue: str) -> _Mention:
    return _Mention(mention.start, mention.end, mention.label, mention.negated, cue, mention.revises,
                    mention.disjunctive, mention.answer_like)  # fmt: skip


def _option_line_labels(text: str, allowed: list[str]) -> set[str]:
    """The labels that head lines of the text ("1. …", "(b) …", "Option a: …")."""
    heads = set()
    for line in text.split("\n"):
        match = _OPTION_LINE_HEAD.match(line)
        if match and canonical_label(match.group("label")) in allowed:
            heads.add(canonical_label(match.group("label")))
    return heads


def _head_offset(text: str, line_start: int) -> int:
    """Where the label of an option line starting at `line_start` stands, relative to it (-1 when none)."""
    match = _OPTION_LINE_HEAD.match(text, line_start)
    return match.start("label") - line_start if match else -1


def _sentence_start(text: str, position: int) -> int:
    return max(text.rfind(mark, 0, position) for mark in (". ", "! ", "? ", "\n", ".\n")) + 1


def _sentence_end(text: str, position: int) -> int:
    ends = [found for found in (text.find(mark, position) for mark in (". ", "! ", "? ", "\n")) if found >= 0]
    return min(ends) if ends else len(text)


def _hypothetical(text: str, position: int) -> bool:
    """True inside a sentence that opens with "If" ("If I cared only about the mean I would pick a.")."""
    sentence_start = max(text.rfind(mark, 0, position) for mark in ".!?\n") + 1
    return _IF.match(text, sentence_start, position) is not None


def _clause_before(text: str, position: int) -> str:
    """The text from the last clause break before `position` up to it."""
    breaks = [match.end() for match in _CLAUSE_BREAK.finditer(text, 0, position)]
    return text[breaks[-1] if breaks else 0 : position]


def _in_echoed_question(text: str, start: int, end: int, allowed: list[str]) -> bool:
    """True inside a question that names two or more labels (``Option A or B?``): an echo, not an answer."""
    question = text.find("?", end)
    if question < 0:
        return False
    sentence_start = max(text.rfind(mark, 0, start) for mark in ".!?\n") + 1
    stops = [position for position in (text.find(mark, end, question) for mark in ".!\n") if position >= 0]
    if stops:
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
    follower = _FOLLOWING_WORD.match(rest)
    return follower is not None and follower.group(1).lower() not in _LABEL_FOLLOWERS
