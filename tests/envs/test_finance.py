"""Bachelier environments (SPEC §4): API, rules, front ends sharing one core, reference solutions."""

import itertools
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import is_envs  # noqa: F401  (registers the ids)
from is_envs.finance import (
    BachelierSimulator,
    BachelierVecEnv,
    DynamicProgram,
    GaussianReturnTask,
    OptionHedgingTask,
    QuadraticPenaltyTask,
    reference_solution,
)
from is_sb3.ac.task import rollout_returns
from is_sb3.risk import certainty_equivalent_with_se

IDS = ["is_envs/BachelierTrading-v0", "is_envs/QuadraticPenalty-v0", "is_envs/OptionHedging-v0"]


@pytest.mark.parametrize("env_id", IDS)
def test_checkers_pass(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(env.unwrapped, warn=True)
    # the only advice the checkers may give is the generic "use a [-1, 1] action box" (positions are shares)
    assert all("symmetric and normalized" in str(w.message) for w in caught)


def test_ids_defaults_and_overrides() -> None:
    g = gym.make("is_envs:is_envs/BachelierTrading-v0").unwrapped.task
    assert (g.horizon, g.mu, g.sigma) == (10, 0.03, 1.0)
    q = gym.make("is_envs/QuadraticPenalty-v0").unwrapped.task
    assert q.mu == 0.0 and q.sigma**2 == pytest.approx(0.1)
    h = gym.make("is_envs/OptionHedging-v0", s0=100.0).unwrapped.task
    assert h.strike == 100.0 and h.sigma**2 == pytest.approx(0.1)
    assert gym.make("is_envs/QuadraticPenalty-v0", sigma=0.5, horizon=4).unwrapped.task.horizon == 4


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"horizon": 0}, "horizon"),
        ({"horizon": 2.5}, "horizon"),
        ({"mu": float("nan")}, "mu"),
        ({"s0": float("inf")}, "s0"),
        ({"max_position": 0.0}, "max_position"),
    ],
)
def test_invalid_parameters_name_the_parameter(kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        gym.make("is_envs/QuadraticPenalty-v0", **kwargs)


@pytest.mark.parametrize("env_id", IDS)
def test_episode_rewards_follow_the_spec(env_id: str) -> None:
    env = gym.make(env_id)
    task = env.unwrapped.task
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and info == {"t": 0, "S": task.s0}
    rng = np.random.default_rng(0)
    for t in range(task.horizon):
        a = float(rng.uniform(-1, 1))
        s = info["S"]
        obs, r, terminated, truncated, info = env.step(np.array([a], dtype=np.float32))
        s2 = info["S"]
        expected = float(np.float32(a)) * (s2 - s)
        if t == task.horizon - 1:
            expected -= {
                "gaussian": 0.0,
                "quadratic": 0.5 * (s2 - task.s0) ** 2,
                "hedging": max(s2 - task.s0, 0.0),
            }[task.name]
        assert r == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert info["t"] == t + 1 and terminated == (t == task.horizon - 1) and not truncated
        np.testing.assert_allclose(obs, [(t + 1) / 10, (s2 - task.s0) / (task.sigma * math.sqrt(10))], rtol=1e-6)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1, dtype=np.float32))


def test_increments_have_the_spec_law_and_seeding_reproduces() -> None:
    env = gym.make("is_envs/BachelierTrading-v0")
    z = []
    for ep in range(300):
        env.reset(seed=ep)
        s = 0.0
        for _ in range(10):
            *_, info = env.step(np.zeros(1, dtype=np.float32))
            z.append(info["S"] - s)
            s = info["S"]
    z = np.array(z)
    assert abs(z.mean() - 0.03) < 4 / math.sqrt(len(z)) and abs(z.std() - 1.0) < 0.05
    a, b = gym.make("is_envs/BachelierTrading-v0"), gym.make("is_envs/BachelierTrading-v0")
    a.reset(seed=7), b.reset(seed=7)
    assert a.step(np.ones(1, np.float32))[1] == b.step(np.ones(1, np.float32))[1]


def test_vec_env_sb3_conventions_and_shared_reward() -> None:
    task = QuadraticPenaltyTask()
    venv = BachelierVecEnv(task, num_envs=64, seed=0)
    obs = venv.reset()
    assert obs.shape == (64, 2) and obs.dtype == np.float32
    prices = np.full(64, task.s0)
    for t in range(task.horizon):
        actions = np.linspace(-1, 1, 64, dtype=np.float32)[:, None]
        obs, rewards, dones, infos = venv.step(actions)
        last = infos[0]["terminal_observation"] if dones[0] else obs
        new_prices = task.price_from_observation(
            last[:, 1] if last.ndim == 2 else np.array([i["terminal_observation"][1] for i in infos])
        )
        expected = task.reward(t, prices, actions[:, 0].astype(np.float64), new_prices)
        np.testing.assert_allclose(rewards, expected, rtol=1e-4, atol=1e-5)
        assert dones.all() == (t == task.horizon - 1)
        prices = new_prices
    assert np.all(obs[:, 0] == 0) and np.all(obs[:, 1] == 0)  # auto-reset to (t=0, S=S_0)


