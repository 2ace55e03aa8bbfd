"""Critic losses for entropic (exponential-utility) reinforcement learning.

Every loss has the signature ``(prediction, target, risk_aversion) -> per-sample loss``:

- ``prediction``: tensor of any shape ``(*)``, the critic's output V_θ(s) or Q_θ(s, a);
- ``target``: tensor of the same shape ``(*)``, the bootstrapped target r + V_θ̄(s'), which the caller
  computes without gradient (as in SB3's ``with th.no_grad():`` blocks);
- ``risk_aversion``: the float α (α > 0 averse, α < 0 seeking, α = 0 neutral);
- returns a tensor of shape ``(*)`` in the dtype of ``prediction``.

With δ = prediction − target (prediction minus target) and x = α δ:

=========  ===========================================================  ==========================
name       loss ℓ                                                       ∂ℓ/∂prediction
=========  ===========================================================  ==========================
``mse``    ½ δ²                                                         δ
``emse``   (e^{−α V} − e^{−α y})² / (2α²)                               e^{−2αV}(e^{αδ} − 1)/α
``sp``     (2δ/α) softplus(x) + (2/α²) Li₂(−e^{x}) + π²/(6α²)           2 δ sigmoid(x)
``is``     (e^{x} − x − 1) / α²                                         (e^{x} − 1)/α
=========  ===========================================================  ==========================

All four tend to ½ δ² as α → 0 or δ → 0, and α = 0 gives ½ δ² exactly. Tiny |α| keeps full
precision through series expansions instead of cancelling differences; |α| < ``TINY_ALPHA`` = 1e-15 is α = 0.

Inputs: a target of another dtype is cast to the prediction's (a float64 target does not promote a float32
loss); bfloat16 inputs are computed in float32 and returned in bfloat16; float16 is refused (its range ends at
65504, which e^{αδ} passes at αδ = 11), and so are empty tensors (a loss of no samples is undefined).

Numerical guards:

- ``itakura_saito`` continues linearly (C¹, like Huber's loss) beyond x = ``IS_LINEAR_FROM`` = 30,
  so it stays finite for every finite input while being exact wherever |αδ| ≤ 30.
- ``softplus_loss`` evaluates Spence's dilogarithm in float64 (Landen's identity and reflection, so
  the series argument never exceeds ½) and has the analytic gradient 2δ·sigmoid(αδ). It grows like
  δ² for large |δ|, never exponentially.
- ``exponential_mse`` is computed faithfully, including its e^{−2αy} factor: its overflow for large
  negative α·y and its vanishing gradient for large positive α·y are the instability the IS paper
  reports. It is deliberately not "fixed" here; clip gradients in the algorithm if at all.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal, Protocol

import torch as th
from torch import nn

__all__ = [
    "IS_LINEAR_FROM",
    "LOSSES",
    "CriticLoss",
    "critic_loss",
    "dilog_neg_exp",
    "exponential_mse",
    "exponential_utility_actor_loss",
    "itakura_saito",
    "mse",
    "softplus_loss",
]

#: Beyond x = α δ > IS_LINEAR_FROM the IS loss continues along its tangent (finite for all inputs).
IS_LINEAR_FROM = 30.0

_PI2_6 = math.pi**2 / 6.0
# |x| below which a Taylor series replaces the cancelling closed form.
_IS_SERIES_BELOW = 0.5
_SP_SERIES_BELOW = 0.1
# Taylor coefficients of (e^x − x − 1)/x² = Σ_k x^k/(k+2)!, enough for float64 at |x| ≤ ½.
_IS_COEFFS = [1.0 / math.factorial(k + 2) for k in range(16)]
# (2x softplus(x) + 2Li₂(−e^x) + π²/6)/x² = ½ + x/6 − x³/120 + x⁵/1680 − 17x⁷/362880 + 31x⁹/7983360 …
# (obtained by integrating 2t·sigmoid(t) = t + t²/2 − t⁴/24 + t⁶/240 − 17t⁸/40320 + 31t¹⁰/725760).
_SP_COEFFS = [
    0.5,
    1.0 / 6.0,
    0.0,
    -1.0 / 120.0,
    0.0,
    1.0 / 1680.0,
    0.0,
    -17.0 / 362880.0,
    0.0,
    31.0 / 7983360.0,
]
_DILOG_TERMS = 56  # Σ w^k/k² with w ≤ ½: 2^−56 < float64 epsilon


class LossFn(Protocol):
    """The uniform signature of the per-sample critic losses (a tensor α, one per sample: "is" and "mse" only)."""

    def __call__(self, prediction: th.Tensor, target: th.Tensor, risk_aversion: float | th.Tensor) -> th.Tensor: ...


#: |α| below this is α = 0 in the losses (½δ², exact to O(αδ) < 1e-15·|δ|): α² would underflow float32 (a NaN
#: gradient through the unused branch), and under flush-to-zero even a normal α² of 1e-40 becomes 0
TINY_ALPHA = 1e-15


def _check(prediction: th.Tensor, target: th.Tensor, risk_aversion: float | th.Tensor) -> tuple[float, th.Tensor]:
    """α as a float (|α| < ``TINY_ALPHA`` as 0) and the target in the prediction's dtype, after the checks every
    loss shares: same shapes, finite α, not empty, not float16."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction and target must have the same shape (no silent broadcasting), "
            f"got {tuple(prediction.shape)} and {tuple(target.shape)}"
        )
    if prediction.numel() == 0:
        raise ValueError("prediction and target are empty: a loss of no samples is undefined")
    if prediction.dtype == th.float16:
        raise ValueError(
            "float16 cannot hold the losses (its largest number is 65504; e^{αδ} passes it at αδ = 11): use float32, "
            "or bfloat16, whose losses are computed in float32"
        )
    if isinstance(risk_aversion, th.Tensor):
        raise ValueError("per-sample risk aversions (a tensor) are taken by the 'is' and 'mse' losses only")
    alpha = float(risk_aversion)
    if not math.isfinite(alpha):
        raise ValueError(f"risk_aversion must be a finite real number, got {risk_aversion!r}")
    return (0.0 if abs(alpha) < TINY_ALPHA else alpha), target.to(prediction.dtype)


