"""Stage 2, correctness on CUDA: the gpu tests, training on the GPU against fp32 on the CPU, evaluation
against one-at-a-time Hugging Face code, and the saved model against the trained policy.

1. The ``gpu``-marked tests (``RISKDPO_TEST_GPU=1 python -m pytest -m gpu`` on
   the test files that hold them). In a dry run they are only collected (they
   need a GPU): that still proves every module they import is installed.
2. Training, tiny phi model, the sample's label pairs, sigmoid DPO (beta 0.1,
   lr 5e-4, linear decay, seed 0): LoRA (bf16 on the GPU), ``--full``, and
   LoRA with ``--gradient-checkpointing``, each run in one process on the
   device (`train_worker.py`) and again in fp32 on the CPU (GPUs hidden).
   Tolerances, bf16 against fp32 (bf16 keeps 8 bits of mantissa, a relative
   step of 2^-8 = 0.4 %; a loss near ln 2 and log-probs near -10 nats over a
   few steps): per-step loss |delta| <= 0.02; validation log-probs (mean summed
   log-prob of the chosen and the rejected completions) |delta| <= 0.05 +
   0.02 |fp32|. Gradient checkpointing against none on the same device: loss
   |delta| <= 1e-3 (the same arithmetic recomputed).
3. Saved model against trained policy: the final model written by the run,
   loaded in fp32, scores the validation pairs as the policy scored them at
   the end of its run (its last ``val/logps``): |delta| <= 0.05 + 0.02 |value|
   on the GPU (the policy ran in bf16), 1e-3 in fp32.
4. Evaluation in both modes against one situation at a time with plain
   transformers, same model, same precision: logprob mode's option log-probs
   against a separate forward of prompt + option for each option (|delta| <=
   1e-3 fp32, 0.1 bf16: summed over a few tokens), and generate mode's batched
   greedy answers against ``model.generate`` one prompt at a time (the same
   text; bf16 may break near-ties differently, so >= 90 % on the GPU, 100 % in
   fp32).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from common import CHECK_COLUMNS, GPU_DIR, REPO_DIR, Context, SectionResult, Table, bench_settings, check, run_measured, tiny_model
from riskdpo.core.fileio import read_records, write_jsonl

LOSS_TOL = 0.02
GC_TOL = 1e-3


def logp_tol(reference: float, bf16: bool) -> float:
    return 0.05 + 0.02 * abs(reference) if bf16 else 1e-3


def gpu_tests(ctx: Context) -> tuple[list, dict]:
    files = sorted(str(p.relative_to(REPO_DIR)) for p in (REPO_DIR / "tests").rglob("test_*.py")
                   if re.search(r"pytest\.mark\.gpu", p.read_text(encoding="utf-8")))
    env = dict(os.environ)
    command = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *files]
    if ctx.cuda:
        env["RISKDPO_TEST_GPU"] = "1"
    else:
        command.append("--collect-only")
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_DIR, env=env, timeout=600)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    last = lines[-1] if lines else done.stderr.strip()[-200:]
    if ctx.cuda:
        passed = done.returncode == 0
    else:  # collected only: exit 0 and a count
        passed = done.returncode == 0 and bool(re.search(r"\d+ (tests? )?(collected|selected)", last))
    row = check(f"gpu-marked tests ({len(files)} files){'' if ctx.cuda else ', collected only (no GPU)'}", passed, last)
    return [row], {"files": files, "returncode": done.returncode, "tail": done.stdout[-3000:] + done.stderr[-2000:]}


def train_specs(ctx: Context, model: Path) -> list[dict]:
    from workloads import sample_pairs

    from settings import SAMPLE_WORKBOOK

    steps, batch = ctx.sizes.correctness_steps, 4
    pairs = read_records(sample_pairs(ctx.work, SAMPLE_WORKBOOK, "label"))
    train_path, val_path = ctx.work / "correctness-train.jsonl", ctx.work / "correctness-val.jsonl"
    write_jsonl(train_path, pairs[: steps * batch])
    write_jsonl(val_path, pairs[steps * batch : steps * batch + 8])
    common = dict(dataset=str(train_path), val=str(val_path), model=str(model), epochs=1, batch_size=batch, lr=5e-4,
                  beta=0.1, warmup_steps=0, seed=0, lora_rank=8, lora_alpha=16.0, max_length=512, saved_logps=True)
    return [
        dict(common, name="lora"),
        dict(common, name="full", lora=False),
        dict(common, name="lora-checkpointing", gradient_checkpointing=True),
    ]


def run_worker(ctx: Context, specs: list[dict], tag: str, hide_gpu: bool) -> dict:
    specs_path, out_path = ctx.work / f"correctness-{tag}-specs.json", ctx.work / f"correctness-{tag}.json"
    specs_path.write_text(json.dumps([dict(s, precision="fp32" if hide_gpu else "auto") for s in specs]), encoding="utf-8")
    command = [sys.executable, str(GPU_DIR / "train_worker.py"), str(specs_path), str(out_path)]
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hide_gpu:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        run_measured(command)
    finally:
        if saved is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved
    return {run["name"]: run for run in json.loads(out_path.read_text(encoding="utf-8"))["runs"]}


def training_checks(ctx: Context, model: Path) -> tuple[list, dict]:
    specs = train_specs(ctx, model)
    device_runs = run_worker(ctx, specs, "device", hide_gpu=False)
    # a dry run's device is the CPU: the fp32 CPU reference would be the same runs again
    cpu_runs = run_worker(ctx, specs, "cpu", hide_gpu=True) if ctx.cuda else device_runs
    rows = []
    for spec in specs:
        name = spec["name"]
        ours, ref = device_runs[name], cpu_runs[name]
        if not ours["ok"] or not ref["ok"]:
            rows.append(check(f"train {name}", False, ours.get("error") or ref.get("error")))
            continue
        bf16 = ours["precision"] != "fp32"
        where = f"{ctx.device} {ours['precision']} vs cpu fp32"
        loss_gap = max(abs(a - b) for a, b in zip(ours["losses"], ref["losses"]))
        rows.append(check(f"train {name}: per-step loss, {where}", loss_gap <= LOSS_TOL and len(ours["losses"]) == len(ref["losses"]),
                          f"max |delta| {loss_gap:.2e} over {len(ours['losses'])} steps (<= {LOSS_TOL})"))
        for key in ("logps/chosen", "logps/rejected"):
            value, reference = ours["policy_val"][key], ref["policy_val"][key]
            tol = logp_tol(reference, bf16)
            rows.append(check(f"train {name}: val {key}, {where}", abs(value - reference) <= tol,
                              f"{value:.4f} vs {reference:.4f} (|delta| <= {tol:.3f})"))
        for side, run in ((ctx.device, ours), ("cpu fp32", ref)) if ctx.cuda else ((ctx.device, ours),):
            for key in ("logps/chosen", "logps/rejected"):
                saved, policy = run["saved_val"][key], run["policy_val"][key]
                tol = logp_tol(policy, run["precision"] != "fp32")
                rows.append(check(f"saved model = trained policy ({name}, {side}): val {key}", abs(saved - policy) <= tol,
                                  f"{saved:.4f} vs {policy:.4f} (|delta| <= {tol:.3g})"))
    for runs, where in ((device_runs, ctx.device), (cpu_runs, "cpu fp32")) if ctx.cuda else ((device_runs, ctx.device),):
        plain, gc = runs["lora"], runs["lora-checkpointing"]
        if plain["ok"] and gc["ok"]:
            gap = max(abs(a - b) for a, b in zip(plain["losses"], gc["losses"]))
            rows.append(check(f"gradient checkpointing = none ({where}): per-step loss", gap <= GC_TOL,
                              f"max |delta| {gap:.2e} (<= {GC_TOL})"))
    return rows, {"device": device_runs, "cpu": cpu_runs}


def hf_option_logps(model, tokenizer, prompt: str, completions: list[str], end_set) -> list[float]:
    """Each option's score under log-prob mode's rule, by its own forward pass of prompt + label
    (plain transformers): log p(label tokens) + log p(the next token is one in `end_set`, i.e. the
    label is complete; `riskdpo.evaluation.choices.label_end_set`)."""
    import torch

    from riskdpo.models.logps import tokenize_group

    prompt_ids, completion_ids = tokenize_group(tokenizer, prompt, completions)
    values = []
    for ids in completion_ids:
        label = ids[:-1]  # the label's tokens; the rule scores the ending set in place of the final EOS
        tokens = torch.tensor([prompt_ids + label], device=model.device)
        with torch.no_grad():
            logp = torch.log_softmax(model(tokens).logits[0, len(prompt_ids) - 1 :].float(), -1)
        inside = torch.zeros(logp.shape[-1], dtype=torch.bool, device=logp.device)
        inside[: end_set.numel()] = end_set[: logp.shape[-1]].to(logp.device)
        label_part = logp[:-1].gather(1, torch.tensor(label, device=model.device)[:, None]).sum()
        values.append((label_part + torch.logsumexp(logp[-1][inside], 0)).item())
    return values


def eval_checks(ctx: Context, model_path: Path) -> tuple[list, dict]:
    import torch

    from bench_eval import eval_situations
    from riskdpo.data.situations import load_situations
    from riskdpo.evaluation.choices import label_end_set, option_completions
    from riskdpo.evaluation.evaluate import EvalOptions, FormatOverrides, model_format, score_model
    from riskdpo.models.loading import load_model, load_tokenizer, resolve_precision
    from riskdpo.pairs.prompting import render_prompt

    count, new_tokens = ctx.sizes.correctness_situations, 24
    situations = load_situations(eval_situations(bench_settings(ctx), count))[:count]
    precision = resolve_precision("auto", ctx.device)
    bf16 = precision != "fp32"
    tokenizer = load_tokenizer(str(model_path))
    model = load_model(str(model_path), precision=precision).to(ctx.device).eval()
    fmt = model_format(str(model_path), FormatOverrides())
    logprob = score_model(model, tokenizer, situations, fmt, EvalOptions(mode="logprob", batch_size=8))
    generated = score_model(model, tokenizer, situations, fmt, EvalOptions(mode="generate", batch_size=8, max_new_tokens=new_tokens))
    gaps, same_choice, same_text = [], 0, 0
    end_set = label_end_set(tokenizer)
    for situation, record, answer in zip(situations, logprob, generated):
        prompt = render_prompt(tokenizer, situation.prompt, fmt.prompt)
        completions = option_completions(situation, fmt.response)
        reference = hf_option_logps(model, tokenizer, prompt, completions, end_set)
        ours = [record["logps"][label] for label in situation.option_labels]
        gaps.append(max(abs(a - b) for a, b in zip(ours, reference)))
        best = situation.option_labels[max(range(len(reference)), key=reference.__getitem__)]
        same_choice += best == record["label"]
        inputs = tokenizer(prompt, return_tensors="pt").to(ctx.device)
        with torch.no_grad():
            output = model.generate(**inputs, max_new_tokens=new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        text = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
        same_text += text == answer["answer"]
    n = len(situations)
    tol = 0.1 if bf16 else 1e-3
    text_target = 0.9 if bf16 else 1.0
    rows = [
        check(f"eval logprob vs one forward per option ({precision}, {n} situations)", max(gaps) <= tol,
              f"max |delta log-prob| {max(gaps):.2e} (<= {tol}); same choice {same_choice}/{n}"),
        check(f"eval generate (batch 8) vs model.generate one at a time ({precision}, {new_tokens} tokens)",
              same_text / n >= text_target, f"same text {same_text}/{n} (>= {text_target:.0%})"),
    ]
    return rows, {"max_logp_gaps": gaps, "same_choice": same_choice, "same_text": same_text, "situations": n}


def run(ctx: Context) -> SectionResult:
    model = tiny_model(ctx)
    test_rows, test_raw = gpu_tests(ctx)
    train_rows, train_raw = training_checks(ctx, model)
    eval_rows, eval_raw = eval_checks(ctx, model)
    rows = test_rows + train_rows + eval_rows
    failed = sum(row[1] != "pass" for row in rows)
    return SectionResult(
        section="correctness",
        title="GPU suite: correctness on CUDA",
        description=__doc__.split("\n\n", 1)[1].strip(),
        tables=[Table(f"Correctness checks ({ctx.device}; {failed} failed of {len(rows)})", CHECK_COLUMNS, rows)],
        raw={"tests": test_raw, "train": train_raw, "eval": eval_raw, "failed": failed},
    )
