"""On-policy preference pairs: the model's own answers, graded exactly against the situation's labels.

Iterative reasoning preference optimisation (Pang et al. 2024) samples
answers from the current model, pairs an answer whose final choice is correct
against one whose choice is wrong, and trains on them with DPO plus an NLL term
on the chosen answer (`riskdpo.training.loss.dpo_nll_loss`). Here each answer
is read with `riskdpo.data.answers.parse_answer` (the reader that scores
models in generate mode) and graded against the situation's label sets:

- ``risk_averse``: it names a risk-averse best option -> a chosen answer;
- ``rejected``: it names the rejected agent's best option (the agent picked by
  the make-pairs policy, `riskdpo.pairs.build.rejected_agent`) -> a rejected answer;
- ``unparsable``: it names no option clearly -> a rejected answer;
- ``other``: it names some other option -> not used.

A situation gives up to `pairs_per_situation` pairs: its i-th chosen answer
with its i-th rejected answer, in sample order. One without a chosen or
without a rejected answer gives none, and is counted.

Sampling renders each prompt exactly as training will (`PromptFormat`) and
decodes K answers with `riskdpo.evaluation.generation` (the decoder of
eval-choices --mode generate), answer k of a situation from its own generator
seeded by `answer_seed(seed, situation, k)`: the same model and seed give the
same answers, and so the same pairs file, whatever the batch size (on a CPU; on a GPU up to
near-ties, as bf16 round-off depends on the batch: `riskdpo.evaluation.generation`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from riskdpo.core.errors import UserError
from riskdpo.data.situations import Situation
from riskdpo.data.answers import parse_answer
from riskdpo.evaluation.generation import Decoding, answer_seed, generate_rows
from riskdpo.models.loading import default_device, load_model, load_tokenizer, resolve_precision
from riskdpo.pairs.build import find_eligible, sample_situations
from riskdpo.pairs.prompting import PromptFormat, render_prompt, rewrite_instruction

#: How an answer is graded (the order the summary lists them in).
OUTCOMES = ("risk_averse", "rejected", "unparsable", "other")
#: The `response` field of sampled pairs.
SAMPLED_RESPONSE = "sampled"


@dataclass
class SampledPairs:
    """Pairs from sampled answers, and what the summary reports."""

    pairs: list[dict]
    outcomes: Counter = field(default_factory=Counter)  # outcome -> answers
    without_pair: Counter = field(default_factory=Counter)  # reason -> situations

    def summary_lines(self) -> list[str]:
        """What sample-pairs did, one fact a line."""
        graded = ", ".join(f"{outcome} {self.outcomes[outcome]}" for outcome in OUTCOMES)
        missing = ", ".join(f"{count} {reason}" for reason, count in self.without_pair.most_common()) or "none"
        return [
            f"answers graded: {sum(self.outcomes.values())} ({graded})",
            f"situations without a pair: {sum(self.without_pair.values())} ({missing})",
            f"pairs written: {len(self.pairs)}",
        ]


def grade_answer(situation: Situation, answer: str, agent: str) -> str:
    """The outcome of `answer` in `situation` with `agent` the rejected agent (see `OUTCOMES`)."""
    label = parse_answer(answer, situation.option_labels, situation.answer_variants)
    if label is None:
        return "unparsable"
    if label in situation.risk_averse:
        return "risk_averse"
    if label in getattr(situation, agent):
        return "rejected"
    return "other"


def _check_pairs_per_situation(pairs_per_situation: int) -> None:
    if pairs_per_situation < 1:
        raise UserError(f"--pairs-per-situation {pairs_per_situation}: must be at least 1")


def _check_sampling(samples: int, temperature: float) -> None:
    """More than one sample needs a temperature above 0 (greedy decoding would repeat one answer)."""
    if samples < 1:
        raise UserError(f"--samples {samples}: must be at least 1")
    if samples > 1 and temperature <= 0:
        raise UserError(f"--samples {samples} needs --temperature above 0 (greedy decoding repeats one answer)")


def pairs_from_answers(
    items: Sequence[tuple[Situation, str]],
    answers: Sequence[Sequence[str]],
    *,
    instruction: str | None = None,
    pairs_per_situation: int = 1,
) -> SampledPairs:
    """Grade the answers of each ``(situation, rejected agent)`` of `items` and pair them."""
    _check_pairs_per_situation(pairs_per_situation)
    result = SampledPairs(pairs=[])
    for (situation, agent), texts in zip(items, answers, strict=True):
        graded = [(text, grade_answer(situation, text, agent)) for text in texts]
        result.outcomes.update(outcome for _, outcome in graded)
        chosen = [text for text, outcome in graded if outcome == "risk_averse"]
        rejected = [(text, outcome) for text, outcome in graded if outcome in ("rejected", "unparsable")]
        if not chosen or not rejected:
            reason = "with no answer of either kind" if not chosen and not rejected else (
                "with no risk-averse answer" if not chosen else "with no rejected or unparsable answer"
            )
            result.without_pair[reason] += 1
            continue
        for chosen_text, (rejected_text, outcome) in list(zip(chosen, rejected))[:pairs_per_situation]:
            result.pairs.append({
                "prompt": rewrite_instruction(situation.prompt, instruction),
                "chosen": chosen_text,
                "rejected": rejected_text,
                "situation_id": situation.situation_id,
                "sheet": situation.sheet,
                "rejected_kind": agent if outcome == "rejected" else "unparsable",
                "response": SAMPLED_RESPONSE,
                "instruction": instruction,
            })  # fmt: skip
    return result


def sample_answers(
    model: Any,
    tokenizer: Any,
    situations: Sequence[Situation],
    fmt: PromptFormat,
    *,
    samples: int,
    temperature: float,
    seed: int = 0,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    progress: bool = False,
) -> list[list[str]]:
    """`samples` answers of the model to each situation's prompt rendered under `fmt`, in input order."""
    from tqdm.auto import tqdm

    _check_sampling(samples, temperature)
    rendered = [render_prompt(tokenizer, situation.prompt, fmt) for situation in situations]
    work = [(index, sample) for index in range(len(situations)) for sample in range(samples)]
    seeds = [answer_seed(seed, situations[index], sample) for index, sample in work]
    decoding = Decoding(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    flat = [""] * len(work)
    rows = generate_rows(model, tokenizer, [rendered[index] for index, _ in work], seeds, decoding, batch_size)
    for done in tqdm(rows, total=len(work), desc="sample", unit="answer", disable=not progress, leave=False):
        flat[done.index] = tokenizer.decode(done.token_ids, skip_special_tokens=True)
    return [flat[index * samples : (index + 1) * samples] for index in range(len(situations))]


@dataclass(frozen=True)
class SampleSpec:
    """What `sample_pairs` samples and how; the same spec and model give the same pairs."""

    samples: int = 4
    temperature: float = 1.0
    seed: int = 0
    policy: str = "risk-neutral"
    sheets: tuple[str, ...] = ()
    sample_size: int | None = None
    pairs_per_situation: int = 1
    batch_size: int = 8
    max_new_tokens: int = 256
    precision: str = "auto"
    fmt: PromptFormat = PromptFormat()
    progress: bool = False

    def __post_init__(self) -> None:
        _check_sampling(self.samples, self.temperature)
        _check_pairs_per_situation(self.pairs_per_situation)


def sample_pairs(model_name: str, situations: Sequence[Situation], spec: SampleSpec) -> SampledPairs:
    """Load `model_name`, sample `spec.samples` answers per eligible situation, grade and pair them.

    Situations are those make-pairs would use under `spec.policy` (the
    risk-averse best and the rejected agent's best differ), sampled with
    `spec.seed` when `spec.sample_size` is set.
    """
    eligible = find_eligible(situations, spec.policy, seed=spec.seed, sheets=spec.sheets or None)
    if not eligible.kept:
        raise UserError(f"no situation can make a pair: of {eligible.read} read, {eligible.describe_skips()}")
    items = sample_situations(eligible.kept, spec.sample_size, spec.seed)
    device = default_device()
    tokenizer = load_tokenizer(model_name)
    model = load_model(model_name, precision=resolve_precision(spec.precision, device)).to(device)
    answers = sample_answers(
        model, tokenizer, [situation for situation, _ in items], spec.fmt, samples=spec.samples,
        temperature=spec.temperature, seed=spec.seed, batch_size=spec.batch_size, max_new_tokens=spec.max_new_tokens,
        progress=spec.progress,
    )  # fmt: skip
    return pairs_from_answers(
        items, answers, instruction=spec.fmt.instruction, pairs_per_situation=spec.pairs_per_situation
    )
