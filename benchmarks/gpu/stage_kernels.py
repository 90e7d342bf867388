"""Stage 3, attention kernels and NaNs: riskdpo's packed pass at the lengths that matter, and generation.

Packed forward and backward (`riskdpo.models.logps.batch_logps`, the pass
training runs) on random models of ``kernel_layers`` layers in bf16, of two
shapes: Qwen3 (head dim 128, 32 query and 8 key/value heads) and phi-2 (head
dim 80, 32 heads, partial rotary). Each batch holds ``kernel_batch`` prompts of
L - 2·C random tokens with two completions of C each, so the packed sequence
is L long, for L in {1664, 1700, 1728, 1792} (multiples of 64 and 1700, which
is not; lengths where memory-efficient kernels have produced NaN gradients
elsewhere). For each shape, L and backend (PyTorch's own choice with every
backend enabled; each backend forced alone; and the model as
`riskdpo.models.loading.load_model` loads it, riskdpo's choice) it records
whether it runs, which attention kernels ran (torch.profiler names), how many
gradient entries are not finite, the relative error (fp64 norm) of the
log-probs and of the blocks' gradients against the same model in fp32 with the
math backend, and the time of the first call at a new L (kernel selection and
compilation) and of a second call.

Generation (`riskdpo.evaluation.generation.generate_rows`, greedy): prompts of
different lengths decoded in one left-padded batch against one at a time on
both shaped models (the same tokens?), the left-padded batch's logits checked
for NaN, and tokens/s at batches 8 and 64 on the whole phi-2-shaped model.
"""

from __future__ import annotations

import copy
import tempfile
import time
from pathlib import Path

from common import Context, SectionResult, Table, phi2_model, relative_error, sample_tokenizer_texts, synchronize, timed, tokenizer_dir
from riskdpo.core.fileio import read_records

