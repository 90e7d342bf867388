"""The answer parser: which label a generated answer names, or None when it is unclear."""

import pytest

from riskdpo.data.answers import INVALID_REASONS, parse_answer, read_answer
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


# ---- answers read as a careful person reads them (issue 13, part 2) -----------------------------------------------

FIVE = ["a", "b", "c", "d", "e"]
TWELVE = [str(n) for n in range(1, 13)]

CAREFUL_CASES = [
    # an explicit final-answer cue wins over mentions after it
    ("Answer: b\n\nExplanation: option a has higher variance.", LETTERS, "b"),
    ("Answer: (c)\nOption a pays more on average, but c never loses money.", LETTERS, "c"),
    ("Final answer: a. Option b and option c both risk a large loss.", LETTERS, "a"),
    ("**Final answer:** b\n\nWhy: a has the higher mean but can lose $70,000; c is worse than b.", LETTERS, "b"),
    ("My choice is c, since a and b both carry a chance of ruin.", LETTERS, "c"),
    ("I choose b because option a could lose everything and c pays too little.", LETTERS, "b"),
    ("I'd go with 3. Options 1 and 2 are too volatile.", NUMBERS, "3"),
    ("I will pick option 2; option 1 has a 40% chance of a loss.", NUMBERS, "2"),
    ("The best option is b. Option a is a gamble, c is dominated.", LETTERS, "b"),
    ("Answer - 10\nOption 4 is close, but 10 has no downside.", NUMBERS, "10"),
    ("I prefer a over b and c.", LETTERS, "a"),
    ("Let's take c: it is the sure thing, whereas a and b are risky.", LETTERS, "c"),
    # negation names no choice
    ("not a", LETTERS, None),
    ("I don't choose b.", LETTERS, None),
    ("Neither a nor b.", LETTERS, None),
    ("Definitely not option c.", LETTERS, None),
    ("I would not pick a.", LETTERS, None),
    ("I won't go with 2.", NUMBERS, None),
    # negation of one option with a choice of another
    ("Not a, but b.", LETTERS, "b"),
    ("I would not pick a; I pick c.", LETTERS, "c"),
    ("I don't choose b. Answer: a", LETTERS, "a"),
    ("c rather than a.", LETTERS, "c"),
    ("Instead of a, I'd take b.", LETTERS, "b"),
    ("Avoid option a. b is the better bet.", LETTERS, "b"),
    # two different explicit answers are contradictory
    ("I choose b. Answer: c", LETTERS, None),
    ("Answer: a\nFinal answer: b", LETTERS, None),
    ('{"answer": "a"} {"answer": "b"}', LETTERS, None),
    ("My choice is 1. I pick 3.", NUMBERS, None),
    # the same answer twice is one answer
    ("Answer: b. I choose b because it is safer.", LETTERS, "b"),
    ("I pick c.\nFinal answer: c", LETTERS, "c"),
    # a question echoed before the answer
    ("Option A or B? B.", ["a", "b"], "b"),
    ("Which is better, a or b? b", ["a", "b"], "b"),
    ("Should I take 1, 2 or 3? I take 2.", NUMBERS, "2"),
    ("a, b or c? Hmm. c.", LETTERS, "c"),
    ("Why b? Because it never loses money.", LETTERS, "b"),
    # third parties and hypotheticals are not the model's answer
    ("A risk-neutral agent would choose a, but I choose b.", LETTERS, "b"),
    ("If I only cared about the mean I would pick a. I pick c.", LETTERS, "c"),
    ("Someone who loves risk would go with a. I'd go with b.", LETTERS, "b"),
    # garbage is not an answer
    ("') lotter\ufffde&'", FIVE, None),
    ("3 probabilities change\ufffdse94", NUMBERS, None),
    ("\ufffd\ufffdb\ufffd", LETTERS, None),
    ("#c&&", LETTERS, None),
    ("e.g. the", FIVE, None),
    ("I'd say it's hard", FIVE, None),
    ("2 dollars and 5 cents", NUMBERS, None),
    ("lotteries lotteries lotteries", LETTERS, None),
    ("\n\n", LETTERS, None),
    # realistic short answers
    ("B)", LETTERS, "b"),
    ("b) the sure $40", LETTERS, "b"),
    ("Option (c).", LETTERS, "c"),
    ("answer: C", LETTERS, "c"),
    ("Choice: 7", NUMBERS, "7"),
    ("The answer is (a).", LETTERS, "a"),
    ("'b'", LETTERS, "b"),
    ("`c`", LETTERS, "c"),
    ("I'll go with B, the safe one.", LETTERS, "b"),
    ("Going with option 1.", NUMBERS, "1"),
    ("11", TWELVE, "11"),
    ("12.", TWELVE, "12"),
    ("Option 12 - it has the best worst case.", TWELVE, "12"),
    ("I pick e", FIVE, "e"),
    ("d: lowest variance", FIVE, "d"),
    ("After comparing the expected values, b.", LETTERS, "b"),
    ("Option a: EV $50, risk high.\nOption b: EV $45, risk low.\nAnswer: b", LETTERS, "b"),
    # more realistic answers of small and reasoning models
    ("The answer is b) Lottery with sure $50", LETTERS, "b"),
    ("Based on expected utility, I would choose option B.", LETTERS, "b"),
    ("B. Option B offers a guaranteed return, unlike A.", LETTERS, "b"),
    ("Option C is the best choice.", LETTERS, "c"),
    ("I think A is better", LETTERS, "a"),
    ("Lottery b", LETTERS, "b"),
    ("I'll choose the second option, b.", LETTERS, "b"),
    ("Between a and b, I'd choose a.", LETTERS, "a"),
    ("Both a and b are bad; c.", LETTERS, "c"),
    ("a and b are equally good.", LETTERS, None),
    ("I choose option (2).", NUMBERS, "2"),
    ("The safest is 2, but the highest EV is 1. I'd go with 2.", NUMBERS, "2"),
    ("Answer: The option with the sure gain, b.", LETTERS, "b"),
    ("Option b, because option a risks a 20% chance of losing $5,000.", LETTERS, "b"),
    ("a, b and c are all risky.", LETTERS, None),
    ("I am not sure, but I would pick b.", LETTERS, "b"),
    ("It's not a simple choice. I choose b.", LETTERS, "b"),
    ("c is the one I'd pick.", LETTERS, "c"),
    ("The correct choice is 3.", NUMBERS, "3"),
    ("My final answer is **B**.", LETTERS, "b"),
    ("ANSWER: B\nB has lower variance than A and C.", LETTERS, "b"),
    ("I choose b.\n\nReasoning: Option a: 0.5 * 100 = 50. Option b: 45.", LETTERS, "b"),
    ("The expected value of a is $50 and b is $45, so a.", LETTERS, "a"),
    ("Option 1 (EV = $10) vs option 2 (EV = $12): option 2.", NUMBERS, "2"),
    ("I'd pick neither, but if forced, b.", LETTERS, "b"),
    ("None of them.", LETTERS, None),
    ("Answer: none", LETTERS, None),
    ("Option A has a 50% chance of $100; Option B is a sure $40. As a risk-averse agent I choose Option B.",
     LETTERS, "b"),  # fmt: skip
    ("Choose B", LETTERS, "b"),
    ("I choose: B", LETTERS, "b"),
    ("b (the sure thing)", LETTERS, "b"),
    ("(a) or (b)? (b).", LETTERS, "b"),
    ("A or B? I'd say B.", LETTERS, "b"),
    ("I choose the first option (a).", LETTERS, "a"),
    ("b is my answer", LETTERS, "b"),
    ("I can't choose between a and b.", LETTERS, None),
    ("Option 3 offers 2 outcomes", NUMBERS, "3"),
    ("I pick 2. It has 3 outcomes.", NUMBERS, "2"),
    ("1 is riskier than 2, so 2.", NUMBERS, "2"),
    ("10 is the best.", NUMBERS, "10"),
    ("Option #2", NUMBERS, "2"),
    ("I'd rather not gamble, so b.", LETTERS, "b"),
    ("Given the risk, my pick is c.", LETTERS, "c"),
    ("I'll take the sure thing: b", LETTERS, "b"),
    ("a? No. b.", LETTERS, "b"),
    ("I would choose b rather than a.", LETTERS, "b"),
    ("Definitely (a)!", LETTERS, "a"),
    ("Option B is my choice.", LETTERS, "b"),
    ("Lottery a is worse than lottery b. Lottery c is even worse. So I pick b.", LETTERS, "b"),
    # a third batch, written before running the parser on it
    ("Option (b) is the one I would choose.", LETTERS, "b"),
    ("I'd recommend b.", LETTERS, "b"),
    ("b, definitely.", LETTERS, "b"),
    ("The safer bet is c.", LETTERS, "c"),
    ("C, since it has the highest certainty equivalent.", LETTERS, "c"),
    ("Let me think step by step. Option a: expected value 0.6*100 + 0.4*(-50) = 40. Option b: 35 for sure. "
     "Since I'm risk-averse, b.", LETTERS, "b"),  # fmt: skip
    ("After weighing the risks, I'll go with option A.", LETTERS, "a"),
    ("I select lottery C.", LETTERS, "c"),
    ("Answer: Option 2", NUMBERS, "2"),
    ("My pick: (3)", NUMBERS, "3"),
    ("The answer: d", FIVE, "d"),
    ("I would not choose a or b, so c.", LETTERS, "c"),
    ("Not c. I go with a.", LETTERS, "a"),
    ("It's between a and b. I'll pick b.", LETTERS, "b"),
    ("Option a or option b? I think option b.", LETTERS, "b"),
    ("b is better than a because it never loses.", LETTERS, None),
    ("Hmm, a? Actually no, b.", LETTERS, "b"),
    ("I choose option b because option b offers a guaranteed payoff.", LETTERS, "b"),
    ("I choose the sure thing.", LETTERS, None),
    ("b b b b", LETTERS, "b"),
    ("Answer: a\nAnswer: a", LETTERS, "a"),
    ("Option c (a sure $500)", LETTERS, "c"),
    ("```\nb\n```", LETTERS, "b"),
    ("I prefer not to gamble: b", LETTERS, "b"),
    ("Choice: (d) \u2014 the only option without a loss.", FIVE, "d"),
    ("4 options here; I take 3.", NUMBERS, "3"),
    ("Among 1, 2 and 3, the best is 2.", NUMBERS, "2"),
    ("I'd say d is the wisest choice here.", FIVE, "d"),
    ("Neither. I'd rather not choose.", LETTERS, None),
    ("Final Answer: \\boxed{b}", LETTERS, "b"),
    ("$\\boxed{\\text{(C)}}$", LETTERS, "c"),
    ("\\boxed{a} or maybe \\boxed{c}", LETTERS, None),
    ("The correct answer is: C", LETTERS, "c"),
    ("Option B\n\nExplanation: Option A carries a 30% chance of losing $9,000, while option C pays less.", LETTERS, "b"),
    # a fourth batch
    ("I'm going to go with b.", LETTERS, "b"),
    ("Given my risk aversion, option C.", LETTERS, "c"),
    ("Option a offers $100 with 50% chance; Option b offers $45 guaranteed. Answer: (b)", LETTERS, "b"),
    ("b\n\nOption a has a higher expected value but also a 50% chance of $0.", LETTERS, "b"),
    ("B because A is too risky", LETTERS, "b"),
    ("A) 50% chance of $100\nB) sure $45\nI choose B", LETTERS, "b"),
    ("I choose 12.", TWELVE, "12"),
    ("Option 11 is best; 12 is close.", TWELVE, "11"),
    ("My selection: 9", TWELVE, "9"),
    ("I wouldn't pick c.", LETTERS, None),
    ("Option B, not option A.", LETTERS, "b"),
    ("I do not want a. I want b.", LETTERS, "b"),
    ("The risk-averse choice would be b.", LETTERS, "b"),
    ("a has higher EV. b has lower risk.", LETTERS, None),
    ("I choose neither a nor b; c.", LETTERS, "c"),
    ("Choice A is risky. Choice B is safe. I pick choice B.", LETTERS, "b"),
    ("0", TWELVE, None),
    ("13", TWELVE, None),
    ("It's b. Though a is tempting.", LETTERS, "b"),
    ("It is a tough call, but b.", LETTERS, "b"),
    ("i choose c", LETTERS, "c"),
    ("\ufffd\ufffd\ufffd", LETTERS, None),
    # a fifth batch
    ("The label of my chosen option is b.", LETTERS, "b"),
    ("Label: c", LETTERS, "c"),
    ("Chosen option: (a)", LETTERS, "a"),
    ("I would select the option with the guaranteed outcome, which is option c.", LETTERS, "c"),
    ("Since option 1 has a high risk of losing money, I choose option 2.", NUMBERS, "2"),
    ("The best choice is **Option C**.", LETTERS, "c"),
    ("Based on the information, a.", LETTERS, "a"),
    ("2\n\nThis option has the highest certainty equivalent.", NUMBERS, "2"),
    ("c) 100% chance of $40", LETTERS, "c"),
    ("I'd choose (e), since options (a)-(d) all risk a loss.", FIVE, "e"),
    ("My answer would be b.", LETTERS, "b"),
    ("b. a is too risky and c is dominated.", LETTERS, "b"),
    ("Option A offers higher expected value. However, given risk aversion, Option B is preferred.", LETTERS, "b"),
    ("A risk-averse person would choose b.", LETTERS, "b"),
    ("As an AI, I don't have preferences, but a risk-averse investor might pick c.", LETTERS, "c"),
    ("Option number 2.", NUMBERS, "2"),
    ("a or b", LETTERS, None),
    ("Either a or c.", LETTERS, None),
    ("Answer: b\nConfidence: high", LETTERS, "b"),
    ("OPTION B", LETTERS, "b"),
    ("I'll go with the guaranteed $45 (option b).", LETTERS, "b"),
    ("a is the best for a risk-neutral agent, but I choose b", LETTERS, "b"),
    ("If I were risk-neutral, a would be the best choice. I am not, so b.", LETTERS, "b"),
]

