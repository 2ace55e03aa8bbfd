"""SB3 callbacks: validation and shift tables on the item pick-up grid, and a trace of training metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from is_envs.grid import RELEASED_DIR, evaluate, released_episodes, shift_table

__all__ = ["CertaintyEquivalentEvalCallback", "GridValidationCallback", "ShiftTableCallback", "TrainingTraceCallback"]


class GridValidationCallback(BaseCallback):
    """Every ``eval_freq`` steps, the mean return on validation episodes (batched evaluator); saves the
    best model (atomically) once ``save_after`` steps have passed.

    :param eval_freq: environment steps between validations.
    :param episodes: a released ``.npz`` table (default: the released gradient1 table shipped with the
        package; :func:`is_envs.grid.released_episodes` gives any other, e.g. a shifted one), or a
        distribution name or 5×5 grid for generated episodes.
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
        episodes: Any = released_episodes("gradient1"),  # noqa: B008  (a Path, immutable)
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
                    self.model.save(self.best_model_path)  # the agents' save is atomic (is_sb3.files)
        return True


class CertaintyEquivalentEvalCallback(BaseCallback):
    """SB3's ``EvalCallback`` for a risk-averse agent: every ``eval_freq`` calls (env steps for RiskSAC and
    DiscreteRiskSAC, iterations for RiskAC) it plays the same ``n_eval_episodes`` episodes (episode i reset with
    seed ``seed + i``) with the deterministic policy, logs the certainty equivalent of their returns
    CE_α = −(1/α) log mean e^{−αR} with its standard error, and the mean, and keeps the model with the best CE,
    not the best mean (a risk-averse agent's criterion; the two rank policies differently).

    Logged: ``eval/ce_return``, ``eval/ce_return_se``, ``eval/mean_return``, ``eval/se_return``. ``history`` holds
    ``(timestep, ce, ce_se, mean)`` per evaluation; ``best_ce`` the best CE so far.

    :param eval_env: a Gymnasium env or env id to evaluate on (not the training env).
    :param eval_freq: calls between evaluations.
    :param n_eval_episodes: episodes per evaluation (≥ 2: the SE needs two).
    :param risk_aversion: α of the CE (default: the model's ``risk_aversion``); 0 gives the mean.
    :param best_model_save_path: folder for ``best_model.zip`` (``None``: do not save).
    :param seed: seed of the first episode.
    :param verbose: 1 prints each evaluation.
    """

    def __init__(
        self,
        eval_env: Any,
        eval_freq: int = 10_000,
        n_eval_episodes: int = 100,
        risk_aversion: float | None = None,
        best_model_save_path: str | Path | None = None,
        seed: int = 0,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        import gymnasium as gym

        if eval_freq < 1:
            raise ValueError(f"eval_freq must be >= 1, got {eval_freq}")
        if n_eval_episodes < 2:
            raise ValueError(f"n_eval_episodes must be >= 2 (the SE needs two), got {n_eval_episodes}")
        if risk_aversion is not None and not (np.isfinite(risk_aversion) and risk_aversion >= 0):
            raise ValueError(f"risk_aversion must be a finite number >= 0, got {risk_aversion}")
        self.eval_env = gym.make(eval_env) if isinstance(eval_env, str) else eval_env
        self.eval_freq, self.n_eval_episodes, self.seed = eval_freq, n_eval_episodes, seed
        self.risk_aversion = risk_aversion
        self.best_model_save_path = Path(best_model_save_path) if best_model_save_path is not None else None
        self.best_ce = -np.inf
        self.history: list[tuple[int, float, float, float]] = []

    def _returns(self) -> np.ndarray:
        returns = []
        for i in range(self.n_eval_episodes):
            obs, _ = self.eval_env.reset(seed=self.seed + i)
            total, done = 0.0, False
            while not done:
                action, _ = self.model.predict(obs, deterministic=True)
                obs, reward, terminated, truncated, _ = self.eval_env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        return np.asarray(returns, dtype=np.float64)

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq != 0:
            return True
        import torch as th

        from is_sb3.risk import certainty_equivalent_with_se

        alpha = float(getattr(self.model, "risk_aversion", 0.0) if self.risk_aversion is None else self.risk_aversion)
        returns = self._returns()
        ce, ce_se = (float(v) for v in certainty_equivalent_with_se(th.as_tensor(returns), alpha))
        mean, se = float(returns.mean()), float(returns.std(ddof=1) / np.sqrt(len(returns)))
        self.history.append((self.num_timesteps, ce, ce_se, mean))
        for key, value in (("ce_return", ce), ("ce_return_se", ce_se), ("mean_return", mean), ("se_return", se)):
            self.logger.record(f"eval/{key}", value)
        if self.verbose:
            print(f"timestep {self.num_timesteps}: CE_{alpha:g} {ce:.4g} ± {ce_se:.2g}, mean {mean:.4g} ± {se:.2g}")
        if ce > self.best_ce:
            self.best_ce = ce
            if self.best_model_save_path is not None:
                self.model.save(self.best_model_save_path / "best_model.zip")  # atomic (is_sb3.files)
        return True


class ShiftTableCallback(BaseCallback):
    """At the end of training, the twelve-distribution table (:func:`is_envs.grid.shift_table`),
    logged as ``shift/<name>`` and ``shift_relative/<name>`` and kept in ``self.table``.

    :param episodes_dir: folder of the twelve ``<name>.npz`` tables (default: the released ones shipped
        with the package; ``None``: generated episodes).
    :param n_episodes: generated episodes per distribution (only with ``episodes_dir=None``).
    :param verbose: verbosity.
    """

    def __init__(self, episodes_dir: str | Path | None = RELEASED_DIR, n_episodes: int = 100, verbose: int = 0) -> None:
        super().__init__(verbose)
        if episodes_dir is not None and not Path(episodes_dir).is_dir():
            raise ValueError(f"episodes_dir {str(episodes_dir)!r} is not a folder")
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


class TrainingTraceCallback(BaseCallback):
    """Keeps a trace of the algorithm's ``train/*`` metrics without TensorBoard: after every ``train``
    call it reads the values just recorded in the logger, and every ``every`` env steps it stores their
    mean and maximum over the window, with the number of non-finite values (a diverging critic shows
    here first: its loss, gradient norm or |Q| grows, or turns inf/NaN).

    ``history`` is a list of ``(step, {key: {"mean": m, "max": M, "nonfinite": k}})``.

    :param every: environment steps per window.
    :param keys: metrics to trace (without the ``train/`` prefix).
    :param verbose: verbosity.
    """

    def __init__(
        self,
        every: int,
        keys: tuple[str, ...] = ("critic_loss", "critic_grad_norm", "q_mean", "q_abs_max"),
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every, self.keys = every, keys
        self._window: dict[str, list[float]] = {key: [] for key in keys}
        self._seen_updates = -1
        self.history: list[tuple[int, dict[str, dict[str, float]]]] = []

    def _on_rollout_start(self) -> None:
        # off-policy SB3 runs collect → train → collect: the previous train call's values are in the logger
        n_updates = self.model._n_updates
        if n_updates == self._seen_updates:
            return  # no train call since the last read (warm-up)
        self._seen_updates = n_updates
        values = self.logger.name_to_value
        for key in self.keys:
            if f"train/{key}" in values:
                self._window[key].append(float(values[f"train/{key}"]))

    def _on_step(self) -> bool:
        if self.n_calls % self.every == 0:
            summary = {}
            for key, window in self._window.items():
                x = np.asarray(window, dtype=np.float64)
                finite = x[np.isfinite(x)]
                if len(x):
                    summary[key] = {
                        "mean": float(finite.mean()) if len(finite) else float("nan"),
                        "max": float(finite.max()) if len(finite) else float("nan"),
                        "nonfinite": int(len(x) - len(finite)),
                    }
                window.clear()
            self.history.append((self.num_timesteps, summary))
        return True
