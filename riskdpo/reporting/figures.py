"""Figures of a training run and of evaluations, readable without W&B.

Training writes ``OUTPUT_DIR/metrics.jsonl``: one JSON object per logged step
with the DPO statistics (loss, rewards/chosen, rewards/rejected,
rewards/accuracy, rewards/margin, logps/chosen, logps/rejected), lr,
grad_norm, epoch, step and throughput; validation lines carry the same
statistics prefixed ``val/`` (with step and epoch), the supervised warm-up's
lines are prefixed ``sft/`` (not plotted here). From it this module draws, train
solid and validation dashed on the same axes:

- ``loss.png``: the DPO loss.
- ``reward_accuracy.png``: the share of pairs whose chosen answer has the higher
  implicit reward, [r_c > r_r].
- ``reward_margins.png``: the implicit rewards r_c, r_r and the margin r_c − r_r.
- ``reward_vs_divergence.png``: how far the policy moved from the reference for
  the margin it gained. The implicit reward of an answer y is
  r = β · (log π(y|x) − log π_ref(y|x)), so r/β is the policy's log-ratio to
  the reference. The left panel shows the log-ratios of the chosen and the
  rejected answers and their mean against step; the right panel the margin
  against that mean log-ratio, a signed proxy of the divergence from the
  reference on the training answers (a KL needs samples from π, which DPO
  never draws; DPO often lowers both log-ratios, so the proxy can be negative).
  β comes from ``OUTPUT_DIR/run.json`` (``config.beta``); without it the
  panels stay in reward units, β · log-ratio.

From eval-choices reports (``{"models": [{"model", "name", "n", "rates",
"intervals", "strata"}], "position_chooser": ...}``) it draws
``eval_risk_averse.png`` with `riskdpo.evaluation.figure.plot_eval_rates`, the
same figure as eval-choices' own: each model's risk-averse rate with its 95%
interval, report after report (before/after training), the same per stratum,
and the position-only chooser's rate as a reference.

Figures are drawn on matplotlib `Figure` objects rendered by the Agg canvas
(no display, no global backend), saved without a software stamp so that the
same inputs give the same bytes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riskdpo.core.errors import UserError
from riskdpo.core.fileio import atomic_path, jsonl_lines
from riskdpo.evaluation.figure import RatePoint, is_finite_number, plot_eval_rates, report_points

VAL_PREFIX = "val/"
SFT_PREFIX = "sft/"
#: Statistics checked to be numbers (or null) when the log is read.
PLOTTED_KEYS = ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin", "epoch", "step")
#: Columns of the summary table: metrics key -> title.
TABLE_COLUMNS = {
    "step": "step",
    "loss": "loss",
    "rewards/accuracy": "accuracy",
    "rewards/margin": "margin",
    "rewards/chosen": "r_chosen",
    "rewards/rejected": "r_rejected",
}
FIGURE_SIZE = (7.0, 4.5)
DPI = 100


@dataclass
class TrainingLog:
    """The DPO records of a metrics.jsonl, validation keys stripped of their prefix."""

    train: list[dict[str, Any]] = field(default_factory=list)
    val: list[dict[str, Any]] = field(default_factory=list)


def read_training_log(path: str | Path) -> TrainingLog:
    """Read a metrics.jsonl into train and validation records.

    A line that is not a JSON object, or a DPO record without a numeric step, is
    a `UserError` naming the file and line. One exception: a last line cut off
    without its newline (a crashed run's half-written line) is dropped.
    Warm-up lines (``sft/`` keys only) are skipped.
    """
    source = Path(path)
    if not source.is_file():
        raise UserError(f"{source}: no such file; point at the OUTPUT_DIR of a training run")
    text = source.read_text(encoding="utf-8")
    lines = jsonl_lines(text)
    log = TrainingLog()
    for number, line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == lines[-1][0] and not text.endswith("\n"):
                break
            raise UserError(f"{source}, line {number}: not JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise UserError(f"{source}, line {number}: expected a JSON object")
        train, val = _split_record(record)
        for part, rows in ((train, log.train), (val, log.val)):
            if part:
                _check_numbers(part, f"{source}, line {number}")
                rows.append(part)
    if not log.train and not log.val:
        raise UserError(f"{source}: no DPO steps logged yet")
    return log


def _split_record(record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A record's training statistics and its `val/` statistics (each empty when absent).

    Both keep the record's step and epoch; `sft/` keys belong to neither.
    """
    shared = {key: record[key] for key in ("step", "epoch") if key in record}
    train = {key: value for key, value in record.items() if not key.startswith((VAL_PREFIX, SFT_PREFIX))}
    val = {key[len(VAL_PREFIX) :]: value for key, value in record.items() if key.startswith(VAL_PREFIX)}
    return (train if set(train) - set(shared) else {}), ({**shared, **val} if val else {})


def _check_numbers(row: dict[str, Any], where: str) -> None:
    if not isinstance(row.get("step"), (int, float)):
        raise UserError(f"{where}: the record has no numeric step")
    for key in PLOTTED_KEYS:
        value = row.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise UserError(f"{where}: {key} is {value!r}, not a number")


def series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """Steps and values of `key`, leaving out rows where it is missing, null or not finite."""
    points = [(row["step"], row[key]) for row in rows if is_finite_number(row.get(key))]
    return [step for step, _ in points], [value for _, value in points]


def read_beta(output_dir: str | Path) -> float | None:
    """β of the run (``run.json`` → config.beta), or None when not recorded."""
    path = Path(output_dir) / "run.json"
    try:
        beta = json.loads(path.read_text(encoding="utf-8"))["config"]["beta"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return float(beta) if is_finite_number(beta) and beta > 0 else None


def _new_figure(columns: int = 1, height: float = FIGURE_SIZE[1]) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(FIGURE_SIZE[0] if columns == 1 else 5.5 * columns, height))
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, list(axes)


def _train_and_val(axis: Any, log: TrainingLog, key: str, label: str, color: str) -> None:
    """`key` against step: training solid, validation dashed with markers."""
    axis.plot(*series(log.train, key), color=color, label=f"{label} (train)")
    steps, values = series(log.val, key)
    if steps:
        axis.plot(steps, values, color=color, linestyle="--", marker="o", markersize=4, label=f"{label} (val)")


def _finish(figure: Any, axes: list[Any], title: str) -> Any:
    for axis in axes:
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize="small")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_loss(log: TrainingLog) -> Any:
    """The DPO loss against step."""
    figure, (axis,) = _new_figure()
    _train_and_val(axis, log, "loss", "loss", "tab:blue")
    axis.set_xlabel("step")
    axis.set_ylabel("DPO loss")
    return _finish(figure, [axis], "Loss")


