"""Markdown tables for RESULTS.md from the eval-choices reports of experiments/results.sh.

    python experiments/summarize.py OUT_DIR > tables.md

For every report found in OUT_DIR (eval_logprob, eval_shuffled, eval_generate):
rates with 95% Wilson intervals per model and held-out sheet, the paired
difference of every model against the first (the base) per sheet with
Newcombe's interval and McNemar's p (recomputed from the per-situation CSV with
riskdpo.stats), and the implied alpha.
"""

from __future__ import annotations

import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

from riskdpo.stats import PairedTable, mcnemar_exact, paired_difference_interval

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


def paired_table(csv_path: Path, base: str) -> list[str]:
    """Difference in risk-averse rate against `base`, overall and per sheet, from the CSV."""
    chosen: dict[str, dict[tuple[str, str], bool]] = defaultdict(dict)
    with open(csv_path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
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


def alpha_table(report: dict) -> list[str]:
    lines = ["| model | implied α | 95% bootstrap interval | verdict vs 0.01 |", "|---|---|---|---|"]
    for model in report["models"]:
        alpha = model["alpha"]
        if alpha.get("estimate") is None:
            lines.append(f"| {short(model['model'])} | – | – | {alpha.get('reason')} |")
            continue
        low, high = alpha["interval"]
        edge = " (grid edge)" if alpha.get("at_grid_edge") else ""
        lines.append(f"| {short(model['model'])} | {alpha['estimate']:.3g}{edge} | [{low:.3g}, {high:.3g}] | {alpha['verdict']} |")
    return lines


def main(out_dir: str) -> None:
    out = Path(out_dir)
    for name, title in REPORTS.items():
        path = out / f"{name}.json"
        if not path.is_file():
            continue
        report = json.loads(path.read_text(encoding="utf-8"))
        print(f"### {title}\n\n`{path.name}`, {report['situations']['selected']} situations\n")
        print("\n".join(rates_table(report)) + "\n")
        print("Paired difference in risk-averse rate against the base (Newcombe 95% interval, McNemar p):\n")
        print("\n".join(paired_table(path.with_suffix(".csv"), report["models"][0]["model"])) + "\n")
        print("\n".join(alpha_table(report)) + "\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results-smollm2")
