"""The four critic losses against SPEC §2: minimisers, limits, gradients, guards."""

import math

import mpmath as mp
import numpy as np
import pytest
import torch as th
from hypothesis import given
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from scipy.special import expit, logsumexp, spence

from is_sb3.losses import (
    IS_LINEAR_FROM,
    LOSSES,
    CriticLoss,
    critic_loss,
    dilog_neg_exp,
    exponential_mse,
    itakura_saito,
    mse,
    softplus_loss,
)

F64 = th.float64
alphas = st.floats(-3.0, 3.0).filter(lambda a: abs(a) > 1e-3)
samples = st.lists(st.floats(-4.0, 4.0), min_size=2, max_size=40)


def t64(x: object) -> th.Tensor:
    return th.as_tensor(np.asarray(x, dtype=np.float64))


def mean_loss_minimiser(name: str, y: np.ndarray, alpha: float) -> float:
    yt = t64(y)

    def f(v: float) -> float:
        return float(critic_loss(name, th.full_like(yt, v), yt, alpha))

    res = minimize_scalar(f, bounds=(y.min() - 1, y.max() + 1), method="bounded", options={"xatol": 1e-10})
    return float(res.x)


def naive_ce(y: np.ndarray, alpha: float) -> float:
    """Independent CE: scipy's logsumexp on the raw formula."""
    return float(-(logsumexp(-alpha * y) - math.log(len(y))) / alpha)


@given(samples, alphas)
def test_is_minimiser_is_the_sample_ce(ys: list[float], alpha: float) -> None:
    y = np.array(ys)
    assert mean_loss_minimiser("is", y, alpha) == pytest.approx(naive_ce(y, alpha), abs=1e-6)


@given(samples, st.floats(-1.5, 1.5).filter(lambda a: abs(a) > 1e-3))
def test_emse_shares_the_is_minimiser(ys: list[float], alpha: float) -> None:
    y = np.array(ys)
    assert mean_loss_minimiser("emse", y, alpha) == pytest.approx(naive_ce(y, alpha), abs=1e-5)


def test_sp_is_biased_on_a_skewed_target() -> None:
    """SPEC: Y = Exp(1) − χ²₁, α = 0.3: CE ≈ −0.656, SP's minimiser ≈ −0.427."""
    alpha = 0.3
    rng = np.random.default_rng(0)
    y = rng.exponential(size=400_000) - rng.chisquare(1, size=400_000)
    exact_ce = (math.log1p(alpha) + 0.5 * math.log(1 - 2 * alpha)) / alpha  # −0.6526
    assert mean_loss_minimiser("is", y, alpha) == pytest.approx(exact_ce, abs=0.02)
    sp = mean_loss_minimiser("sp", y, alpha)
    assert sp == pytest.approx(-0.427, abs=0.02)
    assert sp - exact_ce > 0.2


def test_sp_matches_the_ce_on_a_gaussian_target() -> None:
    alpha = 0.5
    y = np.random.default_rng(1).normal(0.3, 1.2, size=200_000)
    assert mean_loss_minimiser("sp", y, alpha) == pytest.approx(0.3 - alpha * 1.44 / 2, abs=0.02)


@pytest.mark.parametrize("name", sorted(LOSSES))
@given(alpha=st.floats(-5, 5), delta=st.floats(-1, 1).filter(lambda d: abs(d) > 1e-3))
def test_small_delta_limit_is_half_square(name: str, alpha: float, delta: float) -> None:
    d = t64([delta * 1e-6])
    value = critic_loss(name, d, th.zeros_like(d), alpha, reduction="none")
    assert float(value / (0.5 * d**2)) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_alpha_zero_is_mse_exactly(name: str) -> None:
    pred = th.randn(100, dtype=F64) * 10
    target = th.randn(100, dtype=F64) * 10
    assert th.equal(critic_loss(name, pred, target, 0.0, "none"), mse(pred, target))


def _is_ref(delta: float, alpha: float) -> float:
    x = mp.mpf(alpha) * mp.mpf(delta)
    return float((mp.exp(x) - x - 1) / mp.mpf(alpha) ** 2)


