"""The eval-choices report from every model's scored answers.

Per model:

- **situations**: one choice per situation, its majority choice when several
  answers were sampled (`majority`), counted into the exclusive categories
  with 95% Wilson intervals (situations are independent); the cooperate rate,
  the mean risk-averse probability (logprob), the implied CARA coefficient
  (`riskdpo.evaluation.alpha`) and the same rates by stratum.
- **answers** (``--samples`` above 1): the rates over every sampled answer,
  with cluster-bootstrap intervals (`riskdpo.evaluation.stats.cluster_summary`:
  answers to one situation are not independent).
- **option types** (sheets with an ``option_type`` per option, e.g.
  Cooperate / Steal / Rebel): the share of answers choosing each type, plus
  ``invalid`` (no readable choice), overall and by stratum; Wilson intervals
  with one answer per situation, cluster bootstrap with several. Every type the
  situations offer is listed, chosen or not (0 with its interval).

Between models: the paired difference of risk-averse rates on the situations
both scored (Newcombe method 10) and McNemar's exact p-value.

Once per report, the **position-only chooser**: a chooser that always names the
option on line j of the prompt (whatever its lottery) is risk-averse in

    r_j = (1/S) * #{situations s with a line j whose label is a risk-averse best of s}

of the S situations; the reference drawn in the figure is max_j r_j, the best
rate reachable without reading the options (`position_chooser`).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from riskdpo.core.version import __version__
from riskdpo.core.errors import UserError
from riskdpo.data.situations import Situation
from riskdpo.evaluation.alpha import fit_alpha, utility_table
from riskdpo.evaluation.choices import CATEGORIES, categorize
from riskdpo.evaluation.stats import (
    PairedTable,
    cluster_summary,
    mcnemar_exact,
    paired_difference_interval,
    summarize_categories,
    wilson_interval,
)
from riskdpo.evaluation.strata import stratum_order, stratum_values

#: Answers shown per model in the report when they could not be parsed.
INVALID_EXAMPLES = 5
#: The option type of an answer without a readable choice.
NO_CHOICE = "invalid"
#: Replicates of the cluster bootstrap over situations (answers/option-type intervals with several samples).
#: Cheap (counts are resampled, nothing is refitted), so fixed rather than tied to the alpha --bootstrap.
CLUSTER_BOOTSTRAP = 2000

METHODS = {
    "choice": "logprob: argmax over options of log p(label | prompt) + log p(a token that ends the label | prompt, "
    "label), the ending tokens being EOS and every token not starting with a letter, digit, '_', '%', an apostrophe "
    "before a letter or '.'/',' before a digit (the label complete, whatever the tokenizer); generate: the label "
    "read from the answer by the parser's rules",
    "majority": "with several sampled answers per situation, the situation's choice is its most frequent answer "
    "(an unreadable answer counts as one more choice, 'invalid'); ties go to the tied choice sampled earliest",
    "categories": "exclusive, in precedence order: " + ", ".join(CATEGORIES),
    "intervals": "95% Wilson score intervals over situations",
    "answer_intervals": "rates over all sampled answers, sum_s k_s / sum_s n_s; 95% percentile interval of a "
    f"seeded cluster bootstrap ({CLUSTER_BOOTSTRAP} replicates) that resamples situations with all their answers",
    "difference": "b minus a in risk-averse rate on the situations both scored; 95% interval by Newcombe (1998) "
    "method 10 for paired proportions",
    "p_value": "McNemar's exact test: two-sided binomial(1/2) test on the discordant pairs",
    "alpha": "maximum-likelihood CARA coefficient of a logit choice model over stake-free certainty equivalents "
    "CE_j(alpha) / max|prize| with precision lam: grid over log alpha, then golden-section search with lam exact; "
    "95% profile-likelihood interval; at_bounds lists what sits on a bound of the fit; with --bootstrap N a "
    "seeded percentile bootstrap interval over situations as a check",
    "position_chooser": "r_j = share of situations whose option line j is a risk-averse best; reference = max_j r_j",
}


@dataclass
class Evaluation:
    """The report (JSON-ready) and one row per model, situation and answer for the CSV."""

    report: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def by_situation(records: Sequence[dict]) -> dict[int, list[dict]]:
    """Scored records grouped by situation position, each group in sample order."""
    groups: dict[int, list[dict]] = {}
    for record in sorted(records, key=lambda r: (r["position"], r.get("sample", 0))):
        if record["skipped"] is None:
            groups.setdefault(record["position"], []).append(record)
    return groups


def majority(situation: Situation, answers: Sequence[dict]) -> dict[str, Any]:
    """The situation's choice from its answers (see METHODS["majority"]) and its risk-averse share."""
    labels = [answer.get("label") for answer in answers]
    counts = Counter(labels)
    top = max(counts.values())
    label = next(label for label in labels if counts[label] == top)
    share = sum(answer["category"] == "risk_averse" for answer in answers) / len(answers)
    record = {"position": answers[0]["position"], "skipped": None, "label": label}
    record["category"] = categorize(situation, label)
    if len(answers) == 1:
        record = dict(answers[0])
    record["risk_averse_share"] = share
    return record


