"""Peak GPU memory of a training run, estimated from the model's config alone.

`estimate_memory(config, ...)` builds the model on PyTorch's meta device (shapes,
no storage, nothing downloaded beyond config.json), counts its parameters
exactly, and adds up what a riskdpo DPO step holds at its peak:

    peak = weights + gradients + optimizer + activations + logits + mask + workspace

weights      LoRA: the frozen base in the training precision (2 bytes/param in
             bf16/fp16) + the adapter in fp32 (peft keeps it fp32);
             QLoRA: block linear weights in NF4 with double quantisation,
             0.5 + 1/64 + 4/(64·256) bytes/param, every other parameter
             (embeddings, lm_head, norms, biases) fp32: peft's
             prepare_model_for_kbit_training widens them (`fp32_casts`, shown
             apart by --dry-run) + the adapter;
             full: fp32 weights (4 bytes) + one bf16 copy of every trainable
             linear weight that autocast makes and keeps for the step (2 bytes).
gradients    4 bytes per trainable parameter (fp32). Full fine-tuning trains
             all but the input embeddings and the first --freeze-layers blocks.
optimizer    AdamW: exp_avg and exp_avg_sq, 8 bytes per trainable parameter.
activations  what autograd saves for the backward pass, per token and layer

                 A = a·h + b·I  bytes   (h hidden size, I MLP width)

             with (a, b) measured on the CPU under bf16 autocast by counting the
             bytes of the tensors autograd saves (tests/training/test_memory.py
             re-measures them): phi-style blocks (parallel attention and a GELU
             MLP) a = 23 (LoRA) or 24 (full), b = 4; gated-MLP blocks (llama,
             mistral, qwen) a = 31 or 39, b = 8 (`ACTIVATION_COEFFICIENTS`;
             b·I is the MLP's saved inputs, 2 or 4 tensors of width I in bf16;
             a·h the rest: norms, projections' inputs, q, k, v, attention
             output, LoRA inputs; measured with the one shared mask counted
             apart, below: fitted before it, with a float copy of the mask in
             every layer, a came out about 6 higher). Times tokens × layers,
             where one packed micro-batch holds at most
             tokens = batch · L,  L = max_length + (K - 1) · completion_length
             padded to a multiple of 16.
             With gradient checkpointing only each layer's input is kept
             (r·h bytes a token, r = 4 for full fine-tuning's fp32 residual
             stream, else 2) and one layer's activations are rebuilt at a time:
             tokens · (layers · r·h + A). Outside the blocks (the final norm,
             the head's input) e·h bytes a token, e = 10 for full fine-tuning's
             fp32 stream and 2 otherwise, also measured. QLoRA's activations
             are counted at 4 bytes (twice LoRA's bf16 figure), an upper bound
             not yet measured: the widened embeddings and norms hand the 4-bit
             layers fp32 inputs and a 4-bit layer returns its input's dtype, so
             under bf16 autocast the residual stream, the norms' and the 4-bit
             layers' outputs and the MLP are fp32, while the attention's
             internals and the logits stay bf16 (seen with bitsandbytes 0.50.2
             on the CPU).
logits       the lm_head runs on completion positions only:
             batch · K · completion_length · V values kept for the backward pass
             (2 bytes each in bf16).
mask         the packed pass's additive block mask, one tensor in the compute
             dtype that every layer reads and the backward pass keeps:
             low · batch · L² bytes (low = 2 in bf16, 4 in fp32), L the packed
             length padded to a multiple of 16 (`riskdpo.models.logps`). A
             boolean mask would cost that once per layer (SDPA's float copies).
workspace    in the backward pass: the logits' gradient (as large as the
             logits) and one fp32 chunk of `LOGPS_CHUNK_POSITIONS` positions and
             its exponential in the log-softmax.

What is measured and what is estimated: parameter, gradient and optimizer
bytes are exact for a given config (the tests compare them with a real model
and a real AdamW step); the activation coefficients are measured on the CPU with
tiny models and assume the GPU's attention kernels (sdpa flash or
memory-efficient) save the same tensors as the CPU's (q, k, v, output,
log-sum-exp; no L² score matrix), phi models loaded as `load_model` loads them
(the fused tanh GELU), and one autocast region per micro-batch (a second one
would add a second bf16 copy of the weights under full fine-tuning). The
estimate leaves out the CUDA context (~0.5 GB), the allocator's fragmentation
and other temporary buffers, so budget 10-20 % above it. `riskdpo train --dry-run` prints it before anything loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: (a, b) of activations = a·h + b·I bytes per token per layer, by block kind and
#: LoRA/full fine-tuning, measured in bf16 (see the module docstring).
ACTIVATION_COEFFICIENTS = {
    ("parallel", "lora"): (23.0, 4.0),
    ("parallel", "full"): (24.0, 4.0),
    ("gated", "lora"): (31.0, 8.0),
    ("gated", "full"): (39.0, 8.0),
}
#: e of e·h bytes a token outside the blocks (final norm, head input), by LoRA/full.
OUTSIDE_BLOCKS = {"lora": 2.0, "full": 10.0}

#: NF4 with double quantisation: 4 bits, an 8-bit scale per 64 weights, an fp32 scale per 256 scales.
NF4_BYTES_PER_PARAM = 0.5 + 1 / 64 + 4 / (64 * 256)

#: Shapes of models users name most, for estimates without network access (config.json values).
KNOWN_SHAPES = {
    "microsoft/phi-2": {
        "model_type": "phi",
        "hidden_size": 2560,
        "intermediate_size": 10240,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 51200,
        "partial_rotary_factor": 0.4,
        "max_position_embeddings": 2048,
        "hidden_act": "gelu_new",
    },
}

MODES = ("lora", "qlora", "full")
_GIB = 1024**3


@dataclass(frozen=True)
class ModelShape:
    """Parameter counts of a causal LM, from its config."""

    parameters: int  # every parameter once (tied weights once)
    embedding: int  # the input embedding's parameters
    per_block: int  # the parameters of one transformer block
    linear_weights: int  # weights of every nn.Linear, an untied lm_head included (what autocast copies)
    block_linears: tuple[tuple[str, int, int], ...]  # (name, in, out) of each nn.Linear inside a block
    hidden: int
    intermediate: int
    layers: int
    vocab: int
    gated: bool  # a gated MLP (gate_proj / gate_up_proj), else a phi-style parallel block


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of each part of the peak, and the settings they are for."""

    mode: str
    batch_size: int
    max_length: int
    completion_length: int
    gradient_checkpointing: bool
    trainable: int
    weights: int
    gradients: int
    optimizer: int
    activations: int
    logits: int
    mask: int
    workspace: int
    fp32_casts: int = 0  # QLoRA: bytes of the parameters prepare_model_for_kbit_training widens to fp32 (in weights)

    @property
    def total(self) -> int:
        return (self.weights + self.gradients + self.optimizer + self.activations + self.logits + self.mask
                + self.workspace)


