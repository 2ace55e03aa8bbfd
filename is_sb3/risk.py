"""Entropic certainty equivalents and risk helpers.

``CE_α[X] = −(1/α) log E[exp(−α X)]`` with α the risk aversion (α > 0 averse, α < 0 seeking,
``CE_0[X] = E[X]``); the entropic risk is ``−CE_α``. Everything is computed through log-sum-exp
of centred values, never by exponentiating raw values: CE_α[X] = m − (1/α) log E[e^{−α(X − m)}]
with m the (weighted) mean, and for small |α(X − m)| through log1p(mean(expm1(·))) so that tiny
|α| keeps full precision. Functions accept numpy arrays (computed in float64, numpy returned) or
torch tensors (computed in their dtype and device, differentiable).
"""

from __future__ import annotations

import math
from typing import TypeVar, overload

import numpy as np
import torch as th

__all__ = [
    "certainty_equivalent",
    "certainty_equivalent_with_se",
    "effective_sample_size",
    "entropic_risk",
    "gaussian_certainty_equivalent",
]

ArrayT = TypeVar("ArrayT", np.ndarray, th.Tensor)
_SMALL = 0.5  # below this max |α(X − m)| the log1p/expm1 form is used


def _check_alpha(risk_aversion: float) -> float:
    alpha = float(risk_aversion)
    if not math.isfinite(alpha):
        raise ValueError(f"risk_aversion must be a finite real number, got {risk_aversion!r}")
    return alpha


def _ce_torch(x: th.Tensor, alpha: float, dim: int | None, log_weights: th.Tensor | None) -> th.Tensor:
    if dim is None:
        x = x.reshape(-1)
        log_weights = None if log_weights is None else log_weights.reshape(-1)
        dim = 0
    if x.shape[dim] == 0:
        raise ValueError("certainty_equivalent needs at least one sample along `dim`")
    if log_weights is None:
        logw = th.full_like(x, -math.log(x.shape[dim]))
    else:
        log_weights = th.broadcast_to(log_weights.to(x.dtype), x.shape)
        logw = log_weights - th.logsumexp(log_weights, dim=dim, keepdim=True)  # normalised
    w = logw.exp()
    mean = (w * x).sum(dim=dim, keepdim=True)
    if alpha == 0.0:
        return mean.squeeze(dim)
    z = -alpha * (x - mean)
    small = z.abs().amax(dim=dim, keepdim=True) < _SMALL
    # log E[e^z] for small z: log1p(E[expm1(z)]) (precise as α → 0); otherwise log-sum-exp
    z_small = th.where(small, z, th.zeros_like(z))
    log_m_small = th.log1p((w * th.expm1(z_small)).sum(dim=dim, keepdim=True))
    log_m_lse = th.logsumexp(logw + z, dim=dim, keepdim=True)
    log_m = th.where(small, log_m_small, log_m_lse)
    return (mean - log_m / alpha).squeeze(dim)


@overload
def certainty_equivalent(
    samples: np.ndarray, risk_aversion: float, dim: int | None = None, log_weights: np.ndarray | None = None
) -> np.ndarray: ...


@overload
def certainty_equivalent(
    samples: th.Tensor, risk_aversion: float, dim: int | None = None, log_weights: th.Tensor | None = None
) -> th.Tensor: ...


def certainty_equivalent(
    samples: np.ndarray | th.Tensor,
    risk_aversion: float,
    dim: int | None = None,
    log_weights: np.ndarray | th.Tensor | None = None,
) -> np.ndarray | th.Tensor:
    """Entropic certainty equivalent ``CE_α[X] = −(1/α) log E[e^{−αX}]`` along ``dim``.

    :param samples: samples of X (numpy array or torch tensor), shape ``(*)``.
    :param risk_aversion: α; 0 gives the mean.
    :param dim: axis to reduce; ``None`` reduces over all elements.
    :param log_weights: optional log-probabilities (unnormalised is fine) of the samples, broadcastable
        to ``samples``: the CE of a discrete distribution, e.g. over actions with log π(a|s).
        Default: equal weights (the empirical distribution).
    :return: the CE with ``dim`` removed (0-d for ``dim=None``), numpy float64 for numpy input.
    """
    alpha = _check_alpha(risk_aversion)
    if isinstance(samples, th.Tensor):
        lw = None if log_weights is None else th.as_tensor(log_weights, device=samples.device)
        return _ce_torch(samples, alpha, dim, lw)
    x = th.as_tensor(np.asarray(samples, dtype=np.float64))
    lw = None if log_weights is None else th.as_tensor(np.asarray(log_weights, dtype=np.float64))
    return _ce_torch(x, alpha, dim, lw).numpy()


def certainty_equivalent_with_se(
    samples: np.ndarray | th.Tensor, risk_aversion: float, dim: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Sample CE and its delta-method standard error, along ``dim``.

    With M̂ = mean(e^{−αX}), se(CE) = sd(e^{−αX}) / (|α| √n M̂); the ratio sd/mean is computed on
    weights shifted by their maximum, so nothing overflows. α = 0 gives sd(X)/√n.

    :param samples: i.i.d. samples of X, shape ``(*)``.
    :param risk_aversion: α.
    :param dim: the sample axis.
    :return: ``(ce, se)`` as float64 numpy arrays with ``dim`` removed.
    """
    alpha = _check_alpha(risk_aversion)
    if isinstance(samples, th.Tensor):
        samples = samples.detach().cpu().numpy()
    x = np.asarray(samples, dtype=np.float64)
    n = x.shape[dim]
    if n < 2:
        raise ValueError(f"certainty_equivalent_with_se needs at least 2 samples along dim, got {n}")
    ce = certainty_equivalent(x, alpha, dim=dim)
    if alpha == 0.0:
        return ce, x.std(axis=dim, ddof=1) / math.sqrt(n)
    z = -alpha * x
    w = np.exp(z - z.max(axis=dim, keepdims=True))
    rel_sd = w.std(axis=dim, ddof=1) / w.mean(axis=dim)
    return ce, rel_sd / (abs(alpha) * math.sqrt(n))


def effective_sample_size(log_weights: th.Tensor, dim: int = -1) -> th.Tensor:
    """Kish's effective sample size (Σw)²/Σw² of weights w = e^{log_weights}, via log-sum-exp.

    n for equal weights, 1 when one weight dominates. For the entropic losses the weights are
    e^{αδ} (critic) or e^{−α·gain} (actor): a small ESS means a few samples of the batch carry the
    whole gradient (heavy-tailed e^{αδ}, the failure mode of the exponential losses at large α).

    :param log_weights: log w, shape ``(*, n)`` (any finite values; −inf gives weight 0).
    :param dim: the sample axis.
    :return: ESS in [1, n], shape ``(*)`` with ``dim`` removed.
    """
    lw = log_weights.detach()
    return th.exp(2.0 * th.logsumexp(lw, dim=dim) - th.logsumexp(2.0 * lw, dim=dim))


def entropic_risk(samples: ArrayT, risk_aversion: float, dim: int | None = None) -> ArrayT:
    """Entropic risk measure ρ_α[X] = −CE_α[X] = (1/α) log E[e^{−αX}] (see :func:`certainty_equivalent`)."""
    return -certainty_equivalent(samples, risk_aversion, dim=dim)


def gaussian_certainty_equivalent(mean: ArrayT, variance: ArrayT, risk_aversion: float) -> ArrayT:
    """Closed form CE_α[N(m, v)] = m − α v / 2 (elementwise)."""
    alpha = _check_alpha(risk_aversion)
    return mean - 0.5 * alpha * variance
