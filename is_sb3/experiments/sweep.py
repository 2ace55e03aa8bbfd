"""Sweeps: algorithm × envs × losses × risk aversions × seeds, on local processes or a Ray cluster, with
one row per run (failed runs included, with their one-line error) in ``sweep.json``/``sweep.md`` and a plot."""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from is_sb3.experiments.config import LOSS_NAMES, ExperimentError, check_env
from is_sb3.experiments.runs import new_numbered_dir, train_run
from is_sb3.files import atomic_write_text
from is_sb3.parallel import run_parallel
from is_sb3.plotting import plot_sweep

__all__ = ["run_sweep", "sweep_job", "write_sweep_table"]


def run_sweep(
    envs: Sequence[str],
    losses: Sequence[str] = ("is",),
    risk_aversions: Sequence[float] | None = None,
    seeds: Sequence[int] = (0,),
    algo: str = "risk_ac",
    timesteps: int | None = None,
    config: str | None = None,
    hyperparams: Sequence[str] = (),
    device: str = "auto",
    out: str | Path | None = None,
    workers: int = 1,
    ray_address: str | None = None,
    threads: int = 1,
) -> list[dict[str, Any]]:
    """Train every combination of ``envs × losses × risk_aversions × seeds`` (one run folder each under
    ``out``) and write ``sweep.json``, ``sweep.md`` and ``sweep.png``; returns the rows in job order.

    :param envs: env ids.
    :param losses: critic losses.
    :param risk_aversions: α values; ``None``: each env's configured α.
    :param seeds: seeds.
    :param algo: algorithm of every run.
    :param timesteps: training length of each run (``None``: the configured ``n_timesteps``).
    :param config: YAML hyperparameter file (``None``: the shipped one).
    :param hyperparams: ``key=value`` overrides.
    :param device: torch device of each run.
    :param out: sweep folder (default: a new ``sweeps/sweep_<N>``); one that holds a sweep is refused.
    :param workers: local processes (ignored with ``ray_address``).
    :param ray_address: address of a Ray cluster ("auto", "127.0.0.1:6379", "ray://head:10001"): each run is
        one Ray task of one CPU; the results equal the local pool's.
    :param threads: torch threads of each run (local worker or Ray task).
    """
    for loss in losses:
        if loss not in LOSS_NAMES:
            raise ExperimentError(f"unknown loss {loss!r}; available: {', '.join(LOSS_NAMES)}")
    for env_id in envs:
        check_env(env_id)
    if out is None:
        out = new_numbered_dir("sweeps", "sweep")
    elif (Path(out) / "sweep.json").exists():
        raise ExperimentError(f"--out {out} holds a sweep (sweep.json); choose another folder")
    out = Path(out).resolve()  # Ray workers do not share the driver's working folder
    print(f"is-rl: sweep folder {out}", file=sys.stderr)
    alphas: Sequence[float | None] = list(risk_aversions) if risk_aversions else [None]  # None: the env's α
    jobs = [
        {"algo": algo, "env_id": env_id, "loss": loss, "risk_aversion": alpha, "timesteps": timesteps,
         "seed": seed, "config": config, "hyperparams": list(hyperparams), "device": device,
         "out": str(out / f"{env_id.split('/')[-1]}_{loss}_a{'cfg' if alpha is None else alpha}_s{seed}")}
        for env_id in envs for loss in losses for alpha in alphas for seed in seeds
    ]  # fmt: skip
    if ray_address:
        results = _run_on_ray(jobs, ray_address, threads)
    else:
        results = run_parallel(sweep_job, jobs, workers, desc="sweep", threads=threads)
    print(write_sweep_table(results, out), file=sys.stderr)
    failed = [r for r in results if "error" in r]
    if failed:
        print(f"is-rl: {len(failed)} of {len(results)} sweep runs failed (rows with 'error' in {out}/sweep.md)",
              file=sys.stderr)  # fmt: skip
    return results


def _run_on_ray(jobs: list[dict[str, Any]], address: str, threads: int = 1) -> list[dict[str, Any]]:
    """The jobs as Ray tasks of one CPU each on the cluster at ``address``; results in job order."""
    try:
        import ray
    except ImportError:
        raise ExperimentError("--ray-address needs Ray: pip install -e '.[ray]' (in the repository)") from None
    host, sep, port = address.rpartition(":")
    if sep and host and "://" not in address and port.isdigit():  # host:port: fail fast (Ray retries for minutes)
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as err:
            raise ExperimentError(f"cannot connect to the Ray cluster at {address!r}: {err}") from None
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as err:
        first = (str(err).splitlines() or [""])[0]
        raise ExperimentError(f"cannot connect to the Ray cluster at {address!r}: {first}") from None
    try:
        remote = ray.remote(num_cpus=threads)(_threaded_job)
        results: list[dict[str, Any]] = ray.get([remote.remote(threads, **job) for job in jobs])
    finally:
        ray.shutdown()  # disconnects this driver; the cluster keeps running
    return results


def _threaded_job(threads: int, **job: Any) -> dict[str, Any]:
    """:func:`sweep_job` on ``threads`` torch threads, as the local pool runs it (a Ray worker may have more)."""
    import torch

    torch.set_num_threads(threads)
    return sweep_job(**job)


def sweep_job(**job: Any) -> dict[str, Any]:
    """One sweep run (:func:`train_run`); a failure becomes a result row with its one-line ``error``, so the
    other runs finish and the tables are written."""
    try:
        return train_run(**job)
    except Exception as err:  # ExperimentError included
        row = {"env": job["env_id"], "critic_loss": job["loss"], "risk_aversion": job["risk_aversion"],
               "seed": job["seed"], "error": f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"}  # fmt: skip
        return row


def write_sweep_table(results: list[dict[str, Any]], out: Path) -> str:
    """``sweep.json``, ``sweep.md`` (one row per run, failures with their error) and ``sweep.png`` (value error by
    env, loss and α); returns the markdown table."""
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "sweep.json", json.dumps(results, indent=2, default=str))
    cols = ["env", "critic_loss", "risk_aversion", "seed", "value_rel_rmse", "policy_rel_rmse", "value_s0", "ce_return",
            "error"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
    table = "\n".join(lines) + "\n"
    atomic_write_text(out / "sweep.md", table)
    plot_sweep(results, out / "sweep.png")
    return table


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
