"""Finding the labels an answer mentions, and what the words around each make of it.

The reader (`riskdpo.data.answers`, whose docstring states the rules) decides an
answer from its *mentions*: a label standing alone in the plain text (``10`` is
never ``1``; the article "a" and the pronoun "I" followed by a word are not
labels), each marked negated, revising, disjunctive, answer-like (not in a
heading, not heading one of several option lines, not in an "If" sentence) and
with the kind of commitment that names it (`Mention.cue`):

- ``final-cue``: an answer noun or a first-person choice verb (the cue vocabulary
  is `riskdpo.data.answer_cues`), or a sentence revising an earlier choice;
- ``commitment``, ``comparison``, ``criterion``: a superlative, a comparative,
  and a verdict narrowed to one criterion, in the third person, and never for a
  third party.

Kept apart from the rules so that the rules read as rules: this module knows
where a label stands and what governs it, never which mention wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from riskdpo.data import answer_cues as cues
from riskdpo.data.answer_text import PlainText
from riskdpo.data.labels import canonical_label

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

#: A label at the head of an option line: "1. 54% of $35,800", "- (b) a sure $40", "Option a: EV $50".
_OPTION_LINE_HEAD = re.compile(  # used with .match(text, line_start)
    r"[-\u2022\u25cf+ \t]*(?:option|lottery)?\s*[(\[]?(?P<label>[A-Za-z]|\d{1,2})[)\]]?\s*[.):\-\u2013\u2014]", re.IGNORECASE
)
#: What may follow a label on the line after its cue ("Final Answer:\nOption 3", "…\nOption a — the $2,134 lottery").
_LABEL_LINE_REST = re.compile(r"^[)\]\"']*\s*(?:$|\n|[.!]?[ \t]*(?:$|\n)|[:(\-\u2013\u2014])")

_AFTER_OPTION_WORD = re.compile(r"\b(?:option|lottery|choice)\s*[:\"']*\s*$", re.IGNORECASE)
_IF = re.compile(r"\W*if\b", re.IGNORECASE)
_FOLLOWING_WORD = re.compile(r"[ \t]+([A-Za-z]+)")
#: Characters after a mention that its rules look at: more than the longest verdict phrase can span.
_AFTER_WINDOW = 200
#: Clause and sentence boundaries.
_CLAUSE_BREAK = re.compile(r"[.;!?\n,]")

@dataclass(frozen=True)
class Mention:
    """A label standing alone in the plain text, and what the words around it make of it."""

    start: int
    end: int
    label: str
    negated: bool
    cue: str | None  # the kind of commitment that names it (see `_cue`), or None
    revises: bool  # opens a sentence that takes back an earlier commitment
    disjunctive: bool  # "Answer: 1 or 2": a cue naming two labels commits to neither
    answer_like: bool  # not in a heading, not at the head of one of several option lines

def mentions(plain: PlainText, allowed: list[str]) -> list[Mention]:
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
        found.append(Mention(
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


def _with_sentence_cues(text: str, found: list[Mention]) -> list[Mention]:
    """Mark the one label a first-person choice verb governs further on in its sentence:
    "I prefer the sure thing, option (a)", "I would select the option with the guaranteed outcome, which is c"."""
    marked = list(found)
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
                    marked[i] = replace(marked[i], cue="final-cue")
    return marked


def anaphoric_commitments(text: str, found: list[Mention]) -> list[Mention]:
    """Verdicts on "this"/"it" ("This is the most attractive option"), each given the one label
    its own sentence names before it, or else the one label the sentence before names."""
    verdicts = []
    for verdict in cues.ANAPHORIC_VERDICT.finditer(text):
        start = _sentence_start(text, verdict.start())
        kind = None if _hypothetical(text, verdict.start()) else _verdict_kind(text, verdict.start(), "commitment")
        if kind is None:
            continue
        own = {m.label for m in found if start <= m.start < verdict.start() and not m.negated}
        if not own:
            previous = _sentence_start(text, max(start - 2, 0))
            own = {m.label for m in found if previous <= m.start < start and not m.negated}
        if len(own) == 1:
            label = own.pop()
            verdicts.append(Mention(verdict.start(), verdict.end(), label, False, kind, False, False, True))
    return verdicts


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
