"""Evaluation section: `eval-choices` (logprob and batched generate) against today's loop.

Both sides evaluate the same held-out situations (a workbook generated with a
seed no training sheet uses) with the same model, the same prompt text (as
written, ending in its own closing instruction "You can think about which
you'd choose and then output your answer.", unless ``--eval-instruction``
replaces it on both sides), greedy decoding and the same ``max_new_tokens``.
Each side runs in its own process pinned to ``--cores`` CPUs; each loads the
model once, scores one situation untimed (lazy initialisation), then times its
loop:

- baseline (`baseline_eval.py`): chat template, ``model.generate`` and a
  regex, one situation at a time;
- riskdpo logprob (`riskdpo_eval.py`, mode logprob): every option's label
  scored in one shared pass per prompt, batched by length;
- riskdpo generate (`riskdpo_eval.py`, mode generate): left-padded batches,
  greedy, refilled from the queue as answers end
  (`riskdpo.evaluation.generation`), answers read by
  `riskdpo.data.answers.read_answer`.

situations/s = situations / loop seconds; the speed-up is riskdpo's
situations/s over the baseline's. Agreement compares, situation by
situation, riskdpo's batched greedy answers with the baseline's one at a
time: the same answer text, the same choice when riskdpo's reader
(`riskdpo.data.answers.read_answer`) reads both texts (what batching changes:
the target), and the same choice as the baseline's own regex reads its text
(what the two readers change). Both unparsed counts as the same.
A last table times the whole `riskdpo eval-choices` command and the whole
baseline script, start-up and model load included.
"""

from __future__ import annotations

from pathlib import Path

from riskdpo.data.situations import load_situations

from harness import SectionResult, Table, Target, ratio, read_json, riskdpo_command, run_measured, script_command
from settings import Settings
from workloads import generated_workbook, sample_tiny_model, situations_file, smollm2

#: Issue 18's targets: logprob >= 15x (its arithmetic bound on the 2-core CPU is about 19x), generate >= 5x.
LOGPROB_SPEEDUP = 15.0
GENERATE_SPEEDUP = 5.0
AGREEMENT = 0.95
MODES = ("logprob", "generate")


def eval_model(settings: Settings) -> Path:
    """The model both sides evaluate: the bundled SmolLM2 or (smoke runs) the tiny phi model."""
    if settings.eval_model == "tiny":
        return sample_tiny_model(settings.work, settings.sample)
    return smollm2()


def eval_situations(settings: Settings, count: int) -> Path:
    """situations.json of `count` held-out situations (generated with the eval seed)."""
    return situations_file(settings.work, generated_workbook(settings.work, count, settings.eval_seed))


def instruction_args(settings: Settings) -> list[str]:
    """``--instruction TEXT`` when the benchmark replaces the prompts' closing instruction."""
    return ["--instruction", settings.eval_instruction] if settings.eval_instruction else []


def run_baseline(settings: Settings, model: Path, situations: Path, count: int) -> dict:
    out = settings.work / f"eval-baseline-{count}.json"
    measured = run_measured(
        script_command(
            "baseline_eval.py",
            "--model", model,
            "--situations", situations,
            "--limit", count,
            "--max-new-tokens", settings.max_new_tokens,
            *instruction_args(settings),
            "--device", settings.device,
            "--out", out,
        ),
        cores=settings.cores,
    )
    return {**read_json(out), "process_wall_s": measured.wall_s, "peak_rss_mib": measured.peak_rss_mib}


def run_riskdpo(settings: Settings, model: Path, situations: Path, sizes: tuple[int, ...]) -> dict:
    """Both modes in one process (one model load); its peak RSS covers both."""
    out = settings.work / f"eval-riskdpo-{max(sizes)}.json"
    measured = run_measured(
        script_command(
            "riskdpo_eval.py",
            "--model", model,
            "--situations", situations,
            "--modes", ",".join(MODES),
            "--sizes", ",".join(map(str, sizes)),
            "--batch-size", settings.eval_batch_size,
            "--generate-batch-size", settings.eval_generate_batch_size,
            "--max-new-tokens", settings.max_new_tokens,
            *instruction_args(settings),
            "--device", settings.device,
            "--out", out,
        ),
        cores=settings.cores,
    )
    return {**read_json(out), "process_wall_s": measured.wall_s, "peak_rss_mib": measured.peak_rss_mib}


def batch_size(settings: Settings, mode: str) -> int:
    """The batch riskdpo uses in `mode`."""
    return settings.eval_generate_batch_size if mode == "generate" else settings.eval_batch_size


