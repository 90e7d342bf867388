"""Every model of one evaluation is scored at one precision, stated in the report and the
table, whatever precision each model is stored in: two real tiny models, one saved in fp32
and one in bf16."""

import pytest

from riskdpo.data.generate import GenerateSpec, generate_situations
from riskdpo.evaluation.evaluate import EvalOptions, evaluate_choices
from riskdpo.evaluation.report import format_table
from riskdpo.models.loading import load_model, shared_precision, stored_precision
from riskdpo.models.tiny import build_tiny_model


def situations():
    return generate_situations(GenerateSpec(situations=5, seed=3, sheet="low"))


@pytest.fixture(scope="module")
def two_dtypes(tmp_path_factory):
    """(a model stored in fp32, a model stored in bf16)."""
    root = tmp_path_factory.mktemp("dtypes")
    texts = [s.prompt for s in situations()]
    wide = build_tiny_model(root / "fp32-model", texts, seed=0)
    narrow = root / "bf16-model"
    build_tiny_model(root / "seed1", texts, seed=1)
    load_model(str(root / "seed1"), precision="bf16").save_pretrained(narrow)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (narrow / name).write_bytes((root / "seed1" / name).read_bytes())
    assert (stored_precision(str(wide)), stored_precision(str(narrow))) == ("fp32", "bf16")
    return str(wide), str(narrow)


def logps(evaluation, model):
    return [record["logps"] for record in evaluation.records[model]]


@pytest.mark.parametrize("asked, used", [("auto", "fp32"), ("bf16", "bf16")])
def test_every_model_is_scored_at_the_one_precision_of_the_evaluation(two_dtypes, asked, used):
    """Each model's log-probs in the joint evaluation equal those of the model scored alone
    at the evaluation's precision, and differ from those at the other precision."""
    both = evaluate_choices(list(two_dtypes), situations(), options=EvalOptions(precision=asked))
    assert both.report["precision"] == used
    assert f"every model scored in {used}" in format_table(both.report)
    other = "bf16" if used == "fp32" else "fp32"
    for model in two_dtypes:
        alone = evaluate_choices([model], situations(), options=EvalOptions(precision=used))
        elsewhere = evaluate_choices([model], situations(), options=EvalOptions(precision=other))
        assert logps(both, model) == logps(alone, model)
        assert logps(both, model) != logps(elsewhere, model)


def test_the_rule_for_auto(two_dtypes):
    """auto: fp32 on the CPU; on a GPU fp32 as soon as one model is stored in fp32 (a merged LoRA
    model, whose update bf16 would round away), so a bf16 base is never compared in bf16 with an
    fp32 model in fp32; an explicit precision is taken for all."""
    stored = [stored_precision(model) for model in two_dtypes]
    assert shared_precision("auto", "cpu", stored) == "fp32"
    assert shared_precision("auto", "cuda", stored) == "fp32"
    assert shared_precision("bf16", "cuda", stored) == "bf16"
    assert shared_precision("bf16", "cpu", ["bf16"]) == "bf16"
