"""DPO training on the tiny model: it learns the pairs, writes a plain model,
run.json, metrics.jsonl and an offline W&B run; LoRA, full, frozen-block and
warm-up paths; user errors as one line with exit status 2."""

import hashlib
import json
import math
import struct
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from helpers import choice_pairs, final_weights, pairs_path, read_jsonl, tiny_model, with_chat_template, write_pairs  # noqa: F401
from riskdpo.cli import main
from riskdpo.models.logps import pair_logps, tokenize_group
from riskdpo.training.metrics import DPO_KEYS
from riskdpo.models.loading import load_model, load_tokenizer
from riskdpo.pairs.prompting import PromptFormat, render_prompt
from riskdpo.training.config import TrainConfig
from riskdpo.training.run import train

FAST = {"max_length": 128, "progress": False}


def val_lines(run_dir: Path) -> list[dict]:
    return [r for r in read_jsonl(run_dir / "metrics.jsonl") if "val/loss" in r]


def train_lines(run_dir: Path) -> list[dict]:
    return [r for r in read_jsonl(run_dir / "metrics.jsonl") if "loss" in r]


def assert_learned(run_dir: Path) -> None:
    """Reward accuracy on the training pairs near 1 and the loss below its start."""
    first, last = val_lines(run_dir)[0], val_lines(run_dir)[-1]
    assert first["step"] == 0 and first["val/loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert last["val/rewards/accuracy"] >= 0.9
    assert last["val/loss"] < first["val/loss"] - 0.1


def reference_cache(run_dir: Path) -> dict:
    return torch.load(run_dir / "reference-logps.pt")["logps"]


# ------------------------------------------------------------- LoRA run


@pytest.fixture(scope="module")
def lora_run(tiny_model, pairs_path, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("lora") / "run"
    config = TrainConfig(dataset=str(pairs_path), output_dir=str(out), model=str(tiny_model), val=str(pairs_path),
                         epochs=5, lr=5e-3, seed=11, wandb_project="riskdpo-tests", **FAST)
    final = train(config)
    return out, final, config


@pytest.mark.floor  # a short train under the lowest supported transformers too
def test_lora_training_learns_the_pairs(lora_run):
    out, final, config = lora_run
    assert final == out / "final-model"
    assert_learned(out)
    lines = train_lines(out)
    assert [r["step"] for r in lines] == list(range(1, 5 * 4 + 1))  # 16 pairs / batch 4, 5 epochs
    assert set(lines[0]) == {*DPO_KEYS, "lr", "grad_norm", "epoch", "step", "pairs/s", "tokens/s"}
    assert lines[-1]["epoch"] == 5.0 and lines[-1]["lr"] < config.lr
    assert max(r["lr"] for r in lines) == pytest.approx(config.lr)  # warm-up reaches the peak, then decays


@pytest.mark.floor  # a short train under the lowest supported transformers too
def test_final_model_reproduces_the_last_validation(lora_run, tiny_model):  # noqa: F811
    """The merged final model and the cached reference give the logged val/ metrics."""
    out, final, config = lora_run
    tokenizer = load_tokenizer(str(final))
    pairs = choice_pairs()
    reference = reference_cache(out)["val"]
    base_chosen, base_rejected = pair_logps(load_model(str(tiny_model)), tokenizer, pairs)
    assert torch.allclose(reference[:, 0], base_chosen, atol=1e-4)  # LoRA disabled = the base model
    assert torch.allclose(reference[:, 1], base_rejected, atol=1e-4)
    chosen, rejected = pair_logps(load_model(str(final)), tokenizer, pairs)
    h = (chosen - reference[:, 0]) - (rejected - reference[:, 1])
    expected_loss = torch.nn.functional.softplus(-config.beta * h).mean().item()  # -log σ(βh)
    last = val_lines(out)[-1]
    assert last["val/loss"] == pytest.approx(expected_loss, rel=1e-3)
    assert last["val/rewards/accuracy"] == pytest.approx((h > 0).float().mean().item())
    assert last["val/logps/chosen"] == pytest.approx(chosen.mean().item(), rel=1e-4)


def test_final_model_is_a_plain_transformers_model(lora_run, tiny_model):  # noqa: F811
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, final, _ = lora_run
    model = AutoModelForCausalLM.from_pretrained(final)
    tokenizer = AutoTokenizer.from_pretrained(final)
    assert type(model).__name__ == "PhiForCausalLM"
    assert tokenizer.eos_token == load_tokenizer(str(tiny_model)).eos_token
    assert not (final / "adapter_config.json").exists()
    config_text = (final / "config.json").read_text()
    assert not any(word in config_text for word in ("peft", "lora", "adapter", "quantization_config"))
    weights = final_weights(out)
    assert not any("lora" in key for key in weights)
    base = load_model(str(tiny_model)).state_dict()
    assert set(weights) <= set(base)
    assert not torch.equal(weights["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"])
    assert torch.equal(weights["model.embed_tokens.weight"], base["model.embed_tokens.weight"])  # not a LoRA target


def test_run_json_records_configuration_versions_and_data(lora_run, pairs_path):  # noqa: F811
    out, _, config = lora_run
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "finished"
    assert run["config"]["lr"] == config.lr and run["config"]["epochs"] == 5 and run["config"]["lora"] is True
    assert set(run["versions"]) == {"torch", "transformers", "peft", "accelerate", "riskdpo"}
    assert run["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert run["prompt_format"] == {"chat_template": True, "system": None, "instruction": None}
    assert run["response"] == "label"
    assert run["dataset"]["sha256"] == hashlib.sha256(pairs_path.read_bytes()).hexdigest()
    assert run["dataset"]["pairs"] == 16 and run["dataset"]["used"] == 16
    assert run["world_size"] == 1 and run["global_batch_size"] == 4 and run["steps"] == 20
    assert run["timings"]["total_seconds"] > 0 and run["timings"]["finished"] >= run["timings"]["started"]


def wandb_records(path: Path):
    """Decode a .wandb file: a LevelDB-style log (32 KiB blocks of chunks with a
    7-byte header: crc32, length, kind) of wandb protobuf `Record`s."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[1:4] == b"W&B"
    position, block, pending = 7, 32768, b""
    while position + 7 <= len(data):
        left = block - position % block
        if left < 7:
            position += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[position : position + 7])
        if length == 0 and kind == 0:
            position += left
            continue
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_run_holds_the_logged_history(lora_run):
    out, _, _ = lora_run
    (run_file,) = (out / "wandb").glob("offline-run-*/run-*.wandb")
    assert run_file.stat().st_size > 0
    history = []
    for record in wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            history.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    logged = read_jsonl(out / "metrics.jsonl")
    assert len(history) == len(logged)
    for written, sent in zip(logged, history):
        assert sent["step"] == written["step"]
        for key in ("loss", "val/loss", "rewards/accuracy"):
            if key in written:
                assert sent[key] == pytest.approx(written[key])


def test_wandb_goes_online_only_with_credentials(monkeypatch, tmp_path):
    from riskdpo.training.metrics import wandb_mode

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")
    assert wandb_mode() == "offline"  # online without a key would prompt for one
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
    netrc.chmod(0o600)
    assert wandb_mode() == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert wandb_mode() == "offline"


# ------------------------------------------------- full fine-tuning paths


def test_full_fine_tuning_with_frozen_blocks_and_truncation(tiny_model, tmp_path):  # noqa: F811
    tokenizer = load_tokenizer(str(tiny_model))
    pairs = choice_pairs()
    prompt_lengths = sorted(len(tokenizer(p["prompt"]).input_ids) for p in pairs)
    max_length = prompt_lengths[len(pairs) // 2] + 2  # about half the prompts must lose their start
    too_long = {**pairs[0], "chosen": " ".join(["sure"] * (2 * max_length))}
    dataset = write_pairs(tmp_path / "pairs.json", pairs + [too_long])
    expected_truncated = sum(
        len(prompt) + max(map(len, completions)) > max_length
        for prompt, completions in (tokenize_group(tokenizer, p["prompt"], [p["chosen"], p["rejected"]]) for p in pairs)
    )
    out = tmp_path / "run"
    train(TrainConfig(dataset=str(dataset), output_dir=str(out), model=str(tiny_model), val=str(dataset), lora=False,
                      freeze_layers=1, gradient_checkpointing=True, epochs=5, lr=1e-3, scheduler="cosine",
                      weight_decay=0.01, max_length=max_length, progress=False))
    assert_learned(out)
    run = json.loads((out / "run.json").read_text())
    assert run["dataset"]["skipped_pairs"] == 1 and run["dataset"]["used"] == 16
    assert run["dataset"]["truncated_prompts"] == expected_truncated > 0
    weights, base = final_weights(out), load_model(str(tiny_model)).state_dict()
    frozen = [k for k in base if k.startswith(("model.embed_tokens.", "model.layers.0."))]
    trained = [k for k in base if k.startswith(("model.layers.1.", "lm_head."))]
    assert frozen and all(torch.equal(weights[k], base[k]) for k in frozen)
    assert all(not torch.equal(weights[k], base[k]) for k in trained if k.endswith("weight"))


def test_sft_warmup_becomes_the_reference_and_chat_template_is_kept(tiny_model, pairs_path, tmp_path):  # noqa: F811
    model_dir = with_chat_template(tiny_model, tmp_path / "chat-model")
    out = tmp_path / "run"
    system = "You are a careful decision maker."
    train(TrainConfig(dataset=str(pairs_path), output_dir=str(out), model=str(model_dir), sft_epochs=3, epochs=1,
                      lr=5e-3, system=system, **FAST))
    warmup = [r for r in read_jsonl(out / "metrics.jsonl") if "sft/loss" in r]
    assert [r["sft/step"] for r in warmup] == list(range(1, 13))
    assert warmup[-1]["sft/loss"] < warmup[0]["sft/loss"]

    tokenizer = load_tokenizer(str(model_dir))
    fmt = PromptFormat(chat_template=True, system=system)
    rendered = [{**p, "prompt": render_prompt(tokenizer, p["prompt"], fmt)} for p in choice_pairs()]
    assert rendered[0]["prompt"].startswith(f"<system>{system}\n<user>")
    sft_chosen, sft_rejected = pair_logps(load_model(str(out / "sft-model")), tokenizer, rendered)
    base_chosen, _ = pair_logps(load_model(str(model_dir)), tokenizer, rendered)
    reference = reference_cache(out)["train"]
    assert torch.allclose(reference[:, 0], sft_chosen, atol=1e-4) and torch.allclose(reference[:, 1], sft_rejected, atol=1e-4)
    assert (sft_chosen - base_chosen).mean() > 1.0  # the warm-up raised the chosen answers' likelihood

    final_tokenizer = load_tokenizer(str(out / "final-model"))
    assert final_tokenizer.chat_template == tokenizer.chat_template
    run = json.loads((out / "run.json").read_text())
    assert run["prompt_format"] == {"chat_template": True, "system": system, "instruction": None}


@pytest.mark.floor  # a short train under the lowest supported transformers too
def test_bf16_autocast_and_no_chat_template(tiny_model, pairs_path, tmp_path):  # noqa: F811
    model_dir = with_chat_template(tiny_model, tmp_path / "chat-model")
    out = tmp_path / "run"
    train(TrainConfig(dataset=str(pairs_path), output_dir=str(out), model=str(model_dir), epochs=1, lr=5e-3,
                      precision="bf16", chat_template=False, loss="robust", label_smoothing=0.1, **FAST))
    run = json.loads((out / "run.json").read_text())
    assert run["precision"] == "bf16" and run["prompt_format"]["chat_template"] is False
    # the LoRA update is merged and stored in fp32 (bf16 would round it away; riskdpo.training.lora)
    assert json.loads((out / "final-model" / "config.json").read_text())["dtype"] == "float32"
    assert all(math.isfinite(r["loss"]) for r in train_lines(out))
    # raw prompts, no template: the reference is the bf16 base on the pairs as written
    tokenizer = load_tokenizer(str(model_dir))
    chosen, _ = pair_logps(load_model(str(model_dir), precision="bf16"), tokenizer, choice_pairs())
    assert torch.allclose(reference_cache(out)["train"][:, 0], chosen, atol=0.1)
    templated = [{**p, "prompt": render_prompt(tokenizer, p["prompt"], PromptFormat())} for p in choice_pairs()]
    templated_chosen, _ = pair_logps(load_model(str(model_dir), precision="bf16"), tokenizer, templated)
    assert not torch.allclose(reference_cache(out)["train"][:, 0], templated_chosen, atol=0.1)


# --------------------------------------------------------------- the CLI


def invoke(*args: str):
    return CliRunner().invoke(main, ["train", *args])


def test_cli_config_file_aliases_and_ipo_on_per_token_averages(tiny_model, pairs_path, tmp_path):  # noqa: F811
    config_file = tmp_path / "dpo.yaml"
    config_file.write_text("loss: ipo\nbeta: 0.25\nepochs: 2\nlr: 0.005\nmax-length: 128\nseed: 5\n")
    out = tmp_path / "run"
    result = invoke("--config", str(config_file), "--dataset", str(pairs_path), "--val", str(pairs_path),
                    "--output_dir", str(out), "--model_name", str(tiny_model), "--batch_size", "4",
                    "--gradient_accumulation_steps", "2", "--lr", "0.01", "--no-progress")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(str(out / "final-model"))
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["loss"] == "ipo" and run["config"]["beta"] == 0.25 and run["config"]["seed"] == 5
    assert run["config"]["lr"] == 0.01  # the command line wins over the file
    assert run["config"]["grad_accum"] == 2 and run["global_batch_size"] == 8 and run["steps"] == 4

    # IPO works on per-token averages: recompute the last val/loss from the final model.
    tokenizer = load_tokenizer(str(out / "final-model"))
    pairs = choice_pairs()
    counts = torch.tensor([[len(c) for c in tokenize_group(tokenizer, p["prompt"], [p["chosen"], p["rejected"]])[1]] for p in pairs])
    reference = reference_cache(out)["val"]
    chosen, rejected = pair_logps(load_model(str(out / "final-model")), tokenizer, pairs)
    h = (chosen - reference[:, 0]) / counts[:, 0] - (rejected - reference[:, 1]) / counts[:, 1]
    expected = ((h - 1 / (2 * 0.25)) ** 2).mean().item()
    assert val_lines(out)[-1]["val/loss"] == pytest.approx(expected, rel=1e-3)
    assert val_lines(out)[0]["val/loss"] == pytest.approx(1 / (2 * 0.25) ** 2)  # h = 0 at the start


def test_non_finite_loss_stops_with_one_line_and_keeps_the_checkpoint(tiny_model, pairs_path, tmp_path):  # noqa: F811
    out = tmp_path / "run"
    # AdamW moves every weight by about lr per step: with lr = 1e30 the fp32 logits overflow.
    result = invoke("--dataset", str(pairs_path), "--output-dir", str(out), "--model", str(tiny_model), "--full",
                    "--lr", "1e30", "--warmup-steps", "0", "--save-every", "1", "--keep-checkpoints", "5",
                    "--max-length", "128", "--no-progress")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: training stopped: the loss became non-finite")
    assert "(micro-batches of rows × tokens: 4 × " in lines[0]  # the step's shape, batch 4
    checkpoints = sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    assert checkpoints and str(checkpoints[-1]) in lines[0]
    failed_step = int(lines[0].split(" at step ")[1].split()[0])
    assert int(checkpoints[-1].name.split("-")[1]) == failed_step - 1
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == list(range(1, failed_step))
    assert not (out / "final-model").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "failed" and run["error"] == lines[0].removeprefix("error: ")


def test_existing_checkpoints_need_resume(tiny_model, pairs_path, tmp_path):  # noqa: F811
    (tmp_path / "run" / "checkpoints" / "step-3").mkdir(parents=True)
    result = invoke("--dataset", str(pairs_path), "--output-dir", str(tmp_path / "run"), "--model", str(tiny_model))
    assert result.exit_code == 2 and "--resume" in result.stderr
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoints"]


BAD_RECORDS = {
    "missing.jsonl": None,
    "empty.jsonl": "",
    "no_rejected.jsonl": '{"prompt": "p", "chosen": "a", "rejected": "b"}\n{"prompt": "p", "chosen": "a"}\n',
    "not_text.json": '[{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": 1, "rejected": "b"}]',
}


@pytest.mark.parametrize(
    "dataset, options, message",
    [
        ("missing.jsonl", [], "missing.jsonl: no such file"),
        ("empty.jsonl", [], "empty.jsonl: the file holds no pairs"),
        ("no_rejected.jsonl", [], "no_rejected.jsonl, record 2: no rejected text"),
        ("not_text.json", [], "not_text.json, record 2: no chosen text"),
        ("good", ["--beta", "0"], "--beta 0.0: must be greater than 0"),
        ("good", ["--beta", "-1"], "--beta -1.0: must be greater than 0"),
        ("good", ["--loss", "kto"], "--loss kto: choose one of sigmoid, ipo, hinge, robust"),
        ("good", ["--label-smoothing", "0.5", "--loss", "robust"], "--label-smoothing 0.5"),
        ("good", ["--lora", "--freeze-layers", "1"], "--freeze-layers applies to --full"),
        ("good", ["--max-length", "2"], "no pair fits in --max-length 2"),
        ("good", ["--precision", "fp8"], "--precision fp8"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_output(tiny_model, pairs_path, tmp_path, dataset, options, message):  # noqa: F811
    if dataset == "good":
        path = pairs_path
    else:
        path = tmp_path / dataset
        if BAD_RECORDS[dataset] is not None:
            path.write_text(BAD_RECORDS[dataset])
    out = tmp_path / "run"
    result = invoke("--dataset", str(path), "--output-dir", str(out), "--model", str(tiny_model), *options)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not out.exists()


def test_load_in_4bit_without_cuda_is_a_clear_error(tiny_model, pairs_path, tmp_path):  # noqa: F811
    import importlib.util

    if torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes"):
        pytest.skip("4-bit loading can run here")
    result = invoke("--dataset", str(pairs_path), "--output-dir", str(tmp_path / "run"), "--model", str(tiny_model), "--load-in-4bit")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: --load-in-4bit needs a CUDA GPU and the bitsandbytes package (pip install bitsandbytes)"
    result = invoke("--dataset", str(pairs_path), "--output-dir", str(tmp_path / "run"), "--full", "--load-in-4bit")
    assert result.exit_code == 2 and "needs --lora" in result.stderr


def test_tiny_model_command_builds_a_loadable_model(tmp_path):
    from riskdpo.data.situations import Situation, save_situations

    situations = [
        Situation("1", "s", "Pick one.\n(a) $10 for certain\n(b) 50% probability of $30", ["a", "b"], ["(a)", "(b)"]),
        Situation("2", "s", "Choose.\n1. $5 for certain\n2. 10% probability of $90", ["1", "2"], ["1.", "2."]),
    ]
    save_situations(situations, tmp_path / "situations.json")
    result = CliRunner().invoke(main, ["tiny-model", str(tmp_path / "tiny"), "--situations", str(tmp_path / "situations.json"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    tokenizer = load_tokenizer(str(tmp_path / "tiny"))
    model = load_model(str(tmp_path / "tiny"))
    ids = tokenizer("(a) $10 for certain").input_ids
    assert tokenizer.decode(ids) == "(a) $10 for certain"
    assert len(ids) < len("(a) $10 for certain")  # BPE merges learned from the prompts
    assert model(input_ids=torch.tensor([ids])).logits.shape == (1, len(ids), len(tokenizer))
