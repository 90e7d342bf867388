"""The objectives beside plain DPO, on the tiny model: the length-normalised
sigmoid loss, DPO + NLL (RPO), SFT as a run of its own (with SIGKILL-exact
resume), and chat-template arguments that training stores for evaluation.
Each logged loss is recomputed from its formula on the final model."""

import json
import math
import signal
from pathlib import Path

import pytest
import torch

from helpers import choice_pairs, final_weights, pairs_path, read_jsonl, run_cli, tiny_model, with_chat_template  # noqa: F401
from riskdpo.evaluation.formats import FormatOverrides, model_format
from riskdpo.models.loading import load_model, load_tokenizer
from riskdpo.models.logps import pair_logps, tokenize_group
from riskdpo.pairs.prompting import PromptFormat, render_prompt
from riskdpo.training.config import TrainConfig
from riskdpo.training.loss import sft_loss
from riskdpo.training.metrics import read_metrics, without_timing
from riskdpo.training.run import train
from training_runs import OPTIONS, assert_resumed_from, one_error_line, records_through, signal_after_checkpoints, train_args

FAST = {"max_length": 128, "progress": False, "seed": 7}


def val_lines(run_dir: Path) -> list[dict]:
    return [r for r in read_jsonl(run_dir / "metrics.jsonl") if "val/loss" in r]


def train_lines(run_dir: Path) -> list[dict]:
    return [r for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]


def token_counts(tokenizer, pairs: list[dict]) -> torch.Tensor:
    """|y_c|, |y_r| of each pair, [N, 2], as training counts them."""
    return torch.tensor([[len(c) for c in tokenize_group(tokenizer, p["prompt"], [p["chosen"], p["rejected"]])[1]]
                         for p in pairs])