def _emse_ref(pred: float, target: float, alpha: float) -> float:
    a = mp.mpf(alpha)
    return float((mp.exp(-a * mp.mpf(pred)) - mp.exp(-a * mp.mpf(target))) ** 2 / (2 * a**2))


def _sp_ref(delta: float, alpha: float) -> float:
    a = mp.mpf(alpha)
    x = a * mp.mpf(delta)
    return float((2 * x * mp.log1p(mp.exp(x)) + 2 * mp.polylog(2, -mp.exp(x)) + mp.pi**2 / 6) / a**2)


@pytest.mark.parametrize("alpha", [1e-8, -1e-8, 1e-4, 0.05, -0.3, 2.0])
@pytest.mark.parametrize("delta", [-3.0, -0.2, 0.01, 0.7, 4.0])
def test_values_match_high_precision_references(alpha: float, delta: float) -> None:
    mp.mp.dps = 60
    d, z = t64([delta]), t64([0.5])
    assert float(itakura_saito(d + z, z, alpha)) == pytest.approx(_is_ref(delta, alpha), rel=1e-13)
    assert float(exponential_mse(d + z, z, alpha)) == pytest.approx(_emse_ref(delta + 0.5, 0.5, alpha), rel=1e-12)
    assert float(softplus_loss(d, th.zeros_like(d), alpha)) == pytest.approx(_sp_ref(delta, alpha), rel=1e-12)


def test_dilogarithm_against_scipy_spence() -> None:
    u = np.linspace(-60, 60, 4001)
    ref = spence(1.0 + np.exp(u))  # scipy: spence(z) = Li₂(1 − z)
    got = dilog_neg_exp(th.as_tensor(u)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13)


def grad_of(fn, pred: th.Tensor, target: th.Tensor, alpha: float) -> th.Tensor:  # type: ignore[no-untyped-def]
    p = pred.clone().requires_grad_(True)
    (g,) = th.autograd.grad(fn(p, target, alpha).sum(), p)
    return g


@given(
    st.lists(st.floats(-3, 3), min_size=1, max_size=20),
    st.lists(st.floats(-3, 3), min_size=1, max_size=20),
    st.floats(-2, 2).filter(lambda a: abs(a) > 1e-3),
)
def test_emse_gradient_is_reweighted_is_gradient(v: list[float], y: list[float], alpha: float) -> None:
    n = min(len(v), len(y))
    pred, target = t64(v[:n]), t64(y[:n])
    g_emse = grad_of(exponential_mse, pred, target, alpha)
    g_is = grad_of(itakura_saito, pred, target, alpha)
    th.testing.assert_close(g_emse, th.exp(-2 * alpha * pred) * g_is, rtol=1e-10, atol=1e-12)


@given(st.floats(-10, 10), st.floats(-4, 4).filter(lambda a: abs(a) > 1e-3))
def test_is_gradient_is_the_spec_formula(delta: float, alpha: float) -> None:
    d = t64([delta])
    expected = math.expm1(min(alpha * delta, IS_LINEAR_FROM)) / alpha
    assert float(grad_of(itakura_saito, d, th.zeros_like(d), alpha)) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@given(st.floats(-20, 20), st.floats(-4, 4).filter(lambda a: abs(a) > 1e-2))
def test_sp_gradient_formula_and_finite_differences(delta: float, alpha: float) -> None:
    d = t64([delta])
    g = float(grad_of(softplus_loss, d, th.zeros_like(d), alpha))
    assert g == pytest.approx(2 * delta * expit(alpha * delta), rel=1e-10, abs=1e-12)
    h = 1e-5
    fd = (
        float(softplus_loss(d + h, th.zeros_like(d), alpha)) - float(softplus_loss(d - h, th.zeros_like(d), alpha))
    ) / (2 * h)
    assert g == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_sp_is_non_convex_below_the_spec_threshold() -> None:
    alpha = 1.0
    for x, sign in [(-1.30, -1), (-1.25, 1), (0.0, 1), (3.0, 1)]:
        d = t64([x]).requires_grad_(True)
        (g,) = th.autograd.grad(softplus_loss(d, th.zeros_like(d), alpha).sum(), d, create_graph=True)
        (h,) = th.autograd.grad(g.sum(), d)
        assert math.copysign(1, float(h)) == sign