THINKING_CASES = [
    # (text, labels, label, reason, source)
    ("<think>a has the higher mean, but b is safer.</think>\nb", LETTERS, "b", None, "visible"),
    ("<think>Answer: a? No, too risky. I choose c.</think> Answer: b", LETTERS, "b", None, "visible"),
    ("<think>Option a: 50% of $100. Option b: sure $45. I prefer b.</think>", LETTERS, "b", None, "reasoning"),
    ("<think>\n\n</think>\n\nc", LETTERS, "c", None, "visible"),
    ("<think>Let me compare a, b and c. a has a 30% chance of losing", LETTERS, None, "truncated", "reasoning"),
    ("Comparing a and c.</think>\nc", LETTERS, "c", None, "visible"),
    ("<think>I choose a.</think>\nNeither a nor b.", LETTERS, None, "negated", "visible"),
    ("<think>hmm</think>I choose b. Answer: c", LETTERS, None, "contradictory", "visible"),
    ("<think>The user asks me to pick. 1 has EV 5, 2 has EV 4 but no risk.</think>\n\n2", NUMBERS, "2", None, "visible"),
    ("<think>ok</think>", NUMBERS, None, "no_label", "reasoning"),
    ("<think>\nLet me compute: a: 0.5*100=50; b: 45; c: 0.3*200=60.\nI'm risk-averse so the sure option b.\n</think>"
     "\n\nThe answer is b.", LETTERS, "b", None, "visible"),  # fmt: skip
    ("<think>\nOption c has the highest expected value, but I prefer certainty.\n</think>\nAnswer: (b)",
     LETTERS, "b", None, "visible"),  # fmt: skip
    ("<think>\nLet me compute: a: 0.5*100=50; b: 45; c: 0.3*200=60. So a vs", LETTERS, None, "truncated", "reasoning"),
    ("<think>\nOkay, the user wants one of a, b, c. b is the sure gain.\n</think>\n\n**Answer: b**",
     LETTERS, "b", None, "visible"),  # fmt: skip
    ("<think>Is it a or b? Actually c is the safe one.</think>\n\n", LETTERS, "c", None, "reasoning"),
]

