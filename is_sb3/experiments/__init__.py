"""Experiments: what the ``is-rl`` command line does, as a library (RL Zoo's experiment manager, for is-rl).

- :mod:`~is_sb3.experiments.config`: algorithms, hyperparameters (YAML + overrides), building and loading models;
- :mod:`~is_sb3.experiments.runs`: one run folder — train, checkpoint, Ctrl-C, resume;
- :mod:`~is_sb3.experiments.evaluation`: seeded returns, CE ± SE, reference errors, the grid's shift table;
- :mod:`~is_sb3.experiments.sweep`: many runs on local processes or a Ray cluster, one table.

Plots are in :mod:`is_sb3.plotting`; the argparse layer is :mod:`is_sb3.cli`. User errors raise
:class:`ExperimentError` (the CLI prints them as one line and exits with status 2).
"""

from is_sb3.experiments.config import (
    ALGOS,
    LOSS_NAMES,
    TIMESTEP,
    ExperimentError,
    algo_class,
    build_model,
    check_device,
    check_env,
    load_hyperparams,
    load_model,
)
from is_sb3.experiments.evaluation import episode_returns, evaluate_model, quick_metrics, return_statistics
from is_sb3.experiments.runs import train_run
from is_sb3.experiments.sweep import run_sweep

__all__ = [
    "ALGOS", "LOSS_NAMES", "TIMESTEP", "ExperimentError", "algo_class", "build_model", "check_device", "check_env",
    "episode_returns", "evaluate_model", "load_hyperparams", "load_model", "quick_metrics", "return_statistics",
    "run_sweep", "train_run",
]  # fmt: skip