@given(
    st.floats(-50, 50),
    st.floats(-50, 50),
    st.floats(-100, 100),
    st.floats(-2, 2).filter(lambda a: abs(a) > 1e-3),
)
def test_is_is_translation_invariant(v: float, y: float, c: float, alpha: float) -> None:
    pred, target = t64([v]), t64([y])
    base = itakura_saito(pred, target, alpha)
    shifted = itakura_saito(pred + c, target + c, alpha)
    th.testing.assert_close(shifted, base, rtol=1e-9, atol=1e-9)


@given(st.floats(-5, 5), st.floats(-5, 5), st.floats(0.05, 3))
def test_is_is_the_itakura_saito_divergence_of_exponentials(v: float, y: float, alpha: float) -> None:
    """ℓ = D_IS(x, y)/α² with x = e^{−α·target}, y = e^{−α·prediction}, D_IS(x, y) = x/y − log(x/y) − 1."""
    x_, y_ = math.exp(-alpha * y), math.exp(-alpha * v)
    d_is = x_ / y_ - math.log(x_ / y_) - 1
    assert float(itakura_saito(t64([v]), t64([y]), alpha)) == pytest.approx(d_is / alpha**2, rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("dtype", [th.float32, th.float64])
@pytest.mark.parametrize("name", ["is", "sp", "mse"])
@pytest.mark.parametrize("alpha", [1e-3, 1.0, -1.0, 50.0])
def test_finite_for_huge_td_differences(dtype: th.dtype, name: str, alpha: float) -> None:
    x = th.tensor([-1e6, -1e3, -100.0, -30.0, 30.0, 88.0, 100.0, 1e3, 1e6], dtype=dtype)
    delta = (x / alpha).requires_grad_(True)
    loss = critic_loss(name, delta, th.zeros_like(delta), alpha, "none")
    (g,) = th.autograd.grad(loss.sum(), delta)
    assert loss.dtype == dtype and th.isfinite(loss).all() and th.isfinite(g).all()
    assert (loss >= 0).all()


def test_is_exact_up_to_the_continuation_point_and_c1_beyond() -> None:
    alpha = 0.7
    x = np.concatenate([np.linspace(-30, -0.5, 500), np.linspace(0.5, 30, 500)])
    d = t64(x / alpha)
    naive = (np.expm1(x) - x) / alpha**2
    np.testing.assert_allclose(itakura_saito(d, th.zeros_like(d), alpha).numpy(), naive, rtol=1e-13)
    # value and slope continuous at the continuation point
    eps = 1e-7
    left, right = t64([(IS_LINEAR_FROM - eps) / alpha]), t64([(IS_LINEAR_FROM + eps) / alpha])
    z = th.zeros(1, dtype=F64)
    assert float(itakura_saito(right, z, alpha)) == pytest.approx(float(itakura_saito(left, z, alpha)), rel=1e-6)
    assert float(grad_of(itakura_saito, right, z, alpha)) == pytest.approx(
        float(grad_of(itakura_saito, left, z, alpha)), rel=1e-6
    )


def test_emse_instability_is_reported_not_hidden() -> None:
    """EMSE's e^{−2αV} factor overflows float32 at large negative αV; IS stays finite there."""
    v = th.tensor([-100.0], requires_grad=True)
    y = th.tensor([-101.0])
    assert not th.isfinite(exponential_mse(v, y, 1.0)).all()
    assert th.isfinite(itakura_saito(v, y, 1.0)).all()


def test_bad_arguments_raise_value_error() -> None:
    x = th.zeros(3)
    with pytest.raises(ValueError, match=r"unknown critic_loss 'huber'.*\['emse', 'is', 'mse', 'sp'\]"):
        critic_loss("huber", x, x, 1.0)
    with pytest.raises(ValueError, match="same shape"):
        itakura_saito(th.zeros(3, 1), th.zeros(3), 1.0)
    with pytest.raises(ValueError, match="risk_aversion"):
        itakura_saito(x, x, float("nan"))
    with pytest.raises(ValueError, match="reduction"):
        critic_loss("is", x, x, 1.0, reduction="max")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="critic_loss"):
        CriticLoss("huber", 1.0)


