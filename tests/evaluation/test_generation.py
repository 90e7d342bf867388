"""Generation with the real tiny model: greedy text equals transformers' `model.generate`
(phi, a tiny Llama, and a tiny Mistral whose sliding-window cache is never joined), rows
leaving a batch and prompts refilling it keep it, the batch never runs half empty while
prompts wait, sampling is seeded per answer (independent of batching), top-k 1 and a tiny
top-p equal greedy, and reading an answer keeps the reasoning length. "The same text" here
means token for token on the CPU, where these tests run; on a GPU bf16 round-off depends on
the batch, so equal up to near-ties (README, Generation)."""

from dataclasses import dataclass

import pytest
import torch
from test_choices import eval_model, eval_situations, loaded, situation  # noqa: F401 (fixtures)

from riskdpo.evaluation.generation import Decoding, answer_record, answer_seed, generate_rows, next_tokens, stop_ids
from riskdpo.models.loading import load_model, load_tokenizer
from riskdpo.models.logps import length_grouped_order
from riskdpo.pairs.prompting import PromptFormat, render_prompt

pytestmark = pytest.mark.floor  # touches the transformers model API: CI runs it again at the floor versions

GREEDY = Decoding(max_new_tokens=10)


@pytest.fixture(scope="module")
def prompts(loaded):
    _, tokenizer = loaded
    return [render_prompt(tokenizer, s.prompt, PromptFormat()) for s in eval_situations()[:8]]


def answers(model, tokenizer, prompts, decoding, batch_size, seeds=None):
    """token ids per prompt, in input order."""
    seeds = seeds if seeds is not None else list(range(len(prompts)))
    found = {done.index: done.token_ids for done in generate_rows(model, tokenizer, prompts, seeds, decoding, batch_size)}
    return [found[i] for i in range(len(prompts))]


def test_rows_that_finish_leave_the_batch_and_greedy_text_is_unchanged(loaded, prompts):
    model, tokenizer = loaded
    alone = [answers(model, tokenizer, [p], GREEDY, 1)[0] for p in prompts]
    # make a token that some answers produce early, and others never, end an answer
    first_steps = {answer[2] for answer in alone}
    stop = next(t for t in sorted(first_steps) if sum(t in a for a in alone) < len(alone))
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = stop
    try:
        alone = [answers(model, tokenizer, [p], GREEDY, 1)[0] for p in prompts]
        batched = answers(model, tokenizer, prompts, GREEDY, 4)
    finally:
        model.generation_config.eos_token_id = saved
    assert batched == alone
    assert len({len(answer) for answer in batched}) > 1  # rows really ended at different steps
    assert min(len(answer) for answer in batched) < GREEDY.max_new_tokens
    assert tokenizer.padding_side == "right"  # restored


def test_batched_generation_equals_one_at_a_time(loaded, prompts):
    model, tokenizer = loaded
    lengths = {len(tokenizer(p).input_ids) for p in prompts}
    assert len(lengths) > 1  # the batches really are padded
    batched = answers(model, tokenizer, prompts, GREEDY, 4)
    assert batched == [answers(model, tokenizer, [p], GREEDY, 1)[0] for p in prompts]
    assert all(len(answer) == GREEDY.max_new_tokens for answer in batched)


def test_sampling_is_seeded_per_answer_whatever_the_batch(loaded, prompts):
    model, tokenizer = loaded
    hot = Decoding(max_new_tokens=8, temperature=1.0, seed=7)
    seeds = [answer_seed(7, s, 0) for s in eval_situations()[:8]]
    first = answers(model, tokenizer, prompts, hot, 3, seeds)
    assert first == answers(model, tokenizer, prompts, hot, 3, seeds)
    assert first == answers(model, tokenizer, prompts, hot, 1, seeds)  # batch size does not matter
    assert first[2:4] == answers(model, tokenizer, prompts[2:4], hot, 8, seeds[2:4])  # nor the other rows
    other = [answer_seed(8, s, 0) for s in eval_situations()[:8]]
    assert first != answers(model, tokenizer, prompts, hot, 3, other)
    assert first != answers(model, tokenizer, prompts, GREEDY, 3, seeds)