def _checkable(alphas: th.Tensor) -> bool:
    """Whether per-sample α can be checked by value here: on the CPU outside a compiled graph (elsewhere the check
    would synchronise with the device or break the graph; RiskAC draws them valid by construction)."""
    return alphas.device.type == "cpu" and not th.compiler.is_compiling()


def _check_per_sample(
    prediction: th.Tensor, target: th.Tensor, risk_aversion: float | th.Tensor
) -> tuple[float | th.Tensor, th.Tensor]:
    """:func:`_check`, or for a tensor α (one per sample, the shape of the prediction, every |α| ≥ ``TINY_ALPHA``,
    finite) that α in the prediction's dtype."""
    if not isinstance(risk_aversion, th.Tensor):
        return _check(prediction, target, risk_aversion)
    _check(prediction, target, 1.0)
    if risk_aversion.shape != prediction.shape:
        raise ValueError(
            f"per-sample risk_aversion must have the prediction's shape {tuple(prediction.shape)}, "
            f"got {tuple(risk_aversion.shape)}"
        )
    alpha = risk_aversion.detach().to(prediction.dtype)
    if _checkable(alpha) and not bool(th.isfinite(alpha).all() & (alpha.abs() >= TINY_ALPHA).all()):
        raise ValueError("per-sample risk_aversion must be finite with |α| >= 1e-15 (use a float 0 for α = 0)")
    return alpha, target.to(prediction.dtype)


def _in_float32_for_bfloat16(loss: LossFn) -> LossFn:
    """Compute a loss of bfloat16 inputs in float32 and return it in bfloat16 (bf16's 8-bit mantissa would round
    the series and the cancelling differences away; its range, float32's, holds the result)."""

    @functools.wraps(loss)
    def wrapped(prediction: th.Tensor, target: th.Tensor, risk_aversion: float | th.Tensor = 0.0) -> th.Tensor:
        if prediction.dtype == th.bfloat16:
            return loss(prediction.float(), target.float(), risk_aversion).to(th.bfloat16)
        return loss(prediction, target, risk_aversion)

    return wrapped


