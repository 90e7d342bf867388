"""The round-three tables and figure of RESULTS.md from experiments/round3.sh's output.

    python experiments/round3_summary.py OUT_DIR [FIGURE_DIR] [ROUND2_DIR] > tables.md

ROUND2_DIR (default experiments/round2_outputs) gives the held-out situations (round3.sh
copies the same heldout.json into OUT_DIR) and round two's report of the base model, which
is shown beside round three's only to say what the change of label rule did. Every model
compared here, the base and the seed-0 run of the 288-situation arm (round two's arm 2
trained again) included, is from OUT_DIR: round two scored labels by log p(label tokens,
EOS), round three scores each label as a complete answer (riskdpo.evaluation.choices), and
a difference between two models is measured under one rule. Every measure is round two's
(experiments/round2_summary.py, whose functions this reuses): label by log-probability on
the 900 held-out situations, lotteries shuffled over the option lines.

What counts as "the rule appeared" was fixed in RESULTS.md before any model was scored:
(1) the conditional logit's ev coefficient has a 95% interval wholly above 0, or sd's
wholly below 0, and (2) the risk-averse rate's 95% Wilson interval lies wholly above the
CARA-best rate of the best single-rule chooser. A single-rule chooser picks uniformly
among the lines rule r names, R_r(s), and among all n_s lines where the rule names none
or all, so its expected CARA-best rate on situations S is

    rate_r = (1/|S|) sum_s |R_r(s) ∩ C(s)| / |R_r(s)|,   C(s) = the CARA-best lines.

With (1) alone the rule "started to appear". A size moved a measure when its value lies
outside the range of the three 288-situation seeds' values.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from round2_summary import (
    STAKES,
    choice_analysis,
    finished_run,
    groups,
    kind_tables,
    load,
    paired,
    position_reference,
    risk_averse_count,
    training_fit,
    training_table,
)

from riskdpo.data.shuffle import shuffle_all
from riskdpo.evaluation.evaluate import read_eval_situations
from riskdpo.evaluation.features import rule_lines, scorable
from riskdpo.evaluation.stats import wilson_interval

ROUND2 = Path(__file__).resolve().parent / "round2_outputs"
#: The rules a single-rule chooser may follow (riskdpo.evaluation.features.rule_lines), as the tables name them.
SINGLE_RULES = {"ev_best": "highest EV", "least_spread": "least spread", "sure": "sure option",
                "no_loss": "cannot lose", "first_line": "first line", "last_line": "last line"}


@dataclass(frozen=True)
class Arm:
    """A label-DPO run of the scaling curve: its name (of its run folder and evals in OUT_DIR) and its data."""

    name: str
    situations: int
    seed: int


ARMS = (
    Arm("label_dpo_balanced_100", 100, 0),
    Arm("label_dpo_balanced_seed0", 288, 0),
    Arm("label_dpo_balanced_seed1", 288, 1),
    Arm("label_dpo_balanced_seed2", 288, 2),
    Arm("label_dpo_balanced_1000", 1000, 0),
    Arm("label_dpo_balanced_3000", 3000, 0),
)
#: Round two's arm 3 (SFT on verified reasoning), retrained in round three as arm 4's start and reference.
ARM3 = "cot_sft"
#: Round two's arm 4 (DPO + NLL on reasoning pairs), run in round three from the retrained arm 3.
ARM4 = "cot_sft_dpo_nll"


def single_rule_rates(situations) -> dict[str, float]:
    """Each single-rule chooser's expected CARA-best rate on `situations` (module docstring)."""
    rates = {}
    usable = [s for s in situations if scorable(s)]
    for rule in SINGLE_RULES:
        total = 0.0
        for situation in usable:
            lines = rule_lines(situation)
            named = lines[rule] or set(range(len(situation.option_labels)))
            total += len(named & lines["cara"]) / len(named)
        rates[rule] = total / len(usable)
    return rates


def verdict(low: float, fit, best_rule_rate: float) -> str:
    """"appeared", "started to appear" or "no", by the criteria fixed in RESULTS.md."""
    weighted = fit.interval("ev")[0] > 0 or fit.interval("sd")[1] < 0
    if weighted and low > best_rule_rate:
        return "appeared"
    return "started to appear" if weighted else "no"


def coefficient(fit, feature: str) -> str:
    low, high = fit.interval(feature)
    return f"{fit.coef[fit.features.index(feature)]:+.2f} [{low:+.2f}, {high:+.2f}]"


