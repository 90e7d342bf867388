"""The tables and the figure of RESULTS.md (results round two) from experiments/round2.sh's output.

    python experiments/round2_summary.py OUT_DIR [FIGURE_DIR] > tables.md

Reads OUT_DIR/evals/{shuffled,written,reasoning}-MODEL.json and .csv (one model per
eval-choices call), OUT_DIR/ARM/run.json and metrics.jsonl, OUT_DIR/timings.tsv and
OUT_DIR/heldout.json. Every comparison against the base is paired by situation
(Newcombe's interval, McNemar's exact p), recomputed from the per-situation CSVs with
riskdpo.evaluation.stats. The primary family (each arm against the base, lotteries
shuffled, overall and per stake level) gets Holm's step-down adjustment.

The reference every rate is held against is the position-only chooser: a policy that
ignores the lotteries and names an option line by its place. With shuffled lotteries
every such policy scores mean_s k_s/n_s in expectation (k_s risk-averse options of
n_s), which is also uniform guessing; on a finite set one of them does better by luck,
so the reference is the larger of that expectation and the best realised rate of "line j"
(j = 1..5) and "the last line" on the same situations.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from summarize import csv_rows, interval

from riskdpo.data.shuffle import shuffle_all
from riskdpo.evaluation.evaluate import read_eval_situations
from riskdpo.evaluation.features import FEATURES, RULES, chosen_lines, fit_choice_logit, rule_agreement, rule_lines
from riskdpo.evaluation.reasoning_grades import grade_answer, summarize_grades
from riskdpo.evaluation.stats import PairedTable, mcnemar_exact, paired_difference_interval, wilson_interval
from riskdpo.reporting.figures import read_training_log

ARMS = ("label_dpo", "label_dpo_balanced", "cot_sft", "cot_sft_dpo_nll")
MODELS = ("base", *ARMS)
STAKES = ("low", "medium", "high", "astronomical")
KINDS = {
    "shuffled": "label by log-probability, lotteries shuffled over the option lines (900 held-out situations)",
    "written": "label by log-probability, prompts as written (the sample's 300 test situations)",
    "reasoning": "generated reasoning, greedy, answer parsed, lotteries shuffled (150 of the sample's test situations)",
    "reasoning_fresh": "generated reasoning as above, on 150 of the 600 fresh situations",
}


def stakes_of(situation) -> str:
    """A situation's stake level from its sheet name (test_low, held_high, ...; cooperate is medium)."""
    level = situation.sheet.split("_", 1)[1]
    return "medium" if level == "cooperate" else level


def groups(situations) -> dict[str, list]:
    """all, each stake level, then each sheet: the situations of each."""
    found: dict[str, list] = {"all": list(situations)}
    for level in STAKES:
        found[level] = [s for s in situations if stakes_of(s) == level]
    for sheet in sorted({s.sheet for s in situations}):
        found[sheet] = [s for s in situations if s.sheet == sheet]
    return found


def position_reference(situations) -> float:
    """The position-only chooser's rate on `situations` (module docstring)."""
    expected = sum(len(s.risk_averse) / len(s.option_labels) for s in situations) / len(situations)
    lines = [sum(len(s.option_labels) > j and s.option_labels[j] in s.risk_averse for s in situations) for j in range(5)]
    last = sum(s.option_labels[-1] in s.risk_averse for s in situations)
    return max(expected, *(count / len(situations) for count in (*lines, last)))


def outcomes(rows: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    """{(sheet, situation_id): CSV row} of the first sample of each situation."""
    return {(row["sheet"], row["situation_id"]): row for row in rows if row["sample"] in ("0", "")}


def holm(p_values: dict[str, float]) -> dict[str, float]:
    """Holm's step-down adjusted p-values (family-wise error rate)."""
    ordered = sorted(p_values, key=p_values.get)
    adjusted, running = {}, 0.0
    for rank, key in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - rank) * p_values[key]))
        adjusted[key] = running
    return adjusted


def load(out: Path, kind: str, models=MODELS) -> dict[str, tuple[dict, dict]]:
    """{model: (report, outcomes)} of one evaluation kind, for those of `models` evaluated so far."""
    found = {}
    for model in models:
        path = out / "evals" / f"{kind}-{model}.json"
        if path.is_file():
            found[model] = (json.loads(path.read_text(encoding="utf-8")), outcomes(csv_rows(path.with_suffix(".csv"))))
    return found


