"""Batched evaluation on the grid: many episodes at once through the same rules as the env."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from is_envs.grid import core
from is_envs.grid.distributions import DEPOT
from is_envs.grid.items import EPISODE_LENGTH, RELEASED_DIR, EpisodeTable, make_source

__all__ = ["EpisodeEvents", "Predictor", "episode_events", "evaluate", "observes_clock", "shift_table"]


class Predictor(Protocol):
    """Anything with SB3's ``predict``: SB3 models, :class:`GreedyPolicy`."""

    def predict(
        self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True
    ) -> tuple[Any, Any]: ...


def evaluate(
    policy: Predictor,
    distribution_or_episodes: str | Path | object = "gradient1",
    split: str = "test",
    n_episodes: int | None = None,
    seed: int | None = 0,
    deterministic: bool = True,
) -> np.ndarray:
    """Per-episode returns of ``policy`` on many episodes stepped together (vectorised numpy): the ``returns`` of
    :func:`episode_events`, whose arguments these are (the policy: anything with SB3's
    ``predict(obs_batch, deterministic=...) -> (actions, state)``; the distribution: a name, a 5×5 grid, or a
    released ``.npz``).

    :return: returns, shape ``(n_episodes,)``, float64, in episode order.
    """
    return episode_events(policy, distribution_or_episodes, split, n_episodes, seed, deterministic).returns


@dataclass(frozen=True)
class EpisodeEvents:
    """What happened in each of ``n`` episodes (every field an array of shape ``(n,)``, but ``step_rewards``).

    ``returns = 7.5 · (picked + delivered) − moves`` exactly. ``loaded_detour``: the moves made while carrying
    the items that were delivered, minus the Manhattan distances from their pick-up cells to the depot (0 for a
    policy that always carries straight home, as the greedy one). ``agreement``: the fraction of the episode's
    steps on which the policy took the reference policy's action in the same state (only with a reference;
    several actions can be equally good, so 1 − agreement bounds how often the policy chose differently, not how
    often it chose worse). ``stood_for_move``: steps on which the policy stood (stay, or a move into a wall) where
    the reference would have moved; ``moved_for_stand``: steps on which it moved where the reference would have
    stayed (only with a reference).
    """

    returns: np.ndarray
    picked: np.ndarray
    delivered: np.ndarray
    moves: np.ndarray
    moves_loaded: np.ndarray
    loaded_detour: np.ndarray
    stays: np.ndarray
    wall_bumps: np.ndarray
    expired: np.ndarray
    agreement: np.ndarray | None = None
    stood_for_move: np.ndarray | None = None
    moved_for_stand: np.ndarray | None = None
    #: each step's reward, shape ``(n, 200)``: ``step_rewards[:, k]`` is the reward of the episodes' (k+1)-th step
    step_rewards: np.ndarray | None = None