def plot_accuracy(log: TrainingLog) -> Any:
    """The reward accuracy [r_c > r_r] against step."""
    figure, (axis,) = _new_figure()
    _train_and_val(axis, log, "rewards/accuracy", "accuracy", "tab:green")
    axis.set_ylim(-0.02, 1.02)
    axis.set_xlabel("step")
    axis.set_ylabel("share of pairs with r_chosen > r_rejected")
    return _finish(figure, [axis], "Reward accuracy")


def plot_margins(log: TrainingLog) -> Any:
    """The implicit rewards r_c, r_r and the margin r_c − r_r against step."""
    figure, (axis,) = _new_figure()
    _train_and_val(axis, log, "rewards/chosen", "r_chosen", "tab:green")
    _train_and_val(axis, log, "rewards/rejected", "r_rejected", "tab:red")
    _train_and_val(axis, log, "rewards/margin", "margin", "tab:purple")
    axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_xlabel("step")
    axis.set_ylabel("implicit reward  β·log(π/π_ref)")
    return _finish(figure, [axis], "Reward margins")


def _log_ratio_rows(rows: list[dict[str, Any]], beta: float | None) -> list[dict[str, Any]]:
    """Rows with the log-ratios r/β of chosen and rejected, their mean, and the margin."""
    scale = beta or 1.0
    derived = []
    for row in rows:
        chosen, rejected = row.get("rewards/chosen"), row.get("rewards/rejected")
        if not (is_finite_number(chosen) and is_finite_number(rejected)):
            continue
        derived.append({
            "step": row["step"],
            "chosen": chosen / scale,
            "rejected": rejected / scale,
            "mean": (chosen + rejected) / (2 * scale),
            "margin": row.get("rewards/margin"),
        })
    return derived


