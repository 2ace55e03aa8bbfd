"""The discrete-time Bachelier core: parameters, transitions and rewards.

One core serves every front end: the Gymnasium env (Python floats), the SB3 vector env (numpy
arrays) and the batched torch simulator (tensors on any device, differentiable in the action).
Rewards and observations are written with arithmetic operators only, so the same function runs
on floats, numpy arrays and torch tensors.

Price: S_{t+1} = S_t + Z_{t+1}, Z ~ N(μ, σ²) i.i.d., t = 0..T−1. Reward of holding a shares over
(t, t+1]: r = a (S_{t+1} − S_t) − 1{t+1 = T} · terminal_cost(S_T). With proportional transaction costs
(:class:`HedgingWithCostsTask`) the state is (S_t, p_t), p_t the position held before trading, and the period's
reward is further charged c·|a − p_t|; the next state is (S_{t+1}, a).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

__all__ = ["BachelierTask", "GaussianReturnTask", "HedgingWithCostsTask", "OptionHedgingTask", "QuadraticPenaltyTask"]

#: a float, numpy array or torch tensor: the formulas below use arithmetic operators only
Num = Any


#: bound on |μ|, σ, |S_0| and the position: beyond it rewards overflow or vanish in rounding (σ = 1e200
#: gives NaN, S_0 = 1e300 makes every price increment 0 in float64)
PARAMETER_BOUND = 1e6


def _finite(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a finite real number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return value


@dataclass(frozen=True)
class BachelierTask:
    """Parameters of a Bachelier trading task; subclasses add the terminal cost.

    :param horizon: number of trading periods T ≥ 1.
    :param mu: drift μ of the price increments.
    :param sigma: volatility σ ∈ (0, 1e6] of the increments (per period).
    :param s0: initial price S_0, |S_0| ≤ 1e6 (μ too).
    :param max_position: bound of the action box, |a| ≤ max_position ∈ (0, 1e6].
    """

    horizon: int = 10
    mu: float = 0.0
    sigma: float = 1.0
    s0: float = 0.0
    max_position: float = 10.0
    name: ClassVar[str] = "bachelier"
    #: whether the state holds the position p (then observations are [t/T, price, p])
    observes_position: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if isinstance(self.horizon, bool) or int(self.horizon) != self.horizon or self.horizon < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {self.horizon!r}")
        object.__setattr__(self, "horizon", int(self.horizon))
        for name in ("mu", "sigma", "s0", "max_position"):
            object.__setattr__(self, name, _finite(name, getattr(self, name)))
        if not 0 < self.sigma <= PARAMETER_BOUND:
            raise ValueError(f"sigma must be in (0, {PARAMETER_BOUND:g}], got {self.sigma!r}")
        if not 0 < self.max_position <= PARAMETER_BOUND:
            raise ValueError(f"max_position must be in (0, {PARAMETER_BOUND:g}], got {self.max_position!r}")
        for name in ("mu", "s0"):
            if abs(getattr(self, name)) > PARAMETER_BOUND:
                raise ValueError(
                    f"{name} must be in [-{PARAMETER_BOUND:g}, {PARAMETER_BOUND:g}], got {getattr(self, name)!r}"
                )

    # --- the formulas: work on floats, numpy arrays and torch tensors alike ---
    def terminal_cost(self, s_final: Num) -> Num:
        """Cost charged at t = T on top of the trading gain (0 for pure trading)."""
        return s_final * 0.0

    def reward(self, t: Any, s: Num, a: Num, s_next: Num) -> Num:
        """r(s, a, s') = a (S_{t+1} − S_t) − 1{t + 1 = T} terminal_cost(S_{t+1}); differentiable in a.

        :param t: time index of the decision (0..T−1), int or integer array/tensor.
        :param s: price S_t.
        :param a: position held over (t, t+1].
        :param s_next: price S_{t+1}.
        """
        last = (t + 1) == self.horizon
        return a * (s_next - s) - last * self.terminal_cost(s_next)

    def trade_reward(self, t: Any, s: Num, p: Num, a: Num, s_next: Num) -> Num:
        """The period's reward from the position p held before trading to a: :meth:`reward` here (no costs);
        tasks with trading costs subtract them."""
        return self.reward(t, s, a, s_next)

    def observe_time(self, t: Num) -> Num:
        """Normalised time t / T ∈ [0, 1]."""
        return t / self.horizon

    def observe_price(self, s: Num) -> Num:
        """Normalised price (S − S_0) / (σ √T)."""
        return (s - self.s0) / (self.sigma * math.sqrt(self.horizon))

    def price_from_observation(self, x: Num) -> Num:
        """Inverse of :meth:`observe_price`."""
        return x * (self.sigma * math.sqrt(self.horizon)) + self.s0

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.name, **asdict(self)}

    # --- the task protocol of RiskAC (is_sb3.ac.task.RiskACTask) ---
    @property
    def observation_space(self) -> Any:
        """[t/T, (S − S_0)/(σ√T)] as a float32 ``Box`` (see :mod:`is_envs.finance.envs`)."""
        from is_envs.finance.envs import observation_space

        return observation_space()

    @property
    def action_space(self) -> Any:
        """The position a ∈ [−max_position, max_position] as a float32 ``Box`` of shape (1,)."""
        from is_envs.finance.envs import action_space

        return action_space(self)

    def simulator(self, device: Any = "cpu", dtype: Any = None, seed: int | None = None) -> Any:
        """A :class:`~is_envs.finance.BachelierSimulator` of this task (float32 unless ``dtype`` says otherwise)."""
        import torch

        from is_envs.finance.simulator import BachelierSimulator

        return BachelierSimulator(self, device, torch.float32 if dtype is None else dtype, seed)

    def reference_solution(self, risk_aversion: float) -> Any:
        """V* and π* at α (:func:`~is_envs.finance.reference_solution`); ``ValueError`` where there is none."""
        from is_envs.finance.reference import reference_solution

        return reference_solution(self, risk_aversion)

    def check_solvable(self, risk_aversion: float) -> None:
        """Raise ``ValueError`` where the optimal certainty equivalent at α is −∞ (never here)."""

    def check_risk_aversion(self, risk_aversion: float, critic_loss: str) -> None:
        """Refuse settings whose optimal value is infinite (:meth:`check_solvable`); warn where training is
        expected to fail (nowhere here)."""
        self.check_solvable(risk_aversion)


@dataclass(frozen=True)
class GaussianReturnTask(BachelierTask):
    """r = a (S_{t+1} − S_t); μ = 0.03, σ = 1 by default. No terminal cost."""

    mu: float = 0.03
    sigma: float = 1.0
    name: ClassVar[str] = "gaussian"


@dataclass(frozen=True)
class QuadraticPenaltyTask(BachelierTask):
    """trading plus a terminal penalty −½ (S_T − S_0)²; μ = 0, σ² = 0.1 by default."""

    mu: float = 0.0
    sigma: float = field(default=math.sqrt(0.1))
    name: ClassVar[str] = "quadratic"

    def terminal_cost(self, s_final: Num) -> Num:
        x = s_final - self.s0
        return 0.5 * x * x

    def check_solvable(self, risk_aversion: float) -> None:
        """Refuse k = ασ² ≥ 1: the CE of every policy is −∞ there (E[exp(α·penalty)] is infinite)."""
        k = risk_aversion * self.sigma**2
        if k >= 1:
            raise ValueError(
                f"risk_aversion must be < 1/σ² = {1 / self.sigma**2:g} on the quadratic task (k = ασ² = {k:g} "
                "≥ 1: the certainty equivalent of every policy is −∞)"
            )

    def check_risk_aversion(self, risk_aversion: float, critic_loss: str) -> None:
        """Refuse k = ασ² ≥ 1 (:meth:`check_solvable`); warn for ½ ≤ k < 1 (except for the MSE critic).

        The IS weight at the optimum is e^{αδ} = √(1 − k)·e^{αZ²/2}, whose second moment (1 − k)/√(1 − 2k)
        is infinite for k ≥ ½ (README: "Why k = 0.5 fails").
        """
        self.check_solvable(risk_aversion)
        k = risk_aversion * self.sigma**2
        if k >= 0.5 and critic_loss != "mse":
            warnings.warn(
                f"risk_aversion·σ² = {k:g} ≥ 0.5 on the quadratic task: the exponential weights e^{{αδ}} of "
                "the critic and actor gradients have infinite variance even at the solution; training is "
                "unstable (measured at k = 0.5: IS, SP and EMSE diverge within 20k iterations; over 100k IS "
                "comes back to 2-10 % value error, SP diverges in 4 of 5 seeds)",
                RuntimeWarning,
                stacklevel=3,
            )


@dataclass(frozen=True)
class OptionHedgingTask(BachelierTask):
    """Short one European call, payoff −max(S_T − K, 0) at T; μ = 0, σ² = 0.1, K = S_0.

    :param strike: strike K; ``None`` means at the money (K = S_0).
    """

    mu: float = 0.0
    sigma: float = field(default=math.sqrt(0.1))
    max_position: float = 2.0
    strike: float | None = None
    name: ClassVar[str] = "hedging"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "strike", self.s0 if self.strike is None else _finite("strike", self.strike))
        if abs(self.k) > PARAMETER_BOUND:  # bounded as s0 and mu are
            raise ValueError(f"strike must be in [-{PARAMETER_BOUND:g}, {PARAMETER_BOUND:g}], got {self.strike!r}")

    @property
    def k(self) -> float:
        assert self.strike is not None
        return self.strike

    def terminal_cost(self, s_final: Num) -> Num:
        x = s_final - self.k
        return (x + abs(x)) * 0.5  # max(x, 0) for floats, arrays and tensors


@dataclass(frozen=True)
class HedgingWithCostsTask(OptionHedgingTask):
    """Hedging a short call with proportional transaction costs: the position held is part of the state.

    State (S_t, p_t), p_t the position held before trading at t (p_0 = 0). Choosing the position a costs
    c·|a − p_t| (in the price unit, paid at t); the period's reward is a (S_{t+1} − S_t) − c|a − p_t| and, at T,
    minus the call's payoff (no cost to unwind). The next state is (S_{t+1}, a): the transition depends on the
    action. With c = 0 the values and the optimal hedge are :class:`OptionHedgingTask`'s (the position held does
    not matter then). The reference answer is the entropic dynamic program over (t, S, p)
    (:class:`~is_envs.finance.reference.CostDynamicProgram`); its optimal trade is a no-trade band around the
    frictionless hedge, wider for larger c.

    :param cost: c ∈ [0, 1e6], the cost per share traded, in the price unit.
    """

    cost: float = 0.0
    name: ClassVar[str] = "hedging_costs"
    observes_position: ClassVar[bool] = True

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "cost", _finite("cost", self.cost))
        if not 0 <= self.cost <= PARAMETER_BOUND:
            raise ValueError(f"cost must be in [0, {PARAMETER_BOUND:g}], got {self.cost!r}")

    def trade_reward(self, t: Any, s: Num, p: Num, a: Num, s_next: Num) -> Num:
        """r = a (S_{t+1} − S_t) − c|a − p| − 1{t + 1 = T} payoff(S_{t+1}); differentiable in a (but at a = p)."""
        return self.reward(t, s, a, s_next) - self.cost * abs(a - p)

    @property
    def observation_space(self) -> Any:
        """[t/T, (S − S_0)/(σ√T), p] as a float32 ``Box``."""
        from is_envs.finance.envs import observation_space

        return observation_space(self)

    def simulator(self, device: Any = "cpu", dtype: Any = None, seed: int | None = None) -> Any:
        """A :class:`~is_envs.finance.simulator.CostSimulator` of this task (states (S, p))."""
        import torch

        from is_envs.finance.simulator import CostSimulator

        return CostSimulator(self, device, torch.float32 if dtype is None else dtype, seed)


TASKS: dict[str, type[BachelierTask]] = {
    cls.name: cls for cls in (GaussianReturnTask, QuadraticPenaltyTask, OptionHedgingTask, HedgingWithCostsTask)
}