def scaling_table(arms, evaluated, situations, out: Path, best_rule: tuple[str, float]) -> list[str]:
    """One row per arm: data, fit, the shuffled rate overall and per stake level, Δ vs base, the logit, the verdict."""
    used = groups(situations)
    base_rows = evaluated["base"][1]
    header = ("| arm | situations | pairs (per situation) | steps | train / val reward acc | rate, all | "
              + " | ".join(STAKES) + " | Δ vs base | ev | sd | sure | loss | first | last | CARA / least spread / sure / "
              "cannot lose agreement | implied α | the rule |")
    lines = [header, "|---" * (header.count("|") - 1) + "|"]
    for arm in arms:
        if arm.name not in evaluated:
            continue
        rows = evaluated[arm.name][1]
        hits, n = risk_averse_count(situations, rows)
        low, high = wilson_interval(hits, n)
        agreement, fit = choice_analysis(situations, rows)
        run = finished_run(out, arm.name)
        train_fit, val = training_fit(out, arm.name, run)
        pairs = run["dataset"]["used"]
        alpha = evaluated[arm.name][0]["models"][0]["alpha"]
        implied = "–" if alpha.get("estimate") is None else \
            f"{alpha['estimate']:.2g}{'*' if 'estimate' in (alpha.get('at_bounds') or []) else ''}"
        stakes = []
        for level in STAKES:
            level_hits, level_n = risk_averse_count(used[level], rows)
            stakes.append(f"{level_hits / level_n:.2f}")
        agree = " / ".join(f"{agreement[r].rate:.2f}" for r in ("cara", "least_spread", "sure", "no_loss"))
        lines.append(
            f"| {arm.name} | {arm.situations} | {pairs} ({pairs / arm.situations:.1f}) | {run['steps']} "
            f"| {train_fit:.2f} / {val.get('rewards/accuracy', float('nan')):.2f} | {hits / n:.2f} [{low:.2f}, {high:.2f}] | "
            + " | ".join(stakes) + f" | {paired(situations, base_rows, rows)[0]} | "
            + " | ".join(coefficient(fit, f) for f in ("ev", "sd", "sure", "loss", "first", "last"))
            + f" | {agree} | {implied} | {verdict(low, fit, best_rule[1])} |")
    return lines


def seed_spread(arms, evaluated, situations) -> list[str]:
    """The three 288-situation seeds: mean, standard deviation and range of the rate and the coefficients."""
    seeds = [arm for arm in arms if arm.situations == 288 and arm.name in evaluated]
    if len(seeds) < 2:
        return []
    measures: dict[str, list[float]] = {"rate, all": [], **{f"rate, {level}": [] for level in STAKES},
                                        "ev": [], "sd": [], "sure": [], "loss": [], "first": [], "last": []}
    used = groups(situations)
    for arm in seeds:
        rows = evaluated[arm.name][1]
        hits, n = risk_averse_count(situations, rows)
        measures["rate, all"].append(hits / n)
        for level in STAKES:
            level_hits, level_n = risk_averse_count(used[level], rows)
            measures[f"rate, {level}"].append(level_hits / level_n)
        fit = choice_analysis(situations, rows)[1]
        for feature in ("ev", "sd", "sure", "loss", "first", "last"):
            measures[feature].append(fit.coef[fit.features.index(feature)])
    lines = ["| measure | " + " | ".join(f"seed {arm.seed}" for arm in seeds) + " | mean | SD | range (max − min) |",
             "|---|" + "---|" * (len(seeds) + 3)]
    for name, values in measures.items():
        shown = "{:.2f}" if name.startswith("rate") else "{:+.2f}"
        lines.append(f"| {name} | " + " | ".join(shown.format(v) for v in values)
                     + f" | {shown.format(statistics.mean(values))} | {statistics.stdev(values):.2f} | {max(values) - min(values):.2f} |")
    return lines


