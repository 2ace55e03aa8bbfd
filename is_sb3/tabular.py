"""Tabular entropic RL: exact finite-horizon dynamic programming and stochastic approximation.

The stochastic-approximation rules of the four losses are stochastic gradient steps on the per-sample
critic losses of :mod:`is_sb3.losses`, V ← V − η ∂ℓ(V, y)/∂V with δ = V − y and e = −δ:

=========  =====================================  ===========================
rule       update                                 fixed point
=========  =====================================  ===========================
``td0``    V += η e                               E[Y] (alias of ``mse``)
``is``     V −= η (e^{αδ} − 1)/α   (eq. 13)       CE_α[Y]
``emse``   V += η e^{−2αV}(1 − e^{−αe})/α         CE_α[Y]
``sp``     V += η · 2 sigmoid(−αe) · e            CE_α[Y] only for Gaussian Y
=========  =====================================  ===========================

The gradient is taken from the loss by autograd, so each rule is exactly the loss it names
(including the IS loss's linear continuation beyond αδ = 30, which bounds the step).
Time is part of the state: values are tables ``V[t, s]`` with ``V[H, :] = 0``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch as th

from is_sb3.losses import get_loss
from is_sb3.risk import certainty_equivalent

__all__ = ["RULES", "FiniteHorizonMDP", "sa_update", "solve_entropic_dp", "stochastic_approximation"]

#: rule name -> critic loss name
RULES: dict[str, str] = {"td0": "mse", "mse": "mse", "is": "is", "emse": "emse", "sp": "sp"}


def sa_update(rule: str, value: np.ndarray, target: np.ndarray, risk_aversion: float, lr: float) -> np.ndarray:
    """One stochastic-approximation step V ← V − η ∂ℓ_rule(V, target)/∂V, elementwise.

    :param rule: one of "td0", "mse", "is", "emse", "sp".
    :param value: current estimates V, shape ``(*)``.
    :param target: sampled targets r + V(s'), shape ``(*)``.
    :param risk_aversion: α.
    :param lr: step size η > 0.
    :return: updated estimates, shape ``(*)``, float64.
    """
    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; valid rules are {sorted(RULES)}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    v = th.tensor(np.asarray(value, dtype=np.float64), requires_grad=True)
    y = th.as_tensor(np.asarray(target, dtype=np.float64))
    loss = get_loss(RULES[rule])(v, y, risk_aversion)
    (grad,) = th.autograd.grad(loss.sum(), v)
    out: np.ndarray = (v - lr * grad).detach().numpy()
    return out


@dataclass(frozen=True)
class FiniteHorizonMDP:
    """A small finite-horizon MDP with rewards r(s, a, s').

    :param transitions: P[s, a, s'], shape ``(S, A, S)``, rows summing to 1.
    :param rewards: r[s, a, s'], shape ``(S, A, S)``.
    :param horizon: number of decisions H ≥ 1 (terminal values V[H] = 0).
    """

    transitions: np.ndarray
    rewards: np.ndarray
    horizon: int

    def __post_init__(self) -> None:
        p = np.asarray(self.transitions, dtype=np.float64)
        r = np.asarray(self.rewards, dtype=np.float64)
        if p.ndim != 3 or p.shape[0] != p.shape[2]:
            raise ValueError(f"transitions must have shape (S, A, S), got {p.shape}")
        if r.shape != p.shape:
            raise ValueError(f"rewards must have the shape of transitions {p.shape}, got {r.shape}")
        if np.any(p < 0) or not np.allclose(p.sum(-1), 1.0):
            raise ValueError("transitions must be probabilities: non-negative, each P[s, a, :] summing to 1")
        if not np.all(np.isfinite(r)):
            raise ValueError("rewards must be finite")
        if int(self.horizon) < 1:
            raise ValueError(f"horizon must be an integer >= 1, got {self.horizon!r}")
        object.__setattr__(self, "transitions", p)
        object.__setattr__(self, "rewards", r)

    @property
    def n_states(self) -> int:
        return int(self.transitions.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.transitions.shape[1])

    def policy_array(self, policy: np.ndarray | None) -> np.ndarray | None:
        """Validate a policy given as π[s, a] or π[t, s, a]; return it as shape ``(H, S, A)``."""
        if policy is None:
            return None
        pi = np.asarray(policy, dtype=np.float64)
        if pi.shape == (self.n_states, self.n_actions):
            pi = np.broadcast_to(pi, (self.horizon, *pi.shape))
        if pi.shape != (self.horizon, self.n_states, self.n_actions):
            raise ValueError(f"policy must have shape (S, A) or (H, S, A), got {pi.shape}")
        if np.any(pi < 0) or not np.allclose(pi.sum(-1), 1.0):
            raise ValueError("policy must hold probabilities summing to 1 over actions")
        return pi


def _log(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p)


def solve_entropic_dp(
    mdp: FiniteHorizonMDP, risk_aversion: float, policy: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact entropic Bellman recursion (γ = 1).

    Without ``policy``: optimal control, Q_t(s, a) = CE_α over s' of [r + V_{t+1}(s')] and
    V_t(s) = max_a Q_t(s, a). With ``policy`` π: evaluation, V_t(s) = CE_α jointly over a ~ π and s'
    of [r + V_{t+1}(s')].

    :param mdp: the MDP.
    :param risk_aversion: α.
    :param policy: optional π[s, a] or π[t, s, a].
    :return: ``(V, Q)`` with V shape ``(H + 1, S)`` (V[H] = 0) and Q shape ``(H, S, A)``.
    """
    pi = mdp.policy_array(policy)
    h, s_n, a_n = mdp.horizon, mdp.n_states, mdp.n_actions
    v = np.zeros((h + 1, s_n))
    q = np.zeros((h, s_n, a_n))
    log_p = _log(mdp.transitions)
    for t in range(h - 1, -1, -1):
        y = mdp.rewards + v[t + 1][None, None, :]  # (S, A, S')
        q[t] = certainty_equivalent(y, risk_aversion, dim=-1, log_weights=log_p)
        if pi is None:
            v[t] = q[t].max(axis=-1)
        else:
            joint = _log(pi[t])[:, :, None] + log_p  # log π(a|s) P(s'|s, a)
            v[t] = certainty_equivalent(y.reshape(s_n, -1), risk_aversion, dim=-1, log_weights=joint.reshape(s_n, -1))
    return v, q


def stochastic_approximation(
    mdp: FiniteHorizonMDP,
    rule: str,
    risk_aversion: float,
    policy: np.ndarray,
    n_iterations: int = 20_000,
    lr: float = 0.5,
    lr_decay: float = 0.7,
    seed: int | None = None,
) -> np.ndarray:
    """Evaluate ``policy`` by a stochastic-approximation rule with synchronous sampled updates.

    Each iteration samples, for every (t, s), one a ~ π(·|s) and one s' ~ P(·|s, a), and applies
    :func:`sa_update` to V[t, s] with target r + V[t + 1, s'] and step η_n = lr / (1 + n)^lr_decay
    (Robbins-Monro for ½ < lr_decay ≤ 1). Returns the Polyak-Ruppert average of the iterates over
    the second half of the run.

    :param mdp: the MDP.
    :param rule: "td0", "is", "emse" or "sp".
    :param risk_aversion: α.
    :param policy: π[s, a] or π[t, s, a].
    :param n_iterations: number of synchronous sweeps.
    :param lr: initial step size.
    :param lr_decay: step-size exponent.
    :param seed: seed of the sampler.
    :return: V of shape ``(H + 1, S)``.
    """
    if not 0.5 < lr_decay <= 1.0:
        raise ValueError(f"lr_decay must be in (0.5, 1] for Robbins-Monro convergence, got {lr_decay!r}")
    if n_iterations < 2:
        raise ValueError(f"n_iterations must be >= 2, got {n_iterations!r}")
    pi = mdp.policy_array(policy)
    assert pi is not None
    rng = np.random.default_rng(seed)
    h, s_n = mdp.horizon, mdp.n_states
    t_idx, s_idx = np.meshgrid(np.arange(h), np.arange(s_n), indexing="ij")
    cum_pi = np.cumsum(pi, axis=-1)
    cum_p = np.cumsum(mdp.transitions, axis=-1)
    v = np.zeros((h + 1, s_n))
    avg = np.zeros_like(v)
    start = n_iterations // 2
    for n in range(n_iterations):
        a = (rng.random((h, s_n, 1)) > cum_pi).sum(-1).clip(max=mdp.n_actions - 1)
        s2 = (rng.random((h, s_n, 1)) > cum_p[s_idx, a]).sum(-1).clip(max=s_n - 1)
        target = mdp.rewards[s_idx, a, s2] + v[t_idx + 1, s2]
        v[:h] = sa_update(rule, v[:h], target, risk_aversion, lr / (1.0 + n) ** lr_decay)
        if n >= start:
            avg += (v - avg) / (n - start + 1)
    return avg