def model_shape(config: Any) -> ModelShape:
    """Count a config's parameters on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModelForCausalLM

    from riskdpo.training.lora import transformer_blocks

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    blocks = transformer_blocks(model)
    block_linears = tuple(
        (f"{index}.{name}", module.in_features, module.out_features)
        for index, block in enumerate(blocks)
        for name, module in block.named_modules()
        if isinstance(module, torch.nn.Linear)
    )
    embedding = model.get_input_embeddings().weight
    linear_weights = sum(m.weight.numel() for m in model.modules()
                         if isinstance(m, torch.nn.Linear) and m.weight is not embedding)
    return ModelShape(
        parameters=sum(p.numel() for p in model.parameters()),
        embedding=sum(p.numel() for p in model.get_input_embeddings().parameters()),
        per_block=sum(p.numel() for p in blocks[0].parameters()),
        linear_weights=linear_weights,
        block_linears=block_linears,
        hidden=config.hidden_size,
        intermediate=config.intermediate_size,
        layers=config.num_hidden_layers,
        vocab=config.vocab_size,
        gated=any(name.split(".")[-1] in ("gate_proj", "gate_up_proj") for name, _, _ in block_linears),
    )


def lora_parameters(shape: ModelShape, rank: int, targets: str = "all-linear") -> int:
    """Adapter parameters: r·(in + out) for each targeted linear layer of the blocks."""
    wanted = None if targets == "all-linear" else {t.strip() for t in targets.split(",") if t.strip()}
    return sum(rank * (n_in + n_out) for name, n_in, n_out in shape.block_linears
               if wanted is None or name.split(".")[-1] in wanted)


def estimate_memory(
    config: Any,
    *,
    mode: str = "lora",
    batch_size: int = 4,
    max_length: int = 512,
    completion_length: int = 8,
    num_completions: int = 2,
    gradient_checkpointing: bool = False,
    precision: str = "bf16",
    lora_rank: int = 16,
    lora_targets: str = "all-linear",
    freeze_layers: int = 0,
) -> MemoryEstimate:
    """Peak GPU memory of one DPO step (see the module docstring for each term).

    `config` is a transformers config (`AutoConfig.from_pretrained(...)`) or a
    dict of its fields with ``model_type``; `completion_length` is the longest
    completion in tokens (a label and EOS: a few; chain-of-thought: hundreds).
    """
    from riskdpo.models.logps import LOGPS_CHUNK_POSITIONS, alignment_padding

    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: choose one of {', '.join(MODES)}")
    config = _as_config(config)
    shape = model_shape(config)
    low = 4 if precision == "fp32" else 2  # bytes of a weight or activation in the compute precision
    fp32_casts = 0
    if mode == "full":
        frozen = shape.embedding + freeze_layers * shape.per_block  # freeze_first_blocks: embeddings always
        frozen_linear = freeze_layers * sum(n_in * n_out for _, n_in, n_out in shape.block_linears) // shape.layers
        trainable = shape.parameters - frozen
        # autocast keeps a bf16 copy of each trainable linear weight for the step (frozen ones are cast and dropped)
        weights = 4 * shape.parameters + (2 * (shape.linear_weights - frozen_linear) if precision != "fp32" else 0)
    else:
        trainable = lora_parameters(shape, lora_rank, lora_targets)
        if mode == "qlora":
            quantized = sum(n_in * n_out for _, n_in, n_out in shape.block_linears)
            fp32_casts = 4 * (shape.parameters - quantized)  # embeddings, lm_head, norms, biases
            base = NF4_BYTES_PER_PARAM * quantized + fp32_casts
        else:
            base = low * shape.parameters
        weights = int(base) + 4 * trainable

    packed_length = max_length + (num_completions - 1) * completion_length
    packed_length += alignment_padding(packed_length)
    tokens = batch_size * packed_length
    training = "full" if mode == "full" else "lora"
    a, b = ACTIVATION_COEFFICIENTS[("gated" if shape.gated else "parallel", training)]
    stream = 4 if mode == "qlora" else low  # QLoRA: fp32 activations (upper bound, see the docstring)
    per_layer = (a * shape.hidden + b * shape.intermediate) * stream / 2  # measured in bf16
    outside = OUTSIDE_BLOCKS[training] * shape.hidden
    if gradient_checkpointing:
        residual = 4 if mode == "full" else stream
        activations = tokens * (shape.layers * residual * shape.hidden + per_layer + outside)
    else:
        activations = tokens * (shape.layers * per_layer + outside)
    kept = batch_size * num_completions * completion_length
    logits = kept * shape.vocab * low
    return MemoryEstimate(
        mode=mode,
        batch_size=batch_size,
        max_length=max_length,
        completion_length=completion_length,
        gradient_checkpointing=gradient_checkpointing,
        trainable=trainable,
        weights=int(weights),
        gradients=4 * trainable,
        optimizer=8 * trainable,
        activations=int(activations),
        logits=int(logits),
        mask=low * batch_size * packed_length**2,
        workspace=int(logits) + 2 * min(kept, LOGPS_CHUNK_POSITIONS) * shape.vocab * 4,
        fp32_casts=int(fp32_casts),
    )


def format_estimate(estimate: MemoryEstimate) -> str:
    """A few lines for a terminal: each part and the total, in GiB."""
    checkpointing = ", gradient checkpointing" if estimate.gradient_checkpointing else ""
    parts = [
        ("weights", estimate.weights),
        ("gradients", estimate.gradients),
        ("optimizer (AdamW)", estimate.optimizer),
        ("activations", estimate.activations),
        ("logits, workspace", estimate.logits + estimate.workspace),
        ("attention mask", estimate.mask),
    ]
    lines = [
        f"estimated peak GPU memory, {estimate.mode}, batch {estimate.batch_size} x {estimate.max_length} tokens "
        f"(completions up to {estimate.completion_length}){checkpointing}; {estimate.trainable:,} trainable parameters",
        *(f"  {name:<23} {value / _GIB:7.2f} GiB" for name, value in parts),
        f"  {'total':<23} {estimate.total / _GIB:7.2f} GiB  (+ CUDA context and fragmentation: budget 10-20 % more)",
    ]
    if estimate.mode == "qlora":
        lines[2:2] = [f"    {'of which fp32 casts':<21} {estimate.fp32_casts / _GIB:7.2f} GiB  (embeddings, lm_head, norms "
                      "widened by prepare_model_for_kbit_training; activations counted in fp32)"]
    return "\n".join(lines)


def estimate_for_run(config: Any) -> MemoryEstimate:
    """The estimate for a `TrainConfig` (`riskdpo train --dry-run`): its model's config,
    --batch-size, --max-length, LoRA/QLoRA/--full, --gradient-checkpointing, --precision
    (auto counts as bf16, what a GPU gets), and the longest completion of its pairs in
    tokens (with EOS; chain-of-thought completions make the logits large). Reads
    config.json, the tokenizer and the pairs file; loads no weights. Offline,
    without the tokenizer, a completion counts one token per character (an upper
    bound for the usual tokenizers)."""
    from riskdpo.core.errors import UserError
    from riskdpo.models.loading import load_tokenizer
    from riskdpo.training.pair_data import load_pairs

    shape = model_config(config.model, trust_remote_code=config.trust_remote_code)
    completions = [record[key] for record in load_pairs(config.dataset) for key in ("chosen", "rejected")]
    try:
        tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
        lengths = map(len, tokenizer(completions, add_special_tokens=False).input_ids)
    except UserError:
        lengths = map(len, completions)
    longest = max(lengths) + 1
    return estimate_memory(
        shape,
        mode="full" if not config.lora else "qlora" if config.load_in_4bit else "lora",
        batch_size=config.batch_size,
        max_length=config.max_length,
        completion_length=min(longest, config.max_length - 1),
        gradient_checkpointing=config.gradient_checkpointing,
        precision="fp32" if config.precision == "fp32" else "bf16",
        lora_rank=config.lora_rank,
        lora_targets=config.lora_targets,
        freeze_layers=config.freeze_layers,
    )


def model_config(name: str, *, trust_remote_code: bool = False) -> Any:
    """The config of a model by hub id, directory or short name; `KNOWN_SHAPES` when offline."""
    from transformers import AutoConfig

    from riskdpo.core.errors import UserError
    from riskdpo.models.loading import resolve_model

    try:
        return AutoConfig.from_pretrained(resolve_model(name), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        if name in KNOWN_SHAPES:
            return _as_config(KNOWN_SHAPES[name])
        raise UserError(f"{name}: cannot read the model's config ({str(error).strip().splitlines()[0]})") from None


def _as_config(config: Any) -> Any:
    if isinstance(config, dict):
        from transformers import AutoConfig

        fields = dict(config)
        return AutoConfig.for_model(fields.pop("model_type"), **fields)
    return config
