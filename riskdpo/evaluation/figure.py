"""The one figure of eval-choices rates: eval-choices' ``report.png`` and `riskdpo report`'s eval figure.

Panels, laid out three to a row:

- **by category** (when every model has category rates): the share of
  choices in each exclusive category;
- **overall**: each model's risk-averse rate;
- **by <stratum>**: the risk-averse rate per stratum value, values in
  `riskdpo.evaluation.strata.stratum_order` (low, medium, high, astronomical;
  2 before 10).

Every rate is a marker with its 95% interval. A grey dashed segment marks the
position-only chooser's rate where the report has it
(`riskdpo.evaluation.summary.position_chooser`: the best risk-averse rate of a
chooser that always names the same option line), the rate a model reaches
without reading the options. Models are named by their short names; the
legend sits below the panels, off the data. The figure is a matplotlib
`Figure` (Agg canvas, no display, no global backend).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from riskdpo.evaluation.strata import stratum_order

#: Short titles of the categories.
CATEGORY_TITLES = {
    "risk_averse": "risk-averse",
    "risk_neutral": "risk-neutral",
    "too_risk_averse": "too averse",
    "other": "other",
    "invalid": "invalid",
}
REFERENCE_LABEL = "position-only chooser (best fixed option line)"
PANEL_SIZE = (4.2, 3.4)
COLUMNS = 3
#: Inches below the panels kept for the legend.
LEGEND_SPACE = 0.45


@dataclass
class RatePoint:
    """One model's risk-averse rate from one report (an interval when the report has it).

    `reference` is the position-only chooser's rate on the same situations;
    `categories` maps category -> (rate, interval) where the report has them.
    """

    label: str
    rate: float
    interval: tuple[float, float] | None
    strata: dict[str, dict[str, "RatePoint"]] = field(default_factory=dict)
    reference: float | None = None
    categories: dict[str, tuple[float, tuple[float, float]]] | None = None


def is_finite_number(value: Any) -> bool:
    """True for a real, finite int or float (not a bool, None or text)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _pair(value: Any) -> tuple[float, float] | None:
    ok = isinstance(value, (list, tuple)) and len(value) == 2 and all(is_finite_number(bound) for bound in value)
    return (float(value[0]), float(value[1])) if ok else None


