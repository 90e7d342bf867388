"""Writing an eval-choices report: JSON, a per-situation CSV, a PNG figure, a terminal table.

`-o report.json` puts ``report.csv`` and ``report.png`` beside it. All three
files are written to temporary names and renamed into place only when every
one of them is complete, so a failure leaves none behind. The figure is drawn
with `riskdpo.evaluation.figure.plot_eval_rates`, the figure `riskdpo report`
draws too.
"""

from __future__ import annotations

import contextlib
import csv
import json
from pathlib import Path
from typing import Any

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import atomic_path
from riskdpo.evaluation.figure import CATEGORY_TITLES, plot_eval_rates, report_points
from riskdpo.evaluation.summary import Evaluation


def output_paths(output: str | Path) -> tuple[Path, Path, Path]:
    """report.json -> (report.json, report.csv, report.png)."""
    report = Path(output)
    if report.suffix.lower() != ".json":
        raise UserError(f"-o {output}: the report must be a .json file (the CSV and PNG go beside it)")
    return report, report.with_suffix(".csv"), report.with_suffix(".png")


def write_evaluation(evaluation: Evaluation, output: str | Path) -> tuple[Path, Path, Path]:
    """Write the report JSON, the per-situation CSV and the figure; return their paths."""
    paths = output_paths(output)
    with contextlib.ExitStack() as stack:
        report_tmp, csv_tmp, png_tmp = (stack.enter_context(atomic_path(path)) for path in paths)
        report_tmp.write_text(json.dumps(evaluation.report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        write_rows(evaluation.rows, csv_tmp)
        figure = plot_eval_rates(report_points(evaluation.report))
        figure.savefig(png_tmp, format="png", dpi=80, metadata={"Software": None})
    return paths


def write_rows(rows: list[dict[str, Any]], path: str | Path) -> None:
    """The per-situation rows as CSV with a header."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["model"])
        writer.writeheader()
        writer.writerows(rows)


#: Marks a fitted quantity that sits on a bound of its grid (alpha 1e-5 .. 10, precision 0 .. 1e4).
_BOUND_MARK = "*"


def _rate(value: float, interval: list[float]) -> str:
    return f"{value:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def _alpha_line(alpha: dict[str, Any]) -> str:
    """The implied alpha with its interval and verdict, or why there is none."""
    if alpha["estimate"] is None:
        return f"implied alpha not available ({alpha['reason']})"
    bounds = set(alpha.get("at_bounds") or (["estimate"] if alpha["at_grid_edge"] else []))

    def marked(name: str, value: float) -> str:
        return f"{value:.3g}{_BOUND_MARK * (name in bounds)}"

    text = f"implied alpha {marked('estimate', alpha['estimate'])}"
    if alpha["interval"]:
        low, high = alpha["interval"]
        text += f" [{marked('interval_low', low)}, {marked('interval_high', high)}]"
        text += f", {alpha['verdict']} {alpha['target']:g}"
    if alpha.get("precision") is not None:
        text += f", precision {marked('precision', alpha['precision'])}"
    note = ""
    if bounds:
        note = f"; {_BOUND_MARK} = on a bound of the fit ({', '.join(sorted(bounds))}), the true value may lie beyond"
    return f"{text} ({alpha['situations']} situations{note})"


def _model_notes(model: dict[str, Any], examples: int) -> list[str]:
    """Alpha, cooperate rate, skips and unparsed answers of one model."""
    notes = [f"is {model['model']}"] if model.get("name", model["model"]) != model["model"] else []
    answers = model.get("answers")
    if answers:
        headline = _rate(answers["rates"]["risk_averse"], answers["intervals"]["risk_averse"])
        notes.append(
            f"over all {answers['n']} answers ({model['samples']} per situation) risk-averse {headline} "
            "(cluster bootstrap); rates above are of each situation's majority choice"
        )
    kinds = model.get("option_types")
    if kinds:
        shares = ", ".join(f"{name} {_rate(kinds['rates'][name], kinds['intervals'][name])}" for name in kinds["rates"])
        notes.append(f"option types over {kinds['n']} answers: {shares}")
    notes.append(_alpha_line(model["alpha"]))
    if model.get("cooperate"):
        cooperate = model["cooperate"]
        notes.append(f"cooperate rate {_rate(cooperate['rate'], cooperate['interval'])} over {cooperate['n']}")
    notes += [f"{count} situations skipped ({reason})" for reason, count in model["skipped"].items()]
    if model.get("unequal_label_tokens"):
        notes.append(
            f"{model['unequal_label_tokens']} situations whose option labels differ in token count "
            "(each scored as a complete label: its tokens, then one that ends it)"
        )
    invalid = model["counts"].get("invalid", 0)
    if invalid:
        shown = "; ".join(repr(example["answer"]) for example in model["invalid_examples"][:examples])
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(model.get("invalid_reasons", {}).items()))
        notes.append(f"{invalid} unparsed answers ({reasons}; all in the CSV), e.g. {shown}")
    return [f"{model.get('name', model['model'])}: {note}" for note in notes]


def format_table(report: dict[str, Any], examples: int = 3) -> str:
    """A readable summary: one line per model, then alpha, skips, invalid answers and comparisons."""
    models = report["models"]
    first, *others = report["categories"]
    names = [model.get("name", model["model"]) for model in models]
    name_of = {model["model"]: name for model, name in zip(models, names)}
    width = max(len("model"), *(len(name) for name in names))
    header = f"{'model':<{width}}  {'n':>5}  {CATEGORY_TITLES[first]:<21}"
    header += "".join(f"  {CATEGORY_TITLES[c]:>12}" for c in others) + f"  {'P(averse)':>9}"
    lines = [header, "-" * len(header)]
    for name, model in zip(names, models):
        headline = _rate(model["rates"][first], model["intervals"][first])
        line = f"{name:<{width}}  {model['n']:>5}  {headline:<21}"
        line += "".join(f"  {model['rates'][c]:>12.3f}" for c in others)
        probability = model.get("mean_risk_averse_prob")
        lines.append(line + (f"  {probability:>9.3f}" if probability is not None else f"  {'-':>9}"))
    if report.get("precision"):
        lines.append(f"every model scored in {report['precision']}")
    lines.append("")
    for model in models:
        lines += _model_notes(model, examples)
    chooser = report.get("position_chooser")
    if chooser:
        lines.append(
            f"position-only chooser: risk-averse {chooser['best']:.3f} by always naming option line "
            f"{chooser['best_line']} (the reference line in the figure)"
        )
    for reason, count in report["situations"]["skipped"].items():
        lines.append(f"{count} situations skipped for every model ({reason})")
    if report["comparisons"]:
        lines.append("")
    for comparison in report["comparisons"]:
        low, high = comparison["interval"]
        lines.append(
            f"{name_of[comparison['b']]} vs {name_of[comparison['a']]}: risk-averse rate {comparison['risk_averse_diff']:+.3f} "
            f"[{low:+.3f}, {high:+.3f}], McNemar p = {comparison['p_value']:.3g} (n = {comparison['n']})"
        )
    return "\n".join(lines)
