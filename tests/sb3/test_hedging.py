"""The quant's helpers: the indifference price is −V at the state, and hedge_paths runs the policy along given
paths with the P&L of the task's own reward formula."""

from __future__ import annotations

import numpy as np
import pytest

from is_envs.finance import HedgingWithCostsTask, OptionHedgingTask
from is_sb3 import RiskAC
from is_sb3.hedging import hedge_paths, indifference_price


@pytest.fixture(scope="module")
def model() -> RiskAC:
    return RiskAC("MlpPolicy", "is_envs/OptionHedging-v0", risk_aversion=1.0, seed=0, device="cpu",
                  torch_compile=False, batch_size=64, eval_freq=0)  # fmt: skip


def test_the_indifference_price_is_minus_the_value_at_the_state(model: RiskAC) -> None:
    task = model.task
    assert isinstance(task, OptionHedgingTask)
    obs = np.array([[0.0, 0.0], [0.5, task.observe_price(task.s0 + 0.3)]], dtype=np.float32)
    expected = -model.predict_value(obs)
    prices = indifference_price(model, t=[0, task.horizon // 2], s=[task.s0, task.s0 + 0.3])
    assert prices.shape == (2,) and np.allclose(prices, expected, rtol=0, atol=1e-7)
    assert indifference_price(model).shape == ()  # t = 0, S = S_0
    with pytest.raises(ValueError, match="t must be integers"):
        indifference_price(model, t=0.5)


def test_hedge_paths_follow_the_policy_and_the_tasks_reward(model: RiskAC) -> None:
    task = model.task
    rng = np.random.default_rng(0)
    paths = task.s0 + np.concatenate([np.zeros((5, 1)), np.cumsum(rng.normal(0, task.sigma, (5, task.horizon)), 1)], 1)
    out = hedge_paths(model, paths)
    assert out["positions"].shape == (5, task.horizon) and out["pnl"].shape == (5,)
    for i in range(5):  # the policy at each (t, S_t), one observation at a time
        for t in range(task.horizon):
            obs = np.array([task.observe_time(t), task.observe_price(paths[i, t])], dtype=np.float32)
            action, _ = model.predict(obs, deterministic=True)
            assert out["positions"][i, t] == pytest.approx(float(np.asarray(action).reshape(-1)[0]), abs=1e-6)
    by_hand = (out["positions"] * np.diff(paths, axis=1)).sum(1) - np.maximum(paths[:, -1] - task.k, 0.0)
    assert np.allclose(out["pnl"], by_hand) and np.allclose(out["pnl"], out["gains"] - out["payoff"])
    assert np.allclose(np.cumsum(out["trades"], axis=1), out["positions"])
    assert np.allclose(hedge_paths(model, paths[0])["pnl"], out["pnl"][:1])  # one path
    with pytest.raises(ValueError, match="prices must have shape"):
        hedge_paths(model, paths[:, :-1])


@pytest.fixture(scope="module")
def cost_model() -> RiskAC:
    return RiskAC("MlpPolicy", HedgingWithCostsTask(cost=0.02), risk_aversion=1.0, seed=0, device="cpu",
                  torch_compile=False, batch_size=64, eval_freq=0)  # fmt: skip


def test_with_costs_the_price_reads_the_position_held(cost_model: RiskAC) -> None:
    task = cost_model.task
    obs = np.array([[0.0, 0.0, 0.0], [0.5, task.observe_price(task.s0 + 0.3), 0.7]], dtype=np.float32)
    prices = indifference_price(cost_model, t=[0, task.horizon // 2], s=[task.s0, task.s0 + 0.3], position=[0.0, 0.7])
    np.testing.assert_allclose(prices, -cost_model.predict_value(obs), rtol=0, atol=1e-7)
    assert indifference_price(cost_model) == pytest.approx(-float(cost_model.predict_value(obs[:1])[0]), abs=1e-7)


def test_a_position_for_a_frictionless_task_is_refused(model: RiskAC) -> None:
    with pytest.raises(ValueError, match="position"):
        indifference_price(model, position=0.5)


def test_hedge_paths_with_costs_chain_the_positions_and_charge_each_trade(cost_model: RiskAC) -> None:
    task = cost_model.task
    rng = np.random.default_rng(1)
    paths = task.s0 + np.concatenate([np.zeros((4, 1)), np.cumsum(rng.normal(0, task.sigma, (4, task.horizon)), 1)], 1)
    out = hedge_paths(cost_model, paths)
    for i in range(4):  # the policy sees the position it holds, one observation at a time
        held = 0.0
        for t in range(task.horizon):
            obs = np.array([task.observe_time(t), task.observe_price(paths[i, t]), held], dtype=np.float32)
            action, _ = cost_model.predict(obs, deterministic=True)
            held = float(np.clip(np.asarray(action).reshape(-1)[0], -task.max_position, task.max_position))
            assert out["positions"][i, t] == pytest.approx(held, abs=1e-6)
    costs = 0.02 * np.abs(np.diff(out["positions"], axis=1, prepend=0.0)).sum(1)
    by_hand = (out["positions"] * np.diff(paths, axis=1)).sum(1) - costs - np.maximum(paths[:, -1] - task.k, 0.0)
    np.testing.assert_allclose(out["costs"], costs)
    np.testing.assert_allclose(out["pnl"], by_hand)
    np.testing.assert_allclose(out["pnl"], out["gains"] - out["costs"] - out["payoff"])
