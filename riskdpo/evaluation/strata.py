"""The strata a situation belongs to, and the one order their values are shown in.

Strata are the sheet, the number of options, the label style, and where the
situation records them the stakes and whether probabilities are verbal.
`stratum_order` is the sort key used by the report JSON, the terminal, the
eval figure and `riskdpo report`: stakes levels in rising order (the order of
`riskdpo.data.generate.STAKES`: low, medium, high, astronomical), then numbers
by value ("2" before "10"), then any other text alphabetically.
"""

from __future__ import annotations

from riskdpo.data.generate import STAKES
from riskdpo.data.labels import label_style
from riskdpo.data.situations import Situation

#: Stakes levels, lowest first.
STAKES_ORDER = tuple(STAKES)


def stratum_order(value: str) -> tuple:
    """Sort key: stakes levels in rising order, then numbers by value, then text."""
    text = str(value)
    if text.lower() in STAKES_ORDER:
        return (0, STAKES_ORDER.index(text.lower()), text)
    try:
        return (1, float(text), text)
    except ValueError:
        return (2, 0.0, text)


def stratum_values(situation: Situation) -> dict[str, str]:
    """The strata a situation belongs to; a stratum whose field it lacks is left out."""
    values = {
        "sheet": situation.sheet,
        "num_options": str(len(situation.option_labels)),
        "label_style": label_style(situation.labels_as_written[0]) if situation.labels_as_written else "none",
    }
    stakes = situation.meta.get("stakes")
    if stakes not in (None, ""):
        values["stakes"] = str(stakes)
    verbal = situation.meta.get("use_verbal_probs")
    if verbal not in (None, ""):
        values["probabilities"] = "verbal" if str(verbal).strip().lower() in ("true", "1", "yes") else "numeric"
    return values
