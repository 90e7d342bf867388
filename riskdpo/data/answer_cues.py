"""The words that make a label mention a commitment, for `riskdpo.data.answers`.

A mention of a label becomes the model's answer when words around it commit to
it: an answer noun ("Answer:", "my choice is"), a first-person verb ("I would
select"), a verdict in the third person ("seems to be the most attractive"), a
revision ("Actually, on reflection"). Other words take a mention back: a
negation ("not a"), a hedge ("we might prefer"), a third party ("for a
risk-neutral agent"), a second label ("1 or 2"). This module holds those words
as patterns; `riskdpo.data.answers` says where each is looked for and what it
decides. Patterns matched against the text *before* a mention end in ``$``;
patterns matched *after* it start with ``^``.
"""

from __future__ import annotations

import re

#: Nouns that introduce the answer whoever speaks: "Answer: b", "my final choice is b".
_NOUN = r"(?:final\s+)?(?:answer|choice|decision|selection|recommendation|conclusion|verdict)"
#: Without a colon, copula or possessive ("Choice A is risky") the noun only names an option.
_NOUN_CUE = (
    rf"{_NOUN}\s+(?:is|would\s+be|will\s+be)|{_NOUN}(?=\s*[:=\-\u2013\u2014])"
    rf"|(?:my|final)\s+(?:{_NOUN}|pick)(?:\s+(?:is|would\s+be|will\s+be))?"
    r"|it(?:['\u2019]s|\s+is|\s+has\s+to\s+be|\s+must\s+be)"
)
#: What makes an option the one to take, in a verdict: "the best", "the most attractive".
_SUPERLATIVE = (
    r"(?:best|optimal|preferred|recommended|wisest|ideal|right|correct|winner|clear\s+winner"
    r"|most\s+(?:attractive|appealing|sensible|rational|reasonable|prudent|suitable|appropriate|favou?rable"
    r"|advantageous|logical|desirable))"
)
#: A weaker verdict, read only where no superlative is given: "option a is more attractive, with …".
_COMPARATIVE = r"(?:preferable|better|superior|more\s+(?:attractive|appealing|favou?rable|advantageous|desirable|sensible|suitable))"
_VERDICT_NOUNS = r"(?:option|choice|lottery|bet|pick|answer|decision|one)"
#: Judgements that name the answer after them: "the best option is b", "Best Option: Option 3".
_BEST_CUE = (
    rf"(?:(?P<superlative>{_SUPERLATIVE})|{_COMPARATIVE})(?:\s+{_VERDICT_NOUNS})?(?:\s+for\s+me)?"
    r"\s*(?:is|would\s+be|will\s+be|(?:seems|appears)\s+to\s+be|:)"
)
#: Verbs that name the answer when the speaker is the model: "I choose b", "I'd go with b".
_VERB = (
    r"(?:choose|chose|choosing|pick(?:ed|ing)?|select(?:ed|ing)?|prefer(?:ence\s+(?:is|for))?"
    r"|go(?:ing)?\s+(?:with|for)|went\s+(?:with|for)|take|taking|opt(?:ing)?\s+for|want|recommend(?:ing)?"
    r"|lean(?:ing)?\s+towards?|settle\s+on|stick\s+with|favou?r)"
)
_CUE_TAIL = r"\s*(?:[:=\-\u2013\u2014]\s*)?(?:option\s+|lottery\s+|choice\s+)?[\"'(\[]*\s*$"
CUE_AT_END = re.compile(
    rf"\b(?:(?P<noun>{_NOUN_CUE})|(?P<best>{_BEST_CUE})|(?P<verb>{_VERB})){_CUE_TAIL}", re.IGNORECASE
)
#: A label named as the answer right after it: "b is my answer", "Option B is my choice."
ANSWER_AFTER = re.compile(
    r"^[)\]\"']*\s+(?:is|would\s+be)\s+(?:the\s+|my\s+|our\s+)(?:final\s+)?(?:answer|choice|pick|selection)\b",
    re.IGNORECASE,
)


def _verdict_after(words: str) -> re.Pattern:
    """A verdict of `words` right after a label: "b is preferred.", "option (1) seems to be the most
    attractive, with …", "option 2 ($74,400) seems like the most attractive choice"; not "b is best in
    terms of …" nor "b is better than a" (a verdict tied to a criterion or a comparison)."""
    return re.compile(
        r"^[)\]\"']*\s*(?:\([^()]{0,40}\)\s*)?(?:is|seems|appears|looks|would\s+be|remains|stands\s+out\s+as)\s+"
        r"(?:to\s+be\s+|like\s+)?(?:clearly\s+|definitely\s+|therefore\s+|thus\s+|then\s+|still\s+|indeed\s+|much\s+|far\s+)?"
        rf"(?:(?:the|my|our|a|an)\s+)?{words}(?:\s+{_VERDICT_NOUNS})?(?:\s+(?:here|overall|for\s+me))?"
        r"(?!\s+(?:than|in|on|at|for|if|when|under|from|with|by|among|of)\b)"
        r"(?:\s*[.,;:!\n]|\s*$|\s+(?:and|because|since|as|given)\b)",
        re.IGNORECASE,
    )


