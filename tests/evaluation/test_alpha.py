"""The implied CARA coefficient: recovered from a simulated CARA agent's noisy choices."""

import math
import random

import numpy as np
import pytest

from riskdpo.evaluation.alpha import fit_alpha, stake_scale, utility_table
from riskdpo.data.situations import Option, Situation
from riskdpo.data.expected_utility import certainty_equivalent

PRECISION = 30.0  # the simulated agent's logit precision on stake-free values


def simulated_situations(count, seed, log10_stakes=(1, 3.5)):
    """Random lotteries of 2-4 options, 1-3 outcomes, stakes log-uniform in 10 ** log10_stakes dollars.

    At the default $10 .. $3,000, alpha * stakes spans about 0.03 .. 100 for alpha
    in 0.003 .. 0.03, so CARA agents of those coefficients choose differently.
    """
    rng = random.Random(seed)
    situations = []
    for number in range(count):
        stakes = 10 ** rng.uniform(*log10_stakes)
        labels = ["a", "b", "c", "d"][: rng.randint(2, 4)]
        options = []
        for label in labels:
            outcomes = rng.randint(1, 3)
            weights = [rng.random() + 0.05 for _ in range(outcomes)]
            prizes = tuple(round(rng.uniform(-stakes, stakes), 2) for _ in range(outcomes))
            options.append(Option(label, prizes, tuple(w / sum(weights) for w in weights)))
        situations.append(Situation(str(number), "simulated", "", labels, labels, options))
    return situations


def cara_agent_choices(situations, alpha, seed):
    """Noisy logit choices of a CARA agent: P(j) proportional to exp(PRECISION * CE_j(alpha) / S)."""
    rng = random.Random(seed)
    choices = []
    for situation in situations:
        scale = max(abs(x) for option in situation.options for x in option.prizes)
        values = [PRECISION * certainty_equivalent(o.prizes, o.probs, alpha) / scale for o in situation.options]
        top = max(values)
        weights = [math.exp(v - top) for v in values]
        choices.append(rng.choices(situation.option_labels, weights=weights)[0])
    return choices


@pytest.fixture(scope="module")
def simulated():
    situations = simulated_situations(300, seed=11)
    return situations, utility_table(situations)


@pytest.mark.parametrize("alpha, verdict", [(0.003, "below"), (0.01, "near"), (0.03, "above")])
def test_fit_recovers_a_simulated_agents_alpha(simulated, alpha, verdict):
    """Over 8 simulated agents, the 95% interval covers the true alpha nearly always."""
    situations, table = simulated
    fits = [fit_alpha(table, cara_agent_choices(situations, alpha, seed=s), bootstrap=0, seed=s) for s in range(8)]
    covered = sum(fit.interval[0] <= alpha <= fit.interval[1] for fit in fits)
    assert covered >= 6
    typical = math.exp(sum(math.log(fit.estimate) for fit in fits) / len(fits))
    assert alpha / 1.2 < typical < alpha * 1.2
    assert sum(fit.verdict == verdict for fit in fits) >= 6
    for fit in fits:
        assert fit.situations == 300
        assert fit.log_likelihood > fit.log_likelihood_random
        assert not fit.at_grid_edge


def test_same_seed_same_interval(simulated):
    situations, table = simulated
    choices = cara_agent_choices(situations, 0.01, seed=6)
    first = fit_alpha(table, choices, bootstrap=20, seed=3)
    assert fit_alpha(table, choices, bootstrap=20, seed=3).to_json() == first.to_json()
    assert first.bootstrap_interval[0] < first.estimate < first.bootstrap_interval[1]


def test_a_risk_neutral_chooser_lands_below(simulated):
    situations, table = simulated
    best_mean = [
        max(s.options, key=lambda o: sum(p * x for p, x in zip(o.probs, o.prizes))).label for s in situations
    ]
    fit = fit_alpha(table, best_mean, bootstrap=0, seed=0)
    assert fit.verdict == "below"
    assert fit.interval[1] < 0.003


def test_invalid_choices_are_left_out(simulated):
    situations, table = simulated
    choices = cara_agent_choices(situations, 0.01, seed=5)
    holed = [None if i % 3 == 0 else label for i, label in enumerate(choices)]
    fit = fit_alpha(table, holed, bootstrap=0)
    assert fit.situations == 200
    assert fit.bootstrap_interval is None  # no resampling asked for; the profile interval needs none


def test_values_are_stake_free():
    # alpha x is what matters: ten times the prizes at a tenth of alpha gives the same scaled values
    def two_options(factor):
        options = [Option("a", (50.0 * factor, -20.0 * factor), (0.5, 0.5)), Option("b", (5.0 * factor,), (1.0,))]
        return Situation(str(factor), "s", "", ["a", "b"], ["a", "b"], options)

    base, scaled = two_options(1), two_options(10)
    assert stake_scale(scaled) == 10 * stake_scale(base)
    table = utility_table([base, scaled], grid=np.array([0.001, 0.01, 0.1]))
    assert table.values[1, 0] == pytest.approx(table.values[0, 1])
    assert table.values[2, 0] == pytest.approx(table.values[1, 1])


def test_no_lotteries_gives_a_reason():
    bare = [Situation("1", "s", "pick", ["a", "b"], ["a", "b"], risk_averse=["a"])]
    fit = fit_alpha(utility_table(bare), ["a"])
    assert fit.estimate is None and fit.interval is None
    assert "lotteries" in fit.reason


def test_verdict_is_undetermined_when_the_interval_reaches_far_past_a_factor_of_ten():
    from riskdpo.evaluation.alpha import alpha_verdict

    assert alpha_verdict(0.002, 0.05) == "near"
    assert alpha_verdict(1e-5, 10.0) == "undetermined"
    assert alpha_verdict(0.005, 0.2) == "undetermined"  # includes the alpha = 0.10 agent
    assert alpha_verdict(1e-5, 0.009) == "below"
    assert alpha_verdict(0.011, 10.0) == "above"


