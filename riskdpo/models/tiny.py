"""A tiny phi-architecture model for fast, offline tests and smoke runs.

It has phi-2's architecture (parallel attention/MLP blocks, partial rotary
embeddings with factor 0.4) at toy size, random weights, and a byte-level BPE
tokenizer trained on the situations' own text, so prompts tokenize to a few
hundred tokens. It is saved with `save_pretrained` and loaded back through the
ordinary `from_pretrained` path, exactly like a hub model. A random model cannot
learn risk aversion from these prompts; it checks mechanics only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

EOS = "<|endoftext|>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 512):
    """A byte-level BPE tokenizer trained on `texts`, as a transformers tokenizer.

    Byte-level BPE can encode any string, so prompts unlike the training text
    still tokenize. EOS doubles as BOS and padding, as in phi-2.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token=EOS, bos_token=EOS, pad_token=EOS, unk_token=EOS)


def build_tiny_model(
    out_dir: str | Path,
    texts: Iterable[str],
    *,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    vocab_size: int = 512,
    seed: int = 0,
) -> Path:
    """Build and save a tiny phi model with a tokenizer trained on `texts`.

    The weights depend only on `seed` and the shapes, so the same call gives
    the same model.
    """
    import torch
    from transformers import PhiConfig, PhiForCausalLM

    out = Path(out_dir)
    tokenizer = train_tokenizer(list(texts), vocab_size=vocab_size)
    config = PhiConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=4 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        partial_rotary_factor=0.4,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attention_dropout=0.0,
    )
    torch.manual_seed(seed)
    model = PhiForCausalLM(config)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