def test_answer_seeds_differ_by_seed_situation_and_sample():
    one, two = eval_situations()[:2]
    seeds = {answer_seed(0, one, 0), answer_seed(0, one, 1), answer_seed(0, two, 0), answer_seed(1, one, 0)}
    assert len(seeds) == 4 and answer_seed(0, one, 0) == answer_seed(0, one, 0)


@pytest.mark.parametrize("decoding", [Decoding(10, 1.5, 1.0, 1, 3), Decoding(10, 1.5, 1e-9, 0, 3)], ids=["top-k 1", "top-p 0"])
def test_top_k_1_and_a_vanishing_top_p_equal_greedy(loaded, prompts, decoding):
    model, tokenizer = loaded
    assert answers(model, tokenizer, prompts, decoding, 4) == answers(model, tokenizer, prompts, GREEDY, 4)


def test_top_k_and_top_p_keep_only_the_most_probable_tokens():
    probs = torch.tensor([[0.05, 0.5, 0.3, 0.15]])
    logits = probs.log()
    generator = torch.Generator().manual_seed(0)
    draw = lambda decoding: {int(next_tokens(logits, decoding, [generator])[0]) for _ in range(300)}  # noqa: E731
    assert draw(Decoding(temperature=1.0)) == {0, 1, 2, 3}
    assert draw(Decoding(temperature=1.0, top_k=2)) == {1, 2}
    assert draw(Decoding(temperature=1.0, top_p=0.6)) == {1, 2}  # 0.5 < 0.6, so the 0.3 token is needed
    assert draw(Decoding(temperature=1.0, top_p=0.5)) == {1}
    assert draw(Decoding(temperature=1.0, top_k=3, top_p=0.9)) == {1, 2, 3}


def test_answer_record_grades_and_keeps_reasoning_length():
    plain = situation("abc", risk_averse=["b"], risk_neutral=["a"])
    graded = [answer_record(plain, text, 4, True) for text in ("I choose b", "Option a", "no idea")]
    assert [(r["label"], r["category"], r["answer"]) for r in graded] == [
        ("b", "risk_averse", "I choose b"),
        ("a", "risk_neutral", "Option a"),
        (None, "invalid", "no idea"),
    ]
    thought = answer_record(plain, "<think>a or b? c is worse.</think>\nb", 30, False)
    assert thought["reasoning_chars"] == len("a or b? c is worse.")
    assert thought["new_tokens"] == 30 and thought["truncated"] is True
    assert graded[0]["reasoning_chars"] == 0 and graded[0]["truncated"] is False
    assert thought["label"] == "b" and thought["answer_source"] == "visible"
    assert graded[2]["invalid_reason"] == "no_label" and graded[0]["invalid_reason"] is None
    cut = answer_record(plain, "<think>a looks safer than", 30, False)
    assert cut["label"] is None and cut["invalid_reason"] == "truncated"
    # an answer that names nothing although it ended is not called truncated
    assert answer_record(plain, "no idea", 3, True)["invalid_reason"] != "truncated"


LONG = Decoding(max_new_tokens=24)


@dataclass
class Ending:
    """A model whose EOS is a token its greedy answers reach at different steps or never, and
    prompts of widely different lengths with their answers decoded one at a time."""

    model: object
    tokenizer: object
    prompts: list
    alone: list


