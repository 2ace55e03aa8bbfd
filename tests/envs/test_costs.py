"""Hedging with proportional transaction costs: the env, the vector env, the batched simulator and the reference.

Independent truths: the reward written out by hand (a ΔS − c|a − p| − payoff at T), the frictionless env and task
(c = 0 must be today's task exactly), Gymnasium's and SB3's checkers, and the dynamic program's own band/value
structure (tested in test_finance.py; here the adapter RiskAC uses)."""

import math

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium.utils.env_checker import check_env

import is_envs  # noqa: F401
from is_envs.finance import (
    BachelierVecEnv,
    CostDynamicProgram,
    HedgingWithCostsTask,
    OptionHedgingTask,
    reference_solution,
)
from is_envs.finance.reference import CostReference


def test_zero_cost_is_todays_task_exactly() -> None:
    plain, zero = gym.make("is_envs/OptionHedging-v0"), gym.make("is_envs/OptionHedging-v0", cost=0.0)
    assert type(zero.unwrapped.task) is OptionHedgingTask and zero.unwrapped.task == plain.unwrapped.task
    assert zero.observation_space == plain.observation_space and zero.observation_space.shape == (2,)
    for env in (plain, zero):
        env.reset(seed=7)
    rng = np.random.default_rng(0)
    for _ in range(10):
        a = rng.uniform(-1, 2, size=1).astype(np.float32)
        out_plain, out_zero = plain.step(a), zero.step(a)
        np.testing.assert_array_equal(out_plain[0], out_zero[0])
        assert out_plain[1:4] == out_zero[1:4]


def test_cost_env_observes_the_position_and_charges_the_trade() -> None:
    c = 0.05
    env = gym.make("is_envs/OptionHedging-v0", cost=c)
    task = env.unwrapped.task
    assert isinstance(task, HedgingWithCostsTask) and task.cost == c
    assert env.observation_space.shape == (3,)
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs, [0.0, 0.0, 0.0])  # t = 0, S = S0, nothing held
    held, price, total = 0.0, task.s0, 0.0
    for t, a in enumerate([0.4, 0.4, 0.9, 3.0, -0.2, 0.5, 0.5, 0.0, 1.0, 0.6]):
        obs, reward, terminated, _, info = env.step(np.array([a], dtype=np.float32))
        traded = float(np.clip(np.float32(a), -task.max_position, task.max_position))  # clipped to the box
        s_next = info["S"]
        payoff = max(s_next - task.k, 0.0) if t + 1 == task.horizon else 0.0
        expected = traded * (s_next - price) - c * abs(traded - held) - payoff
        assert reward == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert obs[2] == np.float32(traded) and info["position"] == traded
        assert obs[1] == pytest.approx((s_next - task.s0) / (task.sigma * math.sqrt(task.horizon)), rel=1e-6)
        assert terminated == (t + 1 == task.horizon)
        held, price, total = traded, s_next, total + reward
    assert info["action_clipped"] is False


