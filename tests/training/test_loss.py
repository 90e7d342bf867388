"""dpo_loss against the published formulas, computed here element by element in plain Python."""

import math

import pytest
import torch

from riskdpo.training.loss import LOSS_TYPES, dpo_loss


def log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def expected_loss(h: float, beta: float, loss_type: str, eps: float) -> float:
    """The papers' per-pair losses with h = (π_c - ref_c) - (π_r - ref_r)."""
    if loss_type == "sigmoid":  # Rafailov et al. 2023; conservative DPO with eps
        return -(1 - eps) * log_sigmoid(beta * h) - eps * log_sigmoid(-beta * h)
    if loss_type == "robust":  # Chowdhury et al. 2024
        return (-(1 - eps) * log_sigmoid(beta * h) + eps * log_sigmoid(-beta * h)) / (1 - 2 * eps)
    if loss_type == "hinge":  # SLiC
        return max(0.0, 1 - beta * h)
    return (h - 1 / (2 * beta)) ** 2  # IPO


def random_logps(seed: int, n: int = 64) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [-(torch.rand(n, generator=generator, dtype=torch.float64) * 30) for _ in range(4)]


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
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
