"""SB3 ``VecEnv`` front end: N Bachelier episodes stepped together with numpy.

All environments are stepped in lock step by the task's one reward formula; episodes end together
at t = T and are reset automatically (SB3 convention: the returned observation is the first of
the next episode and ``infos[i]["terminal_observation"]`` holds the last one).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

from is_envs.finance.dynamics import BachelierTask
from is_envs.finance.envs import PRICE_OBS_BOUND, action_space, observation_space

__all__ = ["BachelierVecEnv"]


class BachelierVecEnv(VecEnv):
    """``num_envs`` Bachelier episodes as one SB3 vectorised environment.

    :param task: the task (dynamics and reward).
    :param num_envs: number of parallel episodes.
    :param seed: seed of the numpy generator (also settable through ``seed()``).
    """

    def __init__(self, task: BachelierTask, num_envs: int, seed: int | None = None) -> None:
        if int(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs!r}")
        self.task = task
        self.render_mode = None
        super().__init__(int(num_envs), observation_space(task), action_space(task))
        self.rng = np.random.default_rng(seed)
        self.t = 0
        self.prices = np.full(self.num_envs, task.s0)
        self.positions = np.zeros(self.num_envs)  # held before trading (observed with transaction costs)
        self._actions = np.zeros(self.num_envs)
        self._obs_buf = np.zeros((self.num_envs, 3 if task.observes_position else 2), dtype=np.float32)

    def _observe(self) -> np.ndarray:
        obs = self._obs_buf.copy()
        obs[:, 0] = self.task.observe_time(self.t)
        obs[:, 1] = np.clip(self.task.observe_price(self.prices), -PRICE_OBS_BOUND, PRICE_OBS_BOUND)
        if self.task.observes_position:
            obs[:, 2] = self.positions
        return obs

    def reset(self) -> VecEnvObs:
        if self._seeds[0] is not None:
            self.rng = np.random.default_rng(self._seeds[0])
        self._reset_seeds()
        self._reset_options()
        self.t = 0
        self.prices = np.full(self.num_envs, self.task.s0)
        self.positions = np.zeros(self.num_envs)
        return self._observe()

    def step_async(self, actions: np.ndarray) -> None:
        a = np.asarray(actions, dtype=np.float64).reshape(self.num_envs)
        self._actions = np.clip(a, -self.task.max_position, self.task.max_position)

    def step_wait(self) -> VecEnvStepReturn:
        task = self.task
        s_next = self.prices + task.mu + task.sigma * self.rng.standard_normal(self.num_envs)
        rewards = task.trade_reward(self.t, self.prices, self.positions, self._actions, s_next).astype(np.float32)
        self.t, self.prices, self.positions = self.t + 1, s_next, self._actions.copy()
        done = self.t == task.horizon
        dones = np.full(self.num_envs, done)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done:
            last = self._observe()
            for i, info in enumerate(infos):
                info["terminal_observation"] = last[i]
                info["TimeLimit.truncated"] = False
            obs = self.reset()
        else:
            obs = self._observe()
        return obs, rewards, dones, infos

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        self.rng = np.random.default_rng(seed)
        return [seed] * self.num_envs

    def close(self) -> None:
        return None

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        return [getattr(self, attr_name) for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        raise AttributeError(f"BachelierVecEnv has no per-environment method {method_name!r}")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]
