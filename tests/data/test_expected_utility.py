"""Log-space expected utility against exact arithmetic, overflow at astronomical stakes, amounts."""

import math
from decimal import Decimal, getcontext

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from riskdpo.data.expected_utility import (
    RISK_AVERSE_ALPHA,
    TOO_RISK_AVERSE_ALPHA,
    VERBAL_PROBABILITIES,
    best_labels,
    certainty_equivalent,
    parse_amount,
    parse_number_list,
)

getcontext().prec = 50
ALPHAS = [0.0, RISK_AVERSE_ALPHA, TOO_RISK_AVERSE_ALPHA]


def exact_certainty_equivalent(prizes, percents, alpha):
    """CE with 50-digit decimals: -ln(sum p exp(-alpha x)) / alpha, or sum p x when linear."""
    probs = [Decimal(p) / Decimal(sum(percents)) for p in percents]
    if alpha == 0:
        return sum(p * Decimal(x) for p, x in zip(probs, prizes))
    a = Decimal(repr(alpha))
    return -sum(p * (-a * Decimal(x)).exp() for p, x in zip(probs, prizes)).ln() / a


@st.composite
def lotteries(draw, stakes=100):
    """A lottery of 1-4 outcomes: integer prizes |x| <= stakes, integer percents summing to 100."""
    size = draw(st.integers(1, 4))
    prizes = draw(st.lists(st.integers(-stakes, stakes), min_size=size, max_size=size))
    cuts = sorted(draw(st.lists(st.integers(0, 100), min_size=size - 1, max_size=size - 1)))
    percents = [b - a for a, b in zip([0, *cuts], [*cuts, 100])]
    assume(any(percents))
    return [float(x) for x in prizes], percents


def _fractions(percents):
    return [p / 100 for p in percents]


@settings(max_examples=300, deadline=None)
@given(lottery=lotteries(), alpha=st.sampled_from(ALPHAS))
def test_certainty_equivalent_matches_exact_arithmetic(lottery, alpha):
    prizes, percents = lottery
    value = certainty_equivalent(prizes, _fractions(percents), alpha)
    assert value == pytest.approx(float(exact_certainty_equivalent(prizes, percents, alpha)), rel=1e-9, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(options=st.lists(lotteries(), min_size=2, max_size=5), alpha=st.sampled_from(ALPHAS))
def test_best_labels_rank_like_exact_expected_utility(options, alpha):
    labels = "abcde"[: len(options)]
    exact = [exact_certainty_equivalent(prizes, percents, alpha) for prizes, percents in options]
    top = max(exact)
    # Exact ties must come back together; near-ties below float precision are out of scope.
    assume(all(value == top or top - value > Decimal("1e-6") for value in exact))
    expected = [label for label, value in zip(labels, exact) if value == top]
    lotteries_ = [(label, prizes, _fractions(percents)) for label, (prizes, percents) in zip(labels, options)]
    assert best_labels(lotteries_, alpha) == expected


@settings(max_examples=200, deadline=None)
@given(
    prizes=st.lists(st.floats(-1e94, 1e94, allow_nan=False), min_size=1, max_size=4),
    weights=st.lists(st.integers(1, 100), min_size=4, max_size=4),
    alpha=st.sampled_from(ALPHAS),
)
def test_astronomical_stakes_do_not_overflow(prizes, weights, alpha):
    probs = _fractions(weights[: len(prizes)])
    value = certainty_equivalent(prizes, probs, alpha)
    assert math.isfinite(value)
    slack = 1e-9 * max(1.0, max(abs(x) for x in prizes))
    assert min(prizes) - slack <= value <= max(prizes) + slack  # a CE lies between the worst and best prize


def test_risk_averse_agent_avoids_astronomical_loss():
    options = [
        ("a", [0.0], [1.0]),  # nothing for sure
        ("b", [-1e94, 1e94], [0.5, 0.5]),  # fair coin over astronomical stakes
        ("c", [-6.4322e93, 1e94], [0.5, 0.5]),  # better than fair
    ]
    assert best_labels(options, 0.0) == ["c"]
    assert best_labels(options, RISK_AVERSE_ALPHA) == ["a"]
    assert best_labels(options, TOO_RISK_AVERSE_ALPHA) == ["a"]


def test_identical_options_tie():
    options = [("1", [5.0, 20.0], [0.5, 0.5]), ("2", [20.0, 5.0], [0.5, 0.5]), ("3", [0.0], [1.0])]
    for alpha in ALPHAS:
        assert best_labels(options, alpha) == ["1", "2"]


@pytest.mark.parametrize(
    "text, value",
    [("$2,430", 2430.0), ("-$92", -92.0), ("$10.50", 10.5), ("$6.75e+17", 6.75e17), ("6.4322e+93", 6.4322e93),
     ("-0.0", 0.0), (" 749 ", 749.0), (5, 5.0), (-1e94, -1e94)],
)
def test_parse_amount(text, value):
    assert parse_amount(text) == value


def test_parse_amount_keeps_negative_zero_sign():
    assert math.copysign(1.0, parse_amount("-0.0")) == -1.0


@pytest.mark.parametrize("text", ["abc", "", "$", "-", True, "nan", float("nan"), "inf", float("-inf")])
def test_parse_amount_rejects_non_numbers(text):
    with pytest.raises(ValueError):
        parse_amount(text)


@pytest.mark.parametrize(
    "text, values",
    [("[749.0, -0.0, 0.0]", [749.0, 0.0, 0.0]), ("['$5', '-$10']", [5.0, -10.0]),
     ("[6.4322e+93, -1e94]", [6.4322e93, -1e94]), ([1, "2"], [1.0, 2.0]), ("[82, 0, 18]", [82.0, 0.0, 18.0])],
)
def test_parse_number_list(text, values):
    assert parse_number_list(text) == values


def test_verbal_scale_runs_from_100_to_0_in_steps_of_5():
    assert sorted(VERBAL_PROBABILITIES.values(), reverse=True) == list(range(100, -1, -5))
    assert VERBAL_PROBABILITIES["Likely to give"] == 80 and VERBAL_PROBABILITIES["A half-chance of"] == 50