# ---- an honest implied alpha (issue 13, part 3) ------------------------------------------------------------------


def mixed_stakes_situations(count, seed):
    """Stakes log-uniform in $3 .. $30,000: informative for alpha 0.001 .. 0.1."""
    return simulated_situations(count, seed, log10_stakes=(0.5, 4.5))


def logit_choices(situations, alpha, precision, seed):
    """Choices with P(j) proportional to exp(precision * CE_j(alpha) / S_s)."""
    rng = random.Random(seed)
    choices = []
    for situation in situations:
        scale = stake_scale(situation)
        values = [precision * certainty_equivalent(o.prizes, o.probs, alpha) / scale for o in situation.options]
        top = max(values)
        choices.append(rng.choices(situation.option_labels, weights=[math.exp(v - top) for v in values])[0])
    return choices


def direct_profile(situations, choices, alpha):
    """max over lam of LL(alpha, lam), from the equations with plain Python CEs and a dense lam search."""
    rows = []
    for situation, label in zip(situations, choices):
        values = [certainty_equivalent(o.prizes, o.probs, alpha) / stake_scale(situation) for o in situation.options]
        rows.append((np.array(values), situation.option_labels.index(label)))

    def log_likelihood(lam):
        total = 0.0
        for values, chosen in rows:
            scaled = lam * values
            top = scaled.max()
            total += scaled[chosen] - top - math.log(np.exp(scaled - top).sum())
        return total

    lams = np.logspace(-1, 4, 200)
    best = max(lams, key=log_likelihood)
    low, high = best / 1.06, best * 1.06
    for _ in range(60):  # golden section on the concave LL(lam)
        a, b = high - 0.618 * (high - low), low + 0.618 * (high - low)
        low, high = (low, b) if log_likelihood(a) >= log_likelihood(b) else (a, high)
    return log_likelihood((low + high) / 2)


@pytest.mark.parametrize("alpha", [0.1, 0.01])
def test_estimate_is_the_maximiser_of_the_likelihood(alpha):
    situations = mixed_stakes_situations(150, seed=21)
    choices = logit_choices(situations, alpha, 30.0, seed=4)
    fit = fit_alpha(utility_table(situations), choices, bootstrap=0)
    at_estimate = direct_profile(situations, choices, fit.estimate)
    assert fit.log_likelihood == pytest.approx(at_estimate, abs=1e-6)
    for factor in (0.99, 1.01, 0.95, 1.05):
        assert direct_profile(situations, choices, fit.estimate * factor) < at_estimate


def _coverage(alphas, repetitions, count):
    covered = []
    for alpha in alphas:
        for repetition in range(repetitions):
            situations = mixed_stakes_situations(count, seed=1000 * repetition + 7)
            precision = [10.0, 30.0][repetition % 2]
            choices = logit_choices(situations, alpha, precision, seed=repetition)
            fit = fit_alpha(utility_table(situations), choices, bootstrap=0)
            assert fit.at_bounds == []
            covered.append(fit.interval[0] <= alpha <= fit.interval[1])
    return sum(covered) / len(covered)


def test_interval_covers_simulated_agents_fast():
    """A small version of the coverage simulation, in the default run: 24 fits."""
    assert _coverage([0.001, 0.01, 0.1], repetitions=8, count=150) >= 22 / 24


@pytest.mark.slow
def test_interval_covers_simulated_agents_at_the_nominal_rate():
    """200 fits: CARA agents alpha 0.001 .. 0.1, logit noise (precision 10 or 30), mixed stakes."""
    assert _coverage([0.001, 0.003, 0.01, 0.03, 0.1], repetitions=40, count=200) >= 0.93


def test_bounds_are_flagged(simulated):
    situations, table = simulated
    deterministic = [
        max(s.options, key=lambda o: certainty_equivalent(o.prizes, o.probs, 0.01)).label for s in situations
    ]
    fit = fit_alpha(table, deterministic, bootstrap=0)
    assert "precision" in fit.at_bounds and fit.precision == 1e4
    assert "estimate" not in fit.at_bounds
    best_mean = [max(s.options, key=lambda o: sum(p * x for p, x in zip(o.probs, o.prizes))).label for s in situations]
    neutral = fit_alpha(table, best_mean, bootstrap=0)
    assert {"estimate", "interval_low"} <= set(neutral.at_bounds) and neutral.at_grid_edge
    assert "interval_high" not in neutral.at_bounds
    assert neutral.to_json()["at_bounds"] == neutral.at_bounds


def test_report_marks_every_bound(simulated):
    from riskdpo.evaluation.report import _alpha_line

    situations, table = simulated
    best_mean = [max(s.options, key=lambda o: sum(p * x for p, x in zip(o.probs, o.prizes))).label for s in situations]
    line = _alpha_line(fit_alpha(table, best_mean, bootstrap=0).to_json())
    assert line.startswith("implied alpha 1e-05* [1e-05*, ")
    assert "on a bound of the fit (estimate, interval_low" in line
    deterministic = [
        max(s.options, key=lambda o: certainty_equivalent(o.prizes, o.probs, 0.01)).label for s in situations
    ]
    line = _alpha_line(fit_alpha(table, deterministic, bootstrap=0).to_json())
    assert "precision 1e+04*" in line and "(precision)" in line
    interior = _alpha_line(fit_alpha(table, cara_agent_choices(situations, 0.01, seed=1), bootstrap=0).to_json())
    assert "*" not in interior and "bound" not in interior
