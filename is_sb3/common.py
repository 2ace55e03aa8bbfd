"""Small helpers shared by the algorithms."""

from __future__ import annotations

import argparse
import math

import gymnasium as gym
import numpy as np
from stable_baselines3.common.type_aliases import GymEnv

import is_envs  # noqa: F401  (registers the env ids used by name)

__all__ = ["check_risk_settings", "check_total_timesteps", "make_env", "positive_int"]


def make_env(env: GymEnv | str) -> GymEnv:
    """``gym.make(env)`` for an id, the env itself otherwise.

    SB3 would make an id with ``render_mode="rgb_array"``, which is-rl's environments do not draw.
    """
    return gym.make(env) if isinstance(env, str) else env


def check_risk_settings(risk_aversion: float, critic_loss: str) -> float:
    """Validate the two risk arguments every algorithm takes; returns α as a float."""
    from is_sb3.losses import LOSSES
    from is_sb3.validation import MAX_RISK_AVERSION

    if isinstance(risk_aversion, bool) or not isinstance(risk_aversion, int | float | np.floating | np.integer):
        raise ValueError(f"risk_aversion must be a finite real number, got {risk_aversion!r}")
    alpha = float(risk_aversion)
    if not math.isfinite(alpha):
        raise ValueError(f"risk_aversion must be a finite real number, got {risk_aversion!r}")
    if abs(alpha) > MAX_RISK_AVERSION:
        raise ValueError(
            f"risk_aversion must be in [-{MAX_RISK_AVERSION:g}, {MAX_RISK_AVERSION:g}], got {risk_aversion!r}: beyond "
            "it e^(α·δ) overflows float32 for TD errors δ above 1e-4"
        )
    if critic_loss not in LOSSES:
        raise ValueError(f"critic_loss must be one of {sorted(LOSSES)}, got {critic_loss!r}")
    return alpha


def check_total_timesteps(total_timesteps: int) -> int:
    """``learn``'s budget as an int ≥ 1 (SB3 itself would silently train nothing for 0 or less)."""
    if isinstance(total_timesteps, bool) or int(total_timesteps) != total_timesteps or total_timesteps < 1:
        raise ValueError(f"total_timesteps must be an integer >= 1, got {total_timesteps!r}")
    return int(total_timesteps)


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1 (argparse turns the error into a one-line usage error, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value
