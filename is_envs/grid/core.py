"""The item pick-up rules, for a batch of episodes stepped in lock step (numpy).

The Gymnasium env is this core with a batch of one; the batched evaluator runs thousands of
episodes through the same code. State per episode: agent position, load (0/1), and the age of
the waiting item on every cell (−1: no item).

One step, in this order:
1. t += 1 (the episode terminates when t = 200);
2. move (0 stay, 1 up, 2 right, 3 down, 4 left); −1 if the position changed (a wall bump costs 0);
3. if empty and an item lies on the agent's cell: pick it up (+7.5); **else if** loaded and on the
   depot: drop off (+7.5);
4. every waiting item ages by 1; items with age ≥ 10 expire;
5. the items of step t spawn on free cells (a spawn on a live item is dropped; one on the agent's
   cell waits for a later step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from is_envs.grid.distributions import DEPOT, GRID_SIZE
from is_envs.grid.items import EPISODE_LENGTH

__all__ = ["ITEM_LIFETIME", "MOVES", "REWARD_DELIVERY_HALF", "GridState", "observe", "step"]

#: (Δrow, Δcol) of actions 0 stay, 1 up, 2 right, 3 down, 4 left
MOVES = np.array([[0, 0], [-1, 0], [0, 1], [1, 0], [0, -1]], dtype=np.int64)
ITEM_LIFETIME = 10
REWARD_DELIVERY_HALF = 7.5  # paid at pick-up and again at drop-off
MOVE_COST = 1.0


@dataclass
class GridState:
    """The state of ``n`` episodes: positions ``(n, 2)``, loads ``(n,)``, item ages ``(n, 5, 5)``, time t."""

    pos: np.ndarray
    load: np.ndarray
    age: np.ndarray
    t: int = 0

    @classmethod
    def start(cls, n: int) -> GridState:
        """All agents empty on the depot, no items, t = 0."""
        pos = np.tile(np.array(DEPOT, dtype=np.int64), (n, 1))
        return cls(pos, np.zeros(n, dtype=np.int64), np.full((n, GRID_SIZE, GRID_SIZE), -1, dtype=np.int64))


@dataclass
class StepEvents:
    """Per-episode events of one step (each shape ``(n,)``)."""

    moved: np.ndarray
    picked: np.ndarray
    delivered: np.ndarray
    expired: np.ndarray

    @property
    def reward(self) -> np.ndarray:
        return REWARD_DELIVERY_HALF * (self.picked + self.delivered) - MOVE_COST * self.moved


def step(state: GridState, actions: np.ndarray, spawns: np.ndarray) -> StepEvents:
    """Advance every episode by one step in place.

    :param state: the batch state (modified in place).
    :param actions: int actions in 0..4, shape ``(n,)``.
    :param spawns: bool spawn mask of this step (t after the increment), shape ``(n, 5, 5)``.
    :return: the step's events; ``events.reward`` is the reward.
    """
    n = len(state.pos)
    idx = np.arange(n)
    state.t += 1
    # 2. move
    new_pos = np.minimum(np.maximum(state.pos + MOVES[actions], 0), GRID_SIZE - 1)  # np.clip is slower
    moved = (new_pos != state.pos).any(axis=1).astype(np.int64)
    state.pos = new_pos
    r, c = new_pos[:, 0], new_pos[:, 1]
    # 3. pick up xor drop off
    picked = ((state.load == 0) & (state.age[idx, r, c] >= 0)).astype(np.int64)
    at_depot = (r == DEPOT[0]) & (c == DEPOT[1])
    delivered = ((picked == 0) & (state.load == 1) & at_depot).astype(np.int64)
    state.age[idx[picked == 1], r[picked == 1], c[picked == 1]] = -1
    state.load = state.load + picked - delivered
    # 4. ageing and expiry
    live = state.age >= 0
    state.age[live] += 1
    gone = state.age >= ITEM_LIFETIME
    expired = gone.sum(axis=(1, 2))
    state.age[gone] = -1
    # 5. spawns on free cells
    state.age[spawns & (state.age < 0)] = 0
    return StepEvents(moved, picked, delivered, expired)


def observe(state: GridState, clock: bool = False) -> np.ndarray:
    """Observations ``(n, 3, 5, 5)`` float32: depot one-hot; (10 − age)/10 per waiting item;
    1.0 (empty) or 0.5 (loaded) at the agent; with ``clock``, ``(n, 4, 5, 5)``: a fourth channel holding the share
    of the episode still to come, (200 − t)/200, in every cell."""
    n = len(state.pos)
    obs = np.zeros((n, 3 + clock, GRID_SIZE, GRID_SIZE), dtype=np.float32)
    if clock:
        obs[:, 3] = (EPISODE_LENGTH - state.t) / EPISODE_LENGTH
    obs[:, 0, DEPOT[0], DEPOT[1]] = 1.0
    live = state.age >= 0
    obs[:, 1][live] = (ITEM_LIFETIME - state.age[live]) / ITEM_LIFETIME
    obs[np.arange(n), 2, state.pos[:, 0], state.pos[:, 1]] = np.where(state.load == 1, 0.5, 1.0)
    return obs
