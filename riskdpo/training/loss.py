"""The DPO loss family as pure tensor functions (no model code).

All losses compare how much more the policy π prefers the chosen completion
y_c over the rejected y_r than the frozen reference π_ref does:

    h = (log π(y_c|x) - log π_ref(y_c|x)) - (log π(y_r|x) - log π_ref(y_r|x))

and reward the policy for making h large. The implicit rewards
r = β (log π(y|x) - log π_ref(y|x)) are what DPO reports as
"rewards/chosen" and "rewards/rejected"; a pair is ranked right when
r_c > r_r (h > 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when the loss is computed, so the CLI starts fast
    import torch

#: Loss names accepted by `dpo_loss`, as the CLI offers them.
LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust")


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-pair DPO losses and the (detached) chosen and rejected rewards.

    Inputs are per-pair log-probabilities of whole completions, shape [N].
    With ε = `label_smoothing` (the assumed fraction of flipped preference labels):

    - sigmoid (DPO, Rafailov et al. 2023; cDPO when ε > 0):
      L = -(1-ε)·logσ(βh) - ε·logσ(-βh)
    - robust (rDPO, Chowdhury et al. 2024), an unbiased estimate under label noise ε < 1/2:
      L = (-(1-ε)·logσ(βh) + ε·logσ(-βh)) / (1-2ε)
    - hinge (SLiC, Zhao et al. 2023): L = relu(1 - βh)
    - ipo (Azar et al. 2023): L = (h - 1/(2β))²

    IPO is defined on *per-token averaged* log-probabilities: the caller passes
    summed log-probs divided by each completion's token count (the training loop
    does so for `loss_type="ipo"`); this function does not know token counts.
    """
    import torch
    import torch.nn.functional as F

    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown loss_type {loss_type!r}; choose one of {', '.join(LOSS_TYPES)}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")

    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    h = chosen_logratios - rejected_logratios
    eps = label_smoothing

    if loss_type == "sigmoid":
        losses = -(1 - eps) * F.logsigmoid(beta * h) - eps * F.logsigmoid(-beta * h)
    elif loss_type == "robust":
        losses = (-(1 - eps) * F.logsigmoid(beta * h) + eps * F.logsigmoid(-beta * h)) / (1 - 2 * eps)
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * h)
    else:  # ipo
        losses = (h - 1 / (2 * beta)) ** 2

    chosen_rewards = beta * chosen_logratios.detach()
    rejected_rewards = beta * rejected_logratios.detach()
    return losses, chosen_rewards, rejected_rewards

