"""The likelihood of the logit choice model over stake-free values, and its maximum over the precision.

Situation s offers options j with stake-free values u_sj; a chooser with
precision lam picks j with probability exp(lam u_sj) / sum_k exp(lam u_sk), so
observed choices c_s with weights w_s have

    LL(lam) = sum_s w_s [lam u_{s c_s} - log sum_k exp(lam u_sk)]

`riskdpo.evaluation.alpha` evaluates it on grids (`likelihood_surface`) and
maximises it exactly over lam (`max_over_precision`) for its CARA fit.
Missing options are -inf values.
"""

from __future__ import annotations

import math

import numpy as np

#: Largest choice precision (a deterministic chooser sits here).
MAX_PRECISION = 1e4
#: Choice precisions tried on the grid: 0 (random choice) and 0.1 .. 10,000, five per decade.
PRECISION_GRID = np.concatenate([[0.0], np.logspace(-1, math.log10(MAX_PRECISION), 26)])
#: Safeguarded Newton steps on lam (each search starts from the lam given).
_NEWTON_STEPS = 30


def max_over_precision(
    values: np.ndarray, chosen: np.ndarray, weights: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """max over lam in [0, MAX_PRECISION] of LL(lam), and lam, per column b: values [B, n, K], weights [n, B].

    LL is concave in lam with dLL/dlam = sum_s w_s (u_sc - E_P[u_s]) and
    d2LL/dlam2 = -sum_s w_s Var_P[u_s]; Newton steps are kept inside a bracket
    that the sign of the slope shrinks (bisection when a step leaves it).
    """
    valid = np.isfinite(values)
    u = np.where(valid, values, 0.0)
    picked = np.take_along_axis(u, chosen[None, :, None], axis=-1)[..., 0]  # [B, n]
    w = weights.T  # [B, n]
    low = np.zeros(len(u))
    high = np.full(len(u), MAX_PRECISION)
    lam = np.clip(start, 0.0, MAX_PRECISION)

    def moments(lam):
        scaled = np.where(valid, lam[:, None, None] * u, -np.inf)
        top = scaled.max(axis=-1, keepdims=True)
        e = np.exp(scaled - top)
        total = e.sum(axis=-1, keepdims=True)
        p = e / total
        mean = (p * u).sum(axis=-1)
        variance = (p * (u - mean[..., None]) ** 2).sum(axis=-1)
        ll = (w * (lam[:, None] * picked - top[..., 0] - np.log(total[..., 0]))).sum(axis=1)
        return ll, (w * (picked - mean)).sum(axis=1), -(w * variance).sum(axis=1)

    for _ in range(_NEWTON_STEPS):
        _, slope, curvature = moments(lam)
        low = np.where(slope > 0, lam, low)
        high = np.where(slope < 0, lam, high)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = lam - slope / curvature
        inside = np.isfinite(step) & (step > low) & (step < high)
        moved = np.where(slope == 0, lam, np.where(inside, step, (low + high) / 2))
        converged = np.all(np.abs(moved - lam) <= 1e-9 * np.maximum(lam, 1.0))
        lam = moved
        if converged:
            break
    candidates = [lam, low, high]  # a maximum on the bounds 0 or MAX_PRECISION
    scores = np.stack([moments(candidate)[0] for candidate in candidates])
    pick = scores.argmax(axis=0)
    return scores[pick, np.arange(len(lam))], np.stack(candidates)[pick, np.arange(len(lam))]


def likelihood_surface(utilities: np.ndarray, chosen: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """LL(alpha, lam) on the grids under each column of situation weights: [G alphas, L precisions, B].

    Per grid alpha, the per-situation log P(c_s | s; alpha, lam) [L, n] is
    computed and multiplied with the weights [n, B], so memory stays at
    [L, n, K] whatever the grid.
    """
    valid = np.isfinite(utilities[0])[None, :, :]
    surface = np.empty((utilities.shape[0], len(PRECISION_GRID), weights.shape[1]))
    for g, values in enumerate(utilities):
        scaled = np.where(valid, PRECISION_GRID[:, None, None] * np.where(valid, values, 0.0), -np.inf)
        top = scaled.max(axis=-1, keepdims=True)
        log_norm = top[..., 0] + np.log(np.exp(scaled - top).sum(axis=-1))
        picked = np.take_along_axis(scaled, chosen[None, :, None], axis=-1)[..., 0]
        surface[g] = (picked - log_norm) @ weights
    return surface
