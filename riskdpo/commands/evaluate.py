"""`riskdpo eval-choices`: score how often models pick the risk-averse option.

Option values are checked by the library (`riskdpo.evaluation.evaluate.EvalOptions`,
`model_format`, `resolve_precision`), so a bad value gives one `error:` line
and exit status 2 like every user error.
"""

from __future__ import annotations

import click

from riskdpo.evaluation.alpha import DEFAULT_BOOTSTRAP
from riskdpo.commands.config_file import config_option


@click.command("eval-choices")
@config_option
@click.option("--model", multiple=True,
              help="Model directory, hub id, short name, LoRA adapter folder (scored on its base, unmerged) or training run "
                   "folder (its final-adapter, else final-model); repeat to compare (the first is the baseline).")
@click.option("--answers", multiple=True, type=click.Path(dir_okay=False),
              help="Score answers saved earlier instead of a --model: riskdpo's per-answer CSV of --mode generate, "
              "or .json/.jsonl/.csv answer records (repeatable; see --answer-fields).")
@click.option("--answer-fields", multiple=True,
              help="--answers: where a record keeps each part, KEY=FIELD pairs, e.g. id=question_id,text=response,"
              "reasoning=reasoning_content,finish=finish_reason [default: id=situation_id, text=answer, "
              "reasoning=reasoning, finish=finish_reason, sample=sample, model=model, sheet=sheet, tokens=new_tokens].")
@click.option("--situations", required=True, type=click.Path(dir_okay=False),
              help="situations.json, or a spreadsheet (.xlsx/.csv) converted on the fly.")
@click.option("--name", multiple=True,
              help="Short name of each --model in tables and figures, in order [default: its run directory].")
