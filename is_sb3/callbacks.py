"""SB3 callbacks for risk-averse training on the item pick-up grid."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from is_envs.grid import evaluate, shift_table

__all__ = ["GridValidationCallback", "ShiftTableCallback"]


class GridValidationCallback(BaseCallback):
    """Every ``eval_freq`` steps, the mean return on validation episodes (batched evaluator); saves the
    best model (atomically) once ``save_after`` steps have passed.

    :param eval_freq: environment steps between validations.
    :param episodes: a distribution name, a 5×5 grid or a released ``.npz`` table (any distribution,
        e.g. a shifted one).
    :param split: split of a released table ("validation" by default).
    :param n_episodes: episodes per validation (default: the whole split, or 100 generated).
    :param best_model_path: where to save the best model (``None``: do not save).
    :param save_after: no best-model saving before this many steps (Enders: after the entropy is off).
    :param seed: seed of generated episodes (the same episodes at every validation).
    :param name: label of the printed lines (e.g. the run's configuration).
    :param verbose: 1 prints each validation.
    """

    def __init__(
        self,
        eval_freq: int,
        episodes: Any = "gradient1",
        split: str = "validation",
        n_episodes: int | None = None,
        best_model_path: str | Path | None = None,
        save_after: int = 0,
        seed: int = 0,
        name: str = "",
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        self.name = f"[{name}] " if name else ""
        if eval_freq < 1:
            raise ValueError(f"eval_freq must be >= 1, got {eval_freq}")
        self.eval_freq, self.episodes, self.split = eval_freq, episodes, split
        self.n_episodes, self.seed, self.save_after = n_episodes, seed, save_after
        self.best_model_path = Path(best_model_path) if best_model_path is not None else None
        self.best_mean = -np.inf
        self.history: list[tuple[int, float]] = []

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq == 0:
            returns = evaluate(self.model, self.episodes, self.split, self.n_episodes, seed=self.seed)
            mean = float(returns.mean())
            self.history.append((self.num_timesteps, mean))
            self.logger.record("validation/mean_return", mean)
            self.logger.record("validation/se_return", float(returns.std(ddof=1) / np.sqrt(len(returns))))
            if self.verbose:
                print(f"{self.name}step {self.num_timesteps}: validation mean return {mean:.2f}", flush=True)
            if self.num_timesteps >= self.save_after and mean > self.best_mean:
                self.best_mean = mean
                if self.best_model_path is not None:
                    self.best_model_path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = self.best_model_path.with_name(f".{self.best_model_path.stem}.tmp.zip")
                    self.model.save(tmp)
                    os.replace(tmp, self.best_model_path)
        return True


class ShiftTableCallback(BaseCallback):
    """At the end of training, the twelve-distribution table (:func:`is_envs.grid.shift_table`),
    logged as ``shift/<name>`` and ``shift_relative/<name>`` and kept in ``self.table``.

    :param episodes_dir: folder of the released ``<name>.npz`` tables (``None``: generated episodes).
    :param n_episodes: generated episodes per distribution where no table exists.
    :param verbose: verbosity.
    """

    def __init__(self, episodes_dir: str | Path | None = None, n_episodes: int = 100, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.episodes_dir, self.n_episodes = episodes_dir, n_episodes
        self.table: dict[str, dict[str, Any]] = {}

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self.table = shift_table(self.model, self.episodes_dir, self.n_episodes)
        for name, row in self.table.items():
            self.logger.record(f"shift/{name}", row["mean_return"])
            self.logger.record(f"shift_relative/{name}", row["relative_to_greedy"])
        self.logger.dump(self.num_timesteps)