def option_type(situation: Situation, label: str | None) -> str | None:
    """The type of the option `label` names (``invalid`` without a choice; None for an untyped option)."""
    if label is None:
        return NO_CHOICE
    for option in situation.options:
        if option.label == label:
            return option.type
    return None


def _rates(records: Sequence[dict]) -> dict[str, Any]:
    """Counts, rates, Wilson intervals and mean risk-averse probability of one choice per situation."""
    summary = summarize_categories([record["category"] for record in records], CATEGORIES).to_json()
    probabilities = [record["risk_averse_prob"] for record in records if record.get("risk_averse_prob") is not None]
    summary["mean_risk_averse_prob"] = sum(probabilities) / len(probabilities) if probabilities else None
    return summary


def _clustered(clusters: Sequence[Sequence[str]], names: Sequence[str], seed: int) -> dict[str, Any]:
    """Rates of `names`: Wilson with one item per cluster, cluster bootstrap otherwise."""
    if all(len(cluster) == 1 for cluster in clusters):
        return summarize_categories([cluster[0] for cluster in clusters], names).to_json()
    return cluster_summary(clusters, names, CLUSTER_BOOTSTRAP, seed).to_json()


def _groups(situations: Sequence[Situation], positions: Sequence[int]) -> dict[str, dict[str, list[int]]]:
    """stratum -> value -> positions, strata and values in `stratum_order`."""
    groups: dict[str, dict[str, list[int]]] = {}
    for position in positions:
        for stratum, value in stratum_values(situations[position]).items():
            groups.setdefault(stratum, {}).setdefault(value, []).append(position)
    return {
        stratum: {value: values[value] for value in sorted(values, key=stratum_order)}
        for stratum, values in sorted(groups.items())
    }


def _option_types(situations, answers: dict[int, list[dict]], seed: int) -> dict[str, Any] | None:
    """Shares of answers choosing each option type, overall and by stratum (None where no option has a type).

    Every type some option of the situations has is listed, with 0 and its
    interval where no answer chose it, so the reports of two models line up.
    """
    typed = [position for position in answers if any(option.type for option in situations[position].options)]
    if not typed:
        return None
    clusters = {
        position: [str(option_type(situations[position], a.get("label"))) for a in answers[position]]
        for position in typed
    }
    offered = {option.type for situation in situations for option in situation.options if option.type}
    chosen = {name for cluster in clusters.values() for name in cluster}
    names = sorted((offered | chosen) - {NO_CHOICE}) + [NO_CHOICE]
    summary = _clustered(list(clusters.values()), names, seed)
    summary["strata"] = {
        stratum: {
            value: _clustered([clusters[p] for p in positions], names, seed)
            for value, positions in values.items()
        }
        for stratum, values in _groups(situations, typed).items()
    }
    return summary


def position_chooser(situations: Sequence[Situation]) -> dict[str, Any]:
    """Risk-averse rate of always naming option line j, for each j, and the best of them, overall and by stratum."""

    def rates(chosen: Sequence[Situation]) -> dict[str, float]:
        lines = max(len(situation.option_labels) for situation in chosen)
        return {
            str(line + 1): sum(
                line < len(s.option_labels) and s.option_labels[line] in s.risk_averse for s in chosen
            ) / len(chosen)
            for line in range(lines)
        }

    overall = rates(situations)
    best_line = max(overall, key=lambda line: (overall[line], -int(line)))
    strata = {
        stratum: {value: max(rates([situations[p] for p in positions]).values()) for value, positions in values.items()}
        for stratum, values in _groups(situations, range(len(situations))).items()
    }
    return {"rates": overall, "best_line": int(best_line), "best": overall[best_line], "strata": strata}


def _cooperate(situations: Sequence[Situation], records: Sequence[dict]) -> dict[str, Any] | None:
    """Rate of choosing a cooperate option where situations have cooperate labels."""
    framed = [record for record in records if situations[record["position"]].cooperate]
    if not framed:
        return None
    count = sum(record["label"] in situations[record["position"]].cooperate for record in framed)
    interval = wilson_interval(count, len(framed))
    return {"n": len(framed), "count": count, "rate": count / len(framed), "interval": list(interval)}


def _comparison(name_a: str, name_b: str, choices_a: dict[int, dict], choices_b: dict[int, dict]) -> dict[str, Any]:
    """Model b against model a on the situations both scored."""
    both = sorted(set(choices_a) & set(choices_b))
    table = PairedTable.from_pairs(
        [choices_a[p]["category"] == "risk_averse" for p in both],
        [choices_b[p]["category"] == "risk_averse" for p in both],
    )
    difference, interval = paired_difference_interval(table)
    return {
        "a": name_a,
        "b": name_b,
        "n": table.n,
        "risk_averse_diff": difference,
        "interval": list(interval),
        "p_value": mcnemar_exact(table),
        "table": asdict(table),
    }