def final_logps(out: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(chosen, rejected) log-probs of the final model on the pairs as written (no chat template), and the counts."""
    tokenizer = load_tokenizer(str(out / "final-model"))
    chosen, rejected = pair_logps(load_model(str(out / "final-model")), tokenizer, choice_pairs())
    return chosen, rejected, token_counts(tokenizer, choice_pairs())


def reference_cache(run_dir: Path) -> dict:
    return torch.load(run_dir / "reference-logps.pt")["logps"]


def test_sigmoid_norm_trains_on_per_token_averages(tiny_model, pairs_path, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", str(pairs_path), "--val", str(pairs_path), "--output-dir", str(out),
                     "--model", str(tiny_model), "--loss", "sigmoid-norm", "--beta", "2", "--epochs", "4",
                     "--lr", "0.005", "--max-length", "128", "--no-progress", "--no-chat-template")
    assert result.returncode == 0, result.stderr[-3000:]
    chosen, rejected, counts = final_logps(out)
    reference = reference_cache(out)["val"]
    h_norm = (chosen - reference[:, 0]) / counts[:, 0] - (rejected - reference[:, 1]) / counts[:, 1]
    h_sum = (chosen - reference[:, 0]) - (rejected - reference[:, 1])
    expected = -torch.nn.functional.logsigmoid(2 * h_norm).mean().item()
    summed = -torch.nn.functional.logsigmoid(2 * h_sum).mean().item()
    last, first = val_lines(out)[-1], val_lines(out)[0]
    assert last["val/loss"] == pytest.approx(expected, rel=1e-3)
    assert abs(summed - expected) > 1e-2  # the averaging matters on these pairs
    assert last["val/rewards/chosen"] == pytest.approx(2 * ((chosen - reference[:, 0]) / counts[:, 0]).mean().item(),
                                                       rel=1e-3, abs=1e-4)
    assert first["val/loss"] == pytest.approx(math.log(2), abs=1e-4) and last["val/loss"] < first["val/loss"] - 0.05


def test_nll_weight_adds_the_chosen_nll_and_logs_it(tiny_model, pairs_path, tmp_path):  # noqa: F811
    out = tmp_path / "rpo"
    train(TrainConfig(dataset=str(pairs_path), val=str(pairs_path), output_dir=str(out), model=str(tiny_model),
                      chat_template=False, epochs=3, lr=5e-3, beta=0.5, nll_weight=0.7, **FAST))
    chosen, rejected, counts = final_logps(out)
    reference = reference_cache(out)["val"]
    h = (chosen - reference[:, 0]) - (rejected - reference[:, 1])
    nll = -chosen / counts[:, 0]
    last = val_lines(out)[-1]
    assert last["val/nll"] == pytest.approx(nll.mean().item(), rel=1e-3)
    expected = (-torch.nn.functional.logsigmoid(0.5 * h) + 0.7 * nll).mean().item()
    assert last["val/loss"] == pytest.approx(expected, rel=1e-3)
    lines = train_lines(out)
    assert all("nll" in line for line in lines) and lines[-1]["nll"] < lines[0]["nll"]  # the chosen answers gain


def test_nll_weight_zero_is_plain_dpo(tiny_model, pairs_path, tmp_path):  # noqa: F811
    runs = {}
    for name, extra in (("plain", {}), ("zero", {"nll_weight": 0.0})):
        out = tmp_path / name
        train(TrainConfig(dataset=str(pairs_path), val=str(pairs_path), output_dir=str(out), model=str(tiny_model),
                          epochs=2, lr=5e-3, **FAST, **extra))
        runs[name] = out
    plain, zero = ([without_timing(r) for r in read_jsonl(out / "metrics.jsonl")] for out in runs.values())
    assert plain == zero and not any("nll" in r or "val/nll" in r for r in plain)
    weights = [final_weights(out) for out in runs.values()]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])


# ---------------------------------------------------------------- SFT


def test_sft_objective_is_a_run_of_its_own(tiny_model, pairs_path, tmp_path):  # noqa: F811
    out = tmp_path / "sft"
    train(TrainConfig(dataset=str(pairs_path), val=str(pairs_path), output_dir=str(out), model=str(tiny_model),
                      objective="sft", chat_template=False, epochs=3, lr=5e-3, **FAST))
    assert (out / "final-model" / "config.json").exists() and not (out / "reference-logps.pt").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished" and run["config"]["objective"] == "sft" and "reference_seconds" not in run["timings"]
    lines = train_lines(out)
    assert [r["step"] for r in lines] == list(range(1, 13))
    for key in ("loss", "lr", "grad_norm", "epoch", "step", "tokens/s"):
        assert all(key in r for r in lines), key
    assert not any("rewards/accuracy" in r for r in lines)

    tokenizer = load_tokenizer(str(tiny_model))
    counts = token_counts(tokenizer, choice_pairs())[:, 0]
    base_chosen, _ = pair_logps(load_model(str(tiny_model)), tokenizer, choice_pairs())
    final_chosen, _, _ = final_logps(out)
    first, last = val_lines(out)[0], val_lines(out)[-1]
    assert first["step"] == 0 and first["val/loss"] == pytest.approx(sft_loss(base_chosen, counts).item(), rel=1e-4)
    assert last["val/loss"] == pytest.approx(sft_loss(final_chosen, counts).item(), rel=1e-3)
    assert last["val/loss"] < first["val/loss"] - 0.5  # it learned the chosen answers


def test_sft_objective_resumes_exactly_after_sigkill(tiny_model, pairs_path, tmp_path):  # noqa: F811
    interrupted = tmp_path / "interrupted"
    args = train_args(pairs_path, interrupted, tiny_model, "--objective", "sft")
    status, _, newest = signal_after_checkpoints(args, interrupted, signal.SIGKILL, checkpoints=1)
    assert status == -signal.SIGKILL and not (interrupted / "final-model").exists()
    assert max(r.get("step", 0) for r in read_metrics(interrupted / "metrics.jsonl")) > newest
    before = records_through(interrupted, newest)
    result = run_cli(*args, "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    assert_resumed_from(interrupted, newest, before)

    uninterrupted = tmp_path / "uninterrupted"
    train(TrainConfig(dataset=str(pairs_path), val=str(pairs_path), output_dir=str(uninterrupted),
                      model=str(tiny_model), objective="sft", progress=False, **OPTIONS))
    resumed, expected = final_weights(interrupted), final_weights(uninterrupted)
    assert all(torch.equal(resumed[key], expected[key]) for key in expected)
    assert ([without_timing(r) for r in read_jsonl(interrupted / "metrics.jsonl")]
            == [without_timing(r) for r in read_jsonl(uninterrupted / "metrics.jsonl")])
    assert not (interrupted / "reference-logps.pt").exists()


@pytest.mark.parametrize("options, fragments", [
    (("--objective", "sft", "--nll-weight", "0.5"), ("--nll-weight", "--objective sft")),
    (("--objective", "kto"), ("--objective kto", "dpo or sft")),
    (("--nll-weight", "-1"), ("--nll-weight -1",)),
    (("--chat-template-kwargs", "{oops"), ("--chat-template-kwargs",)),
])
def test_objective_options_are_checked(tiny_model, pairs_path, tmp_path, options, fragments):  # noqa: F811
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", str(pairs_path), "--output-dir", str(out), "--model", str(tiny_model),
                     *options)
    assert result.returncode == 2
    one_error_line(result.stderr, *fragments)
    assert not out.exists()


# ------------------------------------------------------ chat-template arguments


def thinking_model(model_dir: Path, target: Path) -> Path:
    """A copy of the tiny model whose chat template reads `enable_thinking`, as Qwen3's does."""
    thinking = "<assistant>{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}"
    return with_chat_template(model_dir, target, generation_prompt=thinking)


def test_chat_template_kwargs_reach_training_and_evaluation(tiny_model, pairs_path, tmp_path):  # noqa: F811
    model_dir = thinking_model(tiny_model, tmp_path / "thinking-model")
    out = tmp_path / "run"
    result = run_cli("train", "--dataset", str(pairs_path), "--output-dir", str(out), "--model", str(model_dir),
                     "--chat-template-kwargs", "enable_thinking=false", "--epochs", "1", "--max-length", "128",
                     "--no-progress")
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["chat_template_kwargs"] == {"enable_thinking": False}
    assert run["prompt_format"]["chat_template_kwargs"] == {"enable_thinking": False}

    evaluated = model_format(str(out / "final-model"), FormatOverrides()).prompt
    tokenizer = load_tokenizer(str(model_dir))
    prompt = choice_pairs()[0]["prompt"]
    assert render_prompt(tokenizer, prompt, evaluated).endswith("<assistant><think></think>")
    assert not render_prompt(tokenizer, prompt, PromptFormat()).endswith("</think>")

    # what training scored (its reference log-probs) is the pairs rendered as evaluation renders them
    def logps(fmt: PromptFormat) -> torch.Tensor:
        rendered = [{**p, "prompt": render_prompt(tokenizer, p["prompt"], fmt)} for p in choice_pairs()]
        return pair_logps(load_model(str(model_dir)), tokenizer, rendered)[0]

    trained = reference_cache(out)["train"][:, 0]
    assert torch.allclose(trained, logps(evaluated), atol=1e-5)
    assert not torch.allclose(trained, logps(PromptFormat()), atol=1e-3)