INVALID_CASES = [
    ("", "no_label"),
    ("I cannot decide.", "no_label"),
    ("a is safer than b", "several_labels"),
    ("not a", "negated"),
    ("Neither a nor b.", "negated"),
    ("I choose b. Answer: c", "contradictory"),
    ("<think>a or b", "truncated"),
]


@pytest.mark.parametrize("text, labels, expected", CAREFUL_CASES)
def test_answers_are_read_as_a_careful_person_reads_them(text, labels, expected):
    assert parse_answer(text, labels) == expected


@pytest.mark.parametrize("text, labels, label, reason, source", THINKING_CASES)
def test_thinking_answers_are_read_from_the_visible_part(text, labels, label, reason, source):
    parsed = read_answer(text, labels)
    assert (parsed.label, parsed.reason, parsed.source) == (label, reason, source)
    if "<think>" in text:
        opening = text.index("<think>") + len("<think>")
        closing = text.find("</think>")
        assert parsed.reasoning_chars == len(text[opening : closing if closing >= 0 else len(text)])


@pytest.mark.parametrize("text, reason", INVALID_CASES)
def test_invalid_answers_say_why(text, reason):
    parsed = read_answer(text, LETTERS)
    assert parsed.label is None and parsed.reason == reason and reason in INVALID_REASONS


def test_rules_are_reported():
    assert read_answer('{"answer": "b"} but a is fine', LETTERS).rule == "structured"
    assert read_answer("Answer: b. Option a is riskier.", LETTERS).rule == "final-cue"
    assert read_answer("Option a is risky. Option b seems to be the most attractive.", LETTERS).rule == "commitment"
    assert read_answer("Comparing a with c: b.", LETTERS).rule == "final-label"
    assert read_answer("b. It is safer than a.", LETTERS).rule == "leading-label"
    assert read_answer("Only b never loses money", LETTERS).rule == "sole-mention"
    assert read_answer("Only b never loses money", LETTERS).source == "visible"
    assert read_answer("Only b never loses money", LETTERS).reasoning_chars == 0
