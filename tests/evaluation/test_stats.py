"""Rates, Wilson intervals, the paired difference interval and McNemar's exact test."""

import math
from statistics import NormalDist

import pytest

from riskdpo.evaluation.stats import (
    PairedTable,
    mcnemar_exact,
    paired_difference_interval,
    summarize_categories,
    wilson_interval,
)


def wilson_by_formula(k, n, confidence=0.95):
    """Wilson (1927): the p solving |p_hat - p| = z sqrt(p (1 - p) / n), as the roots of a quadratic."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p_hat = k / n
    # (1 + z^2/n) p^2 - (2 p_hat + z^2/n) p + p_hat^2 = 0
    a = 1 + z * z / n
    b = -(2 * p_hat + z * z / n)
    c = p_hat * p_hat
    root = math.sqrt(b * b - 4 * a * c)
    return ((-b - root) / (2 * a), (-b + root) / (2 * a))


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (7, 25), (50, 100), (99, 100), (12, 12)])
def test_wilson_matches_its_formula(k, n):
    low, high = wilson_interval(k, n)
    expected_low, expected_high = wilson_by_formula(k, n)
    assert low == pytest.approx(max(0.0, expected_low), abs=1e-12)
    assert high == pytest.approx(min(1.0, expected_high), abs=1e-12)


@pytest.mark.parametrize(
    "k, n, published",
    # Newcombe (1998), Statistics in Medicine 17:857-872, worked examples of method 3 (score, no continuity correction)
    [(81, 263, (0.2553, 0.3662)), (15, 148, (0.0624, 0.1605)), (0, 20, (0.0, 0.1611)), (1, 29, (0.0061, 0.1718))],
)
def test_wilson_matches_published_values(k, n, published):
    assert wilson_interval(k, n) == pytest.approx(published, abs=5e-5)


def test_summary_of_a_constructed_choice_list():
    names = ("risk_averse", "risk_neutral", "too_risk_averse", "other", "invalid")
    choices = ["risk_averse"] * 6 + ["risk_neutral"] * 2 + ["invalid"] + ["other"]
    summary = summarize_categories(choices, names)
    assert summary.n == 10
    assert summary.counts == {"risk_averse": 6, "risk_neutral": 2, "too_risk_averse": 0, "other": 1, "invalid": 1}
    assert summary.rates["risk_averse"] == 0.6
    assert sum(summary.rates.values()) == pytest.approx(1.0)
    assert summary.intervals["risk_averse"] == pytest.approx(wilson_by_formula(6, 10))
    assert summary.intervals["too_risk_averse"][0] == 0.0
    with pytest.raises(ValueError):
        summarize_categories(["risk_averse", "confused"], names)


def test_paired_table_counts_pairs():
    a = [1, 1, 0, 0, 1, 0]
    b = [1, 0, 1, 1, 1, 0]
    assert PairedTable.from_pairs(a, b) == PairedTable(both=2, a_only=1, b_only=2, neither=1)


def test_paired_interval_matches_published_example():
    # Cavo et al. (2012) via Fagerland, Lydersen & Laake, "Statistical Analysis of Contingency
    # Tables" (2017), ch. 8: table [[59, 6], [16, 80]], Newcombe square-and-add
    # estimate -0.0621, 95% CI -0.1186 to -0.0046. Rows are the first variable (here B).
    table = PairedTable(both=59, b_only=6, a_only=16, neither=80)
    difference, (low, high) = paired_difference_interval(table)
    assert difference == pytest.approx(-10 / 161)
    assert (low, high) == pytest.approx((-0.1186, -0.0046), abs=5e-5)


def test_paired_interval_is_mirrored_when_models_swap():
    table = PairedTable(both=30, a_only=12, b_only=4, neither=14)
    swapped = PairedTable(both=30, a_only=4, b_only=12, neither=14)
    difference, (low, high) = paired_difference_interval(table)
    difference_s, (low_s, high_s) = paired_difference_interval(swapped)
    assert difference == pytest.approx(-difference_s)
    assert (low, high) == pytest.approx((-high_s, -low_s))
    assert low < difference < high


def test_identical_models_have_zero_difference_and_p_one():
    table = PairedTable(both=20, a_only=0, b_only=0, neither=30)
    difference, (low, high) = paired_difference_interval(table)
    assert difference == 0.0
    assert low < 0 < high
    assert mcnemar_exact(table) == 1.0


def test_mcnemar_exact_against_a_hand_count():
    # 2 vs 7 discordant pairs: P(X <= 2 | X ~ Bin(9, 1/2)) = (1 + 9 + 36) / 512, doubled
    assert mcnemar_exact(PairedTable(both=5, a_only=2, b_only=7, neither=3)) == pytest.approx(92 / 512)
    # 0 vs 6: 2 / 64
    assert mcnemar_exact(PairedTable(both=0, a_only=0, b_only=6, neither=0)) == pytest.approx(2 / 64)
    # balanced discordance caps at 1
    assert mcnemar_exact(PairedTable(both=1, a_only=3, b_only=3, neither=1)) == 1.0
    # concordant pairs do not matter
    assert mcnemar_exact(PairedTable(both=500, a_only=2, b_only=7, neither=900)) == pytest.approx(92 / 512)
