"""Loss-landscape diagnostics: Hessian spectra, conditioning, the field notes' operators.

- :func:`hessian_eigenvalues`: top-k / bottom-k eigenvalues of the Hessian of any scalar loss with
  respect to a module's parameters, by Lanczos (scipy's ``eigsh``) on Hessian-vector products
  (double backward), never forming the Hessian.
- :func:`spectrum_summary`: condition number and spread of a computed spectrum.
- :class:`HessianSpectrumCallback`: logs a model's critic spectrum to TensorBoard every N steps.
- The field notes' objects, for exact numerical checks: the pointwise IS divergence, the
  linearised field operator and its propagator, and the NTK error dynamics e ← (I − ηKW)e.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch as th
from scipy.sparse.linalg import LinearOperator, eigsh
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

__all__ = [
    "HessianSpectrumCallback",
    "error_propagator",
    "exact_hessian",
    "field_hessian",
    "field_propagator",
    "hessian_eigenvalues",
    "hessian_vector_product",
    "is_divergence",
    "spectrum_summary",
]

LossClosure = Callable[[], th.Tensor]


def _params(module_or_params: nn.Module | Iterable[th.Tensor]) -> list[th.Tensor]:
    params = list(module_or_params.parameters() if isinstance(module_or_params, nn.Module) else module_or_params)
    params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("no parameters that require gradients")
    return params


def hessian_vector_product(loss_fn: LossClosure, params: list[th.Tensor]) -> Callable[[th.Tensor], th.Tensor]:
    """v ↦ H v for the Hessian H of ``loss_fn()`` w.r.t. ``params`` (flattened), by double backward.

    The gradient graph is built once; each product costs one backward pass.
    """
    loss = loss_fn()
    grads = th.autograd.grad(loss, params, create_graph=True)
    flat_grad = th.cat([g.reshape(-1) for g in grads])

    def hvp(v: th.Tensor) -> th.Tensor:
        out = th.autograd.grad(flat_grad, params, grad_outputs=v.to(flat_grad), retain_graph=True, allow_unused=True)
        return th.cat(
            [(o if o is not None else th.zeros_like(p)).reshape(-1) for o, p in zip(out, params, strict=True)]
        )

    return hvp


def exact_hessian(loss_fn: LossClosure, module_or_params: nn.Module | Iterable[th.Tensor]) -> np.ndarray:
    """The full Hessian (n_params × n_params, float64 numpy) by n Hessian-vector products. Small models only."""
    params = _params(module_or_params)
    hvp = hessian_vector_product(loss_fn, params)
    n = sum(p.numel() for p in params)
    eye = th.eye(n, dtype=params[0].dtype, device=params[0].device)
    return np.stack([hvp(eye[i]).detach().double().cpu().numpy() for i in range(n)], axis=1)


def hessian_eigenvalues(
    loss_fn: LossClosure,
    module_or_params: nn.Module | Iterable[th.Tensor],
    k: int = 10,
    which: str = "LA",
    tol: float = 1e-6,
    seed: int = 0,
) -> np.ndarray:
    """k extreme eigenvalues of the Hessian of ``loss_fn()`` w.r.t. the parameters (Lanczos on HVPs).

    :param loss_fn: closure returning the scalar loss (evaluated once; fix its batch).
    :param module_or_params: a module or its parameters.
    :param k: number of eigenvalues (< number of parameters).
    :param which: "LA" (largest algebraic: the top-k), "SA" (smallest algebraic: the bottom-k) or
        "LM" (largest magnitude).
    :param tol: Lanczos tolerance.
    :param seed: seed of the starting vector.
    :return: eigenvalues sorted in decreasing order, float64.
    """
    if which not in ("LA", "SA", "LM"):
        raise ValueError(f"which must be 'LA', 'SA' or 'LM', got {which!r}")
    params = _params(module_or_params)
    n = sum(p.numel() for p in params)
    if not 1 <= k < n:
        raise ValueError(f"k must be in 1..{n - 1} for {n} parameters, got {k}")
    hvp = hessian_vector_product(loss_fn, params)
    dtype, device = params[0].dtype, params[0].device

    def matvec(v: np.ndarray) -> np.ndarray:
        out = hvp(th.as_tensor(np.asarray(v).reshape(-1), dtype=dtype, device=device))
        return out.detach().double().cpu().numpy()

    op = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(n)
    vals = eigsh(op, k=k, which=which, tol=tol, v0=v0, return_eigenvectors=False)
    return np.sort(vals)[::-1]


def spectrum_summary(eigenvalues: np.ndarray) -> dict[str, float]:
    """Largest and smallest eigenvalue, condition number λ_max/λ_min over the positive part, and the
    spread log10(λ_max/λ_min) of the positive part (NaN where no positive eigenvalue)."""
    ev = np.asarray(eigenvalues, dtype=np.float64)
    pos = ev[ev > 0]
    out = {"max": float(ev.max()), "min": float(ev.min()), "n_negative": float(np.sum(ev < 0))}
    if len(pos):
        out["condition"] = float(pos.max() / pos.min())
        out["log10_spread"] = math.log10(out["condition"])
    else:
        out["condition"] = out["log10_spread"] = float("nan")
    return out


class HessianSpectrumCallback(BaseCallback):
    """Log the top-k Hessian eigenvalues of a model's critic loss every ``every`` steps.

    :param loss_and_module: ``f(model) -> (loss closure, module)``; default: for
        :class:`~is_sb3.RiskAC`, the critic loss on a fixed batch of simulated transitions.
    :param every: steps between two spectra.
    :param k: number of eigenvalues.
    :param verbose: verbosity.
    """

    def __init__(
        self,
        loss_and_module: Callable[[Any], tuple[LossClosure, nn.Module]] | None = None,
        every: int = 1000,
        k: int = 5,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if every < 1 or k < 1:
            raise ValueError(f"every and k must be >= 1, got every={every}, k={k}")
        self.loss_and_module = loss_and_module or risk_ac_critic_loss
        self.every, self.k = every, k
        self.history: list[tuple[int, np.ndarray]] = []

    def _on_step(self) -> bool:
        if self.n_calls % self.every == 0:
            loss_fn, module = self.loss_and_module(self.model)
            ev = hessian_eigenvalues(loss_fn, module, k=self.k)
            self.history.append((self.num_timesteps, ev))
            for i, value in enumerate(ev):
                self.logger.record(f"diagnostics/hessian_top{i + 1}", float(value))
            summary = spectrum_summary(ev)
            self.logger.record("diagnostics/hessian_top_ratio", float(ev[0] / ev[-1]) if ev[-1] != 0 else math.nan)
            self.logger.record("diagnostics/hessian_max", summary["max"])
        return True


def risk_ac_critic_loss(model: Any, batch_size: int = 512, seed: int = 0) -> tuple[LossClosure, nn.Module]:
    """The critic loss of a :class:`~is_sb3.RiskAC` on a fixed batch (targets detached), and the critic."""
    from is_sb3.losses import critic_loss

    sim = model.task.simulator(model.device, th.float32, seed)
    tr = sim.sample_transitions(batch_size)
    obs, obs_next = sim.observe(tr.t, tr.s), sim.observe(tr.t + 1, tr.s_next)
    with th.no_grad():
        action = model.policy.action(obs).squeeze(-1)
        target = sim.reward(tr.t, tr.s, action, tr.s_next) + model.policy.value(obs_next).masked_fill(tr.done, 0.0)

    def loss() -> th.Tensor:
        return critic_loss(model.critic_loss, model.policy.value(obs), target, model.risk_aversion)

    return loss, model.policy.critic


# ----------------------------------------------------------------------------- field notes


def is_divergence(y: Any, f: Any) -> Any:
    """Pointwise Itakura-Saito divergence ℓ(y, f) = y/f − log(y/f) − 1 for y, f > 0 (numpy or torch).

    The IS critic loss is this divergence of x = e^{−α·target} from e^{−α·prediction}, divided by α².
    """
    r = y / f
    return r - (th.log(r) if isinstance(r, th.Tensor) else np.log(r)) - 1


def field_hessian(y: np.ndarray, lam: float, dx: float = 1.0) -> np.ndarray:
    """Hessian K = −2λΔ + diag(1/y²) of S[φ] = Σ dx (λ|∇φ|² + ℓ(y, φ)) / dx at φ = y (1-D, Dirichlet).

    Scaled per unit length (the dx of the sum divided out): Δ is the 3-point Laplacian with step dx.
    """
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    lap = (np.diag(np.full(n - 1, 1.0), -1) - 2 * np.eye(n) + np.diag(np.full(n - 1, 1.0), 1)) / dx**2
    return -2.0 * lam * lap + np.diag(1.0 / y**2)


def field_propagator(x: np.ndarray, y0: float, lam: float) -> np.ndarray:
    """The field notes' 1-D propagator G(x) = y0/√(2λ) · exp(−|x| / (√(2λ) y0)).

    It is the Green's function of the quadratic form S ≈ ⟨ε, K' ε⟩ with K' = −λΔ + 1/(2y0²) = K/2
    (mass m² = 1/(2y0²) per unit λ), i.e. G = 2 K^{-1} for the Hessian K of :func:`field_hessian`.
    """
    ell = math.sqrt(2 * lam) * y0
    return y0 / math.sqrt(2 * lam) * np.exp(-np.abs(x) / ell)


def error_propagator(kernel: np.ndarray, weights: np.ndarray, eta: float, steps: int) -> np.ndarray:
    """(I − η K W)^steps: how training errors evolve under gradient descent in the NTK picture."""
    k = np.asarray(kernel, dtype=np.float64)
    m = np.eye(len(k)) - eta * k @ np.diag(np.asarray(weights, dtype=np.float64))
    return np.linalg.matrix_power(m, steps)
