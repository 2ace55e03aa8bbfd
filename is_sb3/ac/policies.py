"""Policies of :class:`~is_sb3.ac.RiskAC`: a deterministic actor and a state-value critic (MLPs)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import create_mlp
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from is_sb3.activations import Mish
from is_sb3.validation import MAX_RISK_AVERSION

__all__ = ["MlpPolicy", "RiskACPolicy"]


class RiskACPolicy(BasePolicy):
    """Deterministic actor π_φ(s) and state-value critic V_θ(s), each an MLP with its own optimizer.

    Defaults follow the IS paper (App. B): 2 hidden layers of 64, Mish (:class:`is_sb3.activations.Mish`,
    the same function from one exponential), Adam with β = (0.99, 0.999).

    :param observation_space: observation space (flat Box).
    :param action_space: action space (Box).
    :param lr_schedule: learning-rate schedule (the initial value sets the optimizers' lr).
    :param net_arch: hidden sizes, shared by actor and critic, or a dict ``{"pi": [...], "vf": [...]}``.
    :param activation_fn: activation between hidden layers.
    :param optimizer_class: optimizer of both networks.
    :param optimizer_kwargs: its keyword arguments (default betas (0.99, 0.999)).
    :param value_scale: V_θ(s) = value_scale · critic(s) (RiskAC sets 1/max(1, |α|), with a range 1/max(1, high):
        see there).
    :param action_scale: π_φ(s) = action_scale · actor(s).
    :param risk_aversion_range: ``(low, high)``, 0 < low < high: one actor and one critic for every α in the range,
        α an input of both as two features appended to the observation: u = 2 (log α − log low)/(log high − log low)
        − 1 ∈ [−1, 1] and α/high ∈ (0, 1] (the entropic risk premium grows about linearly in α, an exponential in u
        that a network with u alone fits poorly at the range's ends); ``None``: one α (the networks see the
        observation only).
    :param risk_aversion: with a range, the α that ``value``, ``action`` and ``predict`` use when none is given.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = Mish,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        value_scale: float = 1.0,
        action_scale: float = 1.0,
        risk_aversion_range: tuple[float, float] | None = None,
        risk_aversion: float = 1.0,
    ) -> None:
        if optimizer_kwargs is None:
            optimizer_kwargs = {"betas": (0.99, 0.999)}
        super().__init__(
            observation_space,
            action_space,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=False,
        )
        if not isinstance(action_space, spaces.Box):
            raise ValueError(f"RiskACPolicy needs a Box action space, got {action_space}")
        if not (value_scale > 0 and action_scale > 0):
            raise ValueError(f"value_scale and action_scale must be > 0, got {value_scale}, {action_scale}")
        self.value_scale, self.action_scale = float(value_scale), float(action_scale)
        self.net_arch = [64, 64] if net_arch is None else net_arch
        self.activation_fn = activation_fn
        pi_arch = self.net_arch["pi"] if isinstance(self.net_arch, dict) else self.net_arch
        vf_arch = self.net_arch["vf"] if isinstance(self.net_arch, dict) else self.net_arch
        self.risk_aversion_range = (
            None if risk_aversion_range is None else check_risk_aversion_range(risk_aversion_range)
        )
        self.risk_aversion = float(risk_aversion)
        if self.risk_aversion_range is not None:
            self.check_in_range(self.risk_aversion)
        obs_dim = get_flattened_obs_dim(observation_space) + 2 * (self.risk_aversion_range is not None)
        action_dim = int(action_space.shape[0])
        self.actor = nn.Sequential(*create_mlp(obs_dim, action_dim, list(pi_arch), activation_fn))
        self.critic = nn.Sequential(*create_mlp(obs_dim, 1, list(vf_arch), activation_fn))
        self.critic_target = nn.Sequential(*create_mlp(obs_dim, 1, list(vf_arch), activation_fn))
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        lr = lr_schedule(1)
        self.actor_optimizer = optimizer_class(self.actor.parameters(), lr=lr, **self.optimizer_kwargs)  # type: ignore[call-arg]
        self.critic_optimizer = optimizer_class(self.critic.parameters(), lr=lr, **self.optimizer_kwargs)  # type: ignore[call-arg]

    def check_in_range(self, risk_aversion: float) -> float:
        """``risk_aversion`` as a float if this policy (with a range) covers it, else a ``ValueError``."""
        assert self.risk_aversion_range is not None
        low, high = self.risk_aversion_range
        alpha = float(risk_aversion)
        if not low <= alpha <= high:
            raise ValueError(f"risk_aversion must be in the trained range [{low:g}, {high:g}], got {risk_aversion!r}")
        return alpha

    @contextlib.contextmanager
    def acting_at(self, risk_aversion: float) -> Iterator[None]:
        """Within the block, ``value``, ``action`` and ``predict`` without an α use ``risk_aversion`` (a policy with
        a range; ``ValueError`` outside it)."""
        default, self.risk_aversion = self.risk_aversion, self.check_in_range(risk_aversion)
        try:
            yield
        finally:
            self.risk_aversion = default

    def _inputs(self, obs: th.Tensor, alpha: float | th.Tensor | None) -> th.Tensor:
        """The networks' input: the observation as it is (one α), or with the α features u and α/high appended (a
        range; ``alpha`` None: the policy's ``risk_aversion``)."""
        if self.risk_aversion_range is None:
            if alpha is not None:
                raise ValueError("this policy was trained for one risk aversion; risk_aversion is not an input")
            return obs
        if not isinstance(alpha, th.Tensor):
            value = self.risk_aversion if alpha is None else self.check_in_range(alpha)
            alpha = th.full(obs.shape[:1], value, dtype=obs.dtype, device=obs.device)
        low, high = self.risk_aversion_range
        u = 2.0 * (th.log(alpha) - math.log(low)) / (math.log(high) - math.log(low)) - 1.0
        return th.cat([obs, th.stack([u, alpha / high], dim=-1).to(obs.dtype)], dim=-1)

    def value(self, obs: th.Tensor, alpha: float | th.Tensor | None = None) -> th.Tensor:
        """V_θ(s) (at α: with a range, a float or one per sample), shape ``(batch,)``."""
        return self.critic(self._inputs(obs, alpha)).squeeze(-1) * self.value_scale

    def target_value(self, obs: th.Tensor, alpha: float | th.Tensor | None = None) -> th.Tensor:
        """V_θ̄(s) of the target critic (Polyak average of V_θ), shape ``(batch,)``."""
        return self.critic_target(self._inputs(obs, alpha)).squeeze(-1) * self.value_scale

    def action(self, obs: th.Tensor, alpha: float | th.Tensor | None = None) -> th.Tensor:
        """π_φ(s) (at α with a range), shape ``(batch, action_dim)``."""
        return self.actor(self._inputs(obs, alpha)) * self.action_scale

    def forward(self, obs: PyTorchObs, deterministic: bool = True) -> th.Tensor:
        return self._predict(obs, deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = True) -> th.Tensor:
        assert isinstance(observation, th.Tensor)
        return self.action(observation.flatten(1).float())

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            lr_schedule=self._dummy_schedule,
            value_scale=self.value_scale,
            action_scale=self.action_scale,
            risk_aversion_range=self.risk_aversion_range,
            risk_aversion=self.risk_aversion,
        )
        return data


def check_risk_aversion_range(value: Any) -> tuple[float, float]:
    """``(low, high)`` as floats with 0 < low < high ≤ 1e6, else a ``ValueError`` naming the parameter."""
    try:
        low, high = (float(x) for x in value)
    except (TypeError, ValueError):
        raise ValueError(f"risk_aversion_range must be a pair (low, high), got {value!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and 0 < low < high <= MAX_RISK_AVERSION):
        raise ValueError(f"risk_aversion_range must satisfy 0 < low < high <= {MAX_RISK_AVERSION:g}, got {value!r}")
    return low, high


MlpPolicy = RiskACPolicy