VARIANTS = ("default", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH", "riskdpo load_model")


def shaped_model(ctx: Context, kind: str, vocab: int):
    """A random bf16 model of `kind` (qwen3, phi2) with the stage's number of layers, on the device."""
    import torch
    from transformers import PhiConfig, PhiForCausalLM, Qwen3Config, Qwen3ForCausalLM

    sizes = ctx.sizes
    torch.manual_seed(0)
    if kind == "qwen3":
        config = Qwen3Config(**dict(sizes.qwen3, vocab_size=max(vocab, sizes.qwen3["vocab_size"])),
                             num_hidden_layers=sizes.kernel_layers, attn_implementation="sdpa")
        cls = Qwen3ForCausalLM
    else:
        config = PhiConfig(**dict(sizes.phi2, vocab_size=max(vocab, sizes.phi2["vocab_size"]), num_hidden_layers=sizes.kernel_layers),
                           resid_pdrop=0.0, embd_pdrop=0.0, attention_dropout=0.0, attn_implementation="sdpa")
        cls = PhiForCausalLM
    with torch.device(ctx.device):
        return cls(config).to(torch.bfloat16)


def packed_batch(ctx: Context, length: int, vocab: int, seed: int):
    import torch

    from riskdpo.models.logps import collate

    sizes = ctx.sizes
    completion = sizes.kernel_completion
    generator = torch.Generator().manual_seed(seed)
    groups = []
    for _ in range(sizes.kernel_batch):
        ids = torch.randint(1, vocab, (length,), generator=generator).tolist()
        prompt = ids[: length - 2 * completion]
        groups.append((prompt, [ids[len(prompt) : len(prompt) + completion], ids[len(prompt) + completion :]]))
    return collate(groups, pad_id=0).to(ctx.device)


def block_grads(model):
    import torch

    return torch.cat([p.grad.flatten() for n, p in model.named_parameters() if ".layers." in n and p.grad is not None])


def forward_backward(model, batch, backend):
    """The packed pass and its backward under `backend` (None: PyTorch's choice); (log-probs, block grads)."""
    import contextlib

    from torch.nn.attention import SDPBackend, sdpa_kernel

    from riskdpo.models.logps import batch_logps

    model.zero_grad(set_to_none=True)
    scope = sdpa_kernel([getattr(SDPBackend, backend)]) if backend else contextlib.nullcontext()
    with scope:
        logps, _ = batch_logps(model, batch)
        logps.float().sum().backward()
    return logps.detach().float(), block_grads(model)


def kernel_rows(ctx: Context, kind: str, tokenizer_len: int, scratch: Path) -> tuple[list, list]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from riskdpo.models.loading import load_model
    from stage_environment import kernel_names

    model = shaped_model(ctx, kind, tokenizer_len)
    vocab = model.config.vocab_size
    model.save_pretrained(scratch / kind)
    riskdpo_model = load_model(str(scratch / kind), precision="bf16").to(ctx.device)
    riskdpo_model.train()
    model.train()
    reference_model = copy.deepcopy(model).float()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if ctx.cuda else [])
    rows, raw = [], []
    for number, length in enumerate(ctx.sizes.kernel_lengths):
        batch = packed_batch(ctx, length, vocab, seed=number)
        ref_logps, ref_grads = forward_backward(reference_model, batch, "MATH")
        for variant in VARIANTS:
            target = riskdpo_model if variant == "riskdpo load_model" else model
            backend = None if variant in ("default", "riskdpo load_model") else variant
            try:
                (logps, grads), first_s = timed(ctx.device, forward_backward, target, batch, backend)
                _, second_s = timed(ctx.device, forward_backward, target, batch, backend)
                with profile(activities=activities) as prof:
                    forward_backward(target, batch, backend)
                    synchronize(ctx.device)
            except RuntimeError as error:
                rows.append([kind, length, variant, "no", "—", None, None, None, None, None, str(error).splitlines()[0][:80]])
                continue
            nonfinite = int((~torch.isfinite(grads)).sum())
            entry = [kind, length, variant, "yes", ", ".join(kernel_names(prof)) or "—", nonfinite,
                     relative_error(logps, ref_logps), relative_error(grads, ref_grads), first_s * 1000, second_s * 1000, ""]
            rows.append(entry)
            raw.append(dict(zip(KERNEL_COLUMNS, entry)))
            model.zero_grad(set_to_none=True)
            riskdpo_model.zero_grad(set_to_none=True)
    del model, riskdpo_model, reference_model
    if ctx.cuda:
        torch.cuda.empty_cache()
    return rows, raw


KERNEL_COLUMNS = ["Shape", "L", "Backend", "Runs", "Attention kernels", "Non-finite grads", "Log-prob rel. err",
                  "Grad rel. err", "First call ms", "Second call ms", "Error"]


def check_prompts(ctx: Context) -> list[str]:
    """Prompts of different lengths: the sample's prompts cut to a spread of character counts."""
    prompts = [pair["prompt"] for pair in read_records(sample_tokenizer_texts(ctx)[0])]
    count = ctx.sizes.generate_check_prompts
    return [prompts[i % len(prompts)][: 120 + (i * 997) % 900] for i in range(count)]


def generation_rows(ctx: Context, tokenizer) -> tuple[list, dict]:
    """Left-padded batch against one prompt at a time, on both shaped models; NaN in the padded batch's logits."""
    import torch

    from riskdpo.evaluation.generation import Decoding, generate_rows

    prompts = check_prompts(ctx)
    decoding = Decoding(max_new_tokens=ctx.sizes.generate_new_tokens)
    rows, raw = [], {}
    for kind in ("qwen3", "phi2"):
        model = shaped_model(ctx, kind, len(tokenizer)).eval()
        seeds = [0] * len(prompts)
        batched = {g.index: g.token_ids for g in generate_rows(model, tokenizer, prompts, seeds, decoding, len(prompts))}
        alone = {g.index: g.token_ids for g in generate_rows(model, tokenizer, prompts, seeds, decoding, 1)}
        same = sum(batched[i] == alone[i] for i in range(len(prompts)))
        tokenizer.padding_side = "left"
        inputs = tokenizer(prompts, return_tensors="pt", padding=True).to(ctx.device)
        with torch.no_grad():
            logits = model(**inputs).logits
        real = inputs["attention_mask"].bool()
        nan_real = int((~torch.isfinite(logits[real])).any(-1).sum())
        nan_pad = int((~torch.isfinite(logits[~real])).any(-1).sum())
        lengths = [len(ids) for ids in inputs["input_ids"]]
        rows.append([kind, len(prompts), f"{int(real.sum(1).min())}-{int(real.sum(1).max())}", same, nan_real, nan_pad])
        raw[kind] = {"same": same, "prompts": len(prompts), "nan_real": nan_real, "nan_pad": nan_pad, "padded_length": lengths[0]}
        del model
    return rows, raw