def scaling_figure(arms, evaluated, situations, best_rule: tuple[str, float], path: Path) -> None:
    """Left: the shuffled risk-averse rate (95% Wilson interval) against training situations, with the
    base, the position-only chooser and the best single-rule chooser; right: the ev and sd coefficients
    (95% Wald intervals). Log x; the 288-situation seeds are spread a little sideways."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4))
    rate_axis, coef_axis = fig.subplots(1, 2)
    spread = {0: 0.94, 1: 1.0, 2: 1.06}
    labelled: set[str] = set()  # the coefficients named in the legend once
    for arm in [a for a in arms if a.name in evaluated]:
        rows = evaluated[arm.name][1]
        x = arm.situations * (spread.get(arm.seed, 1.0) if arm.situations == 288 else 1.0)
        hits, n = risk_averse_count(situations, rows)
        low, high = wilson_interval(hits, n)
        rate_axis.errorbar([x], [hits / n], yerr=[[hits / n - low], [high - hits / n]], fmt="o", color="C0", capsize=3)
        fit = choice_analysis(situations, rows)[1]
        for offset, (feature, colour) in enumerate((("ev", "C1"), ("sd", "C2"))):
            value = fit.coef[fit.features.index(feature)]
            low, high = fit.interval(feature)
            coef_axis.errorbar([x * (1.02 if offset else 0.98)], [value], yerr=[[value - low], [high - value]], fmt="o",
                               color=colour, capsize=3, label=None if feature in labelled else feature)
            labelled.add(feature)
    base_hits, base_n = risk_averse_count(situations, evaluated["base"][1])
    rate_axis.axhline(base_hits / base_n, color="0.5", linestyle=":", label="base model")
    rate_axis.axhline(position_reference(situations), color="0.4", linestyle="--", label="position-only chooser")
    rate_axis.axhline(best_rule[1], color="C3", linestyle="-.", label=f"best single rule ({SINGLE_RULES[best_rule[0]]})")
    coef_axis.axhline(0, color="0.4", linewidth=0.8)
    for axis, label in ((rate_axis, "risk-averse (CARA-best) rate, shuffled"), (coef_axis, "conditional-logit coefficient")):
        axis.set_xscale("log")
        axis.set_xticks([100, 288, 1000, 3000], ["100", "288", "1,000", "3,000"])
        axis.set_xlabel("training situations (label DPO, position-balanced)")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize="small")
    rate_axis.set_ylim(0, 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def rule_change(situations, old_rows, new_rows) -> str:
    """One sentence: the base model's rate under round two's label rule and under round three's, and the
    share of situations where the two rules pick the same option."""
    old_hits, n = risk_averse_count(situations, old_rows)
    new_hits, _ = risk_averse_count(situations, new_rows)
    same = sum(old_rows[key]["choice"] == row["choice"] for key, row in new_rows.items() if key in old_rows)
    return (f"The base model under round two's label rule (log p of the label's tokens then EOS): {old_hits / n:.2f}; "
            f"under round three's (each label a complete answer): {new_hits / n:.2f}; the two rules pick the same "
            f"option in {same} of {n} situations.")


def arm4_against_arm3(situations, evaluated) -> str:
    """One sentence: arm 4's paired difference from arm 3 on the situations both answered, the question
    arm 4 asks (does DPO + NLL on reasoning pairs add to SFT?)."""
    text, p = paired(situations, evaluated[ARM3][1], evaluated[ARM4][1])
    return f"{ARM4} − {ARM3}, paired (Newcombe 95% interval), McNemar p: {text} p={p:.2g}."


def main(out_dir: str, figure_dir: str | None = None, round2_dir: str | None = None) -> None:
    out, round2 = Path(out_dir), Path(round2_dir) if round2_dir else ROUND2
    held_out = [s for s in read_eval_situations(round2 / "heldout.json") if s.sheet.startswith(("test_", "held_"))]
    shuffled = shuffle_all(held_out, 0)
    rules = single_rule_rates(shuffled)
    best_rule = max(rules.items(), key=lambda item: item[1])
    evaluations = {}
    for kind in ("shuffled", "written"):
        evaluations[kind] = load(out, kind, ["base"] + [a.name for a in ARMS] + [ARM4])
    if "base" not in evaluations["shuffled"]:
        sys.exit(f"{out}/evals/shuffled-base.json: missing; run experiments/round3.sh {out} base")
    for kind in ("reasoning", "reasoning_fresh"):
        # base and cot_sft: round two's answers re-read by the current reader (round3.sh part reread),
        # not round two's reports, which an older reader wrote
        evaluations[kind] = load(out, kind, ("base", ARM3, ARM4))
    print("### the scaling curve (label by log-probability, lotteries shuffled, 900 held-out situations)\n")
    print("\n".join(scaling_table(ARMS, evaluations["shuffled"], shuffled, out, best_rule)) + "\n")
    print(rule_change(shuffled, load(round2, "shuffled", ("base",))["base"][1], evaluations["shuffled"]["base"][1]) + "\n")
    print("Single-rule choosers' expected CARA-best rate on the same situations (the bar of criterion 2): "
          + ", ".join(f"{SINGLE_RULES[r]} {v:.2f}" for r, v in sorted(rules.items(), key=lambda item: -item[1]))
          + f"; position-only chooser {position_reference(shuffled):.2f}.\n")
    spread = seed_spread(ARMS, evaluations["shuffled"], shuffled)
    if spread:
        seeds = ", ".join(str(a.seed) for a in ARMS if a.situations == 288 and a.name in evaluations["shuffled"])
        print(f"### seed variance (288 situations, 1,029 pairs, seeds {seeds})\n\n" + "\n".join(spread) + "\n")
    print("### training\n\n" + "\n".join(training_table(out, [a.name for a in ARMS] + [ARM3, ARM4])) + "\n")
    for kind, evaluated in evaluations.items():
        if not evaluated:
            continue
        print("\n".join(kind_tables(kind, evaluated, held_out if kind == "written" else shuffled)[0]))
        if ARM3 in evaluated and ARM4 in evaluated:
            print(arm4_against_arm3(shuffled, evaluated) + "\n")
    if figure_dir:
        scaling_figure(ARMS, evaluations["shuffled"], shuffled, best_rule, Path(figure_dir) / "round3_scaling.png")


if __name__ == "__main__":
    main(*(sys.argv[1:4] or ["results-round3"]))
