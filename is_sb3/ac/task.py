"""What RiskAC needs from a task: a small protocol, the evaluation built on it, and a Gymnasium front end.

RiskAC (IS paper §4.1) learns from a *model* of the task, not from an environment's samples: the reward
r(s, a, s') must be known and differentiable in the action. In the paper's setting the next state does not
depend on the action and the actor's gradient flows through the reward only; a task whose next state does
depend on it (a position carried over with transaction costs, an inventory) gives its simulator a
``next_state`` (below), and the actor's objective is then differentiated through both the reward and
V_θ̄(s'(a)). A task that provides the members of :class:`RiskACTask` can be trained on, whatever it models; the
Bachelier tasks of :mod:`is_envs.finance` are one family that implements it.

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

    The states ``s`` may have trailing dimensions (e.g. ``(n, 2)`` for a price and a position held); RiskAC only
    passes them back to the simulator.

Optional, for action-dependent transitions
    ``next_state(t, s, a, s_next)`` on the simulator: the state reached from ``s`` by action ``a``, given the
    action-independent part of the draw ``s_next`` (of a batch, or of a path at t + 1), differentiable in ``a``.
    Without it the next state is ``s_next`` itself. With it, the training states of ``sample_transitions`` must
    cover the states the policy can reach (the simulator documents the law it draws them from), and paths give the
    exogenous draws: an episode's state at t + 1 is ``next_state(t, s_t, a_t, paths[:, t + 1])``.

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
    "RiskACTask", "TaskEnv", "TaskSimulator", "TransitionBatch", "action_dependent", "check_task", "evaluation_set",
    "find_task", "next_state", "rollout_returns",
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


def next_state(sim: Any, t: th.Tensor, s: th.Tensor, a: th.Tensor, s_next: th.Tensor) -> th.Tensor:
    """The state reached from ``s`` by ``a``: the simulator's ``next_state`` where it has one (action-dependent
    transitions), else ``s_next`` (the IS paper's setting)."""
    step = getattr(sim, "next_state", None)
    return s_next if step is None else step(t, s, a, s_next)


def action_dependent(sim: Any) -> bool:
    """Whether the simulator's next state depends on the action (it has ``next_state``)."""
    return callable(getattr(sim, "next_state", None))


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
    """Σ_t r_t of episodes along ``paths`` (shape ``(n, T + 1, ...)``) under ``policy(t, s) -> a``, shape ``(n,)``;
    with action-dependent transitions the states follow ``next_state`` from ``paths[:, 0]``."""
    n, horizon = paths.shape[0], paths.shape[1] - 1
    total = th.zeros(n, device=paths.device, dtype=paths.dtype)
    state = paths[:, 0]
    for step in range(horizon):
        t = th.full((n,), step, device=paths.device, dtype=th.long)
        a = policy(t, state).reshape(n).to(paths.dtype)
        total += sim.reward(t, state, a, paths[:, step + 1])
        state = next_state(sim, t, state, a, paths[:, step + 1])
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
        self._state: th.Tensor | None = None
        self._t = 0

    def _obs(self) -> np.ndarray:
        assert self._state is not None
        obs = self._sim.observe(th.tensor([self._t]), self._state).reshape(-1)
        return obs.numpy().astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:
            self._sim.generator.manual_seed(int(seed))
        self._path, self._t = self._sim.sample_paths(1)[0], 0
        self._state = self._path[0:1]
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._path is None:
            raise RuntimeError("call reset() before step()")
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (1,) or not np.isfinite(a[0]):
            raise ValueError(f"action must be one finite number, got {action!r}")
        a = np.clip(a, self.task.action_space.low, self.task.action_space.high)
        t = th.tensor([self._t])
        assert self._state is not None
        s, s_next, chosen = self._state, self._path[self._t + 1 : self._t + 2], th.as_tensor(a)
        reward = self._sim.reward(t, s, chosen, s_next)
        self._state = next_state(self._sim, t, s, chosen, s_next)
        self._t += 1
        terminated = self._t == self.task.horizon
        return self._obs(), float(reward[0]), terminated, False, {}
