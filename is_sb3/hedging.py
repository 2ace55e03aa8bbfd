"""Prices and hedge paths as a quant reads them, from a trained :class:`~is_sb3.RiskAC` on a Bachelier task.

- :func:`indifference_price`: the seller's indifference price of the task's liability, −V(t, S).
- :func:`hedge_paths`: the learned hedge run along given price paths (the user's own or the simulator's):
  positions, trades, hedging gains, the liability's payoff and the P&L per path.

The task must be a Bachelier task (or offer the same methods): ``horizon``, ``observe_time``, ``observe_price``,
``reward(t, S, a, S')`` and ``terminal_cost``; with transaction costs (``observes_position``), also
``trade_reward(t, S, p, a, S')`` and ``cost``: the position held is then part of the state, prices depend on it and
hedges pay c·|a_t − a_{t−1}| per trade.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

__all__ = ["PricedTask", "hedge_paths", "indifference_price"]


class PricedTask(Protocol):
    """What the helpers need of the model's task (every :class:`is_envs.finance.BachelierTask` has it)."""

    horizon: int
    s0: float

    def observe_time(self, t: Any) -> Any: ...

    def observe_price(self, s: Any) -> Any: ...

    def reward(self, t: Any, s: Any, a: Any, s_next: Any) -> Any: ...

    def terminal_cost(self, s_final: Any) -> Any: ...


def _task(model: Any) -> PricedTask:
    task = getattr(model, "task", None)
    needed = ("horizon", "observe_time", "observe_price", "reward", "terminal_cost")
    if task is None or not all(hasattr(task, name) for name in needed):
        raise ValueError(f"the model's task must be a Bachelier task (with {', '.join(needed)}), got {task!r}")
    return task


def _observations(task: Any, t: Any, s: Any, position: Any) -> np.ndarray:
    """[t/T, normalised S] (and p with transaction costs), float32, shape ``(n, 2 or 3)``."""
    columns = [task.observe_time(t), task.observe_price(s)]
    if getattr(task, "observes_position", False):
        columns.append(position)
    return np.stack(columns, axis=-1).astype(np.float32)


def indifference_price(
    model: Any, t: Any = 0, s: Any = None, position: Any = None, risk_aversion: float | None = None
) -> np.ndarray:
    """The seller's indifference price of the task's liability at time t and price S: **−V(t, S)**
    (**−V(t, S, p)** with transaction costs, p the position held).

    V(t, S) is the certainty equivalent CE_α of what the hedger still receives (hedging gains minus the payoff,
    under the learned policy from (t, S) on). Receiving the cash amount P = −V(t, S) makes CE_α[P + gains −
    payoff] = 0: the seller is indifferent between selling the liability for P and not selling it. At α → 0 it
    is the risk-neutral (Bachelier) price; it rises with α. For trading tasks without a liability it is minus
    the certainty equivalent of the trading gains. With transaction costs the hedge's costs are part of what the
    seller pays, so the price rises with the cost c too, and it depends on the position p held (a seller who
    starts unhedged, p = 0 at t = 0, pays to build the hedge).

    :param model: a trained RiskAC on a Bachelier task.
    :param t: time index or indices (0..T).
    :param s: price(s) S_t (default S_0); broadcast with ``t``.
    :param position: with transaction costs, the position(s) p held before trading (default 0); broadcast with
        ``t`` and ``s``. Refused for frictionless tasks, whose value does not depend on it.
    :param risk_aversion: for an agent trained over a range of risk aversions (``risk_aversion_range``), the α of
        the price (default: the model's ``risk_aversion``).
    :return: the prices, float64, of the broadcast shape of ``t``, ``s`` (and ``position``).
    """
    task = _task(model)
    s = task.s0 if s is None else s
    with_costs = getattr(task, "observes_position", False)
    if position is not None and not with_costs:
        raise ValueError("position is only an input with transaction costs (the task does not observe it)")
    t_b, s_b, p_b = np.broadcast_arrays(
        np.asarray(t, dtype=np.float64),
        np.asarray(s, dtype=np.float64),
        np.asarray(0.0 if position is None else position, dtype=np.float64),
    )
    if np.any((t_b < 0) | (t_b > task.horizon) | (t_b != np.round(t_b))):
        raise ValueError(f"t must be integers in 0..{task.horizon}, got {t!r}")
    obs = _observations(task, t_b.reshape(-1), s_b.reshape(-1), p_b.reshape(-1))
    values = model.predict_value(obs) if risk_aversion is None else model.predict_value(obs, risk_aversion)
    return -np.asarray(values, dtype=np.float64).reshape(t_b.shape)


