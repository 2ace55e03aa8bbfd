"""Evaluation of saved models: seeded episode returns, their mean and certainty equivalent ± SE, the finance
tasks' reference errors, the grid's twelve-distribution table, and the plots of each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from is_sb3.experiments.config import ExperimentError, load_model, read_run_meta
from is_sb3.plotting import plot_return_histogram, plot_shift_heatmap, plot_value_policy

__all__ = ["episode_returns", "episodes_dir", "evaluate_model", "quick_metrics", "return_statistics"]


def episode_returns(model: Any, env_id: str, n_episodes: int, seed: int) -> np.ndarray:
    """Returns of ``n_episodes`` deterministic episodes of ``model`` on ``env_id``, the env seeded with
    ``seed`` at the first reset (so the same episodes for the same seed)."""
    import gymnasium as gym

    env = gym.make(env_id)
    returns = []
    for episode in range(n_episodes):
        obs, _ = env.reset(seed=seed if episode == 0 else None)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return np.asarray(returns)


def return_statistics(returns: np.ndarray, risk_aversion: float) -> dict[str, float]:
    """Mean ± SE and the certainty equivalent CE_α ± SE (log-sum-exp, delta method) of returns."""
    import torch

    from is_sb3.risk import certainty_equivalent_with_se

    ce, ce_se = certainty_equivalent_with_se(torch.as_tensor(returns, dtype=torch.float64), risk_aversion)
    n = len(returns)
    return {
        "episodes": int(n),
        "mean_return": float(np.mean(returns)),
        "se_return": float(np.std(returns, ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
        "ce_return": float(ce),
        "ce_return_se": float(ce_se),
        "risk_aversion": float(risk_aversion),
    }


def quick_metrics(model: Any, env_id: str, n_episodes: int = 100, seed: int = 0) -> dict[str, Any]:
    """Final metrics of a run, seeded: RiskAC's reference errors and CE on its common evaluation paths; on
    the grid the returns of 50 gradient1 episodes; otherwise ``n_episodes`` deterministic episodes of the
    env (seed ``seed``); the mean and the CE at the model's α, each with its standard error."""
    alpha = float(getattr(model, "risk_aversion", 0.0))
    if hasattr(model, "evaluate"):
        out: dict[str, Any] = model.evaluate()
        return out
    if env_id == "is_envs/ItemPickup-v0":
        from is_envs.grid import evaluate

        return return_statistics(evaluate(model, "gradient1", n_episodes=50, seed=seed), alpha)
    return return_statistics(episode_returns(model, env_id, n_episodes, seed), alpha)


def evaluate_risk_ac(model: Any, plots: Path | None) -> dict[str, Any]:
    """RiskAC: reference errors, V(s0), CE ± SE on the common evaluation paths; plots of value/policy against
    the reference and of the returns on those paths."""
    metrics: dict[str, Any] = model.evaluate()
    if plots is not None:
        from is_envs.finance import BachelierTask

        if model.reference_value_s0 is not None and isinstance(model.task, BachelierTask):
            plot_value_policy(model, plots / "value_policy.png")
            metrics["plot"] = str(plots / "value_policy.png")
        returns = model.evaluation_returns().cpu().numpy()
        stats = return_statistics(returns, model.risk_aversion)
        name = getattr(model.task, "name", type(model.task).__name__)
        plot_return_histogram(returns, stats, plots / "returns.png", f"RiskAC on {name}: returns")
        metrics["returns_plot"] = str(plots / "returns.png")
    return metrics


def evaluate_grid(
    policy: Any, episodes_dir: Path | None, n_episodes: int, plots: Path | None, policy_name: str = "policy"
) -> dict[str, Any]:
    """The twelve-distribution table of :func:`is_envs.grid.shift_table` (``table``: per distribution the mean
    return, greedy's and the ratio), the policy's name, the episodes, and the heat map's path (``plot``)."""
    from is_envs.grid import shift_table

    table = shift_table(policy, episodes_dir, n_episodes)
    source = "released test episodes" if episodes_dir is not None else f"{n_episodes} generated episodes each"
    plot = None
    if plots is not None:
        plot = plots / "shift_table.png"
        plot_shift_heatmap(table, plot, policy_name, source)
    return {"policy": policy_name, "episodes": source, "table": table, "plot": str(plot) if plot else None}


def evaluate_model(
    model: str,
    algo: str | None = None,
    env_id: str | None = None,
    episodes: int = 100,
    episodes_from: str | None = None,
    plots: str | Path | None = None,
    seed: int = 0,
    device: str = "auto",
) -> dict[str, Any]:
    """Evaluate a saved model (or ``"greedy"`` on the grid) the way its task allows; returns the metrics.

    - finance tasks (RiskAC): reference errors, V(s0), CE ± SE on the model's common evaluation paths;
    - the item pick-up grid: the twelve-distribution table (:func:`is_envs.grid.shift_table`);
    - any other env: ``episodes`` deterministic episodes seeded with ``seed``, mean and CE ± SE.

    :param model: path of a ``model.zip``, or ``"greedy"``.
    :param algo: the file's algorithm (default: from its run folder's ``hyperparams.yml``, else risk_ac).
    :param env_id: the env (default: from ``hyperparams.yml``).
    :param episodes: episodes per evaluation (per distribution on the grid with generated episodes).
    :param episodes_from: grid only: a folder of episode tables, "generated", or ``None`` for the released ones.
    :param plots: folder for PNG plots (``None``: no plots).
    :param seed: seed of the evaluation episodes.
    :param device: torch device of the loaded model.
    """
    plot_dir = Path(plots) if plots else None
    result: dict[str, Any]
    if model == "greedy":
        from is_envs.grid import GreedyPolicy

        return evaluate_grid(GreedyPolicy(), episodes_dir(episodes_from), episodes, plot_dir, "greedy")
    path = Path(model)
    if not path.is_file():
        raise ExperimentError(f"model file {model!r} does not exist")
    run_dir = path.parent.parent if path.parent.name.startswith("checkpoint-") else path.parent  # a checkpoint's
    meta_path = run_dir / "hyperparams.yml"
    meta = read_run_meta(meta_path, "evaluate") if meta_path.is_file() else {}
    algo = algo or meta.get("algo", "risk_ac")
    loaded = load_model(algo, path, device)
    env_id = env_id or meta.get("env")
    if env_id == "is_envs/ItemPickup-v0":
        return evaluate_grid(loaded, episodes_dir(episodes_from), episodes, plot_dir, f"{algo} {path.name}")
    if hasattr(loaded, "evaluate"):
        return evaluate_risk_ac(loaded, plot_dir)
    if not env_id:
        raise ExperimentError("evaluate needs --env for this model (no hyperparams.yml beside it)")
    returns = episode_returns(loaded, env_id, episodes, seed)
    result = dict(return_statistics(returns, float(getattr(loaded, "risk_aversion", 0.0))))
    if plot_dir is not None:
        plot_return_histogram(returns, result, plot_dir / "returns.png", f"{algo} on {env_id}: returns")
        result["returns_plot"] = str(plot_dir / "returns.png")
    return result


def episodes_dir(arg: str | None) -> Path | None:
    """The folder of episode tables: ``--episodes-dir``, "generated" for fresh episodes, else the released ones."""
    from is_envs.grid import RELEASED_DIR

    if not arg:
        return RELEASED_DIR
    if arg == "generated":
        return None
    if not Path(arg).is_dir():
        raise ExperimentError(
            f"--episodes-dir {arg!r} is not a folder (give a folder of <name>.npz tables or 'generated')"
        )
    return Path(arg)
