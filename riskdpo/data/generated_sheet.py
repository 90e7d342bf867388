"""Generated situations as a sheet in layout 1 of the spreadsheet format: one row per option.

Every option row repeats the situation's prompt and each agent's label sets
(as JSON lists, ``CARA_correct_labels`` = the risk-averse best), and carries
its own lottery (``prizes_display``, ``probs_percent``) with its expected
utilities to three significant figures:

    EU_linear      = sum_i p_i x_i
    EU_cara(alpha) = 1 - sum_i p_i exp(-alpha x_i)      (alpha = 0.01 and 0.10)

`riskdpo convert` reads such a sheet back into the same situations.
"""

from __future__ import annotations

import json
import math

from riskdpo.data.expected_utility import RISK_AVERSE_ALPHA, TOO_RISK_AVERSE_ALPHA, logsumexp
from riskdpo.data.generate import GenerateSpec, percents_of, round_3sf
from riskdpo.data.reasoning import expected_value
from riskdpo.data.situations import Option, Situation
from riskdpo.data.tables import Table

BASE_COLUMNS = [
    "situation_id", "option_index", "num_options", "num_outcomes", "option_type",
    "stakes", "framing", "label_style", "probability_format", "use_verbal_probs", "rounding_mode",
    "prompt_text", "prizes_display", "probs_percent",
    "EU_linear_display_3sf", "EU_cara_display_3sf", "EU_cara_alpha_0_10_display_3sf",
    "is_best_linear_display", "is_best_cara_display", "is_best_cara_alpha_0_10_display",
    "CARA_correct_labels", "CARA_incorrect_labels",
    "CARA_alpha_0_10_correct_labels", "CARA_alpha_0_10_incorrect_labels",
    "linear_correct_labels", "linear_incorrect_labels",
    "low_bucket_label",
]  # fmt: skip
COOPERATE_COLUMNS = ["cooperate_correct_labels", "cooperate_incorrect_labels"]
COT_COLUMNS = ["chosen_full", "rejected_full"]

#: Sheet column prefix of each agent's label sets -> the label-set field of Situation.
_AGENT_COLUMNS = {"CARA": "risk_averse", "CARA_alpha_0_10": "too_risk_averse", "linear": "risk_neutral"}


def sheet_columns(spec: GenerateSpec) -> list[str]:
    """The header of a sheet generated with `spec`."""
    return BASE_COLUMNS + (COOPERATE_COLUMNS if spec.framing == "cooperate" else []) + (COT_COLUMNS if spec.cot else [])


def cara_expected_utility_display(option: Option, alpha: float) -> float | str:
    """EU = 1 - sum_i p_i exp(-alpha x_i) to 3 significant figures.

    The sum is taken in log space, L = logsumexp(log p_i - alpha x_i), and
    EU = -expm1(L). When exp(L) would overflow a float (huge losses), EU is
    about -exp(L) = -10^(L / ln 10) and is returned as text such as
    ``"-3.21e+4342"``.
    """
    log_sum = logsumexp([math.log(p) - alpha * x for p, x in zip(option.probs, option.prizes) if p > 0])
    if log_sum < 700:
        return round_3sf(-math.expm1(log_sum))
    exponent_10 = log_sum / math.log(10)
    exponent = math.floor(exponent_10)
    mantissa = round(10 ** (exponent_10 - exponent), 2)
    if mantissa >= 10:
        mantissa, exponent = mantissa / 10, exponent + 1
    return f"-{mantissa:.2f}e+{exponent}"


def _label_list(labels: list[str]) -> str:
    return json.dumps(labels)


def situation_rows(situation: Situation) -> list[dict]:
    """Layout-1 rows (column -> value) of one generated situation, one per option."""
    shared: dict = {"num_options": len(situation.options), "prompt_text": situation.prompt, **situation.meta}
    for prefix, field in _AGENT_COLUMNS.items():
        best = getattr(situation, field)
        shared[f"{prefix}_correct_labels"] = _label_list(best)
        shared[f"{prefix}_incorrect_labels"] = _label_list([x for x in situation.option_labels if x not in best])
    shared["cooperate_correct_labels"] = _label_list(situation.cooperate)
    shared["cooperate_incorrect_labels"] = _label_list([x for x in situation.option_labels if x not in situation.cooperate])
    rows = []
    for index, option in enumerate(situation.options):
        row = dict(shared)
        row.update(
            situation_id=int(situation.situation_id),
            option_index=index,
            num_outcomes=len(option.prizes),
            option_type=option.type,
            prizes_display=str(list(option.prizes)),
            probs_percent=str(percents_of(option)),
            EU_linear_display_3sf=round_3sf(expected_value(option)),
            EU_cara_display_3sf=cara_expected_utility_display(option, RISK_AVERSE_ALPHA),
            EU_cara_alpha_0_10_display_3sf=cara_expected_utility_display(option, TOO_RISK_AVERSE_ALPHA),
            is_best_linear_display=True if option.label in situation.risk_neutral else None,
            is_best_cara_display=True if option.label in situation.risk_averse else None,
            is_best_cara_alpha_0_10_display=True if option.label in situation.too_risk_averse else None,
        )
        rows.append(row)
    return rows


def situations_sheet(spec: GenerateSpec, situations: list[Situation]) -> Table:
    """The generated situations as one layout-1 sheet named `spec.sheet` (header on row 1)."""
    columns = sheet_columns(spec)
    rows = [tuple(row.get(column) for column in columns) for situation in situations for row in situation_rows(situation)]
    return Table(None, spec.sheet, spec.sheet, columns, list(enumerate(rows, start=2)))