@click.option("--sheet", multiple=True, help="Workbook sheet to read (repeatable; default: every sheet with situations).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="Report .json; the .csv (one row per answer) and the .png figure go beside it.")
@click.option("--mode", default="logprob", show_default=True,
              help="logprob: the most probable label; generate: a generated answer, parsed.")
@click.option("--sample", type=int, default=None, help="Score a seeded random sample of N situations.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of --sample, of each answer's sampling and of the bootstraps.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Situations per forward pass.")
@click.option("--max-new-tokens", type=int, default=32, show_default=True, help="generate: the longest answer.")
@click.option("--temperature", type=float, default=0.0, show_default=True, help="generate: 0 is greedy, above 0 samples.")
@click.option("--top-p", type=float, default=1.0, show_default=True,
              help="generate: sample from the most probable tokens holding this much probability.")
@click.option("--top-k", type=int, default=0, show_default=True, help="generate: sample from the k most probable tokens (0: all).")
@click.option("--samples", type=int, default=1, show_default=True,
              help="generate: answers sampled per situation; each is graded, and the situation's majority counted.")
@click.option("--chat-template-kwargs", multiple=True,
              help="Arguments of the chat template: key=value pairs (JSON values) or a JSON object, "
              "e.g. enable_thinking=true [default: the run's run.json].")
@click.option("--resume", is_flag=True,
              help="Keep finished batches in the CSV as they finish and continue a stopped run from it.")
@click.option("--chat-template/--no-chat-template", default=None,
              help="Wrap prompts in the tokenizer's chat template [default: the run's run.json, else on].")
@click.option("--system", default=None, help="System message [default: the run's run.json].")
@click.option("--instruction", default=None, help="Replace the prompts' closing instruction [default: the run's run.json].")
@click.option("--response", default=None,
              help="How a completion writes a label: label or as-written [default: the run's run.json, else label].")
@click.option("--precision", default="auto", show_default=True, help="auto, bf16, fp16 or fp32, one for every model (auto: fp32 on the CPU or when a model is stored "
                   "in fp32, else bf16 on a GPU that has it).")
@click.option("--shuffle-options", is_flag=True,
              help="Move the lotteries between option lines (seeded by --seed), so a label preference cannot pass "
              "for risk aversion.")
@click.option("--bootstrap", type=int, default=DEFAULT_BOOTSTRAP, show_default=True,
              help="Bootstrap replicates of a percentile interval for the implied alpha, reported as a check beside "
              "the profile-likelihood interval (0: none).")
@click.option("--endpoint", multiple=True, metavar="URL",
              help="OpenAI-compatible server (http://host:8000/v1) that serves each --model under that name "
              "(generate mode); once for all models, or once per --model in order, 'local' for one loaded here. "
              "API key: $RISKDPO_API_KEY or $OPENAI_API_KEY.")
@click.option("--concurrency", type=int, default=8, show_default=True, help="endpoint: requests in flight at once.")
@click.option("--request-timeout", type=float, default=600.0, show_default=True,
              help="endpoint: seconds one request may take before it is retried.")
@click.option("--retries", type=int, default=5, show_default=True,
              help="endpoint: retries of a request after a timeout, cut connection, HTTP 429 or 5xx (waits 1, 2, 4... s).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Show a progress bar (answers/s and time left).")
def eval_choices(**params) -> None:
    """Score how often each model picks the risk-averse option.

    Writes OUTPUT (JSON: counts, rates and Wilson intervals per category, the
    rates over sampled answers and of option types, the implied CARA alpha,
    strata, paired comparisons with the first model, the position-only
    chooser), a CSV with one row per answer and a PNG figure beside it, and
    prints a table. Runs
    sharded over processes under `accelerate launch --num_processes N` (on
    CPUs add --multi_gpu, which then starts gloo processes); only the main
    process writes.

    \b
    Examples:
      riskdpo eval-choices --model results-risk-averse/final-model --model microsoft/phi-2 --situations held_out.json -o report.json
      riskdpo eval-choices --model smollm2-135m --situations data/sample.xlsx --sheet test_high --mode generate -o gen.json
      riskdpo eval-choices --model Qwen/Qwen3-8B --situations steals.xlsx --mode generate --temperature 0.6 --top-p 0.95 --top-k 20 --max-new-tokens 4096 --chat-template-kwargs enable_thinking=true --resume -o qwen3.json
      riskdpo eval-choices --answers gen.csv --situations data/sample.xlsx --sheet test_high -o reread.json
      riskdpo eval-choices --answers vllm.jsonl --answer-fields id=question_id,text=response,reasoning=reasoning_content --situations steals.xlsx -o vllm.json
      riskdpo eval-choices --endpoint http://127.0.0.1:8000/v1 --model Qwen/Qwen3-8B --situations steals.xlsx --mode generate --max-new-tokens 4096 --concurrency 64 --resume -o qwen3.json
    """
    from riskdpo.core.errors import UserError
    from riskdpo.core.fileio import check_output
    from riskdpo.evaluation.report import format_table, output_paths, write_evaluation
    from riskdpo.pairs.prompting import parse_chat_template_kwargs
    from riskdpo.evaluation.evaluate import (
        EvalOptions,
        FormatOverrides,
        evaluate_choices,
        process_state,
        read_eval_situations,
        select_situations,
    )

    if bool(params["model"]) == bool(params["answers"]):
        raise UserError("give --model (score models) or --answers (read saved answers), not both" if params["model"]
                        else "give at least one --model, or --answers FILE to read saved answers")
    paths = output_paths(params["output"])
    for path in paths:
        check_output(path, inputs=[params["situations"], *params["answers"]])
    _note_killed_runs(params["model"])
    _, csv_path, _ = paths
    if not params["progress"]:
        from riskdpo.models.loading import hide_loading_bars

        hide_loading_bars()
    options = EvalOptions(
        mode=params["mode"],
        batch_size=params["batch_size"],
        max_new_tokens=params["max_new_tokens"],
        temperature=params["temperature"],
        top_p=params["top_p"],
        top_k=params["top_k"],
        samples=params["samples"],
        seed=params["seed"],
        precision=params["precision"],
        bootstrap=params["bootstrap"],
        progress=params["progress"],
    )
    overrides = FormatOverrides(
        params["chat_template"],
        params["system"],
        params["instruction"],
        params["response"],
        parse_chat_template_kwargs(params["chat_template_kwargs"]),
    )
    situations, selection = select_situations(
        read_eval_situations(params["situations"], params["sheet"]), params["sample"], params["seed"]
    )
    if params["shuffle_options"]:
        from riskdpo.data.shuffle import shuffle_all

        situations = shuffle_all(situations, params["seed"])
    from riskdpo.evaluation.endpoint import LOCAL, model_endpoints

    endpoints = model_endpoints(
        params["model"], params["endpoint"], concurrency=params["concurrency"], timeout=params["request_timeout"],
        retries=params["retries"],
    )  # fmt: skip
    config = {key: list(value) if isinstance(value, tuple) else value for key, value in params.items()}
    if endpoints:  # without user, password or query: the report may be shared
        config["endpoint"] = [endpoints[model].recorded_url if model in endpoints else LOCAL for model in params["model"]]
    if params["answers"]:
        from riskdpo.evaluation.saved_answers import evaluate_saved_answers, parse_answer_fields

        evaluation = evaluate_saved_answers(
            params["answers"], situations, spec=parse_answer_fields(params["answer_fields"]), names=params["name"],
            bootstrap=params["bootstrap"], seed=params["seed"], selection=selection, config=config,
            source=params["situations"],
        )  # fmt: skip
    else:
        evaluation = evaluate_choices(
            params["model"],
            situations,
            options=options,
            overrides=overrides,
            names=params["name"],
            selection=selection,
            config=config,
            resume=csv_path if params["resume"] else None,
            endpoints=endpoints,
        )
    if params["answers"] or process_state().is_main_process:  # answers are read in one process
        paths = write_evaluation(evaluation, params["output"])
        click.echo(format_table(evaluation.report))
        click.echo("wrote " + ", ".join(str(path) for path in paths))
        _update_model_cards(params["model"], evaluation.report, str(paths[0]))


def _update_model_cards(models: tuple[str, ...], report: dict, source: str) -> None:
    """Add this evaluation to the model card of each --model folder riskdpo trained."""
    from riskdpo.training.model_card import record_evaluation

    for model in models:
        if card := record_evaluation(model, report, source):
            click.echo(f"added the evaluation to {card}")


def _note_killed_runs(models: tuple[str, ...]) -> None:
    """Record as "killed" (and say so) the training run of a --model that died without a word."""
    from pathlib import Path

    from riskdpo.training.run_dir import record_if_killed

    for model in models:
        for folder in (Path(model), Path(model).parent):
            if (folder / "run.json").is_file() and (line := record_if_killed(folder)):
                click.echo(line, err=True)


COMMANDS = [eval_choices]
