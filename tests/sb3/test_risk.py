"""Certainty equivalents against SPEC §1's properties and closed forms."""

import itertools
import math

import numpy as np
import pytest
import torch as th
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from is_sb3.risk import (
    certainty_equivalent,
    certainty_equivalent_with_se,
    effective_sample_size,
    entropic_risk,
    gaussian_certainty_equivalent,
)

alphas = st.floats(-3, 3).filter(lambda a: abs(a) > 1e-3)
samples = st.lists(st.floats(-5, 5), min_size=1, max_size=30)


@given(samples, alphas)
def test_matches_scipy_logsumexp(xs: list[float], alpha: float) -> None:
    x = np.array(xs)
    ref = -(logsumexp(-alpha * x) - math.log(len(x))) / alpha
    assert float(certainty_equivalent(x, alpha)) == pytest.approx(ref, rel=1e-10, abs=1e-10)


@given(samples, alphas, st.floats(-100, 100))
def test_translation_invariance_and_constants(xs: list[float], alpha: float, c: float) -> None:
    x = np.array(xs)
    assert float(certainty_equivalent(x + c, alpha)) == pytest.approx(
        float(certainty_equivalent(x, alpha)) + c, abs=1e-8
    )
    assert float(certainty_equivalent(np.full(5, c), alpha)) == pytest.approx(c, abs=1e-12)


@given(samples, st.floats(0.01, 3), st.floats(0.1, 5))
def test_scaling_and_jensen(xs: list[float], alpha: float, c: float) -> None:
    x = np.array(xs)
    # CE_α[cX] = c CE_{αc}[X]
    assert float(certainty_equivalent(c * x, alpha)) == pytest.approx(
        c * float(certainty_equivalent(x, alpha * c)), abs=1e-8
    )
    ce_pos, ce_neg = float(certainty_equivalent(x, alpha)), float(certainty_equivalent(x, -alpha))
    assert x.min() - 1e-9 <= ce_pos <= x.mean() + 1e-9
    assert x.mean() - 1e-9 <= ce_neg <= x.max() + 1e-9


def test_alpha_zero_is_the_mean_and_tiny_alpha_keeps_precision() -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, 1000)
    assert float(certainty_equivalent(x, 0.0)) == pytest.approx(x.mean(), rel=1e-15)
    for alpha in (1e-12, 1e-9, 1e-6):
        # CE = mean − α Var/2 + O(α²): the O(α) term must survive
        slope = (float(certainty_equivalent(x, alpha)) - x.mean()) / alpha
        assert slope == pytest.approx(-x.var() / 2, rel=1e-3)


def test_no_overflow_far_from_zero() -> None:
    x = np.array([1000.0, 1001.0, 1005.0])
    for alpha in (100.0, -100.0):
        ref = -(logsumexp(-alpha * x) - math.log(3)) / alpha
        assert float(certainty_equivalent(x, alpha)) == pytest.approx(ref, rel=1e-12)
    assert th.isfinite(certainty_equivalent(th.tensor([1e4, -1e4]), 50.0))


def test_weighted_ce_equals_repeated_samples_and_torch_matches_numpy() -> None:
    x = np.array([[-1.0, 0.5, 2.0], [0.0, 3.0, -4.0]])
    p = np.array([[0.2, 0.4, 0.4], [0.6, 0.2, 0.2]])
    reps = [np.repeat(row, (5 * pr).astype(int)) for row, pr in zip(x, p, strict=True)]
    want = [float(certainty_equivalent(r, 0.8)) for r in reps]
    got = certainty_equivalent(x, 0.8, dim=1, log_weights=np.log(p))
    np.testing.assert_allclose(got, want, rtol=1e-12)
    got_t = certainty_equivalent(th.tensor(x), 0.8, dim=1, log_weights=th.tensor(np.log(p) + 7.0))  # unnormalised
    np.testing.assert_allclose(got_t.numpy(), want, rtol=1e-12)


def test_tower_property_on_a_two_stage_tree() -> None:
    alpha, rng = 1.3, np.random.default_rng(1)
    x1, x2 = rng.normal(size=4), rng.normal(size=5)
    total = np.array([a + b for a, b in itertools.product(x1, x2)])
    inner = np.array([a + float(certainty_equivalent(x2, alpha)) for a in x1])
    assert float(certainty_equivalent(total, alpha)) == pytest.approx(
        float(certainty_equivalent(inner, alpha)), rel=1e-12
    )


def test_gaussian_closed_form_and_standard_error() -> None:
    rng = np.random.default_rng(2)
    alpha, n = 0.7, 200_000
    x = rng.normal(0.5, 1.0, size=n)
    ce, se = certainty_equivalent_with_se(x, alpha)
    exact = gaussian_certainty_equivalent(0.5, 1.0, alpha)
    # delta-method se of N(m, 1): sqrt(e^{α²} − 1)/(α √n)
    assert float(se) == pytest.approx(math.sqrt(math.expm1(alpha**2)) / (alpha * math.sqrt(n)), rel=0.05)
    assert abs(float(ce) - exact) < 4 * float(se)
    _, se0 = certainty_equivalent_with_se(x, 0.0)
    assert float(se0) == pytest.approx(x.std(ddof=1) / math.sqrt(n))
    assert float(entropic_risk(x, alpha)) == pytest.approx(-float(ce))


def test_torch_is_differentiable_and_keeps_dtype() -> None:
    x = th.randn(64, dtype=th.float32, requires_grad=True)
    ce = certainty_equivalent(x, 2.0)
    (g,) = th.autograd.grad(ce, x)
    assert ce.dtype == th.float32
    # ∂CE/∂x_i is the exponentially tilted weight: softmax(−αx)
    th.testing.assert_close(g, th.softmax(-2.0 * x.detach(), 0))


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="risk_aversion"):
        certainty_equivalent(np.ones(3), float("inf"))
    with pytest.raises(ValueError, match="at least one sample"):
        certainty_equivalent(np.ones((0, 2)), 1.0, dim=0)
    with pytest.raises(ValueError, match="at least 2 samples"):
        certainty_equivalent_with_se(np.ones(1), 1.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=1, max_size=20), st.floats(-1e3, 1e3))
def test_effective_sample_size_by_hand(log_w: list[float], shift: float) -> None:
    lw = th.tensor(log_w, dtype=th.float64)
    w = np.exp(np.array(log_w) - max(log_w))
    expected = w.sum() ** 2 / (w**2).sum()  # Kish's formula, computed directly
    assert float(effective_sample_size(lw)) == pytest.approx(expected, rel=1e-9)
    assert float(effective_sample_size(lw + shift)) == pytest.approx(expected, rel=1e-9)  # scale-free
    assert 1.0 - 1e-9 <= float(effective_sample_size(lw)) <= len(log_w) + 1e-9


def test_effective_sample_size_extremes() -> None:
    assert float(effective_sample_size(th.zeros(8))) == pytest.approx(8.0)
    assert float(effective_sample_size(th.tensor([0.0, -float("inf"), -float("inf")]))) == pytest.approx(1.0)
    batch = effective_sample_size(th.tensor([[0.0, 0.0], [0.0, -1e4]]))
    assert batch.tolist() == pytest.approx([2.0, 1.0])
