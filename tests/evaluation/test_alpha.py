"""The implied CARA coefficient: recovered from a simulated CARA agent's noisy choices."""

import math
import random

import numpy as np
import pytest

from riskdpo.evaluation.alpha import fit_alpha, stake_scale, utility_table
from riskdpo.data.situations import Option, Situation
from riskdpo.data.expected_utility import certainty_equivalent

PRECISION = 30.0  # the simulated agent's logit precision on stake-free values


def simulated_situations(count, seed):
    """Random lotteries of 2-4 options, 1-3 outcomes, stakes log-uniform in $10 .. $3,000.

    At these stakes alpha * stakes spans about 0.03 .. 100 for alpha in 0.003 .. 0.03,
    so CARA agents of those coefficients choose differently.
    """
    rng = random.Random(seed)
    situations = []
    for number in range(count):
        stakes = 10 ** rng.uniform(1, 3.5)
        labels = ["a", "b", "c", "d"][: rng.randint(2, 4)]
        options = []
        for label in labels:
            outcomes = rng.randint(1, 3)
            weights = [rng.random() + 0.05 for _ in range(outcomes)]
            options.append(
                Option(
                    label,
                    tuple(round(rng.uniform(-stakes, stakes), 2) for _ in range(outcomes)),
                    tuple(w / sum(weights) for w in weights),
                )
            )
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
    fits = [fit_alpha(table, cara_agent_choices(situations, alpha, seed=s), bootstrap=200, seed=s) for s in range(8)]
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
    first = fit_alpha(table, choices, bootstrap=50, seed=3)
    assert fit_alpha(table, choices, bootstrap=50, seed=3).to_json() == first.to_json()


def test_a_risk_neutral_chooser_lands_below(simulated):
    situations, table = simulated
    best_mean = [
        max(s.options, key=lambda o: sum(p * x for p, x in zip(o.probs, o.prizes))).label for s in situations
    ]
    fit = fit_alpha(table, best_mean, bootstrap=100, seed=0)
    assert fit.verdict == "below"
    assert fit.interval[1] < 0.003


def test_invalid_choices_are_left_out(simulated):
    situations, table = simulated
    choices = cara_agent_choices(situations, 0.01, seed=5)
    holed = [None if i % 3 == 0 else label for i, label in enumerate(choices)]
    fit = fit_alpha(table, holed, bootstrap=0)
    assert fit.situations == 200
    assert fit.interval is None and fit.verdict is None


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
