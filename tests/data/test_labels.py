"""Option labels: canonical form, every label style of `docs/data-formats.md`, answer variants."""

import pytest

from riskdpo.data.labels import answer_variants, canonical_label, find_option_lines, find_option_texts, label_style

#: Every label style `docs/data-formats.md` lists, with how its first three labels are written.
STYLES = {
    "a.": ["a.", "b.", "c."],
    "(a)": ["(a)", "(b)", "(c)"],
    "a": ["a", "b", "c"],
    "1.": ["1.", "2.", "3."],
    "(1)": ["(1)", "(2)", "(3)"],
    "1": ["1", "2", "3"],
    "(a).": ["(a).", "(b).", "(c)."],
    "(1).": ["(1).", "(2).", "(3)."],
}
LOTTERIES = [
    "59% probability of -$73,700, 16% probability of $270, 25% probability of $1,520",
    "probability 0.82 of $749, probability 0.18 of $0",
    "Likely to give $6.75e+17, Unlikely to give -$92",
]


def _prompt(written_labels, scenario="A farmer has $40 saved and is offered three deals."):
    options = [f"{written} {lottery}" for written, lottery in zip(written_labels, LOTTERIES * 4)]
    return "\n".join([scenario, *options, "Which option do you choose? Output the label of your chosen option only."])


@pytest.mark.parametrize(
    "raw, canonical",
    [("(1).", "1"), ("(B)", "b"), ("a.", "a"), (" (c) ", "c"), ("Option", "option"), (10, "10"), (10.0, "10"),
     ("10.0", "10"), ("10", "10"), (1, "1"), (-1.0, "-1"), ("-2", "-2"), ("(10).", "10")],
)
def test_canonical_label(raw, canonical):
    assert canonical_label(raw) == canonical


@pytest.mark.parametrize("style", sorted(STYLES))
def test_find_option_lines_reads_every_style(style):
    written = STYLES[style]
    found = find_option_lines(_prompt(written))
    assert [w for w, _ in found] == written
    assert [c for _, c in found] == [canonical_label(w) for w in written]
    assert {label_style(w) for w, _ in found} == {style}


def test_scenario_sentence_starting_with_a_is_not_an_option():
    # "A farmer has $40" looks like a bare-letter option line with money in it.
    found = find_option_lines(_prompt(["a", "b"]))
    assert [c for _, c in found] == ["a", "b"]


def test_upper_case_labels_are_canonical_lower_case():
    found = find_option_lines(_prompt(["A.", "B.", "C."]))
    assert found == [("A.", "a"), ("B.", "b"), ("C.", "c")]


def test_lines_without_money_are_not_options():
    prompt = "Pick one.\n1. stay at home\n2. go out\n1. 50% probability of $5\n2. 50% probability of $7\nWhich?"
    assert find_option_lines(prompt) == [("1.", "1"), ("2.", "2")]


def test_label_10_is_not_label_1():
    written = [f"({n})" for n in range(1, 12)]
    found = find_option_lines(_prompt(written))
    canonical = [c for _, c in found]
    assert canonical == [str(n) for n in range(1, 12)]
    assert canonical.index("10") == 9 and canonical.count("1") == 1


def test_find_option_texts_returns_the_lottery_text():
    texts = find_option_texts(_prompt(STYLES["(1)."]))
    assert [text for _, _, text in texts] == LOTTERIES


def test_answer_variants_literal_first_without_duplicates():
    variants = answer_variants("b", "(b).", ["B", "Option b", "answer: b"])
    assert variants[:2] == ["(b).", "b"]
    assert {"B", "(b)", "b.", "b)", "Option b", "answer: b"} <= set(variants)
    assert len(variants) == len(set(variants))


def test_answer_variants_of_numbers_have_no_upper_case():
    assert answer_variants("10", "10.") == ["10.", "10", "(10)", "10)", "Option 10", "option 10"]


@pytest.mark.parametrize("written, style", [("(a).", "(a)."), ("(3)", "(1)"), ("10.", "1."), ("B", "a")])
def test_label_style(written, style):
    assert label_style(written) == style
