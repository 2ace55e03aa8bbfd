"""The greedy baseline of Enders et al., acting from the observation alone."""

from __future__ import annotations

from typing import Any

import numpy as np

from is_envs.grid.core import ITEM_LIFETIME, REWARD_DELIVERY_HALF
from is_envs.grid.distributions import GRID_SIZE

__all__ = ["GreedyPolicy"]

_ROWS, _COLS = np.indices((GRID_SIZE, GRID_SIZE))


def _toward(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Action moving from ``pos`` toward ``target`` (both ``(n, 2)``), vertical first; 0 when there."""
    dr, dc = target[:, 0] - pos[:, 0], target[:, 1] - pos[:, 1]
    return np.select([dr < 0, dr > 0, dc > 0, dc < 0], [1, 3, 2, 4], default=0)


class GreedyPolicy:
    """If loaded, go to the depot; if empty, go for the reachable item of largest positive profit.

    An item of age a is reachable when its Manhattan distance d from the agent satisfies
    d ≤ 10 − a; its profit is 15 − (d + distance from the item to the depot). Ties go to the oldest
    item, then to the first cell in row-major order (the order in which Enders' reference
    implementation lists items). Moves are vertical first. With nothing worth taking: stay.

    Same call as an SB3 model: ``actions, _ = GreedyPolicy().predict(obs)``.
    """

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, None]:
        """Actions for observations ``(c, 5, 5)`` (returns shape ``()``) or ``(n, c, 5, 5)`` (``(n,)``); c = 3, or
        4 with a clock channel, which greedy ignores."""
        obs = np.asarray(observation, dtype=np.float32)
        single = obs.ndim == 3
        if single:
            obs = obs[None]
        if obs.ndim != 4 or obs.shape[1] not in (3, 4) or obs.shape[2:] != (GRID_SIZE, GRID_SIZE):
            raise ValueError(f"observation must have shape (3 or 4, 5, 5) or (n, 3 or 4, 5, 5), got {obs.shape}")
        obs = obs[:, :3]  # a clock channel (ItemPickupEnv(clock=True)) does not change greedy's action
        n = len(obs)
        flat = obs.reshape(n, 3, -1)
        agent = np.stack(np.divmod(flat[:, 2].argmax(1), GRID_SIZE), axis=1)
        depot = np.stack(np.divmod(flat[:, 0].argmax(1), GRID_SIZE), axis=1)
        loaded = flat[:, 2].max(1) < 0.75
        items = obs[:, 1] > 0
        age = np.rint(ITEM_LIFETIME * (1.0 - obs[:, 1])).astype(np.int64)
        d_agent = np.abs(_ROWS - agent[:, 0, None, None]) + np.abs(_COLS - agent[:, 1, None, None])
        d_depot = np.abs(_ROWS - depot[:, 0, None, None]) + np.abs(_COLS - depot[:, 1, None, None])
        profit = 2 * REWARD_DELIVERY_HALF - (d_agent + d_depot)
        valid = items & (d_agent <= ITEM_LIFETIME - age) & (profit > 0)
        # ties: the oldest item, then row-major order (the order of Enders' item list)
        key = profit * (ITEM_LIFETIME + 1) + age
        best = np.where(valid, key, -1).reshape(n, -1).argmax(1)
        item = np.stack(np.divmod(best, GRID_SIZE), axis=1)
        has_item = valid.reshape(n, -1).any(1)
        target = np.where(loaded[:, None], depot, np.where(has_item[:, None], item, agent))
        actions = _toward(agent, target)
        return (actions[0] if single else actions), None