def risk_averse_count(situations, rows) -> tuple[int, int]:
    """(risk-averse choices, situations scored) among `situations`."""
    keys = [(s.sheet, s.situation_id) for s in situations if (s.sheet, s.situation_id) in rows]
    return sum(rows[k]["category"] == "risk_averse" for k in keys), len(keys)


def rate_cell(situations, rows) -> str:
    hits, n = risk_averse_count(situations, rows)
    return interval(hits / n, list(wilson_interval(hits, n))) if n else "–"


def paired(situations, base_rows, rows) -> tuple[str, float]:
    keys = [(s.sheet, s.situation_id) for s in situations if (s.sheet, s.situation_id) in rows and (s.sheet, s.situation_id) in base_rows]
    table = PairedTable.from_pairs([base_rows[k]["category"] == "risk_averse" for k in keys],
                                   [rows[k]["category"] == "risk_averse" for k in keys])
    difference, (low, high) = paired_difference_interval(table)
    return f"{difference:+.2f} [{low:+.2f}, {high:+.2f}]", mcnemar_exact(table)


def rates_tables(kind: str, evaluated: dict, situations) -> list[str]:
    scored = {(s.sheet, s.situation_id) for _, rows in evaluated.values() for s in situations if (s.sheet, s.situation_id) in rows}
    used = groups([s for s in situations if (s.sheet, s.situation_id) in scored])
    columns = [name for name, members in used.items() if members]
    reference = {name: position_reference(used[name]) for name in columns}
    lines = [f"### {KINDS[kind]}\n", "Risk-averse rate, 95% Wilson interval:\n",
             "| model | " + " | ".join(f"{c} (n={len(used[c])})" for c in columns) + " |", "|---|" + "---|" * len(columns),
             "| position-only chooser | " + " | ".join(f"{reference[c]:.2f}" for c in columns) + " |"]
    for model, (_, rows) in evaluated.items():
        lines.append(f"| {model} | " + " | ".join(rate_cell(used[c], rows) for c in columns) + " |")
    if "base" in evaluated and len(evaluated) > 1:
        family = {(model, c): paired(used[c], evaluated["base"][1], rows)
                  for model, (_, rows) in evaluated.items() if model != "base" for c in columns}
        primary = holm({key: p for key, (_, p) in family.items() if key[1] in ("all", *STAKES)})
        lines += ["", "Paired difference against the base (Newcombe 95% interval), McNemar p; in the `all` and "
                  "stake-level columns also Holm's adjusted p over those columns and arms:\n",
                  "| model − base | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for model in [m for m in evaluated if m != "base"]:
            cells = []
            for c in columns:
                text, p = family[(model, c)]
                cells.append(f"{text} p={p:.2g}" + (f" (Holm {primary[(model, c)]:.2g})" if (model, c) in primary else ""))
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def category_table(evaluated: dict) -> list[str]:
    lines = ["| model | risk-neutral | too risk-averse | other | invalid | implied α [95% profile interval] | verdict vs 0.01 |",
             "|---|---|---|---|---|---|---|"]
    for model, (report, _) in evaluated.items():
        entry = report["models"][0]
        alpha = entry["alpha"]
        if alpha.get("estimate") is None:
            implied = f"– ({alpha.get('reason')})"
        else:
            bounds = set(alpha.get("at_bounds") or [])
            mark = {name: "*" if name in bounds else "" for name in ("estimate", "interval_low", "interval_high")}
            low, high = alpha["interval"]
            implied = f"{alpha['estimate']:.3g}{mark['estimate']} [{low:.3g}{mark['interval_low']}, {high:.3g}{mark['interval_high']}]"
        rates = entry["rates"]
        lines.append(f"| {model} | {rates['risk_neutral']:.2f} | {rates['too_risk_averse']:.2f} | {rates['other']:.2f} "
                     f"| {rates['invalid']:.2f} | {implied} | {alpha.get('verdict', '–')} |")
    return lines


def line_table(evaluated: dict, situations) -> list[str]:
    """Share of situations in which each model names the first, the second, ... and the last option line."""
    by_key = {(s.sheet, s.situation_id): s for s in situations}
    lines = ["| model | line 1 | line 2 | line 3 | line 4 | line 5 | last line |", "|---|---|---|---|---|---|---|"]

    def shares(places: list[tuple[int, int]]) -> str:
        counts = [sum(index == j for index, _ in places) / len(places) for j in range(5)]
        last = sum(index == n - 1 for index, n in places) / len(places)
        return " | ".join(f"{c:.2f}" for c in counts) + f" | {last:.2f}"

    for model, (_, rows) in evaluated.items():
        places = [(by_key[k].option_labels.index(row["choice"]), len(by_key[k].option_labels))
                  for k, row in rows.items() if row["choice"] in by_key[k].option_labels]
        lines.append(f"| {model} | {shares(places)} |")
    keys = next(iter(evaluated.values()))[1].keys()
    averse = [(by_key[k].option_labels.index(by_key[k].risk_averse[0]), len(by_key[k].option_labels)) for k in keys]
    lines.append(f"| where the risk-averse option sits | {shares(averse)} |")
    return lines


def choice_analysis(situations, rows) -> tuple[dict, object]:
    """(rule agreement, conditional logit) of one model's choices (riskdpo.evaluation.features)."""
    lines_chosen = chosen_lines(situations, {key: row["choice"] or None for key, row in rows.items()})
    return rule_agreement(situations, lines_chosen), fit_choice_logit(situations, lines_chosen)


def feature_tables(evaluated: dict, situations) -> list[str]:
    """Rule agreement and the conditional logit of each model's choices (riskdpo.evaluation.features)."""
    names = {"cara": "CARA best", "ev_best": "EV best", "least_spread": "least spread", "sure": "sure option",
             "no_loss": "cannot lose", "first_line": "first line", "last_line": "last line"}
    fits, agreements = {}, {}
    for model, (_, rows) in evaluated.items():
        agreements[model], fits[model] = choice_analysis(situations, rows)
    cara = [min(rule_lines(s)["cara"]) for s in situations]
    agreements["CARA agent (α = 0.01)"] = rule_agreement(situations, cara)
    lines = ["Share of choices a rule would make, where the rule applies (n situations):\n",
             "| chooser | " + " | ".join(f"{names[r]} (n={agreements['CARA agent (α = 0.01)'][r].n})" for r in RULES) + " |",
             "|---|" + "---|" * len(RULES)]
    for model, agreement in agreements.items():
        lines.append(f"| {model} | " + " | ".join(f"{agreement[r].rate:.2f}" for r in RULES) + " |")
    lines += ["", "Conditional logit of the choices on the options' features (coefficient [95% Wald interval]; "
              "ev and sd in units of the situation's largest prize):\n",
              "| model | " + " | ".join(FEATURES) + " |", "|---|" + "---|" * len(FEATURES)]
    for model, fit in fits.items():
        cells = [f"{c:+.2f} [{fit.interval(f)[0]:+.2f}, {fit.interval(f)[1]:+.2f}]" for f, c in zip(FEATURES, fit.coef)]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return lines


def reasoning_details(evaluated: dict) -> list[str]:
    lines = ["| model | invalid | why (counts) | mean new tokens | cut at the token limit |", "|---|---|---|---|---|"]
    for model, (report, rows) in evaluated.items():
        entry = report["models"][0]
        tokens = [int(row["new_tokens"]) for row in rows.values() if row["new_tokens"]]
        cut = sum(row["truncated"] in ("True", "true", "1") for row in rows.values())
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(entry.get("invalid_reasons", {}).items())) or "–"
        lines.append(f"| {model} | {entry['rates']['invalid']:.2f} | {reasons} | {sum(tokens) / max(len(tokens), 1):.0f} "
                     f"| {cut / max(len(rows), 1):.2f} |")
    return lines


