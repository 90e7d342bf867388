"""Markdown tables for RESULTS.md from the eval-choices reports of experiments/results.sh.

    python experiments/summarize.py OUT_DIR [FIGURE_DIR] > tables.md

First the training runs found in OUT_DIR (every folder with a run.json): size,
settings, how well each fits its training pairs (mean reward accuracy over its
last epoch) and its held-back validation pairs (at the end), and its time. Then,
for every report found in OUT_DIR (eval_logprob, eval_shuffled, eval_generate):
rates with 95% Wilson intervals per model and held-out sheet, the paired
difference of every model against the first (the base) per sheet with
Newcombe's interval and McNemar's p (recomputed from the per-situation CSV with
riskdpo.evaluation.stats), the implied alpha, and in log-prob mode how often each model
picks the first and the last option line. With FIGURE_DIR, also runs.png: every
run's validation loss and reward accuracy against epoch on shared axes.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections import defaultdict
from pathlib import Path

from riskdpo.reporting.figures import read_training_log
from riskdpo.evaluation.stats import PairedTable, mcnemar_exact, paired_difference_interval

REPORTS = {
    "eval_logprob": "log-prob choice (the label the model finds most probable)",
    "eval_shuffled": "log-prob choice, lotteries moved between option lines (label-prior check)",
    "eval_generate": "generated answer, greedy, parsed",
}


def short(model: str) -> str:
    """A model's name without its run folder's path."""
    parts = Path(model).parts
    return parts[-2] if len(parts) >= 2 and parts[-1] == "final-model" else model


def interval(rate: float, bounds: list[float]) -> str:
    return f"{rate:.2f} [{bounds[0]:.2f}, {bounds[1]:.2f}]"


def rates_table(report: dict) -> list[str]:
    """Risk-averse rate per model and sheet, with the other categories overall."""
    sheets = sorted(report["models"][0]["strata"]["sheet"])
    lines = ["| model | all | " + " | ".join(sheets) + " | risk-neutral | too risk-averse | invalid | P(risk-averse) |",
             "|---|" + "---|" * (len(sheets) + 5)]
    for model in report["models"]:
        by_sheet = model["strata"]["sheet"]
        cells = [interval(model["rates"]["risk_averse"], model["intervals"]["risk_averse"])]
        cells += [interval(by_sheet[s]["rates"]["risk_averse"], by_sheet[s]["intervals"]["risk_averse"]) for s in sheets]
        cells += [f"{model['rates'][c]:.2f}" for c in ("risk_neutral", "too_risk_averse", "invalid")]
        probability = model.get("mean_risk_averse_prob")
        cells.append("–" if probability is None else f"{probability:.3f}")
        lines.append(f"| {short(model['model'])} (n={model['n']}) | " + " | ".join(cells) + " |")
    return lines


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The per-situation rows of an eval-choices CSV."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def paired_table(rows: list[dict[str, str]], base: str) -> list[str]:
    """Difference in risk-averse rate against `base`, overall and per sheet, from the CSV rows."""
    chosen: dict[str, dict[tuple[str, str], bool]] = defaultdict(dict)
    for row in rows:
        if row["category"] != "skipped":
            chosen[row["model"]][(row["sheet"], row["situation_id"])] = row["category"] == "risk_averse"
    sheets = sorted({sheet for sheet, _ in chosen[base]})
    lines = ["| model vs base | " + " | ".join(["all", *sheets]) + " |", "|---|" + "---|" * (len(sheets) + 1)]
    for model in chosen:
        if model == base:
            continue
        cells = []
        for sheet in [None, *sheets]:
            keys = [k for k in chosen[base] if k in chosen[model] and (sheet is None or k[0] == sheet)]
            table = PairedTable.from_pairs([chosen[base][k] for k in keys], [chosen[model][k] for k in keys])
            difference, (low, high) = paired_difference_interval(table)
            cells.append(f"{difference:+.2f} [{low:+.2f}, {high:+.2f}] p={mcnemar_exact(table):.2g}")
        lines.append(f"| {short(model)} | " + " | ".join(cells) + " |")
    return lines


def position_table(rows: list[dict[str, str]], situations: dict[tuple[str, str], dict], as_written: bool) -> list[str]:
    """How often each model picks the first and the last option line. A chooser that goes by
    position, not by the lotteries, shows up as a share far from where the risk-averse option
    sits (given for prompts as written; with shuffled lotteries it sits anywhere alike)."""
    picks: dict[str, list[tuple[int, int]]] = defaultdict(list)
    keys = set()
    for row in rows:
        if row["choice"]:
            key = (row["sheet"], row["situation_id"])
            keys.add(key)
            labels = situations[key]["option_labels"]
            picks[row["model"]].append((labels.index(row["choice"]), len(labels)))

    def shares(places: list[tuple[int, int]]) -> str:
        first = sum(index == 0 for index, _ in places) / len(places)
        last = sum(index == count - 1 for index, count in places) / len(places)
        return f"{first:.2f} | {last:.2f}"

    lines = ["| model | picks the first option | picks the last option |", "|---|---|---|"]
    lines += [f"| {short(model)} | {shares(chosen)} |" for model, chosen in picks.items()]
    if as_written:
        averse = [(situations[k]["option_labels"].index(situations[k]["risk_averse"][0]), len(situations[k]["option_labels"]))
                  for k in sorted(keys)]
        lines.append(f"| where the risk-averse option sits | {shares(averse)} |")
    return lines


def alpha_table(report: dict) -> list[str]:
    lines = ["| model | implied α | 95% profile-likelihood interval | verdict vs 0.01 |", "|---|---|---|---|"]
    for model in report["models"]:
        alpha = model["alpha"]
        if alpha.get("estimate") is None:
            lines.append(f"| {short(model['model'])} | – | – | {alpha.get('reason')} |")
            continue
        low, high = alpha["interval"]
        bounds = set(alpha.get("at_bounds") or [])
        mark = {name: "*" if name in bounds else "" for name in ("estimate", "interval_low", "interval_high")}
        lines.append(
            f"| {short(model['model'])} | {alpha['estimate']:.3g}{mark['estimate']} "
            f"| [{low:.3g}{mark['interval_low']}, {high:.3g}{mark['interval_high']}] | {alpha['verdict']} |"
        )
    return lines


def finished_runs(out: Path) -> list[tuple[Path, dict]]:
    """(folder, run.json) of every finished training run in `out` (one still running is left out)."""
    runs = [(path.parent, json.loads(path.read_text(encoding="utf-8"))) for path in sorted(out.glob("*/run.json"))]
    return [(folder, run) for folder, run in runs if run["status"] == "finished"]


def training_table(out: Path) -> list[str]:
    """One row per run folder: data, settings, fit on training and validation pairs, time."""
    lines = ["| run | pairs | steps | β | SFT epochs | train reward acc (last epoch) | val reward acc | val loss | reference s | train s (SFT included) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for folder, run in finished_runs(out):
        config = run["config"]
        log = read_training_log(folder / "metrics.jsonl")
        last_epoch = [row["rewards/accuracy"] for row in log.train if row["epoch"] > config["epochs"] - 1]
        final_val = log.val[-1]
        timings = run["timings"]
        lines.append(
            f"| {folder.name} | {run['dataset']['used']} | {run['steps']} | {config['beta']} | {config['sft_epochs']} "
            f"| {sum(last_epoch) / len(last_epoch):.2f} | {final_val['rewards/accuracy']:.2f} | {final_val['loss']:.3f} "
            f"| {timings['reference_seconds']:.0f} | {timings['train_seconds'] + timings.get('sft_seconds', 0):.0f} |"
        )
    return lines


def runs_figure(out: Path, path: Path) -> Path:
    """Validation loss and reward accuracy of every run against epoch (runs differ in steps per epoch)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4.2))
    loss_axis, accuracy_axis = figure.subplots(1, 2)
    for run_dir, _ in finished_runs(out):
        val = read_training_log(run_dir / "metrics.jsonl").val
        epochs = [row["epoch"] for row in val]
        loss_axis.plot(epochs, [row["loss"] for row in val], marker="o", markersize=3, label=run_dir.name)
        trained = [row for row in val if row["step"] > 0]  # at step 0 every reward is 0: no accuracy to speak of
        accuracy_axis.plot([row["epoch"] for row in trained], [row["rewards/accuracy"] for row in trained],
                           marker="o", markersize=3, label=run_dir.name)
    for axis, title in ((loss_axis, "validation DPO loss"), (accuracy_axis, "validation reward accuracy")):
        axis.set_xlabel("epoch")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    loss_axis.axhline(math.log(2), color="grey", linewidth=0.8, linestyle=":")
    accuracy_axis.axhline(0.5, color="grey", linewidth=0.8, linestyle=":")
    accuracy_axis.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def main(out_dir: str, figure_dir: str | None = None) -> None:
    out = Path(out_dir)
    if figure_dir:
        runs_figure(out, Path(figure_dir) / "runs.png")
    situations = {(s["sheet"], s["situation_id"]): s for s in json.loads((out / "situations.json").read_text(encoding="utf-8"))}
    print("### training runs\n")
    print("\n".join(training_table(out)) + "\n")
    for name, title in REPORTS.items():
        path = out / f"{name}.json"
        if not path.is_file():
            continue
        report = json.loads(path.read_text(encoding="utf-8"))
        print(f"### {title}\n\n`{path.name}`, {report['situations']['selected']} situations\n")
        print("\n".join(rates_table(report)) + "\n")
        print("Paired difference in risk-averse rate against the base (Newcombe 95% interval, McNemar p):\n")
        rows = csv_rows(path.with_suffix(".csv"))
        print("\n".join(paired_table(rows, report["models"][0]["model"])) + "\n")
        print("\n".join(alpha_table(report)) + "\n")
        if report["models"][0].get("mean_risk_averse_prob") is not None:  # a label per situation: log-prob mode
            print("Choices by option line (share of situations):\n")
            print("\n".join(position_table(rows, situations, name != "eval_shuffled")) + "\n")


if __name__ == "__main__":
    main(*(sys.argv[1:3] or ["results-smollm2"]))