def test_reductions_and_module_wrapper() -> None:
    pred, target = th.randn(7, dtype=F64), th.randn(7, dtype=F64)
    per = itakura_saito(pred, target, 0.4)
    assert float(critic_loss("is", pred, target, 0.4, "sum")) == pytest.approx(float(per.sum()))
    assert float(CriticLoss("is", 0.4)(pred, target)) == pytest.approx(float(per.mean()))


@pytest.mark.parametrize("alpha", [2.0, 0.3, -0.5])
def test_actor_loss_has_the_direction_of_equation_14(alpha: float) -> None:
    from is_sb3.losses import exponential_utility_actor_loss

    x = th.randn(64, dtype=F64, requires_grad=True)
    (g,) = th.autograd.grad(exponential_utility_actor_loss(x * 30, alpha).sum(), x)
    (g_ref,) = th.autograd.grad((th.exp(-alpha * x * 30) / alpha).sum(), x)
    ratio = g / g_ref
    assert th.all(ratio > 0) and th.allclose(ratio, ratio[0].expand_as(ratio))
    huge = th.tensor([-1e4, 0.0, 1e4], dtype=F64)
    assert th.isfinite(exponential_utility_actor_loss(huge, alpha)).all()
    y = th.randn(8, dtype=F64)
    assert th.equal(exponential_utility_actor_loss(y, 0.0), -y)


@pytest.mark.parametrize("k", [0.2, 0.4])
def test_is_gradient_vanishes_at_the_closed_form_and_its_weights_have_the_predicted_second_moment(k: float) -> None:
    """Under V*, π* of the quadratic task, r + V*(s') − V*(s) = −½Z² − log(1 − k)/(2α) exactly, so the IS
    weights w = e^{αδ} have mean 1 (the IS gradient (w − 1)/α vanishes in expectation: V* is its fixed
    point) and second moment (1 − k)/√(1 − 2k), which is infinite from k = ½ on; SP's gradient does not
    vanish there (its bias), MSE's is −E[δ] ≠ 0."""
    from is_envs.finance import BachelierSimulator, QuadraticPenaltyTask, reference_solution

    task = QuadraticPenaltyTask()
    alpha = k / task.sigma**2
    ref = reference_solution(task, alpha)
    tr = BachelierSimulator(task, "cpu", th.float64, seed=0).sample_transitions(400_000)
    t, s, s_next, done = (x.numpy() for x in tr)
    v_next = np.where(done, 0.0, ref.value(np.minimum(t + 1, task.horizon - 1), s_next))
    delta = ref.value(t, s) - (task.reward(t, s, ref.action(t, s), s_next) + v_next)
    w = np.exp(alpha * delta)
    n = len(w)
    assert abs(w.mean() - 1.0) < 4 * w.std() / math.sqrt(n)
    w2 = w**2
    assert w2.mean() == pytest.approx((1 - k) / math.sqrt(1 - 2 * k), abs=4 * w2.std() / math.sqrt(n))
    assert abs(delta.mean()) > 10 * delta.std() / math.sqrt(n)  # the MSE fixed point is elsewhere
    sp_grad = 2 * delta * expit(alpha * delta)
    assert abs(sp_grad.mean()) > 5 * sp_grad.std() / math.sqrt(n)  # and so is SP's (5 standard errors)


