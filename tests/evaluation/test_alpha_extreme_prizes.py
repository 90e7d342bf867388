"""Issue 27, part 5: eval prints no numpy RuntimeWarning from the logit fit.

Prizes of -1e308 and 1e308 in one lottery make the gap between them overflow to
inf; exp(-alpha * inf) = 0 is the right limit, so the value is right and nothing
is printed. Checked in the library with warnings as errors, and in a real
eval-choices process on a real model.
"""

import json
import warnings

import numpy as np

from helpers import run_cli
from riskdpo.data.situations import Option, Situation
from riskdpo.evaluation.alpha import fit_alpha, utility_table


def extreme_situation(number):
    return Situation(
        situation_id=str(number), sheet="extreme",
        prompt=("Choose one.\na 50% probability of -$1.00e+308, 50% probability of $1.00e+308\n"
                f"b 100% probability of ${number}\nWhich option do you choose?"),
        option_labels=["a", "b"], labels_as_written=["a", "b"],
        options=[Option("a", (-1e308, 1e308), (0.5, 0.5)), Option("b", (float(number),), (1.0,))],
        risk_averse=["b"], risk_neutral=["b"], too_risk_averse=["b"],
    )


def test_the_fit_over_prizes_of_1e308_warns_nothing_and_takes_the_limit():
    situations = [extreme_situation(number) for number in range(1, 9)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = utility_table(situations)
        fit = fit_alpha(table, ["b"] * 8, bootstrap=20, seed=0)
    # CE_alpha(a) = -1e308 - log(1/2)/alpha, over the stake scale 1e308: -1 on every grid alpha
    assert np.all(table.values[:, :, 0] == -1.0)
    assert fit.to_json()["situations"] == 8


def test_eval_choices_prints_no_runtime_warning(tmp_path):
    situations = tmp_path / "extreme.json"
    situations.write_text(json.dumps([extreme_situation(number).to_json() for number in range(1, 9)]))
    model = tmp_path / "tiny"
    made = run_cli("tiny-model", str(model), "--situations", str(situations))
    assert made.returncode == 0, made.stderr[-2000:]
    result = run_cli("eval-choices", "--model", str(model), "--situations", str(situations), "-o",
                     str(tmp_path / "report.json"), "--no-progress", "--bootstrap", "20")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Warning" not in result.stderr, result.stderr[-3000:]