def run_whole_command(settings: Settings, model: Path, situations: Path, mode: str) -> dict:
    """`riskdpo eval-choices` as a user runs it: imports, load, scoring, report, CSV and figure."""
    out = settings.work / f"eval-choices-{mode}" / "report.json"
    measured = run_measured(
        riskdpo_command(
            "eval-choices",
            "--model", model,
            "--situations", situations,
            "--mode", mode,
            "--batch-size", batch_size(settings, mode),
            "--max-new-tokens", settings.max_new_tokens,
            *instruction_args(settings),
            "--no-progress",
            "-o", out,
        ),
        cores=settings.cores,
    )
    return {"wall_s": measured.wall_s, "peak_rss_mib": measured.peak_rss_mib}


def agreement(riskdpo_records: list[dict], baseline_records: list[dict], situations: dict) -> dict:
    """Situation-by-situation agreement of two sides' answers and parsed choices; `situations` by id
    (to read the baseline's text with riskdpo's reader)."""
    from riskdpo.data.answers import read_answer

    pairs = [(ours, theirs) for ours, theirs in zip(riskdpo_records, baseline_records) if not ours.get("skipped")]
    n = len(pairs)

    def read_by_riskdpo(record: dict) -> str | None:
        situation = situations[record["situation_id"]]
        return read_answer(record["answer"], situation.option_labels, situation.answer_variants).label

    same_reader = sum(ours["choice"] == read_by_riskdpo(theirs) for ours, theirs in pairs)
    same_text = sum(ours.get("answer") == theirs["answer"] for ours, theirs in pairs if ours.get("answer") is not None)
    same_choice = sum(ours["choice"] == theirs["choice"] for ours, theirs in pairs)
    text_only = sum(
        ours.get("answer") == theirs["answer"] and ours["choice"] != theirs["choice"] for ours, theirs in pairs
    )
    return {
        "situations": n,
        "same_text": same_text / n if n else None,
        "same_choice": same_choice / n if n else None,
        "same_choice_same_reader": same_reader / n if n else None,
        "different_text": sum(ours.get("answer") != theirs["answer"] for ours, theirs in pairs),
        "same_text_different_choice": text_only,
        "riskdpo_parsed": sum(ours["choice"] is not None for ours, _ in pairs) / n if n else None,
        "baseline_parsed": sum(theirs["choice"] is not None for _, theirs in pairs) / n if n else None,
    }