def _horner(x: th.Tensor, coeffs: list[float]) -> th.Tensor:
    """Σ_k coeffs[k] x^k by Horner's rule."""
    out = th.full_like(x, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        out = out * x + c
    return out


@_in_float32_for_bfloat16
def mse(prediction: th.Tensor, target: th.Tensor, risk_aversion: float | th.Tensor = 0.0) -> th.Tensor:
    """Squared error ½ δ², δ = prediction − target; ``risk_aversion`` is accepted and ignored.

    :param prediction: critic output, shape ``(*)``.
    :param target: fixed target, shape ``(*)``.
    :param risk_aversion: unused (kept for the uniform signature).
    :return: per-sample loss, shape ``(*)``.
    """
    _, target = _check_per_sample(prediction, target, risk_aversion)
    delta = prediction - target
    return 0.5 * delta * delta


@_in_float32_for_bfloat16
def itakura_saito(prediction: th.Tensor, target: th.Tensor, risk_aversion: float | th.Tensor) -> th.Tensor:
    """Itakura-Saito loss ℓ = (e^{αδ} − αδ − 1)/α², δ = prediction − target (IS paper).

    It is the Itakura-Saito divergence of x = e^{−α·target} from y = e^{−α·prediction}, so it
    depends on the value only through δ (translation invariant). The minimiser over a constant
    prediction of E[ℓ(v − Y)] is the certainty equivalent CE_α[Y]. Gradient: (e^{αδ} − 1)/α.

    Exact for |αδ| ≤ ``IS_LINEAR_FROM``; beyond it, the tangent line continues the loss (finite for
    any finite input, gradient bounded by (e^{30} − 1)/|α|). α = 0 gives ½δ² exactly.

    :param prediction: critic output, shape ``(*)``.
    :param target: fixed target, shape ``(*)``.
    :param risk_aversion: α, any finite real (negative: risk seeking); or one α per sample, a tensor of the
        prediction's shape (each |α| ≥ 1e-15), for agents trained over a range of risk aversions.
    :return: per-sample loss, shape ``(*)``.
    """
    alpha, target = _check_per_sample(prediction, target, risk_aversion)
    delta = prediction - target
    if isinstance(alpha, float) and alpha == 0.0:
        return 0.5 * delta * delta
    x = alpha * delta
    small = x.abs() < _IS_SERIES_BELOW
    # series branch: δ² Σ x^k/(k+2)!, evaluated on a masked input so the other branch's values never
    # reach autograd as inf·0
    series = delta * delta * _horner(th.where(small, x, th.zeros_like(x)), _IS_COEFFS)
    x0 = IS_LINEAR_FROM
    xc = th.where(small, th.ones_like(x), x.clamp(max=x0))
    closed = (th.expm1(xc) - xc) / alpha**2
    tail = (math.expm1(x0) - x0 + math.expm1(x0) * (x - x0)) / alpha**2
    closed = th.where(x > x0, tail, closed)
    return th.where(small, series, closed)


@_in_float32_for_bfloat16
def exponential_mse(prediction: th.Tensor, target: th.Tensor, risk_aversion: float | th.Tensor) -> th.Tensor:
    """Exponential MSE ℓ = (e^{−α·prediction} − e^{−α·target})²/(2α²).

    Written as ½ e^{−2α·target} δ² φ(−αδ)² with φ(z) = expm1(z)/z, which is the same number but
    keeps full precision for tiny |α| (α = 0 gives ½δ² exactly). Its gradient is e^{−2αV} times the
    IS gradient: it vanishes for large positive αV and overflows for large negative αV. That
    instability is the reported behaviour of this loss and is not guarded here.

    :param prediction: critic output, shape ``(*)``.
    :param target: fixed target, shape ``(*)``.
    :param risk_aversion: α, any finite real.
    :return: per-sample loss, shape ``(*)`` (may be inf where e^{−2α·target} overflows).
    """
    alpha, target = _check(prediction, target, risk_aversion)
    delta = prediction - target
    if alpha == 0.0:
        return 0.5 * delta * delta
    z = -alpha * delta
    zero = z == 0
    z_safe = th.where(zero, th.ones_like(z), z)
    phi = th.where(zero, th.ones_like(z), th.expm1(z_safe) / z_safe)
    return 0.5 * th.exp(-2.0 * alpha * target) * (delta * phi) ** 2


def dilog_neg_exp(u: th.Tensor) -> th.Tensor:
    """Li₂(−e^u) for real u, in float64, with Li₂ Spence's dilogarithm (scipy: ``spence(1 + e^u)``).

    For u ≤ 0, Landen's identity Li₂(−e^u) = −Li₂(sigmoid(u)) − ½ softplus(u)² leaves a series
    Σ w^k/k² with w = sigmoid(u) ≤ ½; for u > 0 the inversion Li₂(−e^u) = −π²/6 − u²/2 − Li₂(−e^{−u}).

    :param u: tensor of any shape; computed and returned in float64.
    :return: Li₂(−e^u), same shape, float64.
    """
    u = u.to(th.float64)
    neg = th.where(u > 0, -u, u)  # −|u| ≤ 0
    w = th.sigmoid(neg)
    series = w * _horner(w, [1.0 / (k + 1) ** 2 for k in range(_DILOG_TERMS)])
    sp = nn.functional.softplus(neg)
    li_neg = -series - 0.5 * sp * sp  # Li₂(−e^{−|u|})
    return th.where(u > 0, -_PI2_6 - 0.5 * u * u - li_neg, li_neg)


class _SoftplusLossFn(th.autograd.Function):
    """Value of the SP loss in float64; gradient 2δ·sigmoid(αδ) built from differentiable ops."""

    @staticmethod
    def forward(delta: th.Tensor, alpha: float) -> th.Tensor:
        d = delta.detach().to(th.float64)
        x = alpha * d
        small = x.abs() < _SP_SERIES_BELOW
        series = d * d * _horner(th.where(small, x, th.zeros_like(x)), _SP_COEFFS)
        closed = (2.0 * x * nn.functional.softplus(x) + 2.0 * dilog_neg_exp(x) + _PI2_6) / alpha**2
        return th.where(small, series, closed).to(delta.dtype)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[th.Tensor, float], output: th.Tensor) -> None:
        # separate from forward so that torch.func (grad, vmap) and torch.compile can trace it
        ctx.save_for_backward(inputs[0])
        ctx.alpha = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad_output: th.Tensor) -> tuple[th.Tensor, None]:
        (delta,) = ctx.saved_tensors
        alpha: float = ctx.alpha
        return grad_output * 2.0 * delta * th.sigmoid(alpha * delta), None


