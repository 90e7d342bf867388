"""The answer parser: which label a generated answer names, or None when it is unclear."""

import pytest

from riskdpo.evaluation.answers import parse_answer
from riskdpo.data.labels import answer_variants

LETTERS = ["a", "b", "c"]
NUMBERS = [str(n) for n in range(1, 11)]

CASES = [
    # the variants of the issue
    ('{"answer": "b"}', LETTERS, "b"),
    ('Sure: {"choice": "(c)"}', LETTERS, "c"),
    ('{"Answer": "B"}', LETTERS, "b"),
    ("Option b", LETTERS, "b"),
    ("option C", LETTERS, "c"),
    ("(b)", LETTERS, "b"),
    ("b.", LETTERS, "b"),
    ("B", LETTERS, "b"),
    ("  b\n", LETTERS, "b"),
    ("**b**", LETTERS, "b"),
    ("I choose b", LETTERS, "b"),
    ("I choose a.", LETTERS, "a"),
    ("I would go with (c).", LETTERS, "c"),
    ("My answer is c", LETTERS, "c"),
    ("Answer: a", LETTERS, "a"),
    # a final standalone label after reasoning that mentions other labels
    ("Option a has the higher mean, but option c risks a loss.\n\nb", LETTERS, "b"),
    ("Comparing a with c: b.", LETTERS, "b"),
    # an answer that opens with its label and then explains
    ("b. It is safer than a.", LETTERS, "b"),
    ("(b) because it beats (a)", LETTERS, "b"),
    # the article "a" is not option a
    ("I have a preference for b", LETTERS, "b"),
    ("I choose a safe option: c", LETTERS, "c"),
    ("A sure thing is best, so b", LETTERS, "b"),
    ("Option a has more upside, option c less; I pick c", LETTERS, "c"),
    ("The best option is a", LETTERS, "a"),
    # numbers: 10 is never 1, amounts and percents are not labels
    ("10", NUMBERS, "10"),
    ("I choose 10", NUMBERS, "10"),
    ("(10).", NUMBERS, "10"),
    ("1", NUMBERS, "1"),
    ("(1).", NUMBERS, "1"),
    ("Option 1.", NUMBERS, "1"),
    ("There is a 10% chance of $1,000 in option 3", NUMBERS, "3"),
    ("It pays $1 or $10, so: 4", NUMBERS, "4"),
    ("probability 0.5 of $2; answer: 2", NUMBERS, "2"),
    ('{"answer": 10}', NUMBERS, "10"),
    # unclear or unreadable -> None (counted invalid, never guessed)
    ("", LETTERS, None),
    ("I cannot decide.", LETTERS, None),
    ("a is safer than b", LETTERS, None),
    ("The answer is a bit unclear", LETTERS, None),
    ("d", LETTERS, None),
    ("11", NUMBERS, None),
    ('{"answer": "z"}', LETTERS, None),
    ("$10", NUMBERS, None),
    ("10%", NUMBERS, None),
]


@pytest.mark.parametrize("text, labels, expected", CASES)
def test_parse_answer_table(text, labels, expected):
    assert parse_answer(text, labels) == expected


def test_sheet_variants_name_their_label():
    variants = {"a": answer_variants("a", "(a)", ["Lottery A"]), "b": answer_variants("b", "(b)", ["Lottery B"])}
    assert parse_answer("Lottery B", ["a", "b"], variants) == "b"
    assert parse_answer("lottery a", ["a", "b"], variants) == "a"
    assert parse_answer("Lottery Z", ["a", "b"], variants) is None


def test_a_variant_claimed_by_two_labels_is_ambiguous():
    variants = {"a": ["Left"], "b": ["Left"]}
    assert parse_answer("Left", ["a", "b"], variants) is None


def test_labels_may_be_given_as_written():
    assert parse_answer("(2).", ["(1).", "(2).", "(3)."]) == "2"
