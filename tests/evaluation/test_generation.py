"""Generation with the real tiny model: rows leaving a batch keep greedy text, sampling is
seeded per answer (independent of batching), top-k 1 and a tiny top-p equal greedy, and
reading an answer keeps the reasoning length."""

import pytest
import torch
from test_choices import eval_model, eval_situations, loaded, situation  # noqa: F401 (fixtures)

from riskdpo.evaluation.generation import Decoding, answer_seed, generate_rows, next_tokens, answer_record
from riskdpo.pairs.prompting import PromptFormat, render_prompt

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