def plot_reward_vs_divergence(log: TrainingLog, beta: float | None) -> Any:
    """Log-ratios to the reference against step, and the margin against their mean."""
    figure, (over_steps, trade_off) = _new_figure(columns=2)
    unit = "log π/π_ref (nats)" if beta else "β·log π/π_ref (β unknown)"
    ratios = TrainingLog(_log_ratio_rows(log.train, beta), _log_ratio_rows(log.val, beta))
    _train_and_val(over_steps, ratios, "chosen", "chosen", "tab:green")
    _train_and_val(over_steps, ratios, "rejected", "rejected", "tab:red")
    _train_and_val(over_steps, ratios, "mean", "mean (divergence proxy)", "tab:gray")
    over_steps.axhline(0.0, color="black", linewidth=0.8)
    over_steps.set_xlabel("step")
    over_steps.set_ylabel(unit)
    over_steps.set_title("Policy vs reference", fontsize="medium")
    for rows, style, label in ((ratios.train, "-", "train"), (ratios.val, "--", "val")):
        points = [(row["mean"], row["margin"]) for row in rows if is_finite_number(row["margin"])]
        if points:
            trade_off.plot(*zip(*points), linestyle=style, marker=".", color="tab:purple" if label == "train" else "tab:orange", label=label)
            trade_off.annotate(f"step {rows[-1]['step']}", points[-1], fontsize="x-small")
    trade_off.set_xlabel(f"mean {unit}")
    trade_off.set_ylabel("reward margin r_c − r_r")
    trade_off.set_title("Margin gained for divergence", fontsize="medium")
    return _finish(figure, [over_steps, trade_off], "Reward vs divergence from the reference")


def training_figures(log: TrainingLog, beta: float | None = None) -> dict[str, Any]:
    """File name -> figure for every training figure."""
    return {
        "loss.png": plot_loss(log),
        "reward_accuracy.png": plot_accuracy(log),
        "reward_margins.png": plot_margins(log),
        "reward_vs_divergence.png": plot_reward_vs_divergence(log, beta),
    }


def read_eval_report(path: str | Path) -> list[RatePoint]:
    """The models of an eval-choices report as `RatePoint`s, labelled by model name.

    Tolerant of what a report may lack: a model without a risk-averse rate and
    a stratum value without one are skipped, a missing interval is None. A file
    that is not a JSON object with a ``models`` list is a `UserError`.
    """
    source = Path(path)
    if not source.is_file():
        raise UserError(f"--eval {source}: no such file")
    try:
        report = json.loads(source.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"--eval {source}: not a JSON eval-choices report ({error})") from None
    if not isinstance(report, dict) or not isinstance(report.get("models"), list):
        raise UserError(f"--eval {source}: not an eval-choices report (no \"models\" list)")
    points = report_points(report)
    if not points:
        raise UserError(f"--eval {source}: no model with a risk-averse rate")
    return points


def label_reports(reports: list[tuple[str, list[RatePoint]]]) -> list[RatePoint]:
    """All models of all (name, points) reports in order, labelled "name: model" when there are several."""
    several = len(reports) > 1
    return [
        dataclasses.replace(point, label=f"{name}: {point.label}" if several else point.label)
        for name, points in reports
        for point in points
    ]


def report_names(paths: list[str | Path]) -> list[str]:
    """Short names of eval reports: file stems, or the paths as given where stems repeat."""
    stems = [Path(path).stem for path in paths]
    return [stem if stems.count(stem) == 1 else str(path) for stem, path in zip(stems, paths)]


def save_figures(figures: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Save figures as PNGs in `out_dir`, all or none (each renamed into place at the end)."""
    paths = [Path(out_dir) / name for name in figures]
    with contextlib.ExitStack() as stack:
        for path, figure in zip(paths, figures.values()):
            tmp = stack.enter_context(atomic_path(path))
            figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return paths


def metrics_table(log: TrainingLog) -> str:
    """The last training and validation record as a small text table."""
    header = f"{'':<6}" + "".join(f"{title:>12}" for title in TABLE_COLUMNS.values())
    lines = [header]
    for name, rows in (("train", log.train), ("val", log.val)):
        if rows:
            last = rows[-1]
            lines.append(f"{name:<6}" + "".join(f"{_cell(last.get(key)):>12}" for key in TABLE_COLUMNS))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return f"{value:.4g}" if is_finite_number(value) else "-"


def write_report(output_dir: str | Path, eval_reports: list[str | Path] = (), out_dir: str | Path | None = None) -> tuple[list[Path], TrainingLog]:
    """Read a run's metrics (and eval reports), write every figure; return their paths and the log.

    Every input is read and checked before any figure is written.
    """
    run = Path(output_dir)
    log = read_training_log(run / "metrics.jsonl")
    reports = [(name, read_eval_report(path)) for name, path in zip(report_names(list(eval_reports)), eval_reports)]
    figures = training_figures(log, read_beta(run))
    if reports:
        figures["eval_risk_averse.png"] = plot_eval_rates(label_reports(reports))
    return save_figures(figures, out_dir if out_dir is not None else run / "figures"), log