def step_grades(evaluated: dict, situations) -> list[str]:
    """How the steps of each model's worked answers check out (riskdpo.evaluation.reasoning_grades)."""
    by_key = {(s.sheet, s.situation_id): s for s in situations}
    steps = ("options_covered", "copied", "ev_right", "ce_right", "follows_own_numbers")
    lines = ["| model | answers | with option lines | every option, once | lotteries copied | EV right | CE right "
             "| picks the highest CE it wrote |", "|---|---|---|---|---|---|---|---|"]
    for model, (_, rows) in evaluated.items():
        grades = [grade_answer(by_key[key], row["answer"]) for key, row in rows.items()]
        written = [grade for grade in grades if grade.options_written]
        summary = summarize_grades(written) if written else {}
        cells = [f"{summary[step]:.2f} (n={summary[step + '_n']})" if written else "–" for step in steps]
        lines.append(f"| {model} | {len(grades)} | {len(written)} | " + " | ".join(cells) + " |")
    return lines


def finished_run(out: Path, arm: str) -> dict | None:
    """OUT/ARM/run.json when the arm's training finished, else None."""
    path = out / arm / "run.json"
    run = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    return run if run and run["status"] == "finished" else None


def train_minutes(run: dict) -> float:
    """Wall minutes of reference log-probs, SFT warm-up and training (model loading excluded)."""
    timings = run["timings"]
    return (timings.get("reference_seconds", 0) + timings["train_seconds"] + timings.get("sft_seconds", 0)) / 60


