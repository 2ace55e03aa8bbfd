"""Item sources: where and when items appear, as spawn masks ``(n_episodes, 200, 5, 5)`` (bool).

``spawns[e, k, r, c]`` is True when an item arrives at cell (r, c) at step k + 1 of episode e.
Two sources share that interface: :class:`ProbabilityGrid` draws fresh episodes with a seeded
generator, :class:`EpisodeTable` serves Enders' released episodes, loaded once. The twelve
released tables ship with the package (``is_envs/grid/data/``, format and MIT notice in its README) and
are found by distribution name: :func:`released_episodes`.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Protocol

import numpy as np

from is_envs.grid.distributions import DISTRIBUTIONS, GRID_SIZE, distribution

__all__ = [
    "EPISODE_LENGTH",
    "RELEASED_DIR",
    "SPLITS",
    "EpisodeTable",
    "ItemSource",
    "ProbabilityGrid",
    "episodes_path",
    "make_source",
    "released_episodes",
]

EPISODE_LENGTH = 200
SPLITS = ("training", "validation", "test")
#: folder of the twelve released ``<name>.npz`` tables shipped with the package
RELEASED_DIR = Path(__file__).resolve().parent / "data"


def released_episodes(name: str) -> Path:
    """Path of the released episode table of distribution ``name`` (shipped with the package).

    :param name: one of :data:`is_envs.grid.DISTRIBUTIONS` ("gradient1", ..., "unstructured").
    """
    if name not in DISTRIBUTIONS:
        raise ValueError(f"released episodes exist for the distributions {sorted(DISTRIBUTIONS)}, got {name!r}")
    path = RELEASED_DIR / f"{name}.npz"
    if not path.is_file():  # only if the installation is broken
        raise FileNotFoundError(f"the package's released episodes {str(path)!r} are missing; reinstall is-rl")
    return path


def episodes_path(episodes: str | Path) -> Path:
    """A released table by distribution name (``"gradient1"``) or an ``.npz`` path, as a checked :class:`Path`."""
    if isinstance(episodes, str) and episodes in DISTRIBUTIONS:
        return released_episodes(episodes)
    path = Path(episodes)
    if not path.is_file():
        names = sorted(DISTRIBUTIONS)
        raise ValueError(f"episodes must be a distribution name {names} or an .npz file, got {str(episodes)!r}")
    return path


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

    :param path: a distribution name (the package's released table) or a path to ``<name>.npz`` with
        arrays episode, step (1..200), row, col and the split lists.
    :param split: "training", "validation" or "test".
    """

    def __init__(self, path: str | Path, split: str = "test") -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        path = episodes_path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = {"episode", "step", "row", "col", split} - set(data.files)
                if missing:
                    raise ValueError(f"lacks arrays {sorted(missing)}")
                arrays = {name: np.asarray(data[name]) for name in ("episode", "step", "row", "col", split)}
        except (OSError, ValueError, zipfile.BadZipFile) as err:  # corrupt zip, pickled arrays, missing arrays
            raise ValueError(f"episodes file {str(path)!r} is not a valid episode table: {err}") from None
        for name, values in arrays.items():  # integers only: a float step or cell would be truncated silently
            if values.dtype.kind not in "iu" and not (values.dtype.kind == "f" and np.all(np.mod(values, 1) == 0)):
                raise ValueError(f"episodes file {str(path)!r}: {name} must hold integers, got {values.dtype} values")
        ids = arrays[split].astype(np.int64)
        episode, step = arrays["episode"].astype(np.int64), arrays["step"].astype(np.int64)
        row, col = arrays["row"].astype(np.int64), arrays["col"].astype(np.int64)
        if ids.ndim != 1 or len(ids) == 0:
            raise ValueError(f"episodes file {str(path)!r}: the {split} split lists no episode")
        if len(np.unique(ids)) != len(ids):
            raise ValueError(f"episodes file {str(path)!r}: the {split} split lists an episode id more than once")
        if not (episode.shape == step.shape == row.shape == col.shape and episode.ndim == 1):
            raise ValueError(f"episodes file {str(path)!r}: episode, step, row and col must be 1-D of equal length")
        if np.any((step < 1) | (step > EPISODE_LENGTH)) or np.any(
            (row < 0) | (row >= GRID_SIZE) | (col < 0) | (col >= GRID_SIZE)
        ):
            raise ValueError(
                f"episodes file {str(path)!r} has steps outside 1..{EPISODE_LENGTH} or cells outside 0..{GRID_SIZE - 1}"
            )
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
    """A source from a distribution name or a 5×5 grid (generated episodes), or a released table: a path
    (:class:`Path` or a string ending in ``.npz``; use :func:`released_episodes` for the shipped ones)."""
    if isinstance(distribution_or_episodes, Path) or (
        isinstance(distribution_or_episodes, str) and distribution_or_episodes.endswith(".npz")
    ):
        return EpisodeTable(distribution_or_episodes, split)
    return ProbabilityGrid(distribution_or_episodes)