@_in_float32_for_bfloat16
def softplus_loss(prediction: th.Tensor, target: th.Tensor, risk_aversion: float | th.Tensor) -> th.Tensor:
    """Softplus (Delétang-style) loss whose gradient is 2δ·sigmoid(αδ).

    ℓ = (2δ/α) softplus(αδ) + (2/α²) Li₂(−e^{αδ}) + π²/(6α²). Its minimiser equals the certainty
    equivalent only for Gaussian targets (biased on skewed ones); it is non-convex for αδ < −1.2785.
    The value is evaluated in float64 with an exact dilogarithm (see :func:`dilog_neg_exp`).
    α = 0 gives ½δ² exactly.

    :param prediction: critic output, shape ``(*)``.
    :param target: fixed target, shape ``(*)``.
    :param risk_aversion: α, any finite real.
    :return: per-sample loss, shape ``(*)``.
    """
    alpha, target = _check(prediction, target, risk_aversion)
    delta = prediction - target
    if alpha == 0.0:
        return 0.5 * delta * delta
    out: th.Tensor = _SoftplusLossFn.apply(delta, alpha)
    return out


#: The critic losses by name.
LOSSES: dict[str, LossFn] = {
    "mse": mse,
    "emse": exponential_mse,
    "sp": softplus_loss,
    "is": itakura_saito,
}


def get_loss(name: str) -> LossFn:
    """The per-sample loss function called ``name`` (one of :data:`LOSSES`)."""
    try:
        return LOSSES[name]
    except KeyError:
        raise ValueError(f"unknown critic_loss {name!r}; valid names are {sorted(LOSSES)}") from None


