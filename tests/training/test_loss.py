"""The losses against their published formulas, computed here element by element in plain Python."""

import math

import pytest
import torch

from riskdpo.training.loss import LOSS_TYPES, PER_TOKEN_LOSSES, dpo_loss, dpo_nll_loss, sft_loss


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def expected_loss(h: float, beta: float, loss_type: str, eps: float) -> float:
    """The papers' per-pair losses with h = (π_c - ref_c) - (π_r - ref_r)."""
    if loss_type in ("sigmoid", "sigmoid-norm"):  # Rafailov et al. 2023; conservative DPO with eps
        return -(1 - eps) * log_sigmoid(beta * h) - eps * log_sigmoid(-beta * h)
    if loss_type == "robust":  # Chowdhury et al. 2024
        return (-(1 - eps) * log_sigmoid(beta * h) + eps * log_sigmoid(-beta * h)) / (1 - 2 * eps)
    if loss_type == "hinge":  # SLiC
        return max(0.0, 1 - beta * h)
    return (h - 1 / (2 * beta)) ** 2  # IPO


def random_logps(seed: int, n: int = 64) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [-(torch.rand(n, generator=generator, dtype=torch.float64) * 30) for _ in range(4)]


def random_counts(seed: int, n: int = 64) -> list[torch.Tensor]:
    """Token counts of chosen and rejected completions, 1 to 200."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randint(1, 201, (n,), generator=generator).double() for _ in range(2)]


# sigmoid-norm is defined on per-token averages only: the test with token counts covers it.
@pytest.mark.parametrize("loss_type", [name for name in LOSS_TYPES if name != "sigmoid-norm"])
@pytest.mark.parametrize("beta", [0.05, 0.5, 2.0])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.3])
def test_losses_match_the_published_formulas(loss_type, beta, eps):
    pc, pr, rc, rr = random_logps(seed=int(beta * 100) + int(eps * 10))
    losses, chosen_rewards, rejected_rewards = dpo_loss(pc, pr, rc, rr, beta, loss_type, eps)
    for i in range(len(pc)):
        h = (pc[i].item() - rc[i].item()) - (pr[i].item() - rr[i].item())
        assert losses[i].item() == pytest.approx(expected_loss(h, beta, loss_type, eps), rel=1e-9, abs=1e-12)
        assert chosen_rewards[i].item() == pytest.approx(beta * (pc[i].item() - rc[i].item()), rel=1e-12)
        assert rejected_rewards[i].item() == pytest.approx(beta * (pr[i].item() - rr[i].item()), rel=1e-12)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("beta", [0.05, 2.0])
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_token_counts_average_the_per_token_losses_and_no_others(loss_type, beta, eps):
    pc, pr, rc, rr = random_logps(seed=11)
    nc, nr = random_counts(seed=12)
    losses, chosen_rewards, rejected_rewards = dpo_loss(
        pc, pr, rc, rr, beta, loss_type, eps, chosen_counts=nc, rejected_counts=nr
    )
    per_token = loss_type in PER_TOKEN_LOSSES
    for i in range(len(pc)):
        chosen_ratio = (pc[i].item() - rc[i].item()) / (nc[i].item() if per_token else 1)
        rejected_ratio = (pr[i].item() - rr[i].item()) / (nr[i].item() if per_token else 1)
        h = chosen_ratio - rejected_ratio
        assert losses[i].item() == pytest.approx(expected_loss(h, beta, loss_type, eps), rel=1e-9, abs=1e-12)
        assert chosen_rewards[i].item() == pytest.approx(beta * chosen_ratio, rel=1e-12)
        assert rejected_rewards[i].item() == pytest.approx(beta * rejected_ratio, rel=1e-12)


def test_sigmoid_norm_by_hand_ignores_length_that_sigmoid_punishes():
    # chosen: 100 tokens at log-ratio +0.02 each (total +2); rejected: 10 tokens at +0.1 each (total +1)
    # sigmoid: h = 2 - 1 = 1; sigmoid-norm: h̄ = 0.02 - 0.1 = -0.08.
    pc, rc = torch.tensor([-50.0], dtype=torch.float64), torch.tensor([-52.0], dtype=torch.float64)
    pr, rr = torch.tensor([-5.0], dtype=torch.float64), torch.tensor([-6.0], dtype=torch.float64)
    nc, nr = torch.tensor([100.0], dtype=torch.float64), torch.tensor([10.0], dtype=torch.float64)
    plain = dpo_loss(pc, pr, rc, rr, 1.0, "sigmoid")[0].item()
    norm = dpo_loss(pc, pr, rc, rr, 1.0, "sigmoid-norm", chosen_counts=nc, rejected_counts=nr)[0].item()
    assert plain == pytest.approx(math.log1p(math.exp(-1.0)), rel=1e-12)
    assert norm == pytest.approx(math.log1p(math.exp(0.08)), rel=1e-12)


def test_ipo_with_counts_equals_ipo_on_averages_the_caller_computed():
    pc, pr, rc, rr = random_logps(seed=21)
    nc, nr = random_counts(seed=22)
    inside = dpo_loss(pc, pr, rc, rr, 0.3, "ipo", chosen_counts=nc, rejected_counts=nr)
    outside = dpo_loss(pc / nc, pr / nr, rc / nc, rr / nr, 0.3, "ipo")
    for mine, theirs in zip(inside, outside):
        assert torch.allclose(mine, theirs, rtol=1e-12, atol=1e-12)


def test_sigmoid_norm_without_counts_is_refused():
    pc, pr, rc, rr = random_logps(seed=1, n=2)
    with pytest.raises(ValueError, match="chosen_counts and rejected_counts"):
        dpo_loss(pc, pr, rc, rr, 0.5, "sigmoid-norm")
    with pytest.raises(ValueError, match="both"):
        dpo_loss(pc, pr, rc, rr, 0.5, "ipo", chosen_counts=torch.ones(2))


def test_sft_loss_is_the_token_mean_cross_entropy():
    # response 1: 3 tokens with log-probs -0.5, -1.0, -1.5 (sum -3); response 2: 1 token at -2
    # token mean: (0.5 + 1.0 + 1.5 + 2) / 4 = 1.25 (the mean of per-response means would be 1.5)
    logps, counts = torch.tensor([-3.0, -2.0]), torch.tensor([3, 1])
    assert sft_loss(logps, counts).item() == pytest.approx(1.25, rel=1e-7)
    pc, _, _, _ = random_logps(seed=31)
    nc, _ = random_counts(seed=32)
    expected = -sum(pc.tolist()) / sum(nc.tolist())
    assert sft_loss(pc, nc).item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="at least one token"):
        sft_loss(torch.tensor([-1.0]), torch.tensor([0]))


def test_sft_loss_equals_cross_entropy_over_the_tokens():
    """Against torch's own token-level cross-entropy on logits: the interface (summed log-probs
    and counts, as `batch_logps` returns) loses nothing."""
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 5, 11, generator=generator, dtype=torch.float64)
    targets = torch.randint(0, 11, (2, 5), generator=generator)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0]])
    token_logps = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    summed = (token_logps * mask).sum(-1)
    reference = torch.nn.functional.cross_entropy(logits[mask.bool()], targets[mask.bool()])
    assert sft_loss(summed, mask.sum(-1)).item() == pytest.approx(reference.item(), rel=1e-12)


@pytest.mark.parametrize("loss_type", ["sigmoid", "sigmoid-norm", "ipo"])
@pytest.mark.parametrize("weight", [0.0, 0.5, 2.0])
def test_dpo_nll_is_dpo_plus_weighted_length_normalised_nll(loss_type, weight):
    pc, pr, rc, rr = random_logps(seed=41)
    nc, nr = random_counts(seed=42)
    losses, nll, chosen_rewards, rejected_rewards = dpo_nll_loss(pc, pr, rc, rr, nc, nr, 0.2, weight, loss_type, 0.1)
    per_token = loss_type in PER_TOKEN_LOSSES
    for i in range(len(pc)):
        scale_c, scale_r = (nc[i].item(), nr[i].item()) if per_token else (1, 1)
        h = (pc[i].item() - rc[i].item()) / scale_c - (pr[i].item() - rr[i].item()) / scale_r
        expected_nll = -pc[i].item() / nc[i].item()
        assert nll[i].item() == pytest.approx(expected_nll, rel=1e-12)
        expected = expected_loss(h, 0.2, loss_type, 0.1) + weight * expected_nll
        assert losses[i].item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
        assert chosen_rewards[i].item() == pytest.approx(0.2 * (pc[i].item() - rc[i].item()) / scale_c, rel=1e-12)
    assert not nll.requires_grad


def test_the_nll_term_pulls_the_chosen_log_prob_up_even_when_dpo_is_satisfied():
    # h large: the DPO gradient on π_c is almost 0, the NLL term's is -W/|y_c|.
    pc = torch.tensor([-10.0], dtype=torch.float64, requires_grad=True)
    pr = torch.tensor([-80.0], dtype=torch.float64)
    rc, rr = torch.tensor([-10.0], dtype=torch.float64), torch.tensor([-10.0], dtype=torch.float64)
    nc, nr = torch.tensor([20.0], dtype=torch.float64), torch.tensor([20.0], dtype=torch.float64)
    losses, _, _, _ = dpo_nll_loss(pc, pr, rc, rr, nc, nr, 1.0, 3.0)
    losses.sum().backward()
    dpo_part = -1.0 / (1 + math.exp(70.0))  # d/dπ_c of -logσ(β h) = -β σ(-β h)
    assert pc.grad.item() == pytest.approx(dpo_part - 3.0 / 20.0, rel=1e-12)
    with pytest.raises(ValueError, match="nll_weight"):
        dpo_nll_loss(pc, pr, rc, rr, nc, nr, 1.0, -1.0)


def test_label_smoothing_changes_sigmoid_and_robust_only_where_it_should():
    pc, pr, rc, rr = random_logps(seed=7)
    plain = dpo_loss(pc, pr, rc, rr, 0.5, "sigmoid", 0.0)[0]
    assert torch.allclose(dpo_loss(pc, pr, rc, rr, 0.5, "robust", 0.0)[0], plain)
    assert not torch.allclose(dpo_loss(pc, pr, rc, rr, 0.5, "sigmoid", 0.2)[0], plain)


def test_rewards_are_detached_and_the_loss_has_gradients_for_the_policy():
    pc, pr, rc, rr = random_logps(seed=3, n=8)
    pc.requires_grad_(True)
    pr.requires_grad_(True)
    losses, chosen_rewards, rejected_rewards = dpo_loss(pc, pr, rc, rr, 0.5)
    assert not chosen_rewards.requires_grad and not rejected_rewards.requires_grad
    losses.sum().backward()
    # d/dπ_c of -logσ(βh) is -β σ(-βh) < 0: raising the chosen log-prob lowers the loss.
    assert (pc.grad < 0).all() and (pr.grad > 0).all()


def test_a_policy_equal_to_its_reference_has_loss_log_2():
    pc, pr, _, _ = random_logps(seed=5, n=4)
    losses, chosen_rewards, rejected_rewards = dpo_loss(pc, pr, pc, pr, beta=0.1)
    assert torch.allclose(losses, torch.full_like(losses, math.log(2)))
    assert (chosen_rewards == 0).all() and (rejected_rewards == 0).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [({"beta": 0.0}, "beta"), ({"beta": 0.5, "loss_type": "kto"}, "loss_type"), ({"beta": 0.5, "label_smoothing": 0.5}, "label_smoothing")],
)
def test_bad_arguments_are_refused(kwargs, message):
    pc, pr, rc, rr = random_logps(seed=1, n=2)
    with pytest.raises(ValueError, match=message):
        dpo_loss(pc, pr, rc, rr, **kwargs)