def training_fit(out: Path, arm: str, run: dict) -> tuple[float, dict]:
    """(mean train reward accuracy, or SFT loss, over the last quarter of steps; the last validation record)."""
    log = read_training_log(out / arm / "metrics.jsonl")
    quarter = log.train[-max(1, len(log.train) // 4):]
    key = "rewards/accuracy" if run["config"]["objective"] == "dpo" else "loss"
    return sum(row[key] for row in quarter) / len(quarter), (log.val[-1] if log.val else {})


def training_table(out: Path, arms=ARMS) -> list[str]:
    """One row per finished arm: data, steps, fit, and minutes from its run.json (model loading excluded)."""
    lines = ["| arm | objective | pairs | epochs | steps | last-quarter train reward acc / loss | val reward acc | val loss "
             "| minutes (reference + training) |", "|---|---|---|---|---|---|---|---|---|"]
    for arm in arms:
        run = finished_run(out, arm)
        if run is None:
            continue
        config = run["config"]
        fit, final = training_fit(out, arm, run)
        objective = config["objective"] + (f", β {config['beta']}" if config["objective"] == "dpo" else "")
        objective += f", NLL × {config['nll_weight']}" if config["nll_weight"] else ""
        lines.append(f"| {arm} | {objective} | {run['dataset']['used']} | {config['epochs']} | {run['steps']} | {fit:.2f} "
                     f"| {final.get('rewards/accuracy', float('nan')):.2f} | {final.get('loss', float('nan')):.3f} "
                     f"| {train_minutes(run):.0f} |")
    return lines


def figure(evaluated: dict, situations, path: Path, ylabel: str) -> None:
    """Risk-averse rate with its interval per stake level, one marker per model; the
    position-only chooser's rate on the same situations as a dashed line per stake level."""
    from matplotlib.figure import Figure

    scored = {key for _, rows in evaluated.values() for key in rows}
    used = groups([s for s in situations if (s.sheet, s.situation_id) in scored])
    levels = [level for level in ("all", *STAKES) if used[level]]
    fig = Figure(figsize=(9, 4.2))
    axis = fig.subplots()
    width = 0.8 / len(evaluated)
    for number, (model, (_, rows)) in enumerate(evaluated.items()):
        xs, ys, below, above = [], [], [], []
        for position, level in enumerate(levels):
            hits, n = risk_averse_count(used[level], rows)
            low, high = wilson_interval(hits, n)
            xs.append(position - 0.4 + width * (number + 0.5))
            ys.append(hits / n)
            below.append(ys[-1] - low)
            above.append(high - ys[-1])
        axis.errorbar(xs, ys, yerr=[below, above], fmt="o", capsize=3, label=model)
    for position, level in enumerate(levels):
        axis.hlines(position_reference(used[level]), position - 0.45, position + 0.45, colors="0.4", linestyles="--",
                    label="position-only chooser" if position == 0 else None)
    axis.set_xticks(range(len(levels)), [f"{level}\n(n={len(used[level])})" for level in levels])
    axis.set_ylabel(ylabel)
    axis.set_ylim(0, 1)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def above_reference(situations, rows) -> list[str]:
    """The groups (all, stake levels) where the rate's 95% interval lies wholly above the position-only chooser's."""
    used = groups([s for s in situations if (s.sheet, s.situation_id) in rows])
    found = []
    for level in ("all", *STAKES):
        hits, n = risk_averse_count(used[level], rows)
        if n and wilson_interval(hits, n)[0] > position_reference(used[level]):
            found.append(level)
    return found


def summary_table(out: Path, evaluations: dict[str, dict], shuffled) -> list[str]:
    """One row per model: its cost, its headline rates, and where it clears the position-only chooser."""
    kinds = {kind: evaluations[kind] for kind in ("shuffled", "reasoning", "reasoning_fresh")}
    minutes = {arm: f"{run['dataset']['used']} pairs, {run['steps']} steps, {train_minutes(run):.0f} min"
               for arm in ARMS if (run := finished_run(out, arm))}
    lines = ["| model | training | label, shuffled (900) | Δ vs base | implied α | reasoning, shuffled (sample 150) "
             "| reasoning (fresh 150) | interval above the position-only chooser |", "|---|---|---|---|---|---|---|---|"]
    for model in [m for m in MODELS if any(m in found for found in kinds.values())]:
        cells = [minutes.get(model, "–")]
        for kind in kinds:
            if model not in kinds[kind]:
                cells += ["–"] * (3 if kind == "shuffled" else 1)
                continue
            report, rows = kinds[kind][model]
            cells.append(rate_cell([s for s in shuffled if (s.sheet, s.situation_id) in rows], rows))
            if kind == "shuffled":
                base = kinds[kind].get("base")
                cells.append(paired(shuffled, base[1], rows)[0] if base and model != "base" else "–")
                alpha = report["models"][0]["alpha"]
                cells.append("–" if alpha.get("estimate") is None else
                             f"{alpha['estimate']:.2g}{'*' if 'estimate' in (alpha.get('at_bounds') or []) else ''} ({alpha['verdict']})")
        clears = [f"{kind.replace('_', ' ')}: {', '.join(found)}" for kind in kinds if model in kinds[kind]
                  and (found := above_reference(shuffled, kinds[kind][model][1]))]
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {'; '.join(clears) or 'nowhere'} |")
    return lines


def kind_tables(kind: str, evaluated: dict, situations) -> tuple[list[str], list]:
    """The tables of one kind of evaluation (rates, answer categories, option lines, for
    reasoning the worked answers and their steps, and with shuffled lotteries the choice
    features); also the situations every table was computed on (for a figure): with
    shuffled lotteries, those some model was scored on."""
    lines = rates_tables(kind, evaluated, situations) + [""] + category_table(evaluated) + [""]
    lines += ["Option line named (share of situations with a valid answer):", ""] + line_table(evaluated, situations) + [""]
    if kind.startswith("reasoning"):
        lines += reasoning_details(evaluated) + [""]
        lines += ["The steps of the worked answers, graded against the lotteries (share of answers with option lines):", ""]
        lines += step_grades(evaluated, situations) + [""]
    if kind != "written":  # lotteries shuffled: features and positions are not confounded
        scored_keys = {key for _, rows in evaluated.values() for key in rows}
        situations = [s for s in situations if (s.sheet, s.situation_id) in scored_keys]
        lines += feature_tables(evaluated, situations) + [""]
    return lines, situations


def main(out_dir: str, figure_dir: str | None = None) -> None:
    out = Path(out_dir)
    held_out = [s for s in read_eval_situations(out / "heldout.json") if s.sheet.startswith(("test_", "held_"))]
    shuffled = shuffle_all(held_out, 0)
    evaluations = {kind: load(out, kind) for kind in KINDS}
    print("### summary\n\n" + "\n".join(summary_table(out, evaluations, shuffled)) + "\n")
    print("### training\n\n" + "\n".join(training_table(out)) + "\n")
    for kind, evaluated in evaluations.items():
        if not evaluated:
            continue
        lines, scored = kind_tables(kind, evaluated, held_out if kind == "written" else shuffled)
        print("\n".join(lines))
        if kind == "shuffled" and figure_dir:
            figure(evaluated, scored, Path(figure_dir) / "round2_shuffled.png", "risk-averse rate: label, lotteries shuffled")
        if kind == "reasoning" and figure_dir:
            figure(evaluated, shuffled, Path(figure_dir) / "round2_reasoning.png", "risk-averse rate: reasoning, shuffled")

if __name__ == "__main__":
    main(*(sys.argv[1:3] or ["results-round2"]))
