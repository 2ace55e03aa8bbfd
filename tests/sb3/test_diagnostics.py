"""Hessian spectra against exact Hessians, and the field notes' formulas checked numerically (SPEC §6)."""

import math

import numpy as np
import pytest
import torch as th
from torch import nn

from is_sb3 import RiskAC
from is_sb3.diagnostics import (
    HessianSpectrumCallback,
    error_propagator,
    exact_hessian,
    field_hessian,
    field_propagator,
    hessian_eigenvalues,
    is_divergence,
    spectrum_summary,
)
from is_sb3.losses import itakura_saito


def small_problem(seed: int = 0) -> tuple[nn.Module, th.Tensor, th.Tensor]:
    th.manual_seed(seed)
    net = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 1)).double()
    x = th.randn(40, 3, dtype=th.float64)
    y = th.randn(40, dtype=th.float64)
    return net, x, y


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_lanczos_matches_the_exact_hessian(which: str) -> None:
    net, x, y = small_problem()

    def loss() -> th.Tensor:
        return itakura_saito(net(x).squeeze(-1), y, 0.7).mean()

    exact = np.linalg.eigvalsh(exact_hessian(loss, net))[::-1]
    k = 5
    got = hessian_eigenvalues(loss, net, k=k, which=which, tol=1e-10)
    want = exact[:k] if which == "LA" else exact[-k:]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


def test_exact_hessian_against_torch_functional() -> None:
    net, x, y = small_problem(1)
    params = list(net.parameters())
    shapes = [p.shape for p in params]
    flat0 = th.cat([p.detach().reshape(-1) for p in params])

    def f(flat: th.Tensor) -> th.Tensor:
        chunks, i = [], 0
        for s in shapes:
            n = int(np.prod(s))
            chunks.append(flat[i : i + n].reshape(s))
            i += n
        h = th.tanh(x @ chunks[0].T + chunks[1])
        return ((h @ chunks[2].T + chunks[3]).squeeze(-1) - y).pow(2).mean()

    ref = th.autograd.functional.hessian(f, flat0).numpy()
    got = exact_hessian(lambda: (net(x).squeeze(-1) - y).pow(2).mean(), net)
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_spectrum_summary() -> None:
    s = spectrum_summary(np.array([10.0, 1.0, 0.1, -0.5]))
    assert s["condition"] == pytest.approx(100.0) and s["log10_spread"] == pytest.approx(2.0)
    assert s["n_negative"] == 1 and s["max"] == 10.0


def test_is_pointwise_curvature_and_scale_invariance() -> None:
    y = th.tensor([0.3, 1.0, 4.0], dtype=th.float64)
    f = y.clone().requires_grad_(True)
    (g,) = th.autograd.grad(is_divergence(y, f).sum(), f, create_graph=True)
    (h,) = th.autograd.grad(g.sum(), f)
    th.testing.assert_close(g, th.zeros(3, dtype=th.float64))
    th.testing.assert_close(h, 1 / y**2)  # ∂²ℓ/∂f² = 1/y² at f = y
    f2 = th.tensor([0.5, 0.7, 5.0], dtype=th.float64)
    th.testing.assert_close(is_divergence(3.7 * y, 3.7 * f2), is_divergence(y, f2))
    # first-order: ∂ℓ/∂f = (f − y)/f²
    f3 = f2.clone().requires_grad_(True)
    (g3,) = th.autograd.grad(is_divergence(y, f3).sum(), f3)
    th.testing.assert_close(g3, (f2 - y) / f2**2)
    # local form ε²/(2y²)
    eps = 1e-4
    assert float(is_divergence(y, y + eps)[1]) == pytest.approx(eps**2 / 2, rel=1e-3)
    # the IS critic loss is this divergence of exponentials
    a, v, t = 0.8, th.tensor([0.3]), th.tensor([-0.4])
    d = is_divergence(th.exp(-a * t.double()), th.exp(-a * v.double())) / a**2
    th.testing.assert_close(itakura_saito(v.double(), t.double(), a), d)


