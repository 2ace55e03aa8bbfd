"""Batched torch simulator of the Bachelier tasks, on any device and dtype.

Everything stays on ``device``: random numbers come from a ``torch.Generator`` on that device, so a
training loop never copies between host and device. Rewards come from the task's one formula
(:meth:`BachelierTask.reward`), differentiable in the action.
"""

from __future__ import annotations

from typing import NamedTuple

import torch as th

from is_envs.finance.dynamics import BachelierTask

__all__ = ["BachelierSimulator", "CostSimulator", "Transitions"]


class Transitions(NamedTuple):
    """A batch of one-step transitions; all tensors have shape ``(batch,)``."""

    t: th.Tensor  #: decision time, int64 in 0..T−1
    s: th.Tensor  #: price S_t
    s_next: th.Tensor  #: price S_{t+1}
    done: th.Tensor  #: bool, t + 1 = T (then V(s') = 0)


class BachelierSimulator:
    """Many Bachelier transitions or paths at once, as torch tensors.

    :param task: the task (dynamics and reward).
    :param device: torch device ("cpu", "cuda", ...).
    :param dtype: floating dtype of prices and observations (float32 on the hot path).
    :param seed: seed of the simulator's own generator (``None``: nondeterministic).
    """

    def __init__(
        self,
        task: BachelierTask,
        device: th.device | str = "cpu",
        dtype: th.dtype = th.float32,
        seed: int | None = None,
    ) -> None:
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        self.task = task
        self.device = th.device(device)
        self.dtype = dtype
        self.generator = th.Generator(device=self.device)
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))

    def _normal(self, *shape: int) -> th.Tensor:
        return th.randn(*shape, generator=self.generator, device=self.device, dtype=self.dtype)

    def sample_transitions(self, batch_size: int) -> Transitions:
        """The IS paper's training batches: t ~ U{0..T−1}, S_t ~ N(S_0 + μt, σ²t) exactly, fresh Z."""
        task = self.task
        t = th.randint(0, task.horizon, (batch_size,), generator=self.generator, device=self.device)
        tf = t.to(self.dtype)
        s = task.s0 + task.mu * tf + task.sigma * tf.sqrt() * self._normal(batch_size)
        s_next = s + task.mu + task.sigma * self._normal(batch_size)
        return Transitions(t, s, s_next, (t + 1) == task.horizon)

    def sample_paths(self, n_paths: int) -> th.Tensor:
        """Whole price paths S_0..S_T, shape ``(n_paths, T + 1)``."""
        task = self.task
        z = task.mu + task.sigma * self._normal(n_paths, task.horizon)
        start = th.full((n_paths, 1), task.s0, device=self.device, dtype=self.dtype)
        return th.cat([start, task.s0 + th.cumsum(z, dim=1)], dim=1)

    def observe(self, t: th.Tensor, s: th.Tensor) -> th.Tensor:
        """Observations [t/T, (S − S_0)/(σ√T)], shape ``(*, 2)``, in the simulator's dtype."""
        return th.stack([self.task.observe_time(t.to(self.dtype)), self.task.observe_price(s)], dim=-1)

    def reward(self, t: th.Tensor, s: th.Tensor, a: th.Tensor, s_next: th.Tensor) -> th.Tensor:
        """r(s, a, s') of the task, differentiable in ``a`` (shape ``(batch,)``)."""
        return self.task.reward(t, s, a, s_next)


class CostSimulator(BachelierSimulator):
    """The simulator of a task with transaction costs: states are (S, p), the price and the position held before
    trading, as tensors of shape ``(..., 2)``; the transition depends on the action (``next_state``).

    Training states: t ~ U{0..T−1}, S_t from its exact marginal (as :class:`BachelierSimulator`) and, independently,
    **p ~ U[−max_position, max_position]**, the whole action box: every position a policy can hold (the actor's
    output is clipped to the box where it enters the next state) is covered, the optimal hedge's range [0, 1] of a
    call among them. ``s_next`` of a batch is the action-independent draw (S_{t+1}, p_t); the state reached by the
    position a is ``next_state(t, s, a, s_next)`` = (S_{t+1}, a). Paths have shape ``(n, T + 1, 2)`` with the
    position column 0 (the start position; later columns are placeholders that ``next_state`` replaces).
    """

    def sample_transitions(self, batch_size: int) -> Transitions:
        price = super().sample_transitions(batch_size)
        bound = self.task.max_position
        p = (2.0 * th.rand(batch_size, generator=self.generator, device=self.device, dtype=self.dtype) - 1.0) * bound
        s, s_next = th.stack([price.s, p], dim=-1), th.stack([price.s_next, p], dim=-1)
        return Transitions(price.t, s, s_next, price.done)

    def sample_paths(self, n_paths: int) -> th.Tensor:
        prices = super().sample_paths(n_paths)
        return th.stack([prices, th.zeros_like(prices)], dim=-1)

    def observe(self, t: th.Tensor, s: th.Tensor) -> th.Tensor:
        """Observations [t/T, (S − S_0)/(σ√T), p], shape ``(*, 3)``."""
        return th.cat([super().observe(t, s[..., 0]), s[..., 1:2]], dim=-1)

    def reward(self, t: th.Tensor, s: th.Tensor, a: th.Tensor, s_next: th.Tensor) -> th.Tensor:
        """a (S' − S) − c|a − p| − 1{t + 1 = T} payoff(S'), a clipped to the action box; differentiable in ``a``."""
        bound = self.task.max_position  # the position is the action clipped to its box, as in the env
        return self.task.trade_reward(t, s[..., 0], s[..., 1], a.clamp(-bound, bound), s_next[..., 0])

    def next_state(self, t: th.Tensor, s: th.Tensor, a: th.Tensor, s_next: th.Tensor) -> th.Tensor:
        """(S_{t+1}, a): the price drawn and the position chosen, clipped to the action box (differentiable in
        ``a`` inside it)."""
        bound = self.task.max_position
        return th.stack([s_next[..., 0], a.clamp(-bound, bound)], dim=-1)
