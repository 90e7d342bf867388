"""Today's evaluation loop, written the way users' scripts write it: the baseline of `eval-choices`.

For each situation, one at a time:

1. the prompt becomes the user turn of the tokenizer's chat template
   (``apply_chat_template(..., add_generation_prompt=True)``; the raw prompt
   when the tokenizer has no template);
2. ``model.generate`` decodes greedily (``do_sample=False``) up to
   ``max_new_tokens`` new tokens;
3. a regular expression reads the chosen label from the decoded answer.

Prompts are used as written (ending in their own closing instruction, e.g.
"You can think about which you'd choose and then output your answer.").
With ``--instruction`` the closing instruction is replaced by
`riskdpo.pairs.prompting.rewrite_instruction`, as ``eval-choices --instruction``
does, so both see exactly the same text; that is string preprocessing,
outside the timed loop.

Timing: ``load_s`` is the model and tokenizer load, ``loop_s`` the loop over
the situations (chat template, tokenisation, generation, decoding, parsing),
so situations/s = situations / loop_s excludes the one-time load. One
untimed generation comes first (lazy initialisation), as on riskdpo's side.

Run as a script it writes a JSON with the timings and every answer::

    python benchmarks/baseline_eval.py --model DIR --situations situations.json --out baseline.json
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any, Sequence

from riskdpo.core.fileio import write_json

#: A label named after a cue word: "answer is (b)", "Option 2", "I choose c", "choice: b".
_CUED_LABEL = re.compile(
    r"\b(?:answer|option|choice|choose|chose|pick|select|go with)\b(?:\s+is)?[\s:\"'*=]*\(?([A-Za-z]|\d{1,2})\b\)?",
    re.IGNORECASE,
)
#: A label opening the answer: "b", "(b)", "b.", "B)", "**b**", "2. Because ...".
_LEADING_LABEL = re.compile(r"^[\s\"'*`(\[]*([A-Za-z]|\d{1,2})(?=[\s.,:;)\]\"'*`]|$)")


def parse_choice(answer: str, labels: Sequence[str]) -> str | None:
    """The label `answer` names, among the situation's canonical `labels`, or None.

    The two regular expressions of a typical script: first a label opening the
    answer ("(b).", "B", "2. Because..."), then the first label after a cue
    word ("The answer is (b)", "I choose option 3").
    """
    allowed = {str(label).lower() for label in labels}
    text = answer.strip()
    leading = _LEADING_LABEL.match(text)
    if leading and leading.group(1).lower() in allowed:
        return leading.group(1).lower()
    for match in _CUED_LABEL.finditer(text):
        if match.group(1).lower() in allowed:
            return match.group(1).lower()
    return None


def chat_inputs(tokenizer: Any, prompt: str) -> dict:
    """Token tensors of `prompt` as the user turn of the chat template (raw text without one)."""
    if getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True, return_tensors="pt")
    return tokenizer(prompt, return_tensors="pt")


def generate_answer(model: Any, tokenizer: Any, prompt: str, max_new_tokens: int) -> tuple[str, int, int]:
    """The greedy answer to one prompt, decoded without special tokens; prompt and new token counts."""
    import torch

    inputs = chat_inputs(tokenizer, prompt).to(model.device)
    with torch.no_grad():
        output = model.generate(
            **inputs, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    prompt_tokens = inputs["input_ids"].shape[1]
    new = output[0, prompt_tokens:]
    return tokenizer.decode(new, skip_special_tokens=True), prompt_tokens, len(new)


def run_baseline(
    model_path: str,
    situations: list[dict],
    *,
    max_new_tokens: int,
    instruction: str | None,
    device: str = "cpu",
    precision: str = "auto",
) -> dict[str, Any]:
    """Evaluate `situations` (situations.json objects) one at a time; timings and answers."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from riskdpo.models.loading import resolve_precision, torch_dtype
    from riskdpo.pairs.prompting import rewrite_instruction

    torch.manual_seed(0)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    dtype = torch_dtype(resolve_precision(precision, device))
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype).to(device).eval()
    load_s = time.perf_counter() - start

    prompts = [rewrite_instruction(situation["prompt"], instruction) for situation in situations]
    generate_answer(model, tokenizer, prompts[0], max_new_tokens)  # untimed warm-up (lazy initialisation)
    records = []
    start = time.perf_counter()
    for situation, prompt in zip(situations, prompts):
        answer, prompt_tokens, new_tokens = generate_answer(model, tokenizer, prompt, max_new_tokens)
        choice = parse_choice(answer, situation["option_labels"])
        records.append(
            {"situation_id": situation["situation_id"], "answer": answer, "choice": choice, "prompt_tokens": prompt_tokens, "new_tokens": new_tokens}
        )
    loop_s = time.perf_counter() - start
    return {
        "model": model_path,
        "situations": len(records),
        "max_new_tokens": max_new_tokens,
        "mean_prompt_tokens": sum(r["prompt_tokens"] for r in records) / len(records),
        "mean_new_tokens": sum(r["new_tokens"] for r in records) / len(records),
        "load_s": load_s,
        "loop_s": loop_s,
        "situations_per_s": len(records) / loop_s,
        "records": records,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model directory (or hub id)")
    parser.add_argument("--situations", required=True, help="situations.json written by riskdpo convert")
    parser.add_argument("--limit", type=int, default=None, help="evaluate the first LIMIT situations")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--instruction", default=None, help="closing instruction to put in each prompt (default: keep the prompt's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto", help="auto: bf16 on a GPU that has it, else fp32 (as eval-choices)")
    parser.add_argument("--out", required=True, help="JSON file for timings and answers")
    args = parser.parse_args(argv)

    situations = json.loads(Path(args.situations).read_text(encoding="utf-8"))[: args.limit]
    result = run_baseline(
        args.model, situations, max_new_tokens=args.max_new_tokens, instruction=args.instruction,
        device=args.device,
        precision=args.precision,
    )
    write_json(args.out, result)


if __name__ == "__main__":
    main()