def test_cost_env_passes_gymnasiums_checker() -> None:
    check_env(gym.make("is_envs/OptionHedging-v0", cost=0.01).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("cost", [-0.1, float("nan"), float("inf"), 2e6, "x"])
def test_invalid_cost_is_refused_naming_it(cost: object) -> None:
    with pytest.raises(ValueError, match="cost"):
        gym.make("is_envs/OptionHedging-v0", cost=cost)


def test_vector_env_with_costs_matches_the_formula() -> None:
    task, c = HedgingWithCostsTask(cost=0.02), 0.02
    venv = BachelierVecEnv(task, num_envs=4, seed=1)
    assert venv.observation_space.shape == (3,)
    obs = venv.reset()
    np.testing.assert_array_equal(obs, np.zeros((4, 3)))
    prices, held = np.full(4, task.s0), np.zeros(4)
    for t in range(task.horizon):
        a = np.array([0.1, 0.5, -3.0, 1.0]) * (t + 1) / task.horizon
        venv.step_async(a)
        obs, rewards, dones, infos = venv.step_wait()
        seen = np.stack([info["terminal_observation"] for info in infos]) if dones.all() else obs
        s_next = task.price_from_observation(seen[:, 1].astype(np.float64))
        traded = np.clip(a, -task.max_position, task.max_position)
        payoff = np.maximum(s_next - task.k, 0.0) if t + 1 == task.horizon else 0.0
        expected = traded * (s_next - prices) - c * np.abs(traded - held) - payoff
        np.testing.assert_allclose(rewards, expected, atol=2e-5)  # float32 rewards and observed prices
        np.testing.assert_allclose(seen[:, 2], traded, atol=1e-6)
        prices, held = s_next, traded
    assert dones.all() and np.all(obs[:, 2] == 0)  # reset after the last step: nothing held


def test_simulator_draws_positions_over_the_action_box_and_moves_them_with_the_action() -> None:
    task = HedgingWithCostsTask(cost=0.01)
    sim = task.simulator("cpu", th.float64, seed=0)
    tr = sim.sample_transitions(200_000)
    assert tr.s.shape == (200_000, 2) and tr.s_next.shape == (200_000, 2)
    p = tr.s[:, 1]
    m = task.max_position
    assert float(p.min()) >= -m and float(p.max()) <= m
    assert float(p.mean()) == pytest.approx(0.0, abs=0.01) and float(p.var()) == pytest.approx(m * m / 3, rel=0.01)
    assert th.equal(tr.s_next[:, 1], p)  # the draw holds the old position: next_state replaces it
    a = th.linspace(-3, 3, 200_000, dtype=th.float64)
    reached = sim.next_state(tr.t, tr.s, a, tr.s_next)
    assert th.equal(reached[:, 0], tr.s_next[:, 0]) and th.equal(reached[:, 1], a.clamp(-m, m))
    r = sim.reward(tr.t, tr.s, a, tr.s_next)
    held, traded = tr.s[:, 1], a.clamp(-m, m)
    payoff = (tr.s_next[:, 0] - task.k).clamp(min=0) * tr.done
    th.testing.assert_close(r, traded * (tr.s_next[:, 0] - tr.s[:, 0]) - 0.01 * (traded - held).abs() - payoff)
    obs = sim.observe(tr.t, tr.s)
    assert obs.shape == (200_000, 3) and th.equal(obs[:, 2], p)
    paths = sim.sample_paths(5)
    assert paths.shape == (5, task.horizon + 1, 2) and th.all(paths[:, :, 1] == 0)
    assert th.all(paths[:, 0, 0] == task.s0)


def test_reference_of_the_cost_task_is_the_cost_dynamic_program_on_stacked_states() -> None:
    task = HedgingWithCostsTask(cost=0.01)
    ref = reference_solution(task, 1.0, n_grid=151, n_positions=61)
    assert isinstance(ref, CostReference)
    dp = CostDynamicProgram(task, 1.0, 0.01, n_grid=151, n_positions=61)
    rng = np.random.default_rng(0)
    t = rng.integers(0, task.horizon, 50)
    states = np.stack([rng.normal(0, 0.5, 50), rng.uniform(-1, 2, 50)], axis=-1)
    expected_v = np.array([dp.value(int(ti), s, p) for ti, (s, p) in zip(t, states, strict=True)])
    expected_a = np.array([dp.action(int(ti), s, p) for ti, (s, p) in zip(t, states, strict=True)])
    np.testing.assert_allclose(ref.value(t, states), expected_v, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ref.action(t, states), expected_a, rtol=0, atol=1e-12)
    assert float(ref.value(0, np.array([task.s0, 0.0]))) == pytest.approx(float(dp.value(0, task.s0, 0.0)), abs=1e-12)
    with pytest.raises(ValueError, match="risk_aversion"):
        reference_solution(task, 0.0)
    with pytest.raises(ValueError, match="closed form"):
        reference_solution(task, 1.0, method="closed_form")
    with pytest.raises(ValueError, match=r"\(S, p\)"):
        ref.value(0, np.zeros(3))
