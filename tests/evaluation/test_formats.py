"""Chat-template arguments (command line, run.json, the real template) and the short names
models are shown by."""

import json
import shutil

import pytest
from click.testing import CliRunner
from test_choices import eval_model  # noqa: F401 (fixture)

from riskdpo.cli import main
from riskdpo.core.errors import UserError
from riskdpo.evaluation.formats import FormatOverrides, model_format, short_names
from riskdpo.models.loading import load_tokenizer
from riskdpo.pairs.prompting import PromptFormat, parse_chat_template_kwargs, render_prompt

#: A chat template that, like Qwen3's, opens an empty reasoning block unless thinking is enabled.
THINKING_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}\n{% endfor %}<|assistant|>"
    "{% if not enable_thinking | default(false) %}<think></think>{% endif %}"
)


@pytest.mark.parametrize(
    "given, expected",
    [
        (["enable_thinking=true"], {"enable_thinking": True}),
        (["a=1, b=text", "c=[1, 2]"], {"a": 1, "b": "text", "c": [1, 2]}),
        (['{"enable_thinking": false, "depth": 2}'], {"enable_thinking": False, "depth": 2}),
        ([], None),
    ],
)
def test_chat_template_kwargs_are_parsed(given, expected):
    assert parse_chat_template_kwargs(given) == expected


@pytest.mark.parametrize("given", ["enable_thinking", "=true", "{not json", "[1, 2]"])
def test_bad_chat_template_kwargs_are_one_line_errors(given, tmp_path):
    with pytest.raises(UserError, match="--chat-template-kwargs"):
        parse_chat_template_kwargs([given])
    result = CliRunner().invoke(main, [
        "eval-choices", "--model", "m", "--situations", "s.json", "-o", str(tmp_path / "r.json"),
        "--chat-template-kwargs", given,
    ])  # fmt: skip
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "--chat-template-kwargs" in result.output
    assert not list(tmp_path.iterdir())


def test_chat_template_kwargs_reach_the_template(eval_model):
    tokenizer = load_tokenizer(str(eval_model))
    tokenizer.chat_template = THINKING_TEMPLATE
    plain = render_prompt(tokenizer, "Pick a or b.", PromptFormat())
    thinking = render_prompt(tokenizer, "Pick a or b.", PromptFormat(chat_template_kwargs={"enable_thinking": True}))
    assert plain.endswith("<|assistant|><think></think>") and thinking.endswith("<|assistant|>")


def test_run_json_supplies_chat_template_kwargs_and_the_name(tmp_path, eval_model):
    run = tmp_path / "averse-run"
    shutil.copytree(eval_model, run / "final-model")
    stored = {"chat_template": True, "system": None, "instruction": None, "chat_template_kwargs": {"enable_thinking": True}}
    (run / "run.json").write_text(json.dumps({"prompt_format": stored}), encoding="utf-8")
    model = str(run / "final-model")
    assert model_format(model, FormatOverrides()).prompt.chat_template_kwargs == {"enable_thinking": True}
    overridden = model_format(model, FormatOverrides(chat_template_kwargs={"enable_thinking": False}))
    assert overridden.prompt.chat_template_kwargs == {"enable_thinking": False}
    assert model_format(str(eval_model), FormatOverrides()).prompt.chat_template_kwargs is None
    assert short_names([model, "Qwen/Qwen3-8B"]) == ["averse-run", "Qwen3-8B"]
    assert short_names([model, "Qwen/Qwen3-8B"], ["after", "base"]) == ["after", "base"]
    with pytest.raises(UserError, match="--name given 1 times for 2 --model"):
        short_names([model, "Qwen/Qwen3-8B"], ["after"])
    assert short_names(["Qwen/Qwen3-8B", "other/Qwen3-8B"]) == ["Qwen/Qwen3-8B", "other/Qwen3-8B"]
    checkpoint = run / "checkpoint-2"
    shutil.copytree(eval_model, checkpoint)
    assert short_names([model, str(checkpoint)]) == ["averse-run/final-model", "averse-run/checkpoint-2"]
    with pytest.raises(UserError, match="two models are named 'same'"):
        short_names([model, str(checkpoint)], ["same", "same"])
