"""What RiskAC needs from a task: a small protocol, the evaluation built on it, and a Gymnasium front end.

RiskAC (IS paper §4.1) learns from a *model* of the task, not from an environment's samples: the reward
r(s, a, s') must be known and differentiable in the action, and the next state must not depend on the
action (the actor's gradient flows through the reward only). A task that provides the members of
:class:`RiskACTask` can be trained on, whatever it models; the Bachelier tasks of :mod:`is_envs.finance`
are one family that implements it.

Required (:class:`RiskACTask`)
    ``horizon`` (T, periods per episode); ``observation_space`` and ``action_space`` (``Box``; the action
    space of shape ``(1,)``: one traded quantity per period); ``simulator(device, dtype, seed)`` returning a
    :class:`TaskSimulator`, whose members are

    - ``generator``: the ``torch.Generator`` it draws every random number from (saved with the model, so a
      resumed run continues the stream);
    - ``sample_transitions(n)``: a batch with tensors ``t`` (int64, 0..T−1), ``s``, ``s_next`` (states,
      leading dimension ``n``) and ``done`` (bool, t + 1 = T; then V(s') = 0), on the simulator's device;
    - ``sample_paths(n)``: whole state paths, shape ``(n, T + 1, ...)``; ``paths[:, 0]`` are start states;
    - ``observe(t, s)``: observations, shape ``(n, obs_dim)``;
    - ``reward(t, s, a, s_next)``: shape ``(n,)``, differentiable in ``a`` (shape ``(n,)``).

Optional
    ``reference_solution(risk_aversion)`` returning an object with ``value(t, s)`` and ``action(t, s)``
    (numpy, vectorised over numpy ``t`` and ``s``; raise ``ValueError`` where there is none): RiskAC then logs
    its errors against it; ``check_risk_aversion(risk_aversion, critic_loss)``: raise ``ValueError`` for
    settings whose optimal value is infinite (warn where training is expected to fail); ``name``: a label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces

__all__ = [
    "RiskACTask", "TaskEnv", "TaskSimulator", "TransitionBatch", "check_task", "evaluation_set", "find_task",
    "rollout_returns",
]  # fmt: skip


class TransitionBatch(Protocol):
    """One-step transitions; every tensor has leading dimension ``batch``."""

    @property
    def t(self) -> th.Tensor: ...  # decision time, int64 in 0..T−1
    @property
    def s(self) -> th.Tensor: ...
    @property
    def s_next(self) -> th.Tensor: ...
    @property
    def done(self) -> th.Tensor: ...  # bool: t + 1 = T


@runtime_checkable
class TaskSimulator(Protocol):
    """Batched, seeded sampling of a task's states and its differentiable reward, on one torch device."""

    generator: th.Generator

    def sample_transitions(self, batch_size: int) -> TransitionBatch: ...

    def sample_paths(self, n_paths: int) -> th.Tensor: ...

    def observe(self, t: th.Tensor, s: th.Tensor) -> th.Tensor: ...

    def reward(self, t: th.Tensor, s: th.Tensor, a: th.Tensor, s_next: th.Tensor) -> th.Tensor: ...


@runtime_checkable
class RiskACTask(Protocol):
    """A task RiskAC can learn: see the module docstring for each member's contract."""

    @property
    def horizon(self) -> int: ...

    @property
    def observation_space(self) -> spaces.Box: ...

    @property
    def action_space(self) -> spaces.Box: ...

    def simulator(self, device: th.device | str, dtype: th.dtype, seed: int | None) -> TaskSimulator: ...


def check_task(task: Any) -> RiskACTask:
    """``task`` if it implements :class:`RiskACTask` with a one-dimensional Box action, else a ``ValueError``."""
    if not isinstance(task, RiskACTask):
        missing = [m for m in ("horizon", "observation_space", "action_space", "simulator") if not hasattr(task, m)]
        raise ValueError(f"{task!r} is not a RiskAC task (missing {', '.join(missing)}); see is_sb3.ac.task.RiskACTask")
    if not isinstance(task.action_space, spaces.Box) or task.action_space.shape != (1,):
        raise ValueError(f"a RiskAC task's action_space must be a Box of shape (1,), got {task.action_space!r}")
    if not isinstance(task.observation_space, spaces.Box) or len(task.observation_space.shape) != 1:
        raise ValueError(f"a RiskAC task's observation_space must be a 1-d Box, got {task.observation_space!r}")
    return task


