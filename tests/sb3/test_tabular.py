"""Tabular DP against brute-force path enumeration; SA rules against SPEC §2's formulas."""

import itertools
import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import expit, logsumexp

from is_sb3.tabular import FiniteHorizonMDP, sa_update, solve_entropic_dp, stochastic_approximation


def random_mdp(seed: int, horizon: int = 3, n_states: int = 3, n_actions: int = 2) -> FiniteHorizonMDP:
    """Skewed (non-Gaussian) rewards: rare losses of −2, frequent gains of 0.5."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(n_states) * 0.7, size=(n_states, n_actions))
    r = np.where(rng.random((n_states, n_actions, n_states)) < 0.3, -2.0, 0.5)
    return FiniteHorizonMDP(p, r, horizon)


def brute_force_ce(mdp: FiniteHorizonMDP, pi: np.ndarray, s0: int, alpha: float) -> float:
    """CE of the total reward, enumerating every (a_0, s_1, …, a_{H−1}, s_H) path."""
    log_probs, returns = [], []
    choices = [range(mdp.n_actions), range(mdp.n_states)] * mdp.horizon
    for path in itertools.product(*choices):
        s, lp, ret = s0, 0.0, 0.0
        for t in range(mdp.horizon):
            a, s2 = path[2 * t], path[2 * t + 1]
            lp += math.log(pi[t, s, a] * mdp.transitions[s, a, s2] + 1e-300)
            ret += mdp.rewards[s, a, s2]
            s = s2
        log_probs.append(lp)
        returns.append(ret)
    lw, x = np.array(log_probs), np.array(returns)
    return float(-logsumexp(lw - alpha * x) / alpha)


@pytest.mark.parametrize("alpha", [1.5, -0.7])
def test_policy_evaluation_equals_the_ce_of_the_return(alpha: float) -> None:
    mdp = random_mdp(0)
    pi = np.random.default_rng(5).dirichlet(np.ones(2), size=(3, 3))  # time-dependent π[t, s, a]
    v, _ = solve_entropic_dp(mdp, alpha, pi)
    for s0 in range(3):
        assert v[0, s0] == pytest.approx(brute_force_ce(mdp, pi, s0, alpha), rel=1e-10)
    assert np.all(v[-1] == 0)


def test_optimal_dp_beats_every_deterministic_markov_policy() -> None:
    alpha, mdp = 1.0, random_mdp(3, horizon=2)
    v_star, q = solve_entropic_dp(mdp, alpha)
    best = np.full(3, -np.inf)
    for actions in itertools.product(range(2), repeat=2 * 3):
        pi = np.eye(2)[np.array(actions).reshape(2, 3)]
        v, _ = solve_entropic_dp(mdp, alpha, pi)
        best = np.maximum(best, v[0])
    np.testing.assert_allclose(v_star[0], best, rtol=1e-12)
    np.testing.assert_allclose(v_star[:-1], q.max(-1))


def test_sa_rules_are_the_spec_formulas() -> None:
    rng = np.random.default_rng(0)
    v, y, lr = rng.normal(size=50), rng.normal(size=50), 0.3
    for alpha in (0.8, -1.1):
        delta, e = v - y, y - v
        np.testing.assert_allclose(sa_update("td0", v, y, alpha, lr), v + lr * e)
        np.testing.assert_allclose(sa_update("is", v, y, alpha, lr), v - lr * np.expm1(alpha * delta) / alpha)
        np.testing.assert_allclose(
            sa_update("emse", v, y, alpha, lr),
            v + lr * np.exp(-2 * alpha * v) * (1 - np.exp(-alpha * e)) / alpha,
        )
        np.testing.assert_allclose(sa_update("sp", v, y, alpha, lr), v + lr * 2 * expit(-alpha * e) * e)


@pytest.mark.parametrize(("rule", "alpha", "lr"), [("is", 1.0, 0.1), ("is", -0.5, 0.1), ("emse", 0.5, 0.05)])
def test_sa_converges_to_the_exact_ce(rule: str, alpha: float, lr: float) -> None:
    mdp = random_mdp(0, horizon=2)
    pi = np.random.default_rng(1).dirichlet(np.ones(2), size=3)
    v_dp, _ = solve_entropic_dp(mdp, alpha, pi)
    v_sa = stochastic_approximation(mdp, rule, alpha, pi, n_iterations=4000, lr=lr, lr_decay=0.6, seed=2)
    v_td, _ = solve_entropic_dp(mdp, 0.0, pi)  # the risk-neutral values are far away
    # SA noise after 4000 sweeps is ~0.02-0.06 (seen over seeds); the CE is ≥ 0.3 away from the mean
    assert np.abs(v_sa - v_dp).max() < 0.1
    assert np.abs(v_td - v_dp).max() > 0.3


def test_sp_converges_to_its_own_biased_fixed_point() -> None:
    """SP's fixed point solves E[sigmoid(α(v − Y))(v − Y)] = 0 at each (t, s): found here by brentq."""
    alpha, mdp = 1.0, random_mdp(0, horizon=2)
    pi = np.random.default_rng(1).dirichlet(np.ones(2), size=3)
    v_dp, _ = solve_entropic_dp(mdp, alpha, pi)
    v_fixed = np.zeros((3, 3))
    for t in (1, 0):
        for s in range(3):
            w = pi[s][:, None] * mdp.transitions[s]  # joint law of (a, s')
            y = mdp.rewards[s] + v_fixed[t + 1][None, :]
            score = lambda v, w=w, y=y: float((w * expit(alpha * (v - y)) * (v - y)).sum())  # noqa: E731
            v_fixed[t, s] = brentq(score, -10, 10)
    v_sa = stochastic_approximation(mdp, "sp", alpha, pi, n_iterations=4000, lr=0.3, lr_decay=0.6, seed=2)
    # SA noise here is ~0.02-0.1 over seeds; the SP fixed point is > 0.3 from the CE
    assert np.abs(v_sa - v_fixed).max() < 0.15
    assert np.abs(v_fixed - v_dp).max() > 0.3
    assert np.abs(v_sa - v_dp).max() > 0.25


def test_invalid_mdp_and_arguments() -> None:
    with pytest.raises(ValueError, match="transitions"):
        FiniteHorizonMDP(np.ones((2, 1, 2)), np.zeros((2, 1, 2)), 1)
    with pytest.raises(ValueError, match="horizon"):
        FiniteHorizonMDP(np.full((2, 1, 2), 0.5), np.zeros((2, 1, 2)), 0)
    mdp = random_mdp(0)
    with pytest.raises(ValueError, match="policy"):
        solve_entropic_dp(mdp, 1.0, np.ones((3, 3)))
    with pytest.raises(ValueError, match="unknown rule"):
        sa_update("q", np.zeros(1), np.zeros(1), 1.0, 0.1)
    with pytest.raises(ValueError, match="lr_decay"):
        stochastic_approximation(mdp, "is", 1.0, np.full((3, 2), 0.5), lr_decay=0.3)