def eval_section(settings: Settings, model: Path | None = None, baseline_count: int | None = None,
                 logprob_target: float = LOGPROB_SPEEDUP) -> SectionResult:
    """The section; `model` replaces the settings' model (the GPU suite's phi-2-shaped one), and the
    baseline, one situation at a time, may run the first `baseline_count` situations only (its
    situations/s does not depend on how many it runs)."""
    count = settings.eval_situations
    model = model or eval_model(settings)
    situations = eval_situations(settings, count)
    baseline = run_baseline(settings, model, situations, baseline_count or count)
    ours = run_riskdpo(settings, model, situations, (count,))
    base_rate = baseline["situations_per_s"]
    rows = [
        [
            "baseline: chat template + model.generate + regex, one at a time",
            baseline["situations"],
            baseline["load_s"],
            baseline["loop_s"],
            base_rate,
            1.0,
            baseline["process_wall_s"],
            baseline["peak_rss_mib"],
        ]
    ]
    speedups = {}
    for mode in MODES:
        run = ours[mode]["runs"][-1]
        speedups[mode] = ratio(run["situations_per_s"], base_rate)
        label = "one shared pass per prompt" if mode == "logprob" else "greedy, refilled batches"
        rows.append(
            [
                f"riskdpo eval-choices --mode {mode} ({label}, batch {batch_size(settings, mode)})",
                run["situations"],
                ours["load_s"],
                run["loop_s"],
                run["situations_per_s"],
                speedups[mode],
                ours["process_wall_s"],
                ours["peak_rss_mib"],
            ]
        )
    speed = Table(
        title=f"Evaluation speed: {count} held-out situations, {model.name}, {settings.device}",
        columns=["Method", "Situations", "Load s", "Loop s", "Situations/s", "Speed-up", "Process wall s", "Peak RSS MiB"],
        rows=rows,
        notes=[
            "Situations/s = situations / loop s (model load and one untimed warm-up situation excluded on both sides); "
            "process wall s is the whole process (imports, load, warm-up, loop); riskdpo runs both modes in one process "
            "after one load, so its two rows share load s, process wall s and peak RSS. "
            f"max_new_tokens = {settings.max_new_tokens}, greedy; closing instruction: "
            + (f'"{settings.eval_instruction}"' if settings.eval_instruction else "the prompts' own")
            + f". The baseline's prompts average {baseline['mean_prompt_tokens']:.0f} tokens and its answers "
            f"{baseline['mean_new_tokens']:.1f} generated tokens."
        ],
    )
    by_id = {s.situation_id: s for s in load_situations(situations)}
    generate_agreement = agreement(ours["generate"]["records"], baseline["records"], by_id)
    logprob_agreement = agreement(ours["logprob"]["records"], baseline["records"], by_id)
    agree = Table(
        title="Agreement with the baseline, situation by situation",
        columns=["riskdpo mode", "Situations", "Same answer text", "Same choice, one reader", "Same choice, each its reader", "riskdpo parsed", "Baseline parsed"],
        rows=[
            [
                "generate (greedy)",
                generate_agreement["situations"],
                generate_agreement["same_text"],
                generate_agreement["same_choice_same_reader"],
                generate_agreement["same_choice"],
                generate_agreement["riskdpo_parsed"],
                generate_agreement["baseline_parsed"],
            ],
            [
                "logprob (argmax over labels)",
                logprob_agreement["situations"],
                None,
                logprob_agreement["same_choice_same_reader"],
                logprob_agreement["same_choice"],
                logprob_agreement["riskdpo_parsed"],
                logprob_agreement["baseline_parsed"],
            ],
        ],
        notes=[
            "Rates are fractions of the situations. One reader: riskdpo's reader reads both sides' texts; each its "
            "reader: riskdpo's reader its text, the baseline's regex the baseline's. Two unparsed answers count as "
            "the same; logprob always names a label, so it agrees with the baseline only where the baseline's "
            "answer reads as the most probable label."
        ],
    )
    def cause(mode: str) -> str:
        run = ours[mode]["runs"][-1]
        return (
            f"the baseline takes {1000 / base_rate:.0f} ms per situation, a {baseline['mean_prompt_tokens']:.0f}-token "
            f"prompt then {baseline['mean_new_tokens']:.1f} generated tokens; riskdpo {mode} takes "
            f"{1000 * run['loop_s'] / run['situations']:.0f} ms per situation in batches of {batch_size(settings, mode)}. "
            "Every method runs each prompt through the model once, so the speed-up is bounded by how much of the "
            "baseline's time goes to generating tokens one situation at a time"
        )

    targets = [
        Target("logprob situations/s over the baseline's", speedups["logprob"], logprob_target, ">=", "x", cause("logprob")),
        Target("batched generate situations/s over the baseline's", speedups["generate"], GENERATE_SPEEDUP, ">=", "x", cause("generate")),
        Target(
            "greedy batched generate: same choice as the baseline's one-at-a-time answer, one reader",
            generate_agreement["same_choice_same_reader"],
            AGREEMENT,
            ">=",
            "",
            f"{generate_agreement['different_text']} situation(s) generate different text batched than one at a time "
            "(left padding changes float rounding)",
        ),
    ]
    tables = [speed, agree]
    whole = {mode: run_whole_command(settings, model, situations, mode) for mode in MODES} if settings.eval_whole_command else {}
    if whole:
        base_wall = baseline["process_wall_s"]
        tables.append(
            Table(
                title="End to end: whole processes, start-up and model load included",
                columns=["Method", "Situations", "Wall s", "Situations/s", "Speed-up", "Peak RSS MiB"],
                rows=[["baseline script", count, base_wall, count / base_wall, 1.0, baseline["peak_rss_mib"]]]
                + [
                    [f"riskdpo eval-choices --mode {mode}", count, run["wall_s"], count / run["wall_s"], base_wall / run["wall_s"], run["peak_rss_mib"]]
                    for mode, run in whole.items()
                ],
                notes=[
                    "The whole `riskdpo eval-choices` command (report, CSV, figure and the implied-alpha fit "
                    "included) against the whole baseline script (its one warm-up generation included)."
                ],
            )
        )
    return SectionResult(
        section="eval",
        title="Evaluation: eval-choices against a one-situation-at-a-time generate loop",
        description=__doc__.split("\n\n", 1)[1].strip(),
        tables=tables,
        targets=targets,
        raw={
            "baseline": baseline,
            "riskdpo": ours,
            "whole_command": whole,
            "agreement": {"generate": generate_agreement, "logprob": logprob_agreement},
        },
    )


def eval_growth_table(settings: Settings) -> tuple[Table, dict]:
    """riskdpo's evaluation time against the number of situations, both modes, one load each."""
    sizes = settings.growth_eval_sizes
    model = eval_model(settings)
    situations = eval_situations(settings, max(sizes))
    ours = run_riskdpo(settings, model, situations, sizes)
    rows = []
    for index, size in enumerate(sizes):
        logprob, generate = ours["logprob"]["runs"][index], ours["generate"]["runs"][index]
        rows.append(
            [
                size,
                logprob["loop_s"],
                logprob["loop_s"] / size * 1000,
                generate["loop_s"],
                generate["loop_s"] / size * 1000,
            ]
        )
    table = Table(
        title=f"Growth: evaluation time against the number of situations ({model.name}, {settings.device})",
        columns=["Situations", "logprob s", "logprob ms/situation", "generate s", "generate ms/situation"],
        rows=rows,
        notes=["Loop time only (the model is loaded once, before the first size)."],
    )
    return table, ours
