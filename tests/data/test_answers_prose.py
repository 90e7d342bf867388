"""The reader on answers as chat models write them: markdown, third-person conclusions,
unfinished answers (issue 29). The texts are written here in the styles of Gemma,
Llama and Qwen3 answers; the real answers are in tests/data/real_answers/."""

import pytest

from riskdpo.data.answer_text import ends_in_loop, plain_lines
from riskdpo.data.answers import RULES, read_answer

LETTERS = ["a", "b", "c"]
FOUR = ["a", "b", "c", "d"]
NUMBERS = ["1", "2", "3", "4"]

ANALYSIS = (
    "Okay, let's analyze these options.\n\n"
    "**Option 1: 54% probability of $35,800, 46% probability of -$12,700**\n\n"
    "*   **Expected Value:** (0.54 * $35,800) + (0.46 * -$12,700) = $13,490\n\n"
    "**Option 2: 58% probability of -$12,700, 42% probability of $393,600**\n\n"
    "*   **Expected Value:** $158,546\n\n"
)

# (text, labels, expected label, rule)
EMPHASIS = [
    ("Therefore, my choice is **Option 2.**", NUMBERS, "2", "final-cue"),
    ("Option (a) is risky.\n\nI would choose **Option (b)**.", LETTERS, "b", "final-cue"),
    ("### \u2705 **Final Answer:**\n> **Option 3**", NUMBERS, "3", "structured"),
    ("Weighing it all:\n\n**My choice:**\n\n**Option a** \u2014 **More than a half-chance of $2,134**", LETTERS, "a", "final-cue"),
    ("$\\boxed{3}$", NUMBERS, "3", "structured"),
    ("Final answer: $\\boxed{\\text{(a)}}$", LETTERS, "a", "structured"),
    (ANALYSIS + "Given my risk attitude, I would choose **Option 1**. Here's why:\n\n"
     "1.  **Lower downside:** the worst case is my baseline.\n2.  **Option 2** is too volatile.", NUMBERS, "1", "final-cue"),
    ("| Option | EV |\n|---|---|\n| a | $50 |\n| b | $45 |\n\n\u27a1\ufe0f **I pick (b).**", LETTERS, "b", "final-cue"),
    ("__Answer__: __c__", LETTERS, "c", "structured"),
    ("**Decision \u2192 Option B**", LETTERS, "b", "final-cue"),
    (ANALYSIS + "## Recommendation\n\n**Option 2** \u2013 the upside outweighs a loss I can absorb.", NUMBERS, "2", "final-cue"),
    (ANALYSIS + "On balance I'd lean toward **Option 1** here.", NUMBERS, "1", "final-cue"),
    (ANALYSIS + "**Option 2** is clearly superior.", NUMBERS, "2", "commitment"),
    (ANALYSIS + "### **Conclusion:**\nGiven the **much higher expected value** of **Option 2**, **Option 2** is the most "
     "attractive choice.\n\n---\n\n### \u2705 **Final Answer: Option 2**", NUMBERS, "2", "final-cue"),
]

THIRD_PERSON = [
    ("Option a: EV $120. Option b: EV $95.\n\nBased on the expected values, option (1) seems to be the most attractive, "
     "with the highest expected value.", ["1", "2"], "1", "commitment"),
    ("Comparing them, option 2 ($74,400) seems to be the most attractive choice.", NUMBERS, "2", "commitment"),
    ("Option 1 has a higher mean but option 2 is safer. Therefore, the most attractive option would be option 1.",
     NUMBERS, "1", "commitment"),
    ("## Analysis\nOption 1 pays more.\nOption 3 never loses.\n\n### Best Option: Option 3", NUMBERS, "3", "commitment"),
    ("The highest expected value is Option c, at $4,100, and its worst case is $0. This is the most attractive "
     "option for an agent in my position.", LETTERS, "c", "commitment"),
    ("Option b never loses money, which makes it the most sensible choice here.", LETTERS, "b", "commitment"),
    # a verdict tied to a criterion or a third party is not the model's
    ("Based purely on expected value, Option 2 is the clear winner. But I care about risk, so I would choose Option 3.",
     NUMBERS, "3", "final-cue"),
    ("For a risk-neutral agent, option a is the best choice. Option b is the safest.", LETTERS, None, None),
    ("If I only cared about the mean, option a would be the best choice.", LETTERS, None, None),
]