def test_simulator_samples_exact_marginals_and_differentiable_rewards() -> None:
    task = GaussianReturnTask()
    sim = BachelierSimulator(task, dtype=th.float64, seed=0)
    tr = sim.sample_transitions(200_000)
    assert tr.t.min() == 0 and tr.t.max() == task.horizon - 1
    for t in (1, 9):
        s = tr.s[tr.t == t]
        assert float(s.mean()) == pytest.approx(task.s0 + task.mu * t, abs=5 * math.sqrt(t) / math.sqrt(len(s)))
        assert float(s.var()) == pytest.approx(task.sigma**2 * t, rel=0.05)
    z = tr.s_next - tr.s
    assert float(z.mean()) == pytest.approx(task.mu, abs=0.01) and float(z.std()) == pytest.approx(1.0, rel=0.01)
    assert th.equal(tr.done, tr.t == task.horizon - 1)
    a = th.zeros(len(tr.t), dtype=th.float64, requires_grad=True)
    (g,) = th.autograd.grad(sim.reward(tr.t, tr.s, a, tr.s_next).sum(), a)
    th.testing.assert_close(g, tr.s_next - tr.s)
    paths = sim.sample_paths(1000)
    assert paths.shape == (1000, 11) and th.all(paths[:, 0] == task.s0)
    obs = sim.observe(tr.t[:5], tr.s[:5])
    assert obs.shape == (5, 2) and obs.dtype == th.float64


def test_simulator_is_reproducible_under_a_seed() -> None:
    a = BachelierSimulator(OptionHedgingTask(), seed=1).sample_paths(10)
    b = BachelierSimulator(OptionHedgingTask(), seed=1).sample_paths(10)
    assert th.equal(a, b) and a.dtype == th.float32


