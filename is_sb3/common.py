"""Small helpers shared by the algorithms."""

from __future__ import annotations

import gymnasium as gym
from stable_baselines3.common.type_aliases import GymEnv

import is_envs  # noqa: F401  (registers the env ids used by name)

__all__ = ["make_env"]


def make_env(env: GymEnv | str) -> GymEnv:
    """``gym.make(env)`` for an id, the env itself otherwise.

    SB3 would make an id with ``render_mode="rgb_array"``, which is-rl's environments do not draw.
    """
    return gym.make(env) if isinstance(env, str) else env