def hedge_paths(model: Any, prices: Any) -> dict[str, np.ndarray]:
    """Run the learned (deterministic) hedge along price paths.

    At each t = 0..T−1 the policy sees (t, S_t) (and, with transaction costs, the position a_{t−1} held, a_{−1} =
    0) and holds a_t over (t, t+1]; the gain of the period is a_t (S_{t+1} − S_t) (the task's own reward
    formula), trading costs c·|a_t − a_{t−1}| where the task has them, and at T the liability's payoff,
    terminal_cost(S_T), is paid. ``pnl`` is the hedged seller's P&L without the premium: Σ_t a_t ΔS_t − costs −
    payoff; add the price received to get the final wealth.

    :param model: a trained RiskAC on a Bachelier task.
    :param prices: price paths, shape ``(n_paths, T + 1)`` (S_0 … S_T), or one path ``(T + 1,)``; e.g. the
        simulator's ``model.simulator.sample_paths`` or market data.
    :return: ``positions`` (n, T), ``trades`` (n, T) (a_t − a_{t−1}, a_{−1} = 0), ``gains`` (n,), ``costs`` (n,)
        (0 without transaction costs), ``payoff`` (n,), ``pnl`` (n,).
    """
    task = _task(model)
    paths = np.asarray(prices, dtype=np.float64)
    if paths.ndim == 1:
        paths = paths[None]
    if paths.ndim != 2 or paths.shape[1] != task.horizon + 1:
        raise ValueError(f"prices must have shape (n_paths, {task.horizon + 1}) or ({task.horizon + 1},), got "
                         f"{np.shape(prices)}")  # fmt: skip
    if not np.all(np.isfinite(paths)):
        raise ValueError("prices must be finite")
    n, horizon = paths.shape[0], task.horizon
    positions = np.empty((n, horizon))
    held = np.zeros(n)
    bound = getattr(task, "max_position", np.inf) if getattr(task, "observes_position", False) else np.inf
    for t in range(horizon):
        obs = _observations(task, np.full(n, float(t)), paths[:, t], held)
        action, _ = model.predict(obs, deterministic=True)
        positions[:, t] = held = np.clip(np.asarray(action, dtype=np.float64).reshape(n), -bound, bound)
    steps = np.arange(horizon)
    trades = np.diff(positions, axis=1, prepend=0.0)
    before = positions - trades  # a_{t−1}
    rewards = np.asarray(
        task.trade_reward(steps[None, :], paths[:, :-1], before, positions, paths[:, 1:])
        if hasattr(task, "trade_reward")
        else task.reward(steps[None, :], paths[:, :-1], positions, paths[:, 1:]),
        dtype=np.float64,
    )
    payoff = np.asarray(task.terminal_cost(paths[:, -1]), dtype=np.float64)
    gains = (positions * np.diff(paths, axis=1)).sum(axis=1)
    costs = float(getattr(task, "cost", 0.0)) * np.abs(trades).sum(axis=1)
    return {"positions": positions, "trades": trades, "gains": gains, "costs": costs, "payoff": payoff,
            "pnl": rewards.sum(axis=1)}  # fmt: skip