def ending(model, tokenizer):
    """Make `model` end its greedy answers to prompts of 13 to 250 tokens at mixed steps (see `Ending`)."""
    full = [render_prompt(tokenizer, s.prompt, PromptFormat()) for s in eval_situations()]
    prompts = [p[len(p) * (k % 6) // 6 :] for k, p in enumerate(full)]  # a sixth to all of each prompt
    alone = [answers(model, tokenizer, [p], LONG, 1)[0] for p in prompts]
    steps = {t: {a.index(t) for a in alone if t in a} for a in alone for t in a[1:]}
    # the token first met at the most different steps, among those absent from at least 3 answers
    stop = max((t for t in steps if sum(t not in a for a in alone) >= 3), key=lambda t: (len(steps[t]), -t))
    model.generation_config.eos_token_id = stop
    alone = [answers(model, tokenizer, [p], LONG, 1)[0] for p in prompts]
    lengths = [len(tokenizer(p).input_ids) for p in prompts]
    assert min(lengths) < 20 and max(lengths) > 200
    assert len({len(a) for a in alone if len(a) < LONG.max_new_tokens}) >= 3  # EOS at different steps
    assert sum(len(a) == LONG.max_new_tokens for a in alone) >= 3  # and the limit
    return Ending(model, tokenizer, prompts, alone)


@pytest.fixture(scope="module")
def phi_ending(eval_model):
    """The tiny phi model, loaded apart from `loaded` (its EOS is changed)."""
    return ending(load_model(str(eval_model)), load_tokenizer(str(eval_model)))


@pytest.fixture(scope="module")
def llama_ending(eval_model):
    """A tiny random Llama (grouped-query attention, as SmolLM2) with the tiny model's tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_tokenizer(str(eval_model))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, initializer_range=0.5, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    return ending(LlamaForCausalLM(config).eval(), tokenizer)


@pytest.fixture(scope="module")
def mistral_ending(eval_model):
    """A tiny random Mistral whose sliding window (16) is shorter than every prompt: its cache cannot be joined."""
    from transformers import MistralConfig, MistralForCausalLM

    tokenizer = load_tokenizer(str(eval_model))
    config = MistralConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, initializer_range=0.5, pad_token_id=tokenizer.pad_token_id, sliding_window=16,
    )  # fmt: skip
    torch.manual_seed(0)
    return ending(MistralForCausalLM(config).eval(), tokenizer)


@pytest.mark.parametrize("batch_size", [2, 3, 8, 16])
@pytest.mark.parametrize("setup", ["phi_ending", "llama_ending", "mistral_ending"])
def test_refilled_batches_give_the_greedy_text_of_one_prompt_at_a_time(request, setup, batch_size):
    """Over the prompts twice, so that at batch 16 two done rows run along before they are cut out."""
    run = request.getfixturevalue(setup)
    assert answers(run.model, run.tokenizer, run.prompts * 2, LONG, batch_size) == run.alone * 2


def transformers_greedy(run) -> list:
    """Each prompt's greedy answer from Hugging Face's own decoder, `model.generate(do_sample=False)`,
    one prompt at a time (no padding), cut before the first stop token as riskdpo cuts it."""
    stops = sorted(stop_ids(run.model, run.tokenizer))
    expected = []
    for prompt in run.prompts:
        ids = run.tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            out = run.model.generate(
                ids, attention_mask=torch.ones_like(ids), do_sample=False, num_beams=1,
                max_new_tokens=LONG.max_new_tokens, eos_token_id=stops, pad_token_id=run.tokenizer.pad_token_id,
            )[0, ids.shape[1]:].tolist()  # fmt: skip
        expected.append(next((out[:i] for i, token in enumerate(out) if token in stops), out))
    return expected


@pytest.mark.parametrize("setup", ["phi_ending", "llama_ending", "mistral_ending"])
def test_greedy_text_equals_transformers_generate(request, setup):
    """The oracle is transformers' decoder, not riskdpo's at batch 1: refilled batches of 8 over
    prompts of 13 to 250 tokens, answers cut by EOS and by the limit, give exactly the tokens of
    `model.generate(do_sample=False)` (on the tiny Llama and Mistral positions matter: decoding with
    positions off by one agrees on no prompt)."""
    run = request.getfixturevalue(setup)
    expected = transformers_greedy(run)
    assert sum(len(answer) < LONG.max_new_tokens for answer in expected) >= 3  # EOS ends some answers
    assert answers(run.model, run.tokenizer, run.prompts, LONG, 8) == expected


def test_sampled_text_is_the_same_for_every_batch_size_and_refill(phi_ending):
    run = phi_ending
    hot = Decoding(max_new_tokens=24, temperature=1.0, seed=5)
    seeds = [answer_seed(5, s, 0) for s in eval_situations()]
    one = answers(run.model, run.tokenizer, run.prompts, hot, 1, seeds)
    assert len({len(a) for a in one}) > 1  # rows leave at different steps
    for batch_size in (3, 8, 16):
        assert answers(run.model, run.tokenizer, run.prompts, hot, batch_size, seeds) == one
    other = [answer_seed(6, s, 0) for s in eval_situations()]
    assert answers(run.model, run.tokenizer, run.prompts, hot, 3, other) != one


@pytest.mark.parametrize("batch_size", [3, 8, 16, 24])
def test_the_batch_is_refilled_while_prompts_wait(phi_ending, batch_size):
    """Forward passes seen by the model, over the prompts twice: while prompts wait every decoding
    pass is full (rows whose answers are done run along until an eighth of the batch is done,
    then they are cut out and their slots refilled), each prompt is prefilled and answered once,
    and there are fewer decoding passes than batches that only shrink (the code before
    refilling) would need."""
    run = phi_ending
    prompts, alone = run.prompts * 2, run.alone * 2
    seen = []

    def record(module, args, kwargs):
        seen.append((kwargs["input_ids"].shape, bool(kwargs["attention_mask"][:, 0].any())))

    hook = run.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        done = list(generate_rows(run.model, run.tokenizer, prompts, range(len(prompts)), LONG, batch_size))
    finally:
        hook.remove()
    assert sorted(d.index for d in done) == list(range(len(prompts)))
    assert [d.token_ids for d in sorted(done, key=lambda d: d.index)] == alone
    prefills = [rows for (rows, width), _ in seen if width > 1]
    last_prefill = max(i for i, ((_, width), _) in enumerate(seen) if width > 1)
    decodes = [(i, rows) for i, ((rows, width), _) in enumerate(seen) if width == 1]
    assert sum(prefills) == len(prompts) and len(prefills) > len(prompts) // batch_size
    waiting = [rows for i, rows in decodes if i < last_prefill]
    assert waiting and set(waiting) == {batch_size}  # never a free slot while prompts wait
    tail = [rows for i, rows in decodes if i > last_prefill]
    assert tail == sorted(tail, reverse=True)  # then it only shrinks
    compact_at = max(1, batch_size // 8)
    assert len(set(tail)) <= len(tail) // compact_at + 1  # shrinking by cutting several done rows at once
    assert all(first_seen for _, first_seen in seen)  # no column hidden from every row is kept
    # a row takes one pass per token, and one more for the EOS it does not keep
    passes = [len(a) + (len(a) < LONG.max_new_tokens) for a in alone]
    lengths = [len(run.tokenizer(p).input_ids) for p in prompts]
    groups = length_grouped_order(lengths, batch_size)
    shrinking = [max(passes[i] for i in group) for group in groups]  # passes per batch: one prefill, then decodes
    assert len(decodes) <= sum(shrinking) - len(groups)
    if len(groups) > 2:  # here every batch but the last holds a 24-token answer: refilling saves passes
        assert len(decodes) < sum(shrinking) - len(groups)


def test_prefill_groups_bound_the_padded_tokens_of_a_pass(monkeypatch):
    import riskdpo.evaluation.generation as generation

    monkeypatch.setattr(generation, "PREFILL_TOKENS", 60)
    lengths = {0: 10, 1: 20, 2: 20, 3: 25, 4: 70, 5: 70}
    assert generation.prefill_groups([0, 1, 2, 3, 4, 5], lengths) == [[0, 1, 2], [3], [4], [5]]


@pytest.mark.parametrize("batch_size", [8, 16])
def test_prompts_prefilled_in_groups_keep_greedy_text(phi_ending, batch_size, monkeypatch):
    """With a small bound, waiting prompts are prefilled in several passes joined at once."""
    import riskdpo.evaluation.generation as generation

    monkeypatch.setattr(generation, "PREFILL_TOKENS", 400)
    run = phi_ending
    widths = []
    hook = run.model.register_forward_pre_hook(lambda m, a, kw: widths.append(kw["input_ids"].shape), with_kwargs=True)
    try:
        got = answers(run.model, run.tokenizer, run.prompts * 2, LONG, batch_size)
    finally:
        hook.remove()
    assert got == run.alone * 2
    prefills = [(rows, width) for rows, width in widths if width > 1]
    assert all(rows * width <= 400 or rows == 1 for rows, width in prefills)
    assert max(rows for rows, _ in prefills) > 1 and len(prefills) > 2 * len(run.prompts) // batch_size + 1


@pytest.mark.parametrize("batch_size", [3, 16])
def test_answers_that_end_at_their_first_token_are_yielded_once(phi_ending, batch_size):
    """A prompt whose first greedy token is EOS finishes in its prefill pass: its (empty) answer
    comes out once, like every other."""
    run = phi_ending
    saved = run.model.generation_config.eos_token_id
    run.model.generation_config.eos_token_id = run.alone[0][0]
    try:
        alone = [answers(run.model, run.tokenizer, [p], LONG, 1)[0] for p in run.prompts]
        done = list(generate_rows(run.model, run.tokenizer, run.prompts * 2, range(32), LONG, batch_size))
    finally:
        run.model.generation_config.eos_token_id = saved
    assert [] in alone
    assert sorted(d.index for d in done) == list(range(32))
    assert [d.token_ids for d in sorted(done, key=lambda d: d.index)] == alone * 2


def test_prefill_masks_give_every_padding_query_its_own_diagonal():
    """Left padding: each padding query sees itself only, each real query the real tokens up to it
    (within a sliding window when there is one); no row of the mask is empty."""
    from riskdpo.evaluation.generation import prefill_allowed

    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    allowed = prefill_allowed(mask)
    assert allowed.any(dim=-1).all()
    assert allowed[0, :2].tolist() == [[True, False, False, False, False], [False, True, False, False, False]]
    assert allowed[0, 4].tolist() == [False, False, True, True, True]
    assert torch.equal(allowed[1], torch.ones(5, 5, dtype=torch.bool).tril())
    assert prefill_allowed(mask, window=2)[1, 4].tolist() == [False, False, False, True, True]


@pytest.mark.parametrize("setup", ["phi_ending", "llama_ending", "mistral_ending"])
def test_prefill_passes_have_no_empty_query_row(request, setup):
    """What the model receives in each prefill of padded prompts: a 4D mask (one per layer kind)
    with no row that sees nothing; the greedy text stays that of `model.generate`
    (test_greedy_text_equals_transformers_generate)."""
    run = request.getfixturevalue(setup)
    masks = []

    def record(module, args, kwargs):
        if kwargs["input_ids"].shape[1] > 1:
            masks.append(kwargs["attention_mask"])

    hook = run.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        answers(run.model, run.tokenizer, run.prompts, LONG, 8)
    finally:
        hook.remove()
    padded = 0
    for mask in masks:
        assert mask.dim() == 4
        seen = (mask > torch.finfo(mask.dtype).min).sum(dim=-1)  # additive: 0 where a query attends
        assert (seen > 0).all()
        padded += int(((seen == 1).sum(dim=-1) > 1).sum())  # rows with padding: it sees itself alone
    assert padded > 0
