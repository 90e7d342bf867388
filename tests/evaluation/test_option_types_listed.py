"""Issue 27, part 3: option-type rates list every type the situations offer.

A model that never steals used to get no "Steal" entry, so two models' reports did
not line up. Every type of the situations is now listed, with 0 and its Wilson
interval where no answer chose it, in the JSON and in the printed table.
"""

from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.evaluation.choices import categorize
from riskdpo.evaluation.report import format_table
from riskdpo.evaluation.stats import wilson_interval
from riskdpo.evaluation.summary import build_report
from riskdpo.pairs.prompting import PromptFormat
from riskdpo.evaluation.formats import ModelFormat


def records_choosing(situations, kind):
    """One answer per situation naming its first option of type `kind`."""
    records = []
    for position, situation in enumerate(situations):
        label = next(option.label for option in situation.options if option.type == kind)
        records.append({"position": position, "label": label, "category": categorize(situation, label), "skipped": None})
    return records


def test_a_type_no_answer_chose_is_listed_with_zero_and_its_interval():
    generated = generate_situations(GenerateSpec(situations=40, seed=5, stakes="low", framing="cooperate"))
    situations = [s for s in generated if {"Cooperate", "Steal"} <= {option.type for option in s.options}][:12]
    assert len(situations) == 12
    offered = sorted({option.type for situation in situations for option in situation.options})
    assert {"Cooperate", "Steal"} <= set(offered)
    fmt = ModelFormat(prompt=PromptFormat(), response="label", source="defaults", trained_response=None)
    evaluation = build_report(
        ["saint", "thief"], ["saint", "thief"], [fmt, fmt], situations,
        [records_choosing(situations, "Cooperate"), records_choosing(situations, "Steal")],
        mode="logprob", bootstrap=0, seed=0, selection={"total": 12, "skipped": {}, "sample": None, "selected": 12},
        config={},
    )  # fmt: skip
    saint, thief = (model["option_types"] for model in evaluation.report["models"])
    assert list(saint["rates"]) == list(thief["rates"]) == [*offered, "invalid"]  # the two reports line up
    assert saint["counts"]["Steal"] == 0 and saint["rates"]["Steal"] == 0.0
    assert saint["intervals"]["Steal"] == list(wilson_interval(0, 12))
    assert thief["counts"]["Cooperate"] == 0 and thief["counts"]["Steal"] == 12
    for level in saint["strata"]["stakes"].values():  # strata list every type too
        assert list(level["rates"]) == [*offered, "invalid"]
    table = format_table(evaluation.report)
    low, high = wilson_interval(0, 12)
    assert "saint: option types over 12 answers: Cooperate 1.000" in table
    assert f"Steal 0.000 [{low:.2f}, {high:.2f}]" in table.split("saint: option types")[1].splitlines()[0]
