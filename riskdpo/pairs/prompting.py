"""Prompt text as a model sees it, identical in training and evaluation.

Two steps, both recorded in a run's `run.json` so that `eval-choices` formats
prompts exactly as `train` did:

1. `rewrite_instruction`: users often replace the prompt's closing instruction
   ("You can think about which you'd choose and then output your answer.") with
   their own ("Output the label of your chosen option only.").
2. `render_prompt`: the tokenizer's chat template (user turn, optional system
   turn, generation prompt) when it has one and it is wanted; the raw text
   otherwise. `PromptFormat.chat_template_kwargs` are passed on to the
   template (``{"enable_thinking": true}`` for thinking models such as Qwen3);
   `parse_chat_template_kwargs` reads them from the command line. `chat_messages`
   gives the turns alone, for a server that applies the template itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from riskdpo.core.errors import UserError
from riskdpo.data.labels import find_option_lines

#: Sentences that open a closing instruction in the prompts seen in real sheets.
_INSTRUCTION = re.compile(
    r"(?:^|(?<=[.?!]\s)|(?<=\n))\s*(?:You (?:can|should|may|must)|Output|Please|Answer|Respond|Reply|Think|Give|State|Only output)\b[^\n]*$",
    re.IGNORECASE,
)


#: A comma that starts another ``key=value`` pair.
_PAIR_BREAK = re.compile(r",\s*(?=[A-Za-z_][\w.-]*\s*=)")


@dataclass(frozen=True)
class PromptFormat:
    """How prompts are turned into model input; stored in run.json as a dict."""

    chat_template: bool = True
    system: str | None = None
    instruction: str | None = None
    chat_template_kwargs: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """The fields as a dict; ``chat_template_kwargs`` only when set, so older run.json files read the same."""
        data = asdict(self)
        if data["chat_template_kwargs"] is None:
            del data["chat_template_kwargs"]
        return data


def parse_chat_template_kwargs(items: str | Sequence[str]) -> dict[str, Any] | None:
    """Chat-template keyword arguments from ``key=value`` pairs or one JSON object.

    Each value is read as JSON when it is JSON (``true``, ``4096``, ``"x"``,
    ``[1, 2]``) and kept as text otherwise: ``enable_thinking=true`` gives
    ``{"enable_thinking": True}``. Pairs may be given as separate items or
    comma-separated in one (a comma starts a new pair only before ``key=``, so
    ``ids=[1, 2]`` stays whole). None when nothing is given.
    """
    given = [items] if isinstance(items, str) else list(items)
    found: dict[str, Any] = {}
    for item in given:
        text = item.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                raise UserError(f"--chat-template-kwargs {item}: not a JSON object ({error})") from None
            if not isinstance(value, dict):
                raise UserError(f"--chat-template-kwargs {item}: not a JSON object")
            found.update(value)
            continue
        for pair in filter(None, (part.strip() for part in _PAIR_BREAK.split(text))):
            key, equals, value = pair.partition("=")
            if not equals or not key.strip():
                raise UserError(f"--chat-template-kwargs {item}: expected key=value pairs or a JSON object")
            try:
                found[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                found[key.strip()] = value.strip()
    return found or None


def rewrite_instruction(prompt: str, instruction: str | None) -> str:
    """Replace the prompt's closing instruction with `instruction`.

    The closing instruction is the trailing text after the last option line that
    starts with an imperative such as "You can ...", "Output ...", "Please ...".
    When the prompt has none, `instruction` is appended on its own line. With
    `instruction` None the prompt is returned unchanged.
    """
    if not instruction:
        return prompt
    lines = prompt.rstrip().split("\n")
    options = find_option_lines(prompt)
    last_option = 0
    if options:
        last_written = options[-1][0]
        for number, line in enumerate(lines):
            if line.lstrip().startswith(last_written):
                last_option = number
    head = "\n".join(lines[: last_option + 1])
    tail = "\n".join(lines[last_option + 1 :])
    match = _INSTRUCTION.search(tail)
    if match:
        before = tail[: match.start()].rstrip(" ")
        tail = before + (" " if before and not before.endswith("\n") else "") + instruction
        return f"{head}\n{tail}" if head else tail
    return f"{prompt.rstrip()}\n{instruction}"


def render_prompt(tokenizer: Any, prompt: str, fmt: PromptFormat) -> str:
    """The exact text a model is given for `prompt` under format `fmt`.

    With a chat template the prompt is the user turn (after an optional system
    turn) followed by the template's generation prompt, so a completion is the
    assistant's answer.
    """
    if fmt.chat_template and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            chat_messages(prompt, fmt), tokenize=False, add_generation_prompt=True, **(fmt.chat_template_kwargs or {})
        )
    text = rewrite_instruction(prompt, fmt.instruction)
    if fmt.system:
        return f"{fmt.system}\n\n{text}"
    return text


def chat_messages(prompt: str, fmt: PromptFormat) -> list[dict[str, str]]:
    """The chat turns `render_prompt` puts through the chat template: an optional system turn, then the
    user turn (the prompt with its instruction rewritten). A chat-completions server is sent these and
    applies the same template itself (`riskdpo.evaluation.endpoint`)."""
    messages = [{"role": "system", "content": fmt.system}] if fmt.system else []
    return [*messages, {"role": "user", "content": rewrite_instruction(prompt, fmt.instruction)}]