SUPERLATIVE_AFTER = _verdict_after(_SUPERLATIVE)
#: A closing statement of a criterion's best: "… option b has the highest expected value." as the last sentence.
HIGHEST_AFTER = re.compile(
    r"^[)\]\"']*\s*(?:\([^()]{0,40}\)\s*)?(?:has|offers|gives|provides|yields)\s+the\s+(?:highest|greatest|largest)"
    r"\s+expected\s+(?:value|utility)\b",
    re.IGNORECASE,
)
COMPARATIVE_AFTER = _verdict_after(_COMPARATIVE)
#: A verdict about an option named just before: "This is the most attractive option", "so it's the most
#: attractive option", "making it the best choice".
ANAPHORIC_VERDICT = re.compile(
    r"\b(?:(?:this|that|it|which)(?:['\u2019]s|\s+(?:is|would\s+be|seems(?:\s+to\s+be|\s+like)?|remains))"
    r"|mak(?:es|ing)\s+it)"
    rf"\s+(?:clearly\s+)?(?:the\s+)?{_SUPERLATIVE}\s+{_VERDICT_NOUNS}\b",
    re.IGNORECASE,
)
#: Someone else's view: a verdict for them is not the model's ("For a risk-neutral agent, a is the best choice").
THIRD_PARTY = re.compile(
    r"\b(?:risk[- ]neutral|risk[- ]seeking|risk[- ]loving|someone|a\s+person\s+who|an?\s+(?:\w+\s+)?(?:maximi[sz]er|gambler))\b",
    re.IGNORECASE,
)
#: A criterion that narrows a verdict ("Based purely on expected value, b is the most attractive"): the
#: model's own verdict, read only where it gives no other.
CRITERION = re.compile(r"\b(?:purely|solely|strictly|alone|in\s+terms\s+of)\b", re.IGNORECASE)
#: A hedge before a cue verb: "we might prefer (a)", "one could pick b".
HEDGED_CUE = re.compile(r"\b(?:might|may|could|can)\s+(?:\w+\s+)?$", re.IGNORECASE)
#: A sentence that takes back what came before: "Actually, on reflection, a."
REVISION = re.compile(
    r"^\W*(?:(?:hmm|well|no|oh|ok(?:ay)?)\W+)*(?:actually|wait|correction|on\s+(?:second|further)\s+thought"
    r"|on\s+reflection|scratch\s+that|i\s+change\s+my\s+mind)\b",
    re.IGNORECASE,
)
#: A negation right before a cue verb: "I don't choose", "I would not pick", "never go with".
NEGATED_CUE = re.compile(r"(?:\bnot|n['\u2019]t|\bnever|\bno)\s+(?:\w+\s+)?$", re.IGNORECASE)
#: A first-person speaker (or none) in the clause before a cue verb.
FIRST_PERSON = re.compile(r"^\W*$|\b(?:I|I['\u2019](?:d|ll|m)|we|my|me|let['\u2019]s)\b[^.;!?\n]*$", re.IGNORECASE)
#: A first-person choice verb anywhere in a sentence: "I prefer the sure thing, option (a)".
FIRST_PERSON_VERB = re.compile(
    rf"\b(?:I|we)(?:['\u2019](?:d|ll))?\s+(?:(?:would|will|should|must|shall|then|therefore|thus|definitely|clearly"
    rf"|ultimately|also)\s+)*{_VERB}\b",
    re.IGNORECASE,
)
#: Words after which a mention is rejected: "not a", "neither a nor b", "rather than c".
NEGATION_BEFORE = re.compile(
    r"\b(?:not|neither|nor|rather\s+than|instead\s+of|except|avoid(?:ing)?)\s+(?:option\s+)?[\"'(\[]*$", re.IGNORECASE
)
#: A second label joined to a cued one: "Answer: 1 or 2", "a/b".
DISJUNCTION_AFTER = re.compile(r"^[)\]]?\s*(?:or|/|and/or)\s+(?:option\s+)?[(\[]?(?:[A-Za-z]|\d{1,2})\b", re.IGNORECASE)