def episode_events(
    policy: Predictor,
    distribution_or_episodes: str | Path | object = "gradient1",
    split: str = "test",
    n_episodes: int | None = None,
    seed: int | None = 0,
    deterministic: bool = True,
    reference: Predictor | None = None,
) -> EpisodeEvents:
    """Returns and event counts of ``policy`` on many episodes stepped together: where a return comes from
    (items picked up and delivered, moves, detours, items left to expire) and, with ``reference`` (e.g.
    :class:`~is_envs.grid.greedy.GreedyPolicy`), how often the policy acts as the reference would in its states.

    :param policy: an object with ``predict(obs_batch, deterministic=...) -> (actions, state)``; one whose
        ``observation_space`` has 4 channels (trained on ``ItemPickupEnv(clock=True)``) is shown the clock.
    :param distribution_or_episodes: a distribution name, a 5×5 grid, or a path to a released ``.npz``.
    :param split: for released tables: "training", "validation" or "test" (in order, from its start).
    :param n_episodes: number of episodes (default: the whole split, or 100 generated episodes).
    :param seed: seed for generated episodes (and the training split's permutation).
    :param deterministic: passed to ``predict``.
    :param reference: a second policy asked for its action in each state the first one visits (never acted on).
    :return: the per-episode counts, :class:`EpisodeEvents`.
    """
    source = make_source(
        Path(distribution_or_episodes) if isinstance(distribution_or_episodes, Path) else distribution_or_episodes,
        split,
    )
    if n_episodes is None:
        n_episodes = len(source) if isinstance(source, EpisodeTable) else 100
    if int(n_episodes) < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes!r}")
    n = int(n_episodes)
    rng = np.random.default_rng(seed)
    spawns = source.next_episodes(n, rng)
    state = core.GridState.start(n)
    count = {name: np.zeros(n, dtype=np.int64) for name in
             ("picked", "delivered", "moves", "moves_loaded", "carried", "shortest", "stays", "wall_bumps", "expired",
              "agree", "stood_for_move", "moved_for_stand")}  # fmt: skip
    rewards = np.zeros((n, EPISODE_LENGTH))
    carried_moves = np.zeros(n, dtype=np.int64)  # moves since the item now carried was picked up
    carried_shortest = np.zeros(n, dtype=np.int64)  # its pick-up cell's distance to the depot
    clock = observes_clock(policy)
    obs = core.observe(state, clock)
    for k in range(EPISODE_LENGTH):
        actions, _ = policy.predict(obs, deterministic=deterministic)
        actions = np.asarray(actions, dtype=np.int64).reshape(-1)
        if reference is not None:
            wanted, _ = reference.predict(obs, deterministic=True)
            wanted = np.asarray(wanted, dtype=np.int64).reshape(-1)
            count["agree"] += wanted == actions
        loaded = state.load == 1
        events = core.step(state, actions, spawns[:, k])
        rewards[:, k] = events.reward
        count["picked"] += events.picked
        count["delivered"] += events.delivered
        count["moves"] += events.moved
        count["expired"] += events.expired
        count["stays"] += actions == 0
        count["wall_bumps"] += (actions != 0) & (events.moved == 0)
        if reference is not None:
            count["stood_for_move"] += (events.moved == 0) & (wanted != 0)
            count["moved_for_stand"] += (events.moved == 1) & (wanted == 0)
        carried_moves += loaded * events.moved
        count["moves_loaded"] += loaded * events.moved
        done = events.delivered == 1
        count["shortest"][done] += carried_shortest[done]
        count["carried"][done] += carried_moves[done]
        carried_moves[done] = 0
        got = events.picked == 1
        carried_moves[got] = 0
        carried_shortest[got] = np.abs(state.pos[got] - np.asarray(DEPOT)).sum(axis=1)
        obs = core.observe(state, clock)
    return EpisodeEvents(
        returns=rewards.sum(axis=1), picked=count["picked"], delivered=count["delivered"], moves=count["moves"],
        moves_loaded=count["moves_loaded"], loaded_detour=count["carried"] - count["shortest"],
        stays=count["stays"], wall_bumps=count["wall_bumps"], expired=count["expired"],
        agreement=count["agree"] / EPISODE_LENGTH if reference is not None else None,
        stood_for_move=count["stood_for_move"] if reference is not None else None,
        moved_for_stand=count["moved_for_stand"] if reference is not None else None, step_rewards=rewards,
    )  # fmt: skip


def observes_clock(policy: object) -> bool:
    """Whether ``policy`` was made for ``ItemPickupEnv(clock=True)``: its ``observation_space`` (SB3 models have
    one) has 4 channels. Policies without one (:class:`~is_envs.grid.greedy.GreedyPolicy`) see 3."""
    shape = getattr(getattr(policy, "observation_space", None), "shape", None)
    return shape is not None and len(shape) == 3 and shape[0] == 4


def shift_table(
    policy: Predictor, episodes_dir: str | Path | None = RELEASED_DIR, n_episodes: int = 100, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Mean test return of ``policy`` on all twelve distributions, and relative to the greedy baseline.

    :param policy: anything with SB3's ``predict(obs, deterministic=True)``.
    :param episodes_dir: folder of the twelve ``<name>.npz`` tables whose test split is used (default: the
        released tables shipped with the package); ``None``: ``n_episodes`` generated episodes per
        distribution (the same ones for the policy and the baseline).
    :param n_episodes: generated episodes per distribution (only with ``episodes_dir=None``).
    :param seed: seed of the generated episodes.
    :return: ``{name: {"mean_return", "se", "greedy_mean_return", "relative_to_greedy", "episodes"}}``.
    """
    from is_envs.grid.distributions import DISTRIBUTIONS
    from is_envs.grid.greedy import GreedyPolicy

    if episodes_dir is not None:
        folder = Path(episodes_dir)
        missing = [name for name in DISTRIBUTIONS if not (folder / f"{name}.npz").is_file()]
        if missing:
            raise ValueError(f"episodes_dir {str(folder)!r} lacks the tables {[m + '.npz' for m in missing]}")
    elif int(n_episodes) < 1:
        raise ValueError(f"n_episodes must be >= 1, got {n_episodes!r}")
    table: dict[str, dict[str, Any]] = {}
    for name in DISTRIBUTIONS:
        source: Any = name if episodes_dir is None else Path(episodes_dir) / f"{name}.npz"
        n = None if episodes_dir is not None else n_episodes
        mine = evaluate(policy, source, split="test", n_episodes=n, seed=seed)
        greedy = evaluate(GreedyPolicy(), source, split="test", n_episodes=n, seed=seed)
        table[name] = {
            "mean_return": float(mine.mean()),
            "se": float(mine.std(ddof=1) / np.sqrt(len(mine))) if len(mine) > 1 else float("nan"),
            "greedy_mean_return": float(greedy.mean()),
            "relative_to_greedy": float(mine.mean() / greedy.mean()),
            "episodes": "released test" if episodes_dir is not None else f"{n_episodes} generated",
        }
    return table
