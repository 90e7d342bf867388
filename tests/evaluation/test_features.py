"""Which lottery features choices follow: rule agreement by hand counts, and a conditional
logit that recovers the rule of simulated choosers (CARA, avoid losses, last line)."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.data.situations import Option, Situation
from riskdpo.evaluation.features import (
    FEATURES,
    chosen_lines,
    fit_choice_logit,
    option_features,
    rule_agreement,
    rule_lines,
)


def situation(options: list[tuple[list[float], list[float]]], risk_averse: list[str], sid: str = "1") -> Situation:
    labels = [chr(ord("a") + k) for k in range(len(options))]
    return Situation(
        situation_id=sid,
        sheet="s",
        prompt="",
        option_labels=labels,
        labels_as_written=labels,
        options=[Option(label, tuple(prizes), tuple(probs)) for label, (prizes, probs) in zip(labels, options)],
        risk_averse=risk_averse,
    )


SURE_SAFE = situation([([10.0], [1.0]), ([-50.0, 80.0], [0.5, 0.5]), ([0.0, 40.0], [0.5, 0.5])], ["a"], "1")
NO_SURE = situation([([-5.0, 30.0], [0.5, 0.5]), ([0.0, 20.0], [0.5, 0.5])], ["b"], "2")


def test_features_are_stake_free_moments_and_flags():
    features = option_features(SURE_SAFE)
    columns = {name: features[:, k] for k, name in enumerate(FEATURES)}
    assert columns["ev"] == pytest.approx([10 / 80, 15 / 80, 20 / 80])
    assert columns["sd"] == pytest.approx([0.0, 65 / 80, 20 / 80])
    assert list(columns["sure"]) == [1, 0, 0]
    assert list(columns["loss"]) == [0, 1, 0]
    assert list(columns["first"]) == [1, 0, 0] and list(columns["last"]) == [0, 0, 1]
    scaled = situation([([1000.0], [1.0]), ([-5000.0, 8000.0], [0.5, 0.5]), ([0.0, 4000.0], [0.5, 0.5])], ["a"])
    assert option_features(scaled) == pytest.approx(features)


def test_rules_say_nothing_where_they_cannot_tell_options_apart():
    lines = rule_lines(NO_SURE)
    assert lines["sure"] is None  # no sure option
    assert lines["no_loss"] == {1}
    assert lines["ev_best"] == {0} and lines["least_spread"] == {1} and lines["cara"] == {1}
    all_safe = situation([([1.0, 3.0], [0.5, 0.5]), ([2.0], [1.0])], ["b"])
    assert rule_lines(all_safe)["no_loss"] is None


def test_rule_agreement_equals_hand_counts():
    # SURE_SAFE: choose line 0 (sure, safe, CARA, first); NO_SURE: choose line 0 (EV best, first, can lose).
    agreement = rule_agreement([SURE_SAFE, NO_SURE, SURE_SAFE], [0, 0, None])
    assert (agreement["cara"].rate, agreement["cara"].n) == (0.5, 2)
    assert (agreement["sure"].rate, agreement["sure"].n) == (1.0, 1)
    assert (agreement["no_loss"].rate, agreement["no_loss"].n) == (0.5, 2)
    assert agreement["ev_best"].rate == 0.5  # SURE_SAFE's EV best is line 2
    assert agreement["first_line"].rate == 1.0 and agreement["last_line"].rate == 0.0


def test_chosen_lines_maps_labels_and_leaves_unknown_out():
    choices = {("s", "1"): "c", ("s", "2"): "z"}
    assert chosen_lines([SURE_SAFE, NO_SURE], choices) == [2, None]


@pytest.fixture(scope="module")
def generated() -> list[Situation]:
    return generate_situations(GenerateSpec(situations=400, stakes="low", seed=5))


def simulate(situations: list[Situation], theta: dict[str, float], seed: int) -> list[int]:
    """Choices drawn from the conditional logit with these coefficients (others 0)."""
    rng = random.Random(seed)
    weights = np.array([theta.get(name, 0.0) for name in FEATURES])
    lines = []
    for s in situations:
        scores = option_features(s) @ weights
        probs = np.exp(scores - scores.max())
        lines.append(rng.choices(range(len(probs)), weights=probs)[0])
    return lines


def test_logit_recovers_simulated_coefficients_within_their_intervals(generated):
    truth = {"ev": 6.0, "sd": -4.0, "loss": -1.0, "last": 0.8}
    fit = fit_choice_logit(generated, simulate(generated, truth, seed=1), ridge=1e-6)
    covered = [fit.interval(name)[0] <= truth.get(name, 0.0) <= fit.interval(name)[1] for name in FEATURES]
    assert sum(covered) >= 5  # 95% intervals: all six, or one miss by chance
    for name, value in truth.items():
        assert math.copysign(1, fit.coef[FEATURES.index(name)]) == math.copysign(1, value)


def test_a_position_chooser_loads_on_position_and_not_on_money(generated):
    lines = [len(s.option_labels) - 1 for s in generated]
    fit = fit_choice_logit(generated, lines)
    coef = dict(zip(FEATURES, fit.coef))
    assert coef["last"] > 5 and fit.interval("last")[0] > 0
    for name in ("ev", "sd", "sure", "loss"):
        assert abs(coef[name]) < abs(coef["last"]) / 5, name
    agreement = rule_agreement(generated, lines)
    assert agreement["last_line"].rate == 1.0 and agreement["cara"].rate < 0.6


def test_loss_avoider_differs_from_cara(generated):
    # Choose uniformly among the options that cannot lose (all, if every one can).
    rng = random.Random(3)
    lines = []
    for s in generated:
        safe = rule_lines(s)["no_loss"] or set(range(len(s.option_labels)))
        lines.append(rng.choice(sorted(safe)))
    fit = fit_choice_logit(generated, lines)
    assert fit.interval("loss")[1] < -1
    agreement = rule_agreement(generated, lines)
    assert agreement["no_loss"].rate == 1.0
    cara_lines = [min(rule_lines(s)["cara"]) for s in generated]
    assert rule_agreement(generated, cara_lines)["cara"].rate == 1.0
    assert agreement["cara"].rate < 0.9


def test_no_usable_choice_is_an_error():
    with pytest.raises(ValueError, match="no situation"):
        fit_choice_logit([SURE_SAFE], [None])
