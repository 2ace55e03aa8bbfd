"""Run folders: train, checkpoint, interrupt and resume one run (RL Zoo's experiment manager, for is-rl).

A run folder holds ``hyperparams.yml`` (algorithm, env, seed and every hyperparameter: enough to resume),
``checkpoint.zip`` (+ ``replay_buffer.pkl`` and ``env.pkl``, the env mid-episode, for the off-policy agents:
pickles of the run's own making, read only by ``--resume``), ``model.zip`` and ``result.json`` once
finished, and ``error.log`` if training stopped on an unexpected exception.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from is_sb3.experiments.config import ExperimentError, build_model, check_env, load_hyperparams, load_model
from is_sb3.experiments.evaluation import quick_metrics
from is_sb3.resume import BoundaryCallback

__all__ = ["atomic_save", "train_run"]


def atomic_save(model: Any, path: Path) -> None:
    """Save to a temporary file in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)


def train_run(
    algo: str,
    env_id: str | None,
    loss: str | None = None,
    risk_aversion: float | None = None,
    timesteps: int | None = None,
    seed: int = 0,
    config: str | None = None,
    hyperparams: Sequence[str] = (),
    out: str | None = None,
    tensorboard_log: str | None = None,
    device: str = "auto",
    resume: bool = False,
    checkpoint_freq: int = 10_000,
    progress_bar: bool = False,
) -> dict[str, Any]:
    """Train (or resume) one run; writes ``model.zip``, ``checkpoint.zip`` (with ``replay_buffer.pkl`` for the
    off-policy agents), ``hyperparams.yml`` and ``result.json`` under ``out``; returns the result.

    ``resume``: continue the run in ``out`` from its checkpoint with the run's own ``hyperparams.yml``
    (algorithm, env, seed, hyperparameters and total length; ``timesteps`` may extend it). Ctrl-C stops
    at the end of the current iteration and saves a checkpoint there, so a resumed RiskAC run equals the
    uninterrupted one bit for bit.
    """
    import signal

    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    if resume:
        if out is None:
            raise ExperimentError("--resume needs --out RUN (the run folder to continue)")
        if loss is not None or risk_aversion is not None or config is not None or hyperparams:
            raise ExperimentError(
                "--resume continues with the run's own hyperparams.yml; drop --loss, --risk-aversion, --config and "
                "--hyperparams"
            )
        meta_path = Path(out) / "hyperparams.yml"
        if not meta_path.is_file():
            raise ExperimentError(f"--resume: no hyperparams.yml in {out}")
        meta = yaml.safe_load(meta_path.read_text()) or {}
        algo, env_id, seed = meta.pop("algo"), meta.pop("env"), int(meta.pop("seed"))
        params = meta
        if timesteps is not None:
            params["n_timesteps"] = timesteps
    else:
        if not env_id:
            raise ExperimentError("train needs --env (or --resume --out RUN)")
        check_env(env_id)
        params = load_hyperparams(algo, env_id, config, hyperparams)
        if loss is not None:
            params["critic_loss"] = loss
        if risk_aversion is not None:
            params["risk_aversion"] = risk_aversion
        if timesteps is not None:
            params["n_timesteps"] = timesteps
    total = int(params.get("n_timesteps", 10_000))
    name = (
        f"{algo}_{env_id.split('/')[-1]}_{params.get('critic_loss', 'is')}_a{params.get('risk_aversion', 1.0)}_s{seed}"
    )
    run_dir = Path(out or Path("models") / name)
    checkpoint, buffer_path, env_path = run_dir / "checkpoint.zip", run_dir / "replay_buffer.pkl", run_dir / "env.pkl"
    if resume:
        if not checkpoint.is_file():
            raise ExperimentError(f"--resume: no checkpoint at {checkpoint}")
        import gymnasium as gym

        if env_path.is_file():  # off-policy: the env mid-episode, as it was at the checkpoint (the run's own file)
            with env_path.open("rb") as file:
                env: Any = pickle.load(file)
            model = load_model(algo, checkpoint, device, env=env, force_reset=False, tensorboard_log=tensorboard_log)
        else:
            model = load_model(algo, checkpoint, device, env=gym.make(env_id), tensorboard_log=tensorboard_log)
        if isinstance(model, OffPolicyAlgorithm) and buffer_path.is_file():
            model.load_replay_buffer(buffer_path)  # the run's own file, written by this command
    else:
        model = build_model(algo, env_id, params, seed, device, tensorboard_log)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "hyperparams.yml").write_text(
        yaml.safe_dump({"algo": algo, "env": env_id, "seed": seed, **params}, sort_keys=False)
    )

    def save_checkpoint(model: Any) -> None:
        atomic_save(model, checkpoint)
        if isinstance(model, OffPolicyAlgorithm):  # the replay buffer (so the reward-scaling statistics) and the env
            for path, write in ((buffer_path, model.save_replay_buffer), (env_path, _pickle_env(model))):
                tmp = path.with_name(f".{path.stem}.tmp.pkl")
                write(tmp)
                os.replace(tmp, path)

    interrupted = False
    last_saved = model.num_timesteps

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True  # finish the current iteration / step, then stop and save
        if hasattr(model, "request_stop"):
            model.request_stop()  # off-policy: stop before the next env step

    def periodic_checkpoint(model: Any) -> None:  # at step boundaries only (see is_sb3.resume)
        nonlocal last_saved
        if model.num_timesteps - last_saved >= checkpoint_freq:
            save_checkpoint(model)
            last_saved = model.num_timesteps

    remaining = total - model.num_timesteps
    if remaining > 0:
        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            import contextlib

            with contextlib.redirect_stdout(sys.stderr):  # progress and SB3's logs on stderr: stdout is the JSON
                model.learn(
                    remaining,
                    callback=BoundaryCallback(periodic_checkpoint, keep_going=lambda: not interrupted),
                    reset_num_timesteps=not resume,
                    tb_log_name=name,
                    progress_bar=progress_bar,
                )
        except Exception as err:  # unexpected: the traceback goes to the run folder, one line to the user
            import traceback

            log = run_dir / "error.log"
            log.write_text(traceback.format_exc())
            first = (str(err).splitlines() or [""])[0]
            raise ExperimentError(f"training stopped by {type(err).__name__}: {first} (traceback in {log})") from None
        finally:
            signal.signal(signal.SIGINT, previous)
    save_checkpoint(model)
    if interrupted:
        raise KeyboardInterrupt
    atomic_save(model, run_dir / "model.zip")
    result = {"algo": algo, "env": env_id, "seed": seed, "timesteps": model.num_timesteps, "run_dir": str(run_dir),
              **params}  # fmt: skip
    result.update(quick_metrics(model, env_id))
    result["learning_rate"] = str(params.get("learning_rate", ""))
    (run_dir / "result.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"is-rl: run folder {run_dir} (model.zip, checkpoint.zip, hyperparams.yml, result.json)", file=sys.stderr)
    return result


def _pickle_env(model: Any) -> Any:
    """A writer of the model's (vector) env to a path: its state mid-episode, for an exact resume."""

    def write(path: Path) -> None:
        with Path(path).open("wb") as file:
            pickle.dump(model.get_env(), file)

    return write