def throughput_rows(ctx: Context) -> tuple[list, dict]:
    """Greedy tokens/s of the whole phi-2-shaped model at each batch size."""
    from riskdpo.evaluation.generation import Decoding, generate_rows
    from riskdpo.models.loading import load_model, load_tokenizer
    from riskdpo.pairs.prompting import PromptFormat, render_prompt

    path = phi2_model(ctx)
    tokenizer = load_tokenizer(str(path))
    model = load_model(str(path), precision="bf16").to(ctx.device).eval()
    pairs = read_records(sample_tokenizer_texts(ctx)[0])
    decoding = Decoding(max_new_tokens=ctx.sizes.generate_new_tokens)
    rows, raw = [], {}
    for batch in ctx.sizes.generate_batches:
        prompts = [render_prompt(tokenizer, pairs[i % len(pairs)]["prompt"], PromptFormat()) for i in range(batch)]
        list(generate_rows(model, tokenizer, prompts[:1], [0], decoding, 1))  # warm-up
        synchronize(ctx.device)
        start = time.perf_counter()
        done = list(generate_rows(model, tokenizer, prompts, [0] * batch, decoding, batch))
        synchronize(ctx.device)
        seconds = time.perf_counter() - start
        tokens = sum(len(g.token_ids) for g in done)
        prompt_tokens = sum(len(tokenizer(p).input_ids) for p in prompts) / batch
        rows.append([batch, prompt_tokens, tokens, seconds, tokens / seconds])
        raw[batch] = {"tokens": tokens, "seconds": seconds}
    return rows, raw


def run(ctx: Context) -> SectionResult:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(ctx))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    rows, raw = [], {}
    with tempfile.TemporaryDirectory() as scratch:
        for kind in ("qwen3", "phi2"):
            kind_rows, raw[kind] = kernel_rows(ctx, kind, len(tokenizer), Path(scratch))
            rows += kind_rows
    generation, raw["generation"] = generation_rows(ctx, tokenizer)
    throughput, raw["throughput"] = throughput_rows(ctx)
    sizes = ctx.sizes
    return SectionResult(
        section="kernels",
        title="GPU suite: attention kernels, NaNs and generation",
        description=__doc__.split("\n\n", 1)[1].strip(),
        tables=[
            Table(f"Packed forward+backward, {sizes.kernel_layers} random layers in bf16, batch {sizes.kernel_batch}, "
                  f"two completions of {sizes.kernel_completion} tokens ({ctx.device})", KERNEL_COLUMNS, rows,
                  notes=["Errors are relative to the same model in fp32 with the math backend; bf16 lands near 1e-3 to 1e-2. "
                         "A backend that does not run with riskdpo's boolean 4D mask shows its error."]),
            Table(f"Generation: one left-padded batch against one prompt at a time, greedy, {sizes.generate_new_tokens} tokens",
                  ["Shape", "Prompts", "Prompt tokens", "Same tokens", "Non-finite logits (real positions)",
                   "Non-finite logits (padding)"], generation),
            Table(f"Generation speed, phi-2-shaped model ({sizes.phi2['num_hidden_layers']} layers), greedy, "
                  f"{sizes.generate_new_tokens} new tokens", ["Batch", "Prompt tokens (mean)", "Tokens", "Seconds", "Tokens/s"],
                  throughput),
        ],
        raw=raw,
    )