def find_task(env: Any) -> RiskACTask:
    """The task of an env instance (wrapped or not, or an SB3 VecEnv) or the task itself; ``ValueError`` if none."""
    candidates: list[Any] = [env, getattr(env, "task", None), getattr(getattr(env, "unwrapped", None), "task", None)]
    if hasattr(env, "get_attr"):  # SB3 VecEnv
        try:
            candidates.append(env.get_attr("task", indices=[0])[0])
        except AttributeError:
            pass
    for candidate in candidates:
        if candidate is not None and isinstance(candidate, RiskACTask):
            return check_task(candidate)
    raise ValueError(
        "RiskAC needs a task whose reward r(s, a, s') is known and differentiable in the action (an env with a "
        f"`task` attribute implementing is_sb3.ac.task.RiskACTask, e.g. a finance env of is_envs); got {env!r}"
    )


def evaluation_set(sim: TaskSimulator, n_states: int, n_paths: int) -> tuple[TransitionBatch, th.Tensor]:
    """Fixed evaluation data, drawn in this order from ``sim``'s generator: ``n_states`` states at all t (as
    transitions) and ``n_paths`` whole paths. RiskAC evaluates on ``evaluation_set(task.simulator(device,
    float32, eval_seed), ...)``; anything compared with it on "common paths" uses the same call."""
    return sim.sample_transitions(n_states), sim.sample_paths(n_paths)


@th.no_grad()
def rollout_returns(
    sim: TaskSimulator, policy: Callable[[th.Tensor, th.Tensor], th.Tensor], paths: th.Tensor
) -> th.Tensor:
    """Σ_t r_t of episodes along ``paths`` (shape ``(n, T + 1, ...)``) under ``policy(t, s) -> a``, shape ``(n,)``."""
    n, horizon = paths.shape[0], paths.shape[1] - 1
    total = th.zeros(n, device=paths.device, dtype=paths.dtype)
    for step in range(horizon):
        t = th.full((n,), step, device=paths.device, dtype=th.long)
        a = policy(t, paths[:, step]).reshape(n).to(paths.dtype)
        total += sim.reward(t, paths[:, step], a, paths[:, step + 1])
    return total


class TaskEnv(gym.Env[np.ndarray, np.ndarray]):
    """A Gymnasium front end of any :class:`RiskACTask`: each episode follows one path of its simulator.

    Observation and action spaces are the task's; ``reset(seed=...)`` reseeds the path generator;
    ``step(a)`` returns r(s_t, a, s_{t+1}) and ends the episode (``terminated``) after ``horizon`` steps.
    RiskAC wraps a bare task in it, since SB3's ``learn`` resets an env once.

    :param task: the task.
    """

    def __init__(self, task: Any) -> None:
        self.task = check_task(task)
        self.observation_space = task.observation_space
        self.action_space = task.action_space
        self._sim = task.simulator("cpu", th.float64, None)
        self._path: th.Tensor | None = None
        self._t = 0

    def _obs(self) -> np.ndarray:
        assert self._path is not None
        t = th.tensor([self._t])
        obs = self._sim.observe(t, self._path[self._t : self._t + 1]).reshape(-1)
        return obs.numpy().astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._sim.generator.manual_seed(int(seed))
        self._path, self._t = self._sim.sample_paths(1)[0], 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._path is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (1,) or not np.isfinite(a[0]):
            raise ValueError(f"action must be one finite number, got {action!r}")
        a = np.clip(a, self.task.action_space.low, self.task.action_space.high)
        t = th.tensor([self._t])
        s, s_next = self._path[self._t : self._t + 1], self._path[self._t + 1 : self._t + 2]
        reward = self._sim.reward(t, s, th.as_tensor(a), s_next)
        self._t += 1
        terminated = self._t == self.task.horizon
        return self._obs(), float(reward[0]), terminated, False, {}