def critic_loss(
    name: str,
    prediction: th.Tensor,
    target: th.Tensor,
    risk_aversion: float | th.Tensor,
    reduction: Literal["mean", "sum", "none"] = "mean",
) -> th.Tensor:
    """The critic loss ``name`` ∈ {"mse", "emse", "sp", "is"} of ``prediction`` against ``target``.

    :param name: loss name.
    :param prediction: critic output, shape ``(*)``.
    :param target: fixed target (no gradient), shape ``(*)``.
    :param risk_aversion: α.
    :param reduction: "mean" (scalar), "sum" (scalar) or "none" (shape ``(*)``).
    :return: the reduced loss.
    """
    per_sample = get_loss(name)(prediction, target, risk_aversion)
    if reduction == "mean":
        return per_sample.mean()
    if reduction == "sum":
        return per_sample.sum()
    if reduction == "none":
        return per_sample
    raise ValueError(f"reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")


class CriticLoss(nn.Module):
    """Thin module wrapper: ``CriticLoss("is", risk_aversion=2.0)(prediction, target)``.

    :param name: loss name, one of "mse", "emse", "sp", "is".
    :param risk_aversion: α.
    :param reduction: "mean", "sum" or "none".
    """

    def __init__(self, name: str, risk_aversion: float, reduction: Literal["mean", "sum", "none"] = "mean") -> None:
        super().__init__()
        get_loss(name)  # validate early
        if not math.isfinite(float(risk_aversion)):
            raise ValueError(f"risk_aversion must be a finite real number, got {risk_aversion!r}")
        self.name = name
        self.risk_aversion = float(risk_aversion)
        self.reduction: Literal["mean", "sum", "none"] = reduction

    def forward(self, prediction: th.Tensor, target: th.Tensor) -> th.Tensor:
        return critic_loss(self.name, prediction, target, self.risk_aversion, self.reduction)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, risk_aversion={self.risk_aversion}, reduction={self.reduction!r}"


#: below this |α| the actor loss is its α → 0 limit −x (same gradient to O(α·spread of x); (1/α)e^{−αx−c} would
#: overflow float32 from |α| ≈ 3e-39 and lose the gradient long before)
SMALL_ACTOR_ALPHA = 1e-6


def exponential_utility_actor_loss(gain: th.Tensor, risk_aversion: float | th.Tensor) -> th.Tensor:
    """Deterministic actor objective of the IS paper (eq. 14), per sample, up to a per-batch scale.

    ``gain`` is x = r(s, π(s), s') + V_θ̄(s') − V_θ̄(s), differentiable through the action only. The
    paper's loss (1/α) e^{−αx} is decreasing in x, so minimising it pushes the policy toward the
    entropic optimum. Here it is evaluated as (1/α) e^{−αx − c} with c = max(−αx) over the batch
    (detached): the same gradient direction and relative weights e^{−αx} between samples, finite for
    any input (no exp overflow), and a scale that Adam's normalisation absorbs. α = 0 gives −x
    (risk-neutral: maximise E[r + V(s')]), and so does |α| < 1e-6 (``SMALL_ACTOR_ALPHA``), where the two gradients
    agree to O(α) and (1/α) would overflow; α < 0 (risk seeking) works unchanged.

    :param gain: x, shape ``(*)``.
    :param risk_aversion: α, or one α per sample (a tensor of the gain's shape, every |α| ≥ 1e-6): each sample's
        (1/α)e^{−αx}, all scaled by one e^{−c} per batch.
    :return: per-sample loss, shape ``(*)``.
    """
    if isinstance(risk_aversion, th.Tensor):  # one α per sample: every sample's own (1/α)e^{−αx}, one batch scale
        alphas = risk_aversion.detach().to(gain.dtype)
        if alphas.shape != gain.shape:
            raise ValueError(f"per-sample risk_aversion must have the gain's shape {tuple(gain.shape)}")
        if _checkable(alphas) and not bool(th.isfinite(alphas).all() & (alphas.abs() >= SMALL_ACTOR_ALPHA).all()):
            raise ValueError("per-sample risk_aversion must be finite with |α| >= 1e-6")
        z = -alphas * gain
        return th.exp(z - z.detach().max()) / alphas
    alpha = float(risk_aversion)
    if not math.isfinite(alpha):
        raise ValueError(f"risk_aversion must be a finite real number, got {risk_aversion!r}")
    if abs(alpha) < SMALL_ACTOR_ALPHA:  # (1/α)e^{…} overflows float32 as α → 0; its gradient tends to −∂x
        return -gain
    z = -alpha * gain
    return th.exp(z - z.detach().max()) / alpha
