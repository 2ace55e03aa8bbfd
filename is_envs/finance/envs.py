"""Gymnasium front end of the Bachelier tasks."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from is_envs.finance.dynamics import (
    BachelierTask,
    GaussianReturnTask,
    HedgingWithCostsTask,
    OptionHedgingTask,
    QuadraticPenaltyTask,
)

__all__ = ["BachelierEnv", "BachelierTradingEnv", "OptionHedgingEnv", "QuadraticPenaltyEnv"]


#: bound of the normalised price in the observation (50 standard deviations of S_T: never reached)
PRICE_OBS_BOUND = 50.0


def observation_space(task: BachelierTask | None = None) -> spaces.Box:
    """[t/T, (S − S_0)/(σ√T)] as float32, the price clipped to ±PRICE_OBS_BOUND; for a task that observes the
    position (transaction costs), [t/T, (S − S_0)/(σ√T), p] with p ∈ [−max_position, max_position]."""
    low, high = [0.0, -PRICE_OBS_BOUND], [1.0, PRICE_OBS_BOUND]
    if task is not None and task.observes_position:
        low, high = [*low, -task.max_position], [*high, task.max_position]
    return spaces.Box(low=np.array(low, dtype=np.float32), high=np.array(high, dtype=np.float32), dtype=np.float32)


def action_space(task: BachelierTask) -> spaces.Box:
    """Position a ∈ [−max_position, max_position], shape (1,), float32."""
    return spaces.Box(-task.max_position, task.max_position, shape=(1,), dtype=np.float32)


class BachelierEnv(gym.Env[np.ndarray, np.ndarray]):
    """Trading in a discrete-time Bachelier market; the task sets the terminal cost.

    ## Description
    The price follows S_{t+1} = S_t + Z_{t+1}, Z ~ N(μ, σ²) i.i.d. At each of T periods the agent
    chooses how many shares to hold over the next period. The transition does not depend on the
    action, so the reward is a known function of (s, a, s'), differentiable in the action
    (``task.reward``), which risk-averse actor-critics use directly.

    ## Action space
    ``Box(-max_position, max_position, (1,), float32)``: the position a (shares held over (t, t+1]).
    Actions outside the box are clipped to it. The default bound (10 shares; 2 for hedging) is far
    above every optimal position of the shipped tasks (μ/(ασ²) = 0.03 at α = 1, S_t − S_0 of order
    σ√T ≈ 1, a hedge ratio in [0, 1]); raise it for smaller risk aversions.

    ## Observation space
    ``Box([0, −50], [1, 50], (2,), float32)``: normalised time t/T and normalised price
    (S_t − S_0)/(σ√T) (clipped at ±50, fifty standard deviations of S_T − S_0).
    ``info`` carries the raw ``t`` (int) and ``S`` (float).

    ## Rewards
    r = a (S_{t+1} − S_t), and at the last step additionally − terminal_cost(S_T): 0 for
    ``BachelierTrading`` (Gaussian return), ½(S_T − S_0)² for ``QuadraticPenalty`` and
    max(S_T − K, 0) for ``OptionHedging`` (a short call). The objective is CE_α of the sum.

    ## Starting state
    t = 0, S = S_0.

    ## Episode end
    Terminated (not truncated) at t = T.

    ## Arguments
    ``task`` (a :class:`BachelierTask`) or the task's keyword arguments (``horizon``, ``mu``,
    ``sigma``, ``s0``, ``max_position``, and ``strike`` for hedging). Invalid values raise
    ``ValueError`` naming the parameter. ``render_mode``: None or "rgb_array" (an 80 × 160 image of the
    episode so far: the price path in black, ±3σ√T around S_0 top to bottom, and the position held over each
    period as a bar, blue long and red short, full height at ``max_position``; what SB3's ``make_vec_env``
    asks for).
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 4}  # noqa: RUF012
    task_class: type[BachelierTask] = BachelierTask

    def __init__(self, task: BachelierTask | None = None, render_mode: str | None = None, **task_kwargs: Any) -> None:
        super().__init__()
        if task is not None and task_kwargs:
            raise ValueError("pass either a task or its keyword arguments, not both")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.task = task if task is not None else self.task_class(**task_kwargs)
        self.observation_space = observation_space(self.task)
        self.action_space = action_space(self.task)
        self.t = 0
        self.price = self.task.s0
        self.position = 0.0  # held before trading; observed (and charged for) with transaction costs
        self._prices: list[float] = [self.price]
        self._positions: list[float] = []

    def render(self) -> np.ndarray | None:
        """The episode so far as an RGB image (``render_mode="rgb_array"``), else None."""
        if self.render_mode != "rgb_array":
            return None
        height, width, band = 80, 160, 20  # price panel above, position band below
        image = np.full((height, width, 3), 255, dtype=np.uint8)
        horizon = self.task.horizon
        scale = 3.0 * self.task.sigma * np.sqrt(horizon)
        xs = np.round(np.arange(len(self._prices)) / horizon * (width - 1)).astype(int)
        z = np.clip((np.asarray(self._prices) - self.task.s0) / scale, -1.0, 1.0)
        ys = np.round((1.0 - z) / 2.0 * (height - band - 1)).astype(int)
        image[(height - band) // 2, :] = (200, 200, 200)  # S_0
        for i in range(len(xs)):  # the path: points joined by vertical segments
            lo, hi = sorted((ys[i], ys[i - 1] if i else ys[i]))
            image[lo : hi + 1, xs[i]] = 0
            if i:
                image[ys[i - 1], xs[i - 1] : xs[i] + 1] = 0
        for i, a in enumerate(self._positions):
            x0, x1 = xs[i], max(xs[i] + 1, xs[i + 1])
            size = round(abs(a) / self.task.max_position * (band - 2))
            colour = (40, 90, 200) if a >= 0 else (200, 50, 50)
            image[height - size : height, x0:x1] = colour
        return image

    def _obs(self) -> np.ndarray:
        x = float(np.clip(self.task.observe_price(self.price), -PRICE_OBS_BOUND, PRICE_OBS_BOUND))
        if self.task.observes_position:
            return np.array([self.task.observe_time(self.t), x, self.position], dtype=np.float32)
        return np.array([self.task.observe_time(self.t), x], dtype=np.float32)

    def _info(self) -> dict[str, Any]:
        return {"t": self.t, "S": self.price}

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self.t, self.price, self.position = 0, self.task.s0, 0.0
        self._prices, self._positions = [self.price], []
        return self._obs(), self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self.t >= self.task.horizon:
            raise RuntimeError("step() called after the episode terminated; call reset()")
        raw = np.asarray(action, dtype=np.float64)
        if raw.size != 1 or raw.ndim > 1:
            raise ValueError(f"action must be one position (shape () or (1,)), got shape {raw.shape}")
        requested = float(raw.reshape(-1)[0])
        if not np.isfinite(requested):
            raise ValueError(f"action must be a finite position, got {requested!r}")
        bound = self.task.max_position
        a = min(max(requested, -bound), bound)  # documented clipping to the action space, reported in info
        s_next = self.price + self.task.mu + self.task.sigma * float(self.np_random.standard_normal())
        reward = float(self.task.trade_reward(self.t, self.price, self.position, a, s_next))
        self.t, self.price, self.position = self.t + 1, s_next, a
        self._prices.append(s_next)
        self._positions.append(a)
        info = {**self._info(), "position": a, "action_clipped": a != requested}
        return self._obs(), reward, self.t == self.task.horizon, False, info


class BachelierTradingEnv(BachelierEnv):
    __doc__ = "Gaussian-return trading task.\n\n" + (BachelierEnv.__doc__ or "")
    task_class = GaussianReturnTask


class QuadraticPenaltyEnv(BachelierEnv):
    __doc__ = "Trading with a quadratic terminal penalty.\n\n" + (BachelierEnv.__doc__ or "")
    task_class = QuadraticPenaltyTask


class OptionHedgingEnv(BachelierEnv):
    __doc__ = (
        "Hedging a short European call, optionally with proportional transaction costs.\n\n"
        + (BachelierEnv.__doc__ or "")
        + """
    ## Transaction costs
    ``cost=c`` (c > 0, in the price unit per share traded) charges c·|a − p| for moving the position from p (held
    before trading; 0 at the start) to a, so the state is (t, S, p): the observation becomes ``Box([0, −50,
    −max_position], [1, 50, max_position], (3,), float32)``, [t/T, (S_t − S_0)/(σ√T), p], ``info`` carries
    ``position``, and the next state depends on the action. ``cost=0`` (the default) is the frictionless task
    above exactly (two observations); ``task=HedgingWithCostsTask(cost=0.0)`` observes the position at zero cost.
    Reference: the entropic dynamic program over (t, S, p) (``reference_solution``), whose optimal hedge is a
    no-trade band around the frictionless one.
    """
    )
    task_class = OptionHedgingTask

    def __init__(self, task: BachelierTask | None = None, render_mode: str | None = None, **task_kwargs: Any) -> None:
        cost = task_kwargs.pop("cost", 0.0)
        if task is None and cost != 0.0:
            task = HedgingWithCostsTask(cost=cost, **task_kwargs)  # validates cost (ValueError naming it)
            task_kwargs = {}
        elif task is not None and cost != 0.0:
            raise ValueError("pass either a task or its keyword arguments (cost included), not both")
        super().__init__(task, render_mode, **task_kwargs)