def test_spec_reference_values_of_the_sp_bias_on_the_quadratic_step() -> None:
    """SPEC §4.2: for one step of the quadratic task (target −½Z², Z ~ N(0, σ²), k = ασ² = 0.5), the
    minimiser of E[loss(v − Y)] is ½ log(1 − k)/α ≈ −0.347/α for IS but ≈ −0.309/α for SP. Found
    here by root-finding the expected gradient of the library's losses (autograd) under 120-point
    Gauss-Hermite quadrature."""
    from scipy.optimize import brentq

    k, sigma2 = 0.5, 0.1
    alpha = k / sigma2
    nodes, weights = np.polynomial.hermite_e.hermegauss(120)
    y = th.tensor(-0.5 * sigma2 * nodes**2, dtype=th.float64)
    w = th.tensor(weights / weights.sum(), dtype=th.float64)

    def expected_gradient(name: str, v: float) -> float:
        pred = th.full_like(y, v, requires_grad=True)
        (grad,) = th.autograd.grad(critic_loss(name, pred, y, alpha, reduction="none").sum(), pred)
        return float((w * grad).sum())

    v_is = brentq(lambda v: expected_gradient("is", v), -1.0, 0.0, xtol=1e-12)
    v_sp = brentq(lambda v: expected_gradient("sp", v), -1.0, 0.0, xtol=1e-12)
    assert v_is * alpha == pytest.approx(0.5 * math.log(1 - k), abs=1e-6)  # −0.3466
    assert v_sp * alpha == pytest.approx(-0.309, abs=1e-3)


@pytest.mark.parametrize("alpha", [1e-50, -1e-30, 1e-7])
def test_actor_loss_at_a_tiny_alpha_has_the_risk_neutral_gradient_and_stays_finite(alpha: float) -> None:
    """(1/α)e^{−αx−c} overflowed float32 for tiny α (NaN parameters after training); below 1e-6 the loss is its
    α → 0 limit, whose gradient −1 per sample the exact one, −e^{−αx−c}, equals to O(α·|x|)."""
    from is_sb3.losses import exponential_utility_actor_loss

    x = th.linspace(-50.0, 50.0, 101, requires_grad=True)
    exponential_utility_actor_loss(x, alpha).sum().backward()
    assert x.grad is not None and th.isfinite(x.grad).all()
    exact = -th.exp(-alpha * x.detach().double() - (-alpha * x.detach().double()).max())
    assert th.allclose(x.grad.double(), exact, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", ["mse", "is", "emse", "sp"])
def test_losses_keep_the_predictions_dtype_refuse_empty_and_float16_and_take_bfloat16(name: str) -> None:
    from is_sb3.losses import critic_loss

    p32 = th.tensor([0.5, -1.0, 3.0], requires_grad=True)
    y64 = th.tensor([0.0, 0.5, 1.0], dtype=th.float64)
    assert critic_loss(name, p32, y64, 1.0, "none").dtype == th.float32  # a float64 target does not promote
    with pytest.raises(ValueError, match="empty"):
        critic_loss(name, th.zeros(0), th.zeros(0), 1.0)
    with pytest.raises(ValueError, match="float16"):
        critic_loss(name, th.zeros(3, dtype=th.float16), th.zeros(3, dtype=th.float16), 1.0)
    # bfloat16: computed in float32, returned in bfloat16, finite where float16 overflowed (αδ = 20)
    pb, yb = th.tensor([20.0, 0.1], dtype=th.bfloat16), th.zeros(2, dtype=th.bfloat16)
    out = critic_loss(name, pb, yb, 1.0, "none")
    ref = critic_loss(name, pb.float(), yb.float(), 1.0, "none")
    assert out.dtype == th.bfloat16 and th.isfinite(out).all() and th.equal(out, ref.to(th.bfloat16))


@pytest.mark.parametrize("alpha", [1e-320, 1e-200, 1e-20, -1e-16])
@pytest.mark.parametrize("name", ["is", "emse", "sp"])
def test_losses_at_a_vanishing_alpha_are_half_delta_squared_with_finite_gradients(name: str, alpha: float) -> None:
    """α = 1e-320 gave a NaN gradient: α² underflowed and the unused branch's inf met a zero mask."""
    from is_sb3.losses import critic_loss

    for dtype in (th.float32, th.float64):
        p = th.tensor([0.3, -2.0, 5.0], dtype=dtype, requires_grad=True)
        loss = critic_loss(name, p, th.zeros(3, dtype=dtype), alpha, "none")
        loss.sum().backward()
        assert p.grad is not None and th.isfinite(p.grad).all()
        assert th.allclose(loss.detach(), 0.5 * p.detach() ** 2, rtol=1e-6)
        assert th.allclose(p.grad, p.detach(), rtol=1e-6)
