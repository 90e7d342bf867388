"""Reasoning written from lotteries: the numbers by hand, and the two agents of a pair written alike."""

import math

import pytest

from riskdpo.data.reasoning import matched_reasoning, option_line
from riskdpo.data.situations import Option

#: a: EV 50, CE(0.01) 37.99, CE(0.1) 6.93; b: EV 43.40, CE(0.01) 42.96, CE(0.1) 37.72; c: 41 for certain.
#: The linear agent picks a, alpha = 0.01 picks b, alpha = 0.1 picks c.
OPTIONS = [
    Option("a", (100.0, 0.0), (0.5, 0.5)),
    Option("b", (48.0, 25.0), (0.8, 0.2)),
    Option("c", (41.0,), (1.0,)),
]


def test_matched_reasoning_by_hand():
    # CE_0.01(a) = -ln(0.5 e^-1 + 0.5) / 0.01 = 37.99; CE_0.1(a) = -ln(0.5 e^-10 + 0.5) / 0.1 = 6.93
    # CE_0.01(b) = -ln(0.8 e^-0.48 + 0.2 e^-0.25) / 0.01 = 42.96; CE_0.1(b) = -ln(0.8 e^-4.8 + 0.2 e^-2.5) / 0.1 = 37.72
    assert -math.log(0.5 * math.exp(-1) + 0.5) / 0.01 == pytest.approx(37.988, abs=1e-3)
    assert -math.log(0.8 * math.exp(-4.8) + 0.2 * math.exp(-2.5)) / 0.1 == pytest.approx(37.722, abs=1e-3)
    shown = (0.01, 0.1)
    averse, timid, linear = (matched_reasoning(OPTIONS, alpha, shown) for alpha in (0.01, 0.1, 0.0))
    assert "Option a: expected value 0.50 * $100 + 0.50 * $0 = $50.00; certainty equivalent CE(0.01) = $37.99; " \
           "certainty equivalent CE(0.1) = $6.93." in averse
    assert averse.endswith("I choose the option with the highest CE(0.01): option b.\nAnswer: b")
    assert "Option b: expected value 0.80 * $48 + 0.20 * $25 = $43.40; certainty equivalent CE(0.01) = $42.96; " \
           "certainty equivalent CE(0.1) = $37.72." in averse
    assert timid.endswith("I choose the option with the highest CE(0.1): option c.\nAnswer: c")
    assert linear.endswith("I choose the option with the highest EV: option a.\nAnswer: a")
    assert averse.splitlines()[:-2] == timid.splitlines()[:-2] == linear.splitlines()[:-2]
    assert averse.splitlines()[0].endswith("at alpha = 0.01 and alpha = 0.1.")


def test_option_line_names_alphas_only_when_asked():
    assert option_line(OPTIONS[2], (0.01,), name_alphas=False) == (
        "Option c: expected value 1.00 * $41 = $41.00; certainty equivalent $41.00."
    )
    assert option_line(OPTIONS[2], (), name_alphas=True) == "Option c: expected value 1.00 * $41 = $41.00."


def test_an_alpha_the_pair_does_not_show_is_refused():
    with pytest.raises(ValueError, match="not among the shown alphas"):
        matched_reasoning(OPTIONS, 0.1, (0.01,))
