"""RiskSAC: Stable-Baselines3's SAC whose twin critics regress with an entropic critic loss."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch as th
from stable_baselines3 import SAC
from stable_baselines3.common.type_aliases import GymEnv
from stable_baselines3.sac import sac as sb3_sac
from torch.nn import functional

from is_sb3.common import check_risk_settings, check_total_timesteps, make_env
from is_sb3.losses import critic_loss
from is_sb3.resume import ResumableOffPolicy
from is_sb3.validation import check_off_policy

__all__ = ["RiskSAC"]


class _CriticLossAsMSE:
    """Stands in for ``torch.nn.functional`` inside SB3's ``SAC.train``, where the critic loss is
    ``0.5 * Σ_i F.mse_loss(Q_i, y)``: here ``mse_loss(Q_i, y) = 2 · mean ℓ(Q_i, y)``, so the SAC
    update minimises Σ_i mean ℓ(Q_i(s, a), y) with ℓ the chosen per-sample loss (½δ² for "mse")."""

    def __init__(self, name: str, risk_aversion: float) -> None:
        self.name, self.risk_aversion = name, risk_aversion

    def mse_loss(self, input: th.Tensor, target: th.Tensor) -> th.Tensor:
        return 2.0 * critic_loss(self.name, input, target, self.risk_aversion)

    def __getattr__(self, attr: str) -> Any:
        return getattr(functional, attr)


@contextlib.contextmanager
def _critic_loss(name: str, risk_aversion: float) -> Iterator[None]:
    original = sb3_sac.F
    sb3_sac.F = _CriticLossAsMSE(name, risk_aversion)  # type: ignore[assignment]
    try:
        yield
    finally:
        sb3_sac.F = original


#: SB3 SAC's defaults, for validating the arguments not given
_SAC_DEFAULTS = {
    name: p.default for name, p in inspect.signature(SAC.__init__).parameters.items() if p.default is not p.empty
}


class RiskSAC(ResumableOffPolicy, SAC):
    """SAC with an entropic critic: the twin critics regress on the usual soft target
    y = r + γ(1 − d)(min_i Q̄_i(s', a') − κ log π(a'|s')), a' ~ π(·|s') (one sample), with the loss
    ``critic_loss`` at risk aversion α instead of the squared error. With the "is" loss and γ = 1 the
    critics learn Q(s, a) = CE_α[r + Q(s', a')] jointly over s' and a'; with γ < 1 this is
    the fixed-level approximation of Enders et al.

    Everything else (actor, entropy tuning, replay, Polyak targets, policies "MlpPolicy",
    "CnnPolicy", "MultiInputPolicy") is SB3's SAC. ``save``/``load`` keep the random generators' state and
    run no code from the file (:mod:`is_sb3.resume`): saving, loading and ``learn(rest,
    reset_num_timesteps=False)`` (with the replay buffer, and the env in its saved state with
    ``force_reset=False``) equals the uninterrupted run bit for bit. ``critic_loss="mse"`` is stock SAC exactly,
    whatever α. Implementation: SB3's own ``SAC.train`` runs with its squared-error call redirected
    to the chosen loss for the duration of the call (so every SB3 fix to ``train`` is inherited).

    :param policy: the policy model ("MlpPolicy", ...).
    :param env: the environment or its id.
    :param risk_aversion: α (> 0 averse, < 0 seeking, 0 neutral).
    :param critic_loss: "is", "emse", "sp" or "mse".
    :param kwargs: every other argument of :class:`stable_baselines3.SAC` (learning_rate, buffer_size,
        learning_starts, batch_size, tau, gamma, ent_coef, seed, device, tensorboard_log, ...).
    """

    def __init__(
        self,
        policy: str | type[Any],
        env: GymEnv | str,
        risk_aversion: float = 1.0,
        critic_loss: str = "is",
        **kwargs: Any,
    ) -> None:
        alpha = check_risk_settings(risk_aversion, critic_loss)
        if kwargs.get("_init_setup_model", True):  # (SB3's load builds with False and sets the saved attributes)
            check_off_policy(kwargs, _SAC_DEFAULTS, net_arch_keys=("pi", "qf"))
        self.risk_aversion = alpha
        self.critic_loss = critic_loss
        super().__init__(policy, make_env(env), **kwargs)

    def learn(self, total_timesteps: int, *args: Any, **kwargs: Any) -> RiskSAC:
        """SB3's ``SAC.learn`` (``total_timesteps`` env steps), refusing budgets below 1."""
        super().learn(check_total_timesteps(total_timesteps), *args, **kwargs)
        return self

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        if self.critic_loss == "mse":
            super().train(gradient_steps, batch_size)
        else:
            with _critic_loss(self.critic_loss, self.risk_aversion):
                super().train(gradient_steps, batch_size)
        self.logger.record("train/risk_aversion", self.risk_aversion)
