"""Item sources: where and when items appear, as spawn masks ``(n_episodes, 200, 5, 5)`` (bool).

``spawns[e, k, r, c]`` is True when an item arrives at cell (r, c) at step k + 1 of episode e.
Two sources share that interface: :class:`ProbabilityGrid` draws fresh episodes with a seeded
generator, :class:`EpisodeTable` serves Enders' released episodes (SPEC §5; format in
``shared/data/item_pickup/README.md``), loaded once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from is_envs.grid.distributions import GRID_SIZE, distribution

__all__ = ["EPISODE_LENGTH", "SPLITS", "EpisodeTable", "ItemSource", "ProbabilityGrid", "make_source"]

EPISODE_LENGTH = 200
SPLITS = ("training", "validation", "test")


class ItemSource(Protocol):
    """Produces spawn masks for episodes."""

    def next_episodes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Spawn masks of the next ``n`` episodes, shape ``(n, 200, 5, 5)``, bool."""
        ...

    def restart(self) -> None:
        """Go back to the start of the source's order (no-op for generated episodes)."""
        ...


class ProbabilityGrid:
    """Unlimited fresh episodes: each step each cell spawns independently with probability p[r, c].

    :param probabilities: a distribution name or a 5×5 probability grid (depot 0).
    """

    def __init__(self, probabilities: str | object) -> None:
        self.probabilities = distribution(probabilities)

    def next_episodes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        shape = (n, EPISODE_LENGTH, GRID_SIZE, GRID_SIZE)
        return rng.random(shape) < self.probabilities

    def restart(self) -> None:
        return None


class EpisodeTable:
    """Released episodes from an ``.npz`` table, one split.

    The training split is served as a fresh random permutation per pass (drawn from the caller's
    generator); validation and test are served in order, so ``len(split)`` consecutive episodes
    cover the split exactly once.

    :param path: path to ``<name>.npz`` with arrays episode, step (1..200), row, col and the split lists.
    :param split: "training", "validation" or "test".
    """

    def __init__(self, path: str | Path, split: str = "test") -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"episodes file {str(path)!r} does not exist")
        with np.load(path) as data:
            missing = {"episode", "step", "row", "col", split} - set(data.files)
            if missing:
                raise ValueError(f"episodes file {str(path)!r} lacks arrays {sorted(missing)}")
            ids = np.asarray(data[split], dtype=np.int64)
            episode, step = data["episode"].astype(np.int64), data["step"].astype(np.int64)
            row, col = data["row"].astype(np.int64), data["col"].astype(np.int64)
        if np.any((step < 1) | (step > EPISODE_LENGTH)) or np.any((row >= GRID_SIZE) | (col >= GRID_SIZE)):
            raise ValueError(f"episodes file {str(path)!r} has steps or cells out of range")
        index = {int(e): i for i, e in enumerate(ids)}
        keep = np.isin(episode, ids)
        masks = np.zeros((len(ids), EPISODE_LENGTH, GRID_SIZE, GRID_SIZE), dtype=bool)
        rows = np.array([index[int(e)] for e in episode[keep]], dtype=np.int64)
        masks[rows, step[keep] - 1, row[keep], col[keep]] = True
        masks.setflags(write=False)
        self.path, self.split, self.episode_ids, self.masks = path, split, ids, masks
        self._order = np.arange(len(ids))
        self._cursor = 0
        self._shuffle = split == "training"

    def __len__(self) -> int:
        return len(self.episode_ids)

    def restart(self) -> None:
        self._cursor = 0

    def next_episodes(self, n: int, rng: np.random.Generator) -> np.ndarray:
        picks = []
        for _ in range(n):
            if self._cursor == 0 and self._shuffle:  # a new pass: a new permutation
                self._order = rng.permutation(len(self))
            picks.append(self._order[self._cursor])
            self._cursor = (self._cursor + 1) % len(self)
        return self.masks[np.array(picks, dtype=np.int64)]


def make_source(distribution_or_episodes: str | Path | object, split: str = "test") -> ItemSource:
    """A source from a distribution name, a 5×5 grid, or a path to a released ``.npz`` table."""
    if isinstance(distribution_or_episodes, Path) or (
        isinstance(distribution_or_episodes, str) and distribution_or_episodes.endswith(".npz")
    ):
        return EpisodeTable(distribution_or_episodes, split)
    return ProbabilityGrid(distribution_or_episodes)