@pytest.mark.parametrize(
    ("task", "alpha"),
    [
        (GaussianReturnTask(), 100.0),
        (GaussianReturnTask(), 1.0),
        (QuadraticPenaltyTask(), 2.0),
        (QuadraticPenaltyTask(), 5.0),
    ],
)
def test_dynamic_program_reproduces_the_closed_forms(task, alpha: float) -> None:  # type: ignore[no-untyped-def]
    closed = reference_solution(task, alpha)
    dp = reference_solution(task, alpha, method="dp")
    assert closed.method == "closed form" and dp.method == "dynamic programming"
    t = np.arange(task.horizon)[:, None]
    s = task.s0 + np.linspace(-2, 2, 21)[None, :] * task.sigma * math.sqrt(task.horizon)
    np.testing.assert_allclose(dp.value(t, s), closed.value(t, s), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(dp.action(t, s), closed.action(t, s), rtol=1e-6, atol=1e-8)


def test_closed_forms_are_the_spec_formulas() -> None:
    g = reference_solution("is_envs/BachelierTrading-v0", 100.0)
    assert float(g.action(3, 0.0)) == pytest.approx(0.03 / 100)
    assert float(g.value(0, 5.0)) == pytest.approx(0.03**2 * 10 / 200)
    q = reference_solution(QuadraticPenaltyTask(), 2.0)
    assert float(q.value(4, 1.0)) == pytest.approx(-0.5 + 6 / 4 * math.log(1 - 0.2))
    h = reference_solution(OptionHedgingTask(sigma=1.0), 0.0)
    assert float(h.value(0, 0.0)) == pytest.approx(-1.26157, abs=1e-5)  # −σ√(T/(2π)), σ = 1
    assert float(h.action(5, 0.0)) == pytest.approx(0.5)
    assert float(h.value(10, 0.7)) == pytest.approx(-0.7)  # the payoff at T


def test_hedging_reference_tends_to_risk_neutral_and_grows_with_alpha() -> None:
    task = OptionHedgingTask()
    neutral = float(reference_solution(task, 0.0).value(0, task.s0))
    values = [float(reference_solution(task, a).value(0, task.s0)) for a in (0.001, 0.1, 0.3, 1.0, 3.0, 10.0)]
    assert values[0] == pytest.approx(neutral, rel=1e-4)
    assert all(v2 < v1 for v1, v2 in itertools.pairwise(values))
    assert values[-1] < neutral * 1.1  # a clearly higher price at α = 10


def test_dynamic_program_is_converged_to_1e_3() -> None:
    task = OptionHedgingTask()
    coarse = DynamicProgram(task, 3.0).value(np.arange(10), task.s0)
    fine = DynamicProgram(task, 3.0, n_grid=2001, width=10).value(np.arange(10), task.s0)
    np.testing.assert_allclose(coarse, fine, rtol=1e-4)


@pytest.mark.parametrize(
    ("task", "alpha"),
    [(GaussianReturnTask(), 1.0), (QuadraticPenaltyTask(), 2.0), (OptionHedgingTask(), 1.0)],
)
def test_monte_carlo_ce_under_the_reference_policy_matches_the_value(task, alpha: float) -> None:  # type: ignore[no-untyped-def]
    ref = reference_solution(task, alpha)
    sim = BachelierSimulator(task, dtype=th.float64, seed=0)

    def policy(t: th.Tensor, s: th.Tensor) -> th.Tensor:
        return th.as_tensor(ref.action(t.numpy(), s.numpy()))

    returns = rollout_returns(sim, policy, sim.sample_paths(200_000)).numpy()
    ce, se = certainty_equivalent_with_se(returns, alpha)
    assert abs(float(ce) - float(ref.value(0, task.s0))) < 3 * float(se)


def test_unsolvable_and_invalid_references_raise() -> None:
    with pytest.raises(ValueError, match="risk_aversion must be < 1/σ² = 10"):
        reference_solution(QuadraticPenaltyTask(), 10.0)  # ασ² = 1
    with pytest.raises(ValueError, match="risk_aversion"):
        reference_solution(GaussianReturnTask(), 0.0)
    with pytest.raises(ValueError, match="risk_aversion"):
        reference_solution(OptionHedgingTask(), -1.0)
    with pytest.raises(ValueError, match="no closed form"):
        reference_solution(OptionHedgingTask(), 1.0, method="closed_form")
    with pytest.raises(ValueError, match="not a Bachelier"):
        reference_solution(gym.make("CartPole-v1"), 1.0)
    with pytest.raises(ValueError, match="t must lie"):
        reference_solution(QuadraticPenaltyTask(), 2.0).value(11, 0.0)


@pytest.mark.parametrize("alpha", [1.0, 10.0])
def test_cost_dynamic_program_at_zero_cost_is_the_frictionless_program(alpha: float) -> None:
    from is_envs.finance.reference import CostDynamicProgram

    task = OptionHedgingTask()
    frictionless = DynamicProgram(task, alpha, n_grid=151)
    with_costs = CostDynamicProgram(task, alpha, 0.0, n_grid=151, n_positions=121)
    for t in (0, 4, 9):
        s = task.s0 + np.array([-0.5, 0.0, 0.3])
        for p in (-1.0, 0.0, 0.5):  # with c = 0 the position held does not matter
            assert np.allclose(with_costs.value(t, s, p), frictionless.value(t, s), rtol=0, atol=1e-6)
        low, mid, high = with_costs.band(t, s)
        assert np.allclose(low, high) and np.allclose(mid, frictionless.action(t, s), atol=1e-4)


def test_cost_dynamic_program_prices_rise_and_the_no_trade_band_widens_with_the_cost() -> None:
    from is_envs.finance.reference import CostDynamicProgram

    task = OptionHedgingTask()
    programs = [CostDynamicProgram(task, 1.0, c, n_grid=151, n_positions=61) for c in (0.0, 0.001, 0.01, 0.05)]
    prices = [-float(p.value(0, task.s0, 0.0)) for p in programs]  # the indifference price from no position
    widths = [float(np.subtract(*p.band(0, task.s0)[::-2])) for p in programs]
    assert np.all(np.diff(prices) > 0)
    assert widths[0] == pytest.approx(0.0, abs=1e-9) and np.all(np.diff(widths) > 0)
    low, mid, high = programs[2].band(0, task.s0)
    assert low < mid < high and mid == pytest.approx(0.5, abs=1e-3)  # the band is around the frictionless hedge
    # inside the band nothing is traded; outside, the trade stops at the band's edge
    assert programs[2].action(0, task.s0, mid) == pytest.approx(mid)
    assert programs[2].action(0, task.s0, 0.0) == pytest.approx(low) and programs[2].action(0, task.s0, 2.0) == high
    # holding the frictionless hedge is worth the cost of buying it, less (future rebalancing also costs)
    assert programs[2].value(0, task.s0, mid) - programs[2].value(0, task.s0, 0.0) <= 0.01 * mid + 1e-9


def test_cost_dynamic_program_is_converged_in_its_grids() -> None:
    from is_envs.finance.reference import CostDynamicProgram

    task = OptionHedgingTask()
    grids = [(101, 41), (151, 61), (301, 121)]
    programs = [CostDynamicProgram(task, 1.0, 0.01, n_grid=n, n_positions=m) for n, m in grids]
    for p in (0.0, 0.5):
        values = [float(program.value(0, task.s0, p)) for program in programs]
        errors = [abs(v - values[-1]) for v in values[:-1]]
        assert errors[1] < errors[0] and errors[1] < 3e-4  # shrinking; 0.07 % of the price at (151, 61)
    assert np.allclose(programs[1].band(0, task.s0), programs[2].band(0, task.s0), atol=5e-3)
    with pytest.raises(ValueError, match="cost"):
        CostDynamicProgram(task, 1.0, -0.01)
