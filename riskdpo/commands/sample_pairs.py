"""`riskdpo sample-pairs`: on-policy preference pairs from a model's own graded answers."""

from __future__ import annotations

import click

from riskdpo.commands.config_file import config_option
from riskdpo.core.errors import UserError
from riskdpo.pairs.build import POLICIES
from riskdpo.pairs.records import check_pairs_path, write_pairs


@click.command("sample-pairs")
@config_option
@click.option("--model", required=True, help="Model directory, hub id or short name whose answers are sampled.")
@click.option("--situations", "situations_path", required=True, type=click.Path(dir_okay=False), help="situations.json.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Pairs file: .jsonl or .json.")
@click.option("--samples", type=int, default=4, show_default=True, help="Answers sampled per situation.")
@click.option("--temperature", type=float, default=1.0, show_default=True, help="Sampling temperature (above 0).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampling and of --sample-size.")
@click.option("--rejected", "policy", type=click.Choice(list(POLICIES)), default="risk-neutral", show_default=True,
              help="Whose best option makes an answer a rejected one (unparsable answers are rejected too).")
@click.option("--sheet", "sheets", multiple=True, help="Use only situations from this sheet (repeatable).")
@click.option("--sample-size", type=int, default=None, help="Number of situations to sample (default: all eligible).")
@click.option("--pairs-per-situation", type=int, default=1, show_default=True,
              help="At most this many (chosen, rejected) pairs per situation.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Prompts per generation batch.")
@click.option("--max-new-tokens", type=int, default=256, show_default=True, help="The longest answer.")
@click.option("--chat-template/--no-chat-template", default=True, show_default=True,
              help="Wrap prompts in the tokenizer's chat template when it has one (as train will).")
@click.option("--chat-template-kwargs", multiple=True,
              help="Arguments of the chat template, as train takes them: key=value (JSON values) or a JSON object, "
              "e.g. enable_thinking=false.")
@click.option("--system", default=None, help="System message for the chat template.")
@click.option("--instruction", default=None, help="Replace the prompts' closing instruction with this text.")
@click.option("--precision", default="auto", show_default=True, help="auto, bf16, fp16 or fp32.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
def sample_pairs_command(config, model, situations_path, output, samples, temperature, seed, policy, sheets,
                         sample_size, pairs_per_situation, batch_size, max_new_tokens, chat_template,
                         chat_template_kwargs, system, instruction, precision, progress):
    """Sample answers from MODEL, grade each against the labels, and pair right against wrong.

    An answer naming the risk-averse option is a chosen answer; one naming the
    rejected agent's option, or no option, a rejected one. The same model and
    seed give the same file, whatever the batch size (on a CPU; on a GPU up to near-ties).

    \b
    Example:
      riskdpo sample-pairs --model results/final-model --situations situations.json -o pairs.jsonl --samples 8 --temperature 0.8
    """
    from riskdpo.data.situations import load_situations
    from riskdpo.recipes.on_policy import SampleSpec, sample_pairs
    from riskdpo.core.fileio import check_output
    from riskdpo.pairs.prompting import PromptFormat, parse_chat_template_kwargs

    target = check_output(check_pairs_path(output), inputs=[situations_path])
    fmt = PromptFormat(chat_template, system, instruction, parse_chat_template_kwargs(chat_template_kwargs))
    spec = SampleSpec(
        samples=samples, temperature=temperature, seed=seed, policy=policy, sheets=tuple(sheets),
        sample_size=sample_size, pairs_per_situation=pairs_per_situation, batch_size=batch_size,
        max_new_tokens=max_new_tokens, precision=precision, fmt=fmt,
        progress=progress,
    )  # fmt: skip
    if not progress:
        from riskdpo.models.loading import hide_loading_bars

        hide_loading_bars()
    result = sample_pairs(model, load_situations(situations_path), spec)
    for line in result.summary_lines():
        click.echo(line)
    if not result.pairs:
        raise UserError(f"no situation gave both a chosen and a rejected answer: {target} not written")
    write_pairs(target, result.pairs)
    click.echo(f"wrote {target}")


COMMANDS = [sample_pairs_command]
