"""RiskAC on a task defined here, not in is-rl: hedging a call on a geometric Brownian motion.

Only the protocol of :mod:`is_sb3.ac.task` connects the two. The independent facts checked: with zero
drift and rate, every hedge's expected P&L is −C_BS (Black–Scholes, scipy's normal CDF) and its CE at
α > 0 is at most that; the learned value at s0 is close to −C_BS at small α (the risk premium of the
discrete hedge, ≈ α·Var/2, is ~0.2 % here).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from scipy.stats import norm

from is_sb3 import RiskAC
from is_sb3.ac.task import RiskACTask, TaskEnv, TaskSimulator, check_task
from is_sb3.safe_load import UnsafeModelFileError


class Batch(NamedTuple):
    t: th.Tensor
    s: th.Tensor
    s_next: th.Tensor
    done: th.Tensor


@dataclass(frozen=True)
class GBMCallHedge:
    """Short one call struck at K on S_t = S_0 exp(σW_t − σ²t/2) (μ = r = 0), hedged at T dates."""

    horizon: int = 10
    s0: float = 5.0
    strike: float = 5.0
    vol: float = 0.2
    maturity: float = 1.0
    name = "gbm call"

    @property
    def observation_space(self) -> spaces.Box:
        return spaces.Box(-10.0, 10.0, (2,), np.float32)  # moneyness beyond ±10 σ√T never occurs

    @property
    def action_space(self) -> spaces.Box:
        return spaces.Box(-2.0, 2.0, (1,), np.float32)

    def simulator(self, device: Any, dtype: th.dtype, seed: int | None) -> GBMSimulator:
        return GBMSimulator(self, device, dtype, seed)

    def black_scholes(self) -> tuple[float, float]:
        """Price and delta at t = 0."""
        v = self.vol * math.sqrt(self.maturity)
        d1 = math.log(self.s0 / self.strike) / v + v / 2
        return self.s0 * norm.cdf(d1) - self.strike * norm.cdf(d1 - v), norm.cdf(d1)


class GBMSimulator:
    def __init__(self, task: GBMCallHedge, device: Any, dtype: th.dtype, seed: int | None) -> None:
        self.task, self.device, self.dtype = task, th.device(device), dtype
        self.generator = th.Generator(device=self.device)
        self.generator.manual_seed(0 if seed is None else seed)
        self.dt = task.maturity / task.horizon

    def _z(self, *shape: int) -> th.Tensor:
        return th.randn(*shape, generator=self.generator, device=self.device, dtype=self.dtype)

    def sample_transitions(self, n: int) -> Batch:
        k = self.task
        t = th.randint(0, k.horizon, (n,), generator=self.generator, device=self.device)
        elapsed = t.to(self.dtype) * self.dt
        s = k.s0 * th.exp(k.vol * elapsed.sqrt() * self._z(n) - 0.5 * k.vol**2 * elapsed)
        s_next = s * th.exp(k.vol * math.sqrt(self.dt) * self._z(n) - 0.5 * k.vol**2 * self.dt)
        return Batch(t, s, s_next, t + 1 == k.horizon)

    def sample_paths(self, n: int) -> th.Tensor:
        k = self.task
        steps = k.vol * math.sqrt(self.dt) * self._z(n, k.horizon) - 0.5 * k.vol**2 * self.dt
        start = th.zeros(n, 1, device=self.device, dtype=self.dtype)
        return k.s0 * th.exp(th.cat([start, th.cumsum(steps, 1)], 1))

    def observe(self, t: th.Tensor, s: th.Tensor) -> th.Tensor:
        k = self.task
        moneyness = th.log(s / k.strike) / (k.vol * math.sqrt(k.maturity))
        return th.stack([t.to(self.dtype) / k.horizon, moneyness], -1)

    def reward(self, t: th.Tensor, s: th.Tensor, a: th.Tensor, s_next: th.Tensor) -> th.Tensor:
        last = (t + 1) == self.task.horizon
        return a * (s_next - s) - last * (s_next - self.task.strike).clamp(min=0.0)


def test_the_user_task_implements_the_protocol_and_its_env_passes_gymnasiums_checker() -> None:
    task = GBMCallHedge()
    assert isinstance(task, RiskACTask) and isinstance(task.simulator("cpu", th.float32, 0), TaskSimulator)
    env = TaskEnv(task)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=3)
    np.testing.assert_array_equal(obs, [0.0, 0.0])  # t/T = 0, at the money
    steps, total = 0, 0.0
    done = False
    while not done:
        _, reward, done, truncated, _ = env.step(np.array([0.0], dtype=np.float32))
        assert not truncated
        total += reward
        steps += 1
    assert steps == task.horizon and total <= 0.0  # unhedged: minus the payoff


def test_what_is_not_a_task_is_refused_with_what_it_lacks() -> None:
    with pytest.raises(ValueError, match="missing simulator"):
        check_task(object.__new__(type("NoSim", (), {"horizon": 3, "observation_space": 0, "action_space": 0})))
    with pytest.raises(ValueError, match=r"not a RiskAC task|needs a task"):
        RiskAC("MlpPolicy", "CartPole-v1")


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_risk_ac_learns_the_black_scholes_price_of_a_task_defined_outside_is_rl(tmp_path: Any) -> None:
    th.set_num_threads(1)
    task = GBMCallHedge()
    price, _ = task.black_scholes()
    model = RiskAC("MlpPolicy", task, risk_aversion=0.1, seed=0, eval_freq=0, n_eval_paths=20_000)
    model.learn(3000)
    out = model.evaluate()
    assert model.reference_value_s0 is None and "value_rel_rmse" not in out  # the task gave no reference
    # any hedge: E[P&L] = −C_BS (the hedge gains are martingale increments), and CE ≤ mean
    assert out["mean_return"] == pytest.approx(-price, abs=4 * out["std_return"] / math.sqrt(20_000))
    assert out["ce_return"] <= -price + 3 * out["ce_return_se"]
    # the learned CE at s0 ≈ −C_BS − (a small risk premium): within 3 %
    assert out["value_s0"] == pytest.approx(-price, rel=0.03)
    # the hedged return is far less risky than the naked short call (std ≈ 0.62 here)
    assert out["std_return"] < 0.3
    # a model file with a task is-rl does not know is refused by the safe loader, not unpickled
    model.save(tmp_path / "gbm.zip")
    with pytest.raises(UnsafeModelFileError):
        RiskAC.load(tmp_path / "gbm.zip")
