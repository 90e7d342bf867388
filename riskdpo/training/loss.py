"""The DPO loss family as pure tensor functions (no model code).

All losses compare how much more the policy π prefers the chosen completion
y_c over the rejected y_r than the frozen reference π_ref does:

    h = (log π(y_c|x) - log π_ref(y_c|x)) - (log π(y_r|x) - log π_ref(y_r|x))

and reward the policy for making h large. The implicit rewards
r = β (log π(y|x) - log π_ref(y|x)) are what DPO reports as
"rewards/chosen" and "rewards/rejected"; a pair is ranked right when
r_c > r_r (h > 0).

Besides the DPO family, the two terms of the recipes that train on reasoning:
`sft_loss` (cross-entropy on the chosen responses alone) and `dpo_nll_loss`
(DPO plus a length-normalised NLL of the chosen response, RPO). Inputs are what
`riskdpo.models.logps.batch_logps` returns: log-probabilities *summed* over a
completion's tokens, with the completion's token count beside them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when the loss is computed, so the CLI starts fast
    import torch

#: Loss names accepted by `dpo_loss`, as the CLI offers them.
LOSS_TYPES = ("sigmoid", "ipo", "hinge", "robust", "sigmoid-norm")
#: Losses defined on per-token *average* log-probabilities log π(y|x) / |y|.
PER_TOKEN_LOSSES = ("ipo", "sigmoid-norm")


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
    chosen_counts: torch.Tensor | None = None,
    rejected_counts: torch.Tensor | None = None,
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
    - sigmoid-norm (length-normalised DPO, as in SimPO's average log-likelihood,
      Meng et al. 2024, but keeping the reference): the sigmoid loss on
      per-token averages, h̄ = (log π(y_c|x) - log π_ref(y_c|x)) / |y_c|
      - (log π(y_r|x) - log π_ref(y_r|x)) / |y_r|, so that a long reasoning
      answer is not favoured or penalised for its length alone:
      L = -(1-ε)·logσ(βh̄) - ε·logσ(-βh̄)

    The `PER_TOKEN_LOSSES` (ipo, sigmoid-norm) work on per-token averages.
    With `chosen_counts` and `rejected_counts` (token counts |y|, shape [N])
    they divide the summed log-probs by them here; sigmoid-norm needs them.
    IPO without counts takes its inputs as already averaged (the training loop
    passes the counts for every per-token loss). Other losses ignore counts. The rewards are
    β times the log-ratios the loss sees (averaged for per-token losses).
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
    if loss_type in PER_TOKEN_LOSSES and (chosen_counts is not None or rejected_counts is not None):
        if chosen_counts is None or rejected_counts is None:
            raise ValueError("per-token losses need both chosen_counts and rejected_counts")
        chosen_logratios = chosen_logratios / chosen_counts
        rejected_logratios = rejected_logratios / rejected_counts
    elif loss_type == "sigmoid-norm":
        raise ValueError("loss_type 'sigmoid-norm' averages log-probs per token: pass chosen_counts and rejected_counts")
    h = chosen_logratios - rejected_logratios
    eps = label_smoothing

    if loss_type in ("sigmoid", "sigmoid-norm"):
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



def sft_loss(chosen_logps: torch.Tensor, chosen_counts: torch.Tensor) -> torch.Tensor:
    """Token-mean cross-entropy of the chosen responses (supervised fine-tuning).

    With log π(y_i|x_i) the summed log-probability of response i and |y_i| its
    token count (EOS included, as `batch_logps` counts it):

        L_SFT = -Σ_i log π(y_i|x_i) / Σ_i |y_i|

    every token of the batch weighs the same, whatever response it belongs to
    (the training loop's `sft_batch` accumulates numerator and denominator over
    micro-batches for the same mean over a global batch). A scalar.
    """
    if bool((chosen_counts <= 0).any()):
        raise ValueError("every chosen response needs at least one token")
    return -chosen_logps.sum() / chosen_counts.sum()


def chosen_nll(chosen_logps: torch.Tensor, chosen_counts: torch.Tensor) -> torch.Tensor:
    """Per-pair length-normalised NLL of the chosen response: -log π(y_c|x) / |y_c|, shape [N]."""
    if bool((chosen_counts <= 0).any()):
        raise ValueError("every chosen response needs at least one token")
    return -chosen_logps / chosen_counts


def dpo_nll_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_counts: torch.Tensor,
    rejected_counts: torch.Tensor,
    beta: float,
    nll_weight: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO plus W times the length-normalised NLL of the chosen response (RPO).

    Iterative reasoning preference optimisation (Pang et al. 2024) adds to the
    preference loss a likelihood term on the chosen answer, without which the
    chosen answers' log-probabilities fall along with the rejected ones:

        L = L_DPO(h) + W · (-log π(y_c|x) / |y_c|)

    with L_DPO any of `dpo_loss`'s losses (`loss_type`, `label_smoothing`; the
    counts are passed on, so per-token losses average) and W = `nll_weight`
    >= 0 (W = 0 is plain DPO). Returns per-pair ``(losses, nll, chosen_rewards,
    rejected_rewards)``; `nll` (detached) is the unweighted NLL term, for logging.
    """
    if nll_weight < 0:
        raise ValueError(f"nll_weight must not be negative, got {nll_weight}")
    losses, chosen_rewards, rejected_rewards = dpo_loss(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta, loss_type,
        label_smoothing, chosen_counts=chosen_counts, rejected_counts=rejected_counts,
    )  # fmt: skip
    nll = chosen_nll(policy_chosen_logps, chosen_counts)
    return losses + nll_weight * nll, nll.detach(), chosen_rewards, rejected_rewards