def summarize_model(name, short, fmt, situations, records, table, bootstrap: int, seed: int):
    """One model's summary and its situation choices (position -> majority record)."""
    answers = by_situation(records)
    if not answers:
        reasons = Counter(record["skipped"] for record in records)
        raise UserError(f"{name}: no situation could be scored ({', '.join(reasons)})")
    choices = {position: majority(situations[position], group) for position, group in answers.items()}
    chosen = [choices[p]["label"] if p in choices else None for p in range(len(situations))]
    scored = list(choices.values())
    summary = {"model": name, "name": short, "prompt_format": fmt.to_json(), **_rates(scored)}
    samples = max(len(group) for group in answers.values())
    summary["samples"] = samples
    if samples > 1:
        clusters = [[answer["category"] for answer in group] for group in answers.values()]
        summary["answers"] = cluster_summary(clusters, CATEGORIES, CLUSTER_BOOTSTRAP, seed).to_json()
    summary["option_types"] = _option_types(situations, answers, seed)
    summary["cooperate"] = _cooperate(situations, scored)
    summary["alpha"] = fit_alpha(table, chosen, bootstrap=bootstrap, seed=seed).to_json()
    summary["skipped"] = dict(Counter(record["skipped"] for record in records if record["skipped"]))
    invalid = [answer for group in answers.values() for answer in group if answer["category"] == "invalid"]
    summary["invalid_reasons"] = dict(Counter(answer.get("invalid_reason") or "unknown" for answer in invalid))
    summary["unequal_label_tokens"] = sum(
        len(set(answer["label_tokens"].values())) > 1 for group in answers.values() for answer in group if answer.get("label_tokens")
    )
    summary["invalid_examples"] = [_where(situations[r["position"]], answer=r.get("answer")) for r in invalid][
        :INVALID_EXAMPLES
    ]
    summary["strata"] = {
        stratum: {value: _rates([choices[p] for p in positions]) for value, positions in values.items()}
        for stratum, values in _groups(situations, list(choices)).items()
    }
    return summary, choices


def build_report(models, names, formats, situations, records, *, mode, bootstrap, seed, selection, config):
    """The report and CSV rows from every model's records (positions index `situations`)."""
    table = utility_table(situations)
    summaries, all_choices, rows = [], [], []
    for name, short, fmt, model_records in zip(models, names, formats, records):
        summary, choices = summarize_model(name, short, fmt, situations, model_records, table, bootstrap, seed)
        summaries.append(summary)
        all_choices.append(choices)
        for record in sorted(model_records, key=lambda r: (r["position"], r.get("sample", 0))):
            rows.append(csv_row(name, situations[record["position"]], record, choices.get(record["position"])))
    comparisons = [_comparison(models[0], name, all_choices[0], other) for name, other in zip(models[1:], all_choices[1:])]
    report = {
        "command": "eval-choices",
        "version": __version__,
        "mode": mode,
        "config": config,
        "situations": selection,
        "categories": list(CATEGORIES),
        "methods": METHODS,
        "position_chooser": position_chooser(situations),
        "models": summaries,
        "comparisons": comparisons,
    }
    return Evaluation(report=report, rows=rows)


def _where(situation: Situation, **fields: Any) -> dict[str, Any]:
    """A situation's sheet and id, followed by `fields`."""
    return {"sheet": situation.sheet, "situation_id": situation.situation_id, **fields}


def csv_row(model: str, situation: Situation, record: dict, choice: dict | None = None) -> dict[str, Any]:
    """One CSV row: the situation, one answer's choice and evidence (or why it was skipped), the situation's choice."""
    label = record.get("label")
    kind = option_type(situation, label) if record.get("skipped") is None else None
    return {
        "model": model,
        **_where(situation),
        "sample": record.get("sample", 0),
        "choice": label or "",
        "category": record.get("category") or "skipped",
        "option_type": kind or "",
        "risk_averse": " ".join(situation.risk_averse),
        "risk_neutral": " ".join(situation.risk_neutral),
        "too_risk_averse": " ".join(situation.too_risk_averse),
        "logps": json.dumps(record["logps"]) if record.get("logps") else "",
        "label_tokens": json.dumps(record["label_tokens"]) if record.get("label_tokens") else "",
        "risk_averse_prob": "" if record.get("risk_averse_prob") is None else record["risk_averse_prob"],
        "answer": record.get("answer") or "",
        "answer_source": record.get("answer_source") or "",
        "rule": record.get("rule") or "",
        "invalid_reason": record.get("invalid_reason") or "",
        "reasoning_chars": record.get("reasoning_chars", ""),
        "new_tokens": record.get("new_tokens", ""),
        "truncated": record.get("truncated", ""),
        "situation_choice": (choice["label"] or "invalid") if choice else "",
        "situation_risk_averse_share": choice["risk_averse_share"] if choice else "",
        "skipped": record.get("skipped") or "",
    }