CLASS_FOUR = [
    ("The answer is [b].", LETTERS, "b", "final-cue"),
    ("[c]", LETTERS, "c", "structured"),
    ("I prefer the sure thing, option (a).", LETTERS, "a", "final-cue"),
    ("I would select the option with the guaranteed outcome, which is option c.", LETTERS, "c", "final-cue"),
    ("Answer: (b)\nAnswer: (c)", LETTERS, None, None),
    ("Answer: 1 or 2", NUMBERS, None, None),
    ("The answer is b.\n\nActually, on reflection, a.", LETTERS, "a", "final-cue"),
    ("I choose b. Wait \u2014 I choose c.", LETTERS, "c", "final-cue"),
]


@pytest.mark.parametrize("text, labels, label, rule", EMPHASIS + THIRD_PERSON + CLASS_FOUR)
def test_markdown_third_person_and_corrections(text, labels, label, rule):
    parsed = read_answer(text, labels)
    assert parsed.label == label
    if rule is not None:
        assert parsed.rule == rule
    assert parsed.rule in RULES


def test_contradictory_and_disjunctive_answers_say_why():
    assert read_answer("Answer: (b)\nAnswer: (c)", LETTERS).reason == "contradictory"
    assert read_answer("Answer: 1 or 2", NUMBERS).reason == "several_labels"


# ---- unfinished answers -------------------------------------------------------------------------------------------

CUT_AFTER_HEADING = "Let me evaluate each option.\n\n### **Option A:**\nThe expected value is 0.62 \u00d7 $1,200 + 0.38 \u00d7 ("
CUT_IN_ANALYSIS = "For option (1):\n\nEV = 0.54 * 35800 + 0.46 * (-12700) = 19332 - 5842 = 13490\n\nFor option (2):\n\nEV = 0.58 *"


@pytest.mark.parametrize("text, labels", [
    (CUT_AFTER_HEADING, FOUR),
    (CUT_IN_ANALYSIS, NUMBERS),
    ("### Option A\nEV = " + "9" * 300, FOUR),
])  # fmt: skip
def test_a_cut_answer_without_a_commitment_is_truncated(text, labels):
    parsed = read_answer(text, labels, finished=False)
    assert parsed.label is None and parsed.reason == "truncated"


def test_analysis_headings_name_no_choice_even_when_finished():
    """Where the finish reason is unknown, a heading that introduces an analysis is still no answer."""
    assert read_answer(CUT_AFTER_HEADING, FOUR).label is None
    assert read_answer(CUT_IN_ANALYSIS, NUMBERS).label is None
    # a degenerate loop marks an answer as cut when nothing else says so
    looped = read_answer("### Option A\nEV = " + "9" * 300, FOUR)
    assert looped.label is None and looped.reason == "truncated"


def test_a_cut_answer_that_committed_keeps_its_commitment():
    text = "Answer: (b)\n\nExplanation: option (a) has a 30% chance of losing $9,000, while option (c) pays"
    parsed = read_answer(text, LETTERS, finished=False)
    assert (parsed.label, parsed.rule) == ("b", "final-cue")


def test_a_finished_short_answer_may_rest_on_a_sole_mention():
    assert read_answer("Only b never loses money.", LETTERS, finished=True).label == "b"
    assert read_answer("Only b never loses money.", LETTERS, finished=False).reason == "truncated"


def test_a_long_analysis_of_one_option_is_no_choice():
    text = "Option (b) offers " + "a steady return with little variance and no chance of a loss, " * 8 + "as computed."
    assert len(text) > 300
    parsed = read_answer(text, LETTERS)
    assert parsed.label is None and parsed.reason == "no_label"


def test_option_lines_restated_are_not_answers():
    text = "1. 9% probability of $3,580, 91% probability of -$98,100\n2. 4% probability of -$98,100\n"
    assert read_answer(text, NUMBERS).label is None


def test_reasoning_returned_apart_is_read_like_think_tags():
    inline = read_answer("<think>b is safer than a.</think>\n\nI choose b.", LETTERS)
    apart = read_answer("I choose b.", LETTERS, reasoning="b is safer than a.")
    assert (inline.label, inline.source, inline.reasoning_chars) == (apart.label, apart.source, apart.reasoning_chars)
    cut = read_answer("", LETTERS, reasoning="Let me compare a and", finished=False)
    assert cut.reason == "truncated" and cut.source == "reasoning"


def test_plain_lines_see_through_markdown():
    plain = plain_lines("### \u2705 **Final Answer:**\n> **Option 3**\n| a | $5 |")
    assert plain.text.splitlines()[:2] == ["Final Answer:", "Option 3"]
    assert 0 in plain.heading_lines and 1 not in plain.heading_lines
    assert "$5" in plain.text  # amounts keep their $


def test_ends_in_loop():
    assert ends_in_loop("EV = " + "9" * 100)
    assert ends_in_loop("so " + "the answer is " * 20)
    assert not ends_in_loop("Therefore, I would select option (a). " * 1 + "It has the best risk profile overall.")