def test_linearised_operator_spectrum_bound() -> None:
    rng = np.random.default_rng(0)
    y = rng.uniform(0.2, 3.0, 200)
    ev = np.linalg.eigvalsh(field_hessian(y, lam=0.3, dx=0.05))
    assert ev.min() >= 1 / y.max() ** 2 - 1e-10
    assert ev.min() <= 1 / y.min() ** 2  # and the bound is not vacuous: below the largest mass


def test_propagator_against_a_finite_difference_greens_function() -> None:
    y0, lam, dx, n = 0.8, 0.5, 0.01, 4001
    k = field_hessian(np.full(n, y0), lam, dx)
    centre = n // 2
    unit = np.zeros(n)
    unit[centre] = 1.0 / dx  # discrete delta
    g_fd = 2 * np.linalg.solve(k, unit)  # G = (K/2)^{-1} δ
    x = (np.arange(n) - centre) * dx
    near = np.abs(x) < 3.0
    np.testing.assert_allclose(g_fd[near], field_propagator(x[near], y0, lam), rtol=2e-3)


def test_light_cone_of_a_banded_kernel() -> None:
    rng = np.random.default_rng(1)
    n, r = 40, 2
    a = rng.normal(size=(n, n)) * (np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 1)
    kern = a @ a.T  # banded with range R = 2, symmetric positive semi-definite
    assert np.all(kern[np.abs(np.subtract.outer(np.arange(n), np.arange(n))) > r] == 0)
    w = rng.uniform(0.5, 2.0, n)
    for t in (1, 3, 6):
        m = error_propagator(kern, w, eta=0.05, steps=t)
        dist = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
        assert np.all(m[dist > t * r] == 0)  # exactly zero outside the cone
        assert np.any(m[dist == t * r] != 0)  # and the cone is reached


def test_stability_threshold_is_two_over_lambda_max() -> None:
    rng = np.random.default_rng(2)
    n = 30
    a = rng.normal(size=(n, n))
    kern = a @ a.T / n + 0.1 * np.eye(n)
    w = rng.uniform(0.3, 3.0, n)  # an IS-like reweighting diag(1/y²)
    lam_max = np.max(np.linalg.eigvals(kern @ np.diag(w)).real)
    e0 = rng.normal(size=n)
    stable = error_propagator(kern, w, eta=0.99 * 2 / lam_max, steps=3000) @ e0
    unstable = error_propagator(kern, w, eta=1.01 * 2 / lam_max, steps=3000) @ e0
    assert np.linalg.norm(stable) < 1e-3 * np.linalg.norm(e0)
    assert np.linalg.norm(unstable) > 1e3 * np.linalg.norm(e0)


def test_callback_logs_the_critic_spectrum(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = RiskAC(
        "MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=2.0, seed=0, batch_size=128, eval_freq=0,
        n_eval_states=64, device="cpu", tensorboard_log=str(tmp_path),
    )  # fmt: skip
    cb = HessianSpectrumCallback(every=5, k=3)
    model.learn(10, callback=cb, log_interval=5, tb_log_name="diag")
    assert len(cb.history) == 2 and all(len(ev) == 3 and ev[0] >= ev[-1] for _, ev in cb.history)
    (run,) = list(tmp_path.iterdir())
    tags = set(EventAccumulator(str(run)).Reload().Tags()["scalars"])
    assert {"diagnostics/hessian_top1", "diagnostics/hessian_top3", "diagnostics/hessian_max"} <= tags


def test_bad_arguments() -> None:
    net, x, _ = small_problem()
    with pytest.raises(ValueError, match="which"):
        hessian_eigenvalues(lambda: net(x).sum(), net, which="XX")
    with pytest.raises(ValueError, match="k must be"):
        hessian_eigenvalues(lambda: net(x).sum(), net, k=10_000)
    with pytest.raises(ValueError, match="every"):
        HessianSpectrumCallback(every=0)
    assert math.isnan(spectrum_summary(np.array([-1.0]))["condition"])