def rate_point(entry: Any, default_label: str, reference: float | None = None) -> RatePoint | None:
    """An entry's risk-averse rate and interval, named by its "name" or "model" (None without a rate)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("rates"), dict):
        return None
    rate = entry["rates"].get("risk_averse")
    if not is_finite_number(rate):
        return None
    intervals = entry.get("intervals") if isinstance(entry.get("intervals"), dict) else {}
    label = str(entry.get("name") or entry.get("model") or default_label)
    point = RatePoint(label, float(rate), _pair(intervals.get("risk_averse")), reference=reference)
    pairs = {name: (value, _pair(intervals.get(name))) for name, value in entry["rates"].items() if is_finite_number(value)}
    if intervals and all(interval for _, interval in pairs.values()):
        point.categories = {name: (float(value), interval) for name, (value, interval) in pairs.items()}
    return point


def report_points(report: dict[str, Any]) -> list[RatePoint]:
    """The models of an eval-choices report as `RatePoint`s (models and strata without a rate left out)."""
    chooser = report.get("position_chooser") if isinstance(report.get("position_chooser"), dict) else {}
    best = chooser.get("best") if is_finite_number(chooser.get("best")) else None
    references = chooser.get("strata") if isinstance(chooser.get("strata"), dict) else {}
    points = []
    for number, model in enumerate(report.get("models") or [], start=1):
        point = rate_point(model, f"model {number}", best)
        if point is None:
            continue
        strata = model.get("strata") if isinstance(model.get("strata"), dict) else {}
        for name, values in strata.items():
            if not isinstance(values, dict):
                continue
            known = references.get(name) if isinstance(references.get(name), dict) else {}
            found = {
                str(value): p
                for value, entry in values.items()
                if (p := rate_point(entry, str(value), known.get(value) if is_finite_number(known.get(value)) else None))
            }
            if found:
                point.strata[str(name)] = found
        points.append(point)
    return points


def _marks(axis: Any, positions: list[float], points: list[tuple[float, tuple[float, float] | None]], **style) -> Any:
    """Rates as markers with their intervals as error bars (no bar where there is no interval)."""
    below = [rate - interval[0] if interval else 0.0 for rate, interval in points]
    above = [interval[1] - rate if interval else 0.0 for rate, interval in points]
    return axis.errorbar(positions, [rate for rate, _ in points], yerr=[below, above], fmt="o", capsize=4, **style)


def _reference(axis: Any, centre: float, half: float, value: float | None) -> Any:
    if value is None:
        return None
    return axis.hlines(value, centre - half, centre + half, colors="0.45", linestyles="--", linewidth=1.2, zorder=0)


def plot_eval_rates(points: list[RatePoint], title: str = "Risk-averse choices") -> Any:
    """The figure of the module docstring for `points` (one per model, in order)."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    with_categories = bool(points) and all(point.categories for point in points)
    strata = sorted({name for point in points for name in point.strata})
    panels = (["categories"] if with_categories else []) + ["overall"] + strata
    columns = min(COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + LEGEND_SPACE))
    axes = list(figure.subplots(rows, columns, squeeze=False).flat)
    for unused in axes[len(panels) :]:
        unused.set_visible(False)
    colors = [f"C{number % 10}" for number in range(len(points))]
    width = 0.7 / max(len(points), 1)
    offsets = [(number - (len(points) - 1) / 2) * width for number in range(len(points))]
    references = []
    for axis, panel in zip(axes, panels):
        if panel == "categories":
            names = list(points[0].categories)
            for point, color, offset in zip(points, colors, offsets):
                marks = [point.categories[name] for name in names]
                _marks(axis, [slot + offset for slot in range(len(names))], marks, color=color)
            axis.set_xticks(range(len(names)), [CATEGORY_TITLES.get(name, name) for name in names])
            axis.set_title("All choices by category", fontsize="medium")
            axis.set_ylabel("share of choices")
        elif panel == "overall":
            for number, (point, color) in enumerate(zip(points, colors)):
                _marks(axis, [number], [(point.rate, point.interval)], color=color)
                references.append(_reference(axis, number, 0.4, point.reference))
            axis.set_xticks(range(len(points)), [point.label for point in points])
            axis.set_xlim(-0.6, len(points) - 0.4)
            axis.set_title("Overall risk-averse rate", fontsize="medium")
            axis.set_ylabel("risk-averse rate (95% interval)")
        else:
            values = sorted({value for point in points for value in point.strata.get(panel, {})}, key=stratum_order)
            for point, color, offset in zip(points, colors, offsets):
                groups = point.strata.get(panel, {})
                present = [(slot, groups[value]) for slot, value in enumerate(values) if value in groups]
                if present:
                    _marks(axis, [slot + offset for slot, _ in present], [(p.rate, p.interval) for _, p in present], color=color)
                    references += [_reference(axis, slot, 0.45, p.reference) for slot, p in present]
            axis.set_xticks(range(len(values)), values)
            axis.set_title(f"Risk-averse rate by {panel.replace('_', ' ')}", fontsize="medium")
        axis.set_ylim(-0.03, 1.03)
        axis.grid(axis="y", alpha=0.3)
        axis.tick_params(axis="x", labelsize="small", labelrotation=15)
    handles = [Line2D([], [], color=color, marker="o", linestyle="") for color in colors]
    labels = [point.label for point in points]
    if any(reference is not None for reference in references):
        handles.append(Line2D([], [], color="0.45", linestyle="--"))
        labels.append(REFERENCE_LABEL)
    figure.suptitle(title)
    figure.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize="small", frameon=False)
    figure.tight_layout(rect=(0, LEGEND_SPACE / figure.get_figheight(), 1, 1))
    return figure
