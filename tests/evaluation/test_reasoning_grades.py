"""Grading worked answers step by step: the template's own answers grade as right at every
stake level, and each kind of mistake (a miscopied lottery, a wrong EV or CE, a pick
against the model's own numbers) shows in its own step and only there."""

from __future__ import annotations

import re

import pytest

from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.data.reasoning import matched_reasoning, reasoning
from riskdpo.evaluation.reasoning_grades import grade_answer, stated_options, summarize_grades


@pytest.mark.parametrize("stakes", ["low", "medium", "high", "astronomical"])
def test_the_templates_own_answers_grade_right(stakes):
    for situation in generate_situations(GenerateSpec(situations=20, stakes=stakes, seed=7)):
        answer = matched_reasoning(situation.options, 0.01, [0.01])
        grade = grade_answer(situation, answer)
        assert grade.options_covered and grade.copied == 1.0 and grade.ev_right == 1.0 and grade.ce_right == 1.0
        assert grade.follows_own_numbers and grade.picked in situation.risk_averse


def test_the_risk_neutral_answer_is_right_arithmetic_but_not_by_its_own_ces():
    situations = generate_situations(GenerateSpec(situations=20, stakes="low", seed=8))
    grades = [grade_answer(s, matched_reasoning(s.options, 0.0, [0.01])) for s in situations]
    assert all(g.ev_right == 1.0 and g.ce_right == 1.0 for g in grades)
    # Disagreements: the highest-EV option never has the highest CE(0.01).
    assert not any(g.follows_own_numbers for g in grades)


def test_the_single_agent_template_is_read_too():
    situation = generate_situations(GenerateSpec(situations=1, stakes="medium", seed=9))[0]
    grade = grade_answer(situation, reasoning(situation.options, 0.01))
    assert grade.ev_right == 1.0 and grade.ce_right == 1.0 and grade.follows_own_numbers


@pytest.fixture
def worked():
    situation = generate_situations(GenerateSpec(situations=1, stakes="low", seed=3))[0]
    return situation, matched_reasoning(situation.options, 0.01, [0.01])


def test_a_wrong_expected_value_shows_in_that_step_only(worked):
    situation, answer = worked
    first = stated_options(answer)[0]
    wrong_ev = f"{first.expected_value + 7:.2f}"
    broken = re.sub(r"= \$?-?\$?[0-9,.]+;", f"= ${wrong_ev};", answer, count=1)
    grade = grade_answer(situation, broken)
    lines = len(situation.option_labels)
    assert grade.ev_right == pytest.approx((lines - 1) / lines)
    assert grade.copied == 1.0 and grade.ce_right == 1.0


def test_a_miscopied_probability_shows_in_copying(worked):
    situation, answer = worked
    line = answer.splitlines()[1]
    changed = re.sub(r"(\d\.\d\d) \*", lambda m: f"{min(float(m[1]) + 0.2, 0.99):.2f} *", line, count=1)
    grade = grade_answer(situation, answer.replace(line, changed))
    assert grade.copied < 1.0 and grade.ev_right == 1.0


def test_a_pick_against_its_own_numbers(worked):
    situation, answer = worked
    picked = grade_answer(situation, answer).picked
    other = next(label for label in situation.option_labels if label != picked)
    flipped = answer.replace(f"CE(0.01): option {picked}.", f"CE(0.01): option {other}.")
    grade = grade_answer(situation, flipped)
    assert grade.follows_own_numbers is False and grade.picked == other


def test_an_answer_without_steps_has_none_to_grade(worked):
    situation, _ = worked
    grade = grade_answer(situation, "I pick option b.\nAnswer: b")
    assert grade.options_written == 0 and grade.copied is None and grade.follows_own_numbers is None
    summary = summarize_grades([grade, grade_answer(*worked)])
    assert summary["answers"] == 2 and summary["copied_n"] == 1 and summary["copied"] == 1.0
