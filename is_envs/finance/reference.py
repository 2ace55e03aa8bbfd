"""Reference solutions of the Bachelier tasks: closed forms and an entropic dynamic program.

``reference_solution(env_or_id, risk_aversion)`` is the one source of truth for "the right answer":
tests, callbacks and benchmarks all ask it. It returns an object with vectorised
``value(t, S)`` (V*, the optimal certainty equivalent of the remaining reward) and
``action(t, S)`` (the optimal position).

Closed forms: Gaussian return (§4.1), quadratic penalty (§4.2) and the risk-neutral hedging price
(§4.3, α = 0, with the delta Φ(d) as the α → 0 limit of the optimal hedge). Hedging at α > 0 has
none: :class:`DynamicProgram` solves the Bellman recursion V_t(S) = max_a CE_α[a Z + V_{t+1}(S + Z)]
on a grid in S with the law of Z discretised on the grid's lattice and a safeguarded Newton
iteration in a (the CE is concave in a).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from scipy.interpolate import CubicSpline
from scipy.special import logsumexp
from scipy.stats import norm

from is_envs.finance.dynamics import (
    BachelierTask,
    GaussianReturnTask,
    HedgingWithCostsTask,
    OptionHedgingTask,
    QuadraticPenaltyTask,
)

__all__ = [
    "CostDynamicProgram",
    "CostReference",
    "DynamicProgram",
    "ReferenceSolution",
    "reference_solution",
    "risk_neutral_call_price",
    "task_of",
]


class ReferenceSolution(Protocol):
    """V*(t, S) and π*(t, S), vectorised over broadcastable arrays ``t`` (0..T) and ``S``."""

    @property
    def task(self) -> BachelierTask: ...

    @property
    def risk_aversion(self) -> float: ...

    @property
    def method(self) -> str: ...

    def value(self, t: Any, s: Any) -> np.ndarray: ...

    def action(self, t: Any, s: Any) -> np.ndarray: ...


def task_of(env_or_id: Any) -> BachelierTask:
    """The :class:`BachelierTask` of an env instance (wrapped or not), an env id or a task."""
    if isinstance(env_or_id, BachelierTask):
        return env_or_id
    if isinstance(env_or_id, str):
        env = gym.make(env_or_id)
        try:
            return task_of(env)
        finally:
            env.close()
    task: Any = getattr(env_or_id, "task", None)
    if task is None and hasattr(env_or_id, "unwrapped"):
        task = getattr(env_or_id.unwrapped, "task", None)
    if task is None and hasattr(env_or_id, "get_attr"):  # SB3 VecEnv
        try:
            task = env_or_id.get_attr("task", indices=[0])[0]
        except AttributeError:
            task = None
    if not isinstance(task, BachelierTask):
        raise ValueError(f"{env_or_id!r} is not a Bachelier task, env or env id; it has no reference solution")
    return task


def risk_neutral_call_price(s: Any, strike: float, sigma: float, tau: Any) -> np.ndarray:
    """Bachelier call price C(S, τ) = (S − K)Φ(d) + σ√τ φ(d), d = (S − K)/(σ√τ); τ = 0 gives the payoff."""
    s, tau = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(tau, dtype=np.float64))
    x = s - strike
    vol = sigma * np.sqrt(tau)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = x / vol
        price = x * norm.cdf(d) + vol * norm.pdf(d)
    return np.where(tau > 0, price, np.maximum(x, 0.0))


def _check_times(task: BachelierTask, t: Any) -> np.ndarray:
    t = np.asarray(t)
    if np.any((t < 0) | (t > task.horizon)):
        raise ValueError(f"t must lie in 0..{task.horizon}")
    return t


@dataclass(frozen=True)
class ClosedForm:
    """The analytic solutions of the three tasks (hedging: α = 0 only)."""

    task: BachelierTask
    risk_aversion: float
    method: str = "closed form"

    def value(self, t: Any, s: Any) -> np.ndarray:
        task, alpha = self.task, self.risk_aversion
        t = _check_times(task, t)
        s = np.asarray(s, dtype=np.float64)
        tau = task.horizon - t
        if isinstance(task, GaussianReturnTask):
            return np.broadcast_to(task.mu**2 * tau / (2 * alpha * task.sigma**2), np.broadcast(t, s).shape).copy()
        if isinstance(task, QuadraticPenaltyTask):
            k = alpha * task.sigma**2
            return -0.5 * (s - task.s0) ** 2 + tau / (2 * alpha) * math.log1p(-k)
        if isinstance(task, OptionHedgingTask):
            return -risk_neutral_call_price(s, task.k, task.sigma, tau)
        raise ValueError(f"no closed form for {type(task).__name__}")

    def action(self, t: Any, s: Any) -> np.ndarray:
        task, alpha = self.task, self.risk_aversion
        t = _check_times(task, t)
        s = np.asarray(s, dtype=np.float64)
        shape = np.broadcast(t, s).shape
        if isinstance(task, GaussianReturnTask):
            return np.full(shape, task.mu / (alpha * task.sigma**2))
        if isinstance(task, QuadraticPenaltyTask):
            return np.broadcast_to(s - task.s0, shape).copy()
        if isinstance(task, OptionHedgingTask):
            tau = np.maximum(task.horizon - t, 1)
            return np.asarray(norm.cdf((s - task.k) / (task.sigma * np.sqrt(tau))), dtype=np.float64)
        raise ValueError(f"no closed form for {type(task).__name__}")


def _lattice(task: BachelierTask, n_grid: int, width: float) -> tuple[np.ndarray, ...]:
    """The dynamic programs' price grid and quadrature: ``n_grid`` (made odd: S_0 a node) points over S_0 ± (width
    σ√T + |μ|T); the increments Z on the grid's own lattice (offsets k·h, |Z − μ| ≤ 9σ) with log-weights ∝
    log φ((Z − μ)/σ); the index of S_i + Z_k into the grid extended by the reach on both sides; that extended grid."""
    n_grid = n_grid | 1
    half = width * task.sigma * math.sqrt(task.horizon) + abs(task.mu) * task.horizon
    grid = np.linspace(task.s0 - half, task.s0 + half, n_grid)
    h = grid[1] - grid[0]
    reach = math.ceil((9 * task.sigma + abs(task.mu)) / h)
    offsets = np.arange(-reach, reach + 1)
    z = offsets * h
    log_w = -0.5 * ((z - task.mu) / task.sigma) ** 2
    index = np.arange(n_grid)[:, None] + offsets[None, :] + reach
    extended = grid[0] + h * np.arange(-reach, n_grid + reach)
    return grid, z, log_w - logsumexp(log_w), index, extended


class DynamicProgram:
    """Entropic dynamic program on a price grid, for any Bachelier task and α > 0.

    V_T = −terminal_cost; V_t(S_i) = max_a CE_α[a Z + V_{t+1}(S_i + Z)] for every grid node S_i.
    The law of Z is discretised on the grid's own lattice (Z = μ + k·h... as offsets k·h, weights
    ∝ φ((k h − μ)/σ), |k h − μ| ≤ 9σ): a trapezoidal Gauss quadrature that needs no interpolation and
    keeps second-order accuracy at the payoff's kink (the strike is a grid node). Beyond the grid's
    ends V_{t+1} is continued by its cubic spline, exact for the linear and quadratic asymptotics.
    The maximisation over a is a safeguarded Newton iteration on ∂CE/∂a = E_q[Z] (q the
    exponentially tilted law), which decreases in a because the CE is concave in a.

    :param task: the task.
    :param risk_aversion: α > 0.
    :param n_grid: number of grid points in S (odd, so that S_0 is a node).
    :param width: half-width of the grid in units of σ√T (plus |μ|T), centred on S_0.
    :param max_iter: Newton iterations per step.
    """

    method = "dynamic programming"

    def __init__(
        self,
        task: BachelierTask,
        risk_aversion: float,
        n_grid: int = 1001,
        width: float = 8.0,
        max_iter: int = 100,
    ) -> None:
        alpha = float(risk_aversion)
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"risk_aversion must be > 0 for the dynamic program, got {risk_aversion!r}")
        n_grid = int(n_grid)
        if n_grid < 11:
            raise ValueError(f"n_grid must be >= 11, got {n_grid!r}")
        task.check_solvable(alpha)
        self.task, self.risk_aversion = task, alpha
        self.grid, self.z, self.log_w, self._index, extended = _lattice(task, n_grid, width)
        half = (self.grid[-1] - self.grid[0]) / 2
        self._bound = 10.0 * (half + abs(task.mu) / (alpha * task.sigma**2) + 1.0)
        values = [-np.asarray(task.terminal_cost(self.grid), dtype=np.float64)]
        actions: list[np.ndarray] = []
        for _ in range(task.horizon):
            v_ext = CubicSpline(self.grid, values[0], extrapolate=True)(extended)
            v, a = self._maximise(v_ext[self._index], max_iter)
            values.insert(0, v)
            actions.insert(0, a)
        self._values = [CubicSpline(self.grid, v, extrapolate=True) for v in values]
        self._actions = [CubicSpline(self.grid, a, extrapolate=True) for a in actions]

    def _tilted(self, a: np.ndarray, w_next: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log-sum-exp of log w − α(aZ + W) per grid node, and the tilted weights q."""
        logits = self.log_w[None, :] - self.risk_aversion * (a[:, None] * self.z[None, :] + w_next)
        lse = logsumexp(logits, axis=1)
        return lse, np.exp(logits - lse[:, None])

    def _maximise(self, w_next: np.ndarray, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
        n = w_next.shape[0]
        a, lo, hi = np.zeros(n), np.full(n, -self._bound), np.full(n, self._bound)
        for _ in range(max_iter):
            _, q = self._tilted(a, w_next)
            grad = q @ self.z  # ∂CE/∂a
            curv = self.risk_aversion * np.maximum(q @ self.z**2 - grad**2, 1e-300)  # −∂²CE/∂a²
            lo, hi = np.where(grad > 0, a, lo), np.where(grad > 0, hi, a)
            new = a + grad / curv
            new = np.where((new < lo) | (new > hi), 0.5 * (lo + hi), new)
            done = np.abs(new - a) <= 1e-10 * (1.0 + np.abs(a))
            a = new
            if done.all():
                break
        lse, _ = self._tilted(a, w_next)
        return -lse / self.risk_aversion, a

    def value(self, t: Any, s: Any) -> np.ndarray:
        return self._eval(self._values, t, s)

    def action(self, t: Any, s: Any) -> np.ndarray:
        t = np.asarray(t)
        if np.any(t >= self.task.horizon):
            raise ValueError(f"actions exist for t in 0..{self.task.horizon - 1}")
        return self._eval(self._actions, t, s)

    def _eval(self, splines: list[CubicSpline], t: Any, s: Any) -> np.ndarray:
        t = _check_times(self.task, t)
        t_b, s_b = np.broadcast_arrays(t.astype(int), np.asarray(s, dtype=np.float64))
        out = np.empty(t_b.shape)
        for step in np.unique(t_b):
            mask = t_b == step
            out[mask] = splines[int(step)](s_b[mask])
        return out


class CostDynamicProgram:
    """Entropic dynamic program with proportional transaction costs, over (t, S, position held).

    Trading from the position p held to a costs c·|a − p| (in the price unit), paid when the trade is made; the
    reward of a period is a·(S_{t+1} − S_t) − c·|a − p| and, at T, −terminal_cost(S_T) (no cost to unwind).
    The value V_t(S, p) is the entropic certainty equivalent of what remains:

        V_T(S, p) = −terminal_cost(S),
        G_t(S, a) = CE_α[a Z + V_{t+1}(S + Z, a)],
        V_t(S, p) = max_a G_t(S, a) − c |a − p|.

    G_t(S, ·) does not depend on p and is concave (by induction: a sup-convolution and a CE of concave functions),
    so the optimal trade is a* = clip(p, b₊, b₋) with G′(b₊) = c and G′(b₋) = −c: the **no-trade band**
    [b₊, b₋] around the frictionless optimum b₀ (G′(b₀) = 0), which widens with c. With c = 0, V_t(S, p) = max_a
    G_t(S, a) is the frictionless program's value (:class:`DynamicProgram`, same S grid and quadrature).

    Discretisation: the S grid and the lattice quadrature of :class:`DynamicProgram` (V_{t+1} continued beyond the
    grid by its cubic spline in S); positions on a uniform grid of ``n_positions`` points over
    [−max_position, max_position] (the action space), G_t(S, ·) on that grid continued by its cubic spline in a, on
    which the band edges are found exactly (the spline's derivative's roots).

    :param task: a Bachelier task (e.g. :class:`OptionHedgingTask`).
    :param risk_aversion: α > 0.
    :param cost: c ≥ 0, the cost per unit traded, in the price unit.
    :param n_grid: points of the S grid (odd: S_0 is a node).
    :param n_positions: points of the position grid (odd: 0 is a node).
    :param width: half-width of the S grid in units of σ√T (plus |μ|T), centred on S_0.
    """

    method = "dynamic programming with costs"

    def __init__(
        self,
        task: BachelierTask,
        risk_aversion: float,
        cost: float,
        n_grid: int = 401,
        n_positions: int = 201,
        width: float = 8.0,
    ) -> None:
        alpha, c = float(risk_aversion), float(cost)
        if not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"risk_aversion must be > 0 for the dynamic program, got {risk_aversion!r}")
        if not (math.isfinite(c) and c >= 0):
            raise ValueError(f"cost must be a finite number >= 0, got {cost!r}")
        for name, n in (("n_grid", n_grid), ("n_positions", n_positions)):
            if isinstance(n, bool) or int(n) != n or n < 11:
                raise ValueError(f"{name} must be an integer >= 11, got {n!r}")
        task.check_solvable(alpha)
        self.task, self.risk_aversion, self.cost = task, alpha, c
        n_positions = int(n_positions) | 1  # odd: 0 on a node
        self.grid, z, log_w, index, extended = _lattice(task, int(n_grid), width)
        n_grid = len(self.grid)
        self.positions = np.linspace(-task.max_position, task.max_position, n_positions)
        value = np.repeat(-np.asarray(task.terminal_cost(self.grid), dtype=np.float64)[:, None], n_positions, axis=1)
        self._values = [value]
        bands: list[np.ndarray] = []
        for _ in range(task.horizon):
            v_ext = CubicSpline(self.grid, value, axis=0, extrapolate=True)(extended)  # (n_ext, n_positions)
            # G(S_i, a_m) = −(1/α) log Σ_k w_k exp(−α(a_m z_k + V(S_i + z_k, a_m)))
            logits = log_w[None, :, None] - alpha * (
                self.positions[None, None, :] * z[None, :, None] + v_ext[index]
            )  # (n_grid, offsets, n_positions)
            g = -logsumexp(logits, axis=1) / alpha
            band = np.empty((n_grid, 3))  # b₊ (buy up to), b₀, b₋ (sell down to)
            value = np.empty_like(g)
            for i in range(n_grid):
                spline = CubicSpline(self.positions, g[i])
                band[i] = [self._root(spline, slope) for slope in (c, 0.0, -c)]
                traded = np.clip(self.positions, band[i, 0], band[i, 2])
                value[i] = spline(traded) - c * np.abs(traded - self.positions)
            self._values.insert(0, value)
            bands.insert(0, band)
        self._bands = np.stack(bands)  # (T, n_grid, 3)

    def _root(self, spline: CubicSpline, slope: float) -> float:
        """The a in the position range where the concave G has G′(a) = slope (an end if none: G′ > slope
        everywhere gives the upper end)."""
        lo, hi = self.positions[0], self.positions[-1]
        derivative = spline.derivative()
        if derivative(lo) <= slope:
            return float(lo)
        if derivative(hi) >= slope:
            return float(hi)
        roots = derivative.solve(slope, extrapolate=False)
        roots = roots[(roots >= lo) & (roots <= hi)]
        return float(roots[0]) if len(roots) else float(lo if derivative(lo) < slope else hi)

    def value(self, t: int, s: Any, position: Any) -> np.ndarray:
        """V_t(S, p), cubic in S and in p between the nodes."""
        t = int(_check_times(self.task, t))
        s_b, p_b = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(position, dtype=np.float64))
        along_s = CubicSpline(self.grid, self._values[t], axis=0, extrapolate=True)(s_b.reshape(-1))  # (n, n_pos)
        out = np.array([CubicSpline(self.positions, row)(p) for row, p in zip(along_s, p_b.reshape(-1), strict=True)])
        return out.reshape(s_b.shape)

    def band(self, t: int, s: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The no-trade band at (t, S): (b₊, b₀, b₋), buy up to b₊ below it, sell down to b₋ above it, b₀ the
        frictionless optimum; cubic in S between the nodes."""
        t = int(t)
        if not 0 <= t < self.task.horizon:
            raise ValueError(f"bands exist for t in 0..{self.task.horizon - 1}, got {t}")
        edges = CubicSpline(self.grid, self._bands[t], axis=0, extrapolate=True)(np.asarray(s, dtype=np.float64))
        return edges[..., 0], edges[..., 1], edges[..., 2]

    def action(self, t: int, s: Any, position: Any) -> np.ndarray:
        """The optimal position a* = clip(p, b₊, b₋) at (t, S) from the position p held."""
        lower, _, upper = self.band(t, s)
        return np.clip(np.asarray(position, dtype=np.float64), lower, upper)


class CostReference:
    """V* and π* of a task with transaction costs on its states s = (S, p) (last axis), from its
    :class:`CostDynamicProgram`: the :class:`ReferenceSolution` interface RiskAC's reference errors use.

    :param dp: the solved dynamic program.
    """

    method = CostDynamicProgram.method

    def __init__(self, dp: CostDynamicProgram) -> None:
        self.dp, self.task, self.risk_aversion = dp, dp.task, dp.risk_aversion

    def _per_time(self, fn: Any, t: Any, s: Any) -> np.ndarray:
        states = np.asarray(s, dtype=np.float64)
        if states.shape[-1:] != (2,):
            raise ValueError(f"states of a task with costs are (S, p) in the last axis, got shape {states.shape}")
        times = np.broadcast_to(np.asarray(t), states.shape[:-1])
        out = np.empty(states.shape[:-1])
        for step in np.unique(times):
            at = times == step
            out[at] = fn(int(step), states[..., 0][at], states[..., 1][at])
        return out

    def value(self, t: Any, s: Any) -> np.ndarray:
        """V*(t, S, p) for states ``s`` of shape ``(..., 2)``."""
        return self._per_time(self.dp.value, t, s)

    def action(self, t: Any, s: Any) -> np.ndarray:
        """The optimal position a*(t, S, p) = clip(p, b₊, b₋) for states ``s`` of shape ``(..., 2)``, t < T."""
        return self._per_time(self.dp.action, t, s)


@functools.lru_cache(maxsize=16)
def _cost_reference(task: HedgingWithCostsTask, alpha: float, dp_kwargs: tuple[tuple[str, Any], ...]) -> CostReference:
    """The cost task's DP, solved once per (task, α, grid) in a process (seconds each; models of one task share it)."""
    return CostReference(CostDynamicProgram(task, alpha, task.cost, **dict(dp_kwargs)))


def reference_solution(
    env_or_id: Any, risk_aversion: float, method: str = "auto", **dp_kwargs: Any
) -> ReferenceSolution:
    """The optimal value and action of a Bachelier task at risk aversion α.

    :param env_or_id: an env (wrapped or not), a vector env, an env id or a :class:`BachelierTask`.
    :param risk_aversion: α. The Gaussian and quadratic tasks need α > 0 (at α ≤ 0 the optimal value
        is infinite); hedging accepts α ≥ 0 (α = 0: the risk-neutral Bachelier price).
    :param method: "auto" (closed form where one exists, else the dynamic program), "closed_form" or "dp".
    :param dp_kwargs: grid and quadrature options of :class:`DynamicProgram`.
    :return: an object with ``value(t, S)``, ``action(t, S)``, ``task``, ``risk_aversion``, ``method``.
    """
    task = task_of(env_or_id)
    alpha = float(risk_aversion)
    if not math.isfinite(alpha):
        raise ValueError(f"risk_aversion must be finite, got {risk_aversion!r}")
    if method not in ("auto", "closed_form", "dp"):
        raise ValueError(f"method must be 'auto', 'closed_form' or 'dp', got {method!r}")
    if isinstance(task, HedgingWithCostsTask):
        if not alpha > 0:
            raise ValueError(f"risk_aversion must be > 0 for the dynamic program with costs, got {alpha}")
        if method == "closed_form":
            raise ValueError("no closed form with transaction costs; use method='dp'")
        return _cost_reference(task, alpha, tuple(sorted(dp_kwargs.items())))
    hedging = isinstance(task, OptionHedgingTask)
    if alpha < 0 or (alpha == 0 and not hedging):
        raise ValueError(
            f"risk_aversion must be > 0 for {type(task).__name__} (>= 0 for hedging), got {alpha}: "
            "a risk-neutral or risk-seeking trader's optimal value is infinite"
        )
    task.check_solvable(alpha)
    has_closed_form = (not hedging or alpha == 0) and type(task) is not BachelierTask
    if method == "closed_form" or (method == "auto" and has_closed_form):
        if not has_closed_form:
            raise ValueError(f"no closed form for {type(task).__name__} at risk_aversion={alpha}; use method='dp'")
        return ClosedForm(task, alpha)
    return DynamicProgram(task, alpha, **dp_kwargs)
