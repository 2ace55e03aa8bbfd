"""Gymnasium front end of the item pick-up grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from is_envs.grid import core
from is_envs.grid.distributions import GRID_SIZE
from is_envs.grid.items import EPISODE_LENGTH, EpisodeTable, make_source

__all__ = ["ItemPickupEnv"]


class ItemPickupEnv(gym.Env[np.ndarray, np.int64]):
    """Stochastic item pick-up on a 5×5 warehouse grid (Enders et al. 2024).

    ## Description
    Items appear on the grid at random; the agent carries one at a time from its cell to the depot
    at (2, 0). An item left waiting expires after 10 steps. The spatial law of the arrivals can
    shift between training and test, which is what the environment is for.

    ## Action space
    ``Discrete(5)``: 0 stay, 1 up (row − 1), 2 right (col + 1), 3 down (row + 1), 4 left (col − 1).
    A move off the grid leaves the agent in place and costs nothing.

    ## Observation space
    ``Box(0, 1, (3, 5, 5), float32)``: channel 0 one-hot of the depot; channel 1 (10 − age)/10 at
    each waiting item; channel 2 at the agent 1.0 if empty, 0.5 if loaded. With ``clock=True``,
    ``(4, 5, 5)``: channel 3 holds the share of the episode still to come, (200 − t)/200, in every cell.

    ## Rewards
    −1 per step in which the position changed; +7.5 at a pick-up and +7.5 at a drop-off.
    The step order is: time, move, pick-up xor drop-off, ageing/expiry, spawns (see
    :mod:`is_envs.grid.core`).

    ## Starting state
    Empty agent on the depot, no items, t = 0.

    ## Episode end
    Terminated (not truncated) at t = 200. ``info`` holds the step's ``picked``, ``delivered``,
    ``expired`` and ``moves`` counts and the time ``t``.

    ## Arguments
    - ``distribution``: a name of :data:`is_envs.grid.DISTRIBUTIONS` (default "gradient1", the
      training distribution) or a 5×5 grid of spawn probabilities (depot 0); fresh episodes are
      drawn from the env's seeded generator.
    - ``episodes``: instead, Enders' released episodes: a distribution name (the table shipped with
      the package, e.g. ``episodes="gradient1"``) or a path to an ``.npz`` table; ``split`` picks "training"
      (a random permutation per pass), "validation" or "test" (in order). ``reset(seed=…)``
      restarts the order; ``reset(options={"episode": k})`` replays the k-th episode of the split.
    - ``clock``: add the time left to the observation (default ``False``, Enders' and the IS paper's
      observation). The episode ends at a fixed step; a critic that cannot see how near it is learns one
      value for states that differ only in the time left, and a risk-averse one prices the end as a risk
      (see ``benchmarks/item_pickup_critic_time.py``).
    """

    metadata: dict[str, Any] = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}  # noqa: RUF012
    #: pixels per grid cell of ``render_mode="rgb_array"``
    CELL_PIXELS = 16
    #: whether the observation has the clock channel (a class default too: envs pickled before the option had none)
    clock: bool = False

    def __init__(
        self,
        distribution: str | object = "gradient1",
        episodes: str | Path | None = None,
        split: str = "test",
        render_mode: str | None = None,
        clock: bool = False,
    ) -> None:
        super().__init__()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        self.render_mode = render_mode
        self.source = EpisodeTable(episodes, split) if episodes is not None else make_source(distribution)
        if not isinstance(clock, bool):
            raise ValueError(f"clock must be True or False, got {clock!r}")
        self.clock = clock
        self.observation_space = spaces.Box(0.0, 1.0, shape=(3 + clock, GRID_SIZE, GRID_SIZE), dtype=np.float32)
        self.action_space = spaces.Discrete(5)
        self._state = core.GridState.start(1)
        self._spawns = np.zeros((1, EPISODE_LENGTH, GRID_SIZE, GRID_SIZE), dtype=bool)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None:
            self.source.restart()
        unknown = set(options or {}) - {"episode"}
        if unknown:  # a typo such as "episod" would otherwise replay the next episode silently
            raise ValueError(f"reset options must be among {{'episode'}}, got {sorted(unknown)}")
        episode = (options or {}).get("episode")
        if episode is not None:
            masks = getattr(self.source, "masks", None)
            integral = isinstance(episode, int | np.integer) and not isinstance(episode, bool)
            if masks is None or not integral or not 0 <= int(episode) < len(masks):
                raise ValueError(
                    "options['episode'] needs a released episode table and an integer index within its split "
                    f"(0..{len(masks) - 1 if masks is not None else '?'}), got {episode!r}"
                )
            self._spawns = masks[int(episode)][None]
        else:
            self._spawns = self.source.next_episodes(1, self.np_random)
        self._state = core.GridState.start(1)
        return core.observe(self._state, self.clock)[0], {"t": 0}

    def step(self, action: np.int64 | int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._state.t >= EPISODE_LENGTH:
            raise RuntimeError("step() called after the episode terminated; call reset()")
        value = np.asarray(action).reshape(-1)  # an int, a NumPy integer, or an array of one (SB3's predict: (1,))
        kind = value.dtype.kind
        integral = kind in "iu" or (kind == "f" and bool(np.all(np.isfinite(value) & (value == np.round(value)))))
        if value.size != 1 or not integral or not 0 <= value[0] < 5:
            raise ValueError(f"action must be an integer in 0..4, got {action!r}")
        a = int(value[0])
        ev = core.step(self._state, np.array([a]), self._spawns[:, self._state.t])
        info = {
            "t": self._state.t,
            "picked": int(ev.picked[0]),
            "delivered": int(ev.delivered[0]),
            "expired": int(ev.expired[0]),
            "moves": int(ev.moved[0]),
        }
        terminated = self._state.t == EPISODE_LENGTH
        return core.observe(self._state, self.clock)[0], float(ev.reward[0]), terminated, False, info

    def render(self) -> str | np.ndarray | None:
        """``"ansi"``: a text picture (D depot, A/a agent empty/loaded, digits the remaining life of items);
        ``"rgb_array"``: an image (80, 80, 3) uint8, 16 pixels per cell: white floor, grey depot, items in green
        that fades with their age, the agent in blue when empty and orange when loaded (SB3's ``make_vec_env``
        and video recorders ask for this mode)."""
        if self.render_mode == "rgb_array":
            return self._rgb()
        if self.render_mode != "ansi":
            return None
        s = self._state
        rows = []
        for r in range(GRID_SIZE):
            cells = []
            for c in range(GRID_SIZE):
                if (s.pos[0] == (r, c)).all():
                    cells.append("A" if s.load[0] == 0 else "a")
                elif s.age[0, r, c] >= 0:
                    cells.append(str(core.ITEM_LIFETIME - 1 - s.age[0, r, c]))
                elif (r, c) == core.DEPOT:
                    cells.append("D")
                else:
                    cells.append(".")
            rows.append(" ".join(cells))
        return f"t={s.t}\n" + "\n".join(rows)

    def _rgb(self) -> np.ndarray:
        s, k = self._state, self.CELL_PIXELS
        cells = np.full((GRID_SIZE, GRID_SIZE, 3), 255, dtype=np.uint8)
        cells[core.DEPOT] = (150, 150, 150)
        waiting = s.age[0] >= 0
        life = (core.ITEM_LIFETIME - s.age[0]) / core.ITEM_LIFETIME  # 1 when new, 0.1 just before expiry
        green = np.stack([255 * (1 - life), np.full_like(life, 160.0), 255 * (1 - life)], axis=-1)
        cells[waiting] = green[waiting].astype(np.uint8)
        r, c = (int(v) for v in s.pos[0])
        cells[r, c] = (31, 119, 180) if s.load[0] == 0 else (255, 127, 14)
        return np.repeat(np.repeat(cells, k, axis=0), k, axis=1)
