"""Run folders: train, checkpoint, interrupt and resume one run (RL Zoo's experiment manager, for is-rl).

A run folder (default ``models/<algo>/<Env>_<N>``, RL Zoo's naming: N is the first number that neither a run
folder nor a TensorBoard run of that name uses, so the TensorBoard run ``<tensorboard-log>/<algo>/<Env>_<N>``
shares the folder's name) holds:

- ``hyperparams.yml``: algorithm, env, seed, TensorBoard folder and every hyperparameter (enough to resume);
- the latest checkpoint as a set that is whole or absent: ``checkpoint-<timesteps>-<id>/`` with ``model.zip`` (and,
  for the off-policy agents, ``replay_buffer.pkl`` and ``env.pkl``, the env mid-episode), published by writing
  ``checkpoint.json`` last, which names the folder and each file's size and SHA-256; ``--resume`` checks them all
  and refuses a set that is incomplete or does not match, naming what is wrong;
- ``model.zip`` and ``result.json`` once finished; ``error.log`` if training stopped on an unexpected exception;
- ``.lock`` while a command trains in it: a second command into the same folder is refused.

Every file goes to a unique temporary name and is renamed into place (:mod:`is_sb3.files`). SIGINT (Ctrl-C) and
SIGTERM stop the run at the next step boundary and save a checkpoint there (further signals during that save are
ignored), and the error names the timestep reached and the command that resumes. ``replay_buffer.pkl`` and
``env.pkl`` are pickles of the run's own making: ``--resume`` reads them only when ``checkpoint.json`` names them
with matching checksums.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import re
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from is_sb3.experiments.config import (
    ExperimentError,
    build_model,
    check_env,
    load_hyperparams,
    load_model,
    read_run_meta,
)
from is_sb3.experiments.evaluation import quick_metrics
from is_sb3.files import atomic_path, atomic_write_text
from is_sb3.resume import BoundaryCallback

__all__ = ["RunInterrupted", "new_numbered_dir", "new_run_dir", "read_checkpoint", "train_run", "write_checkpoint"]

#: files of a run; ``--overwrite`` removes them (and the checkpoint folders) before a new run
RUN_FILES = ("hyperparams.yml", "checkpoint.json", "model.zip", "result.json", "error.log", "checkpoint.zip",
             "replay_buffer.pkl", "env.pkl")  # fmt: skip
_OFF_POLICY_FILES = ("model.zip", "replay_buffer.pkl", "env.pkl")


class RunInterrupted(Exception):
    """A run stopped by SIGINT or SIGTERM after saving its checkpoint; the message says how to resume."""

    def __init__(self, signum: int, run_dir: Path, timesteps: int) -> None:
        self.signum, self.run_dir, self.timesteps = signum, run_dir, timesteps
        name = signal.Signals(signum).name
        super().__init__(
            f"{name}: stopped at timestep {timesteps}, checkpoint saved in {run_dir}; resume with: "
            f"is-rl train --resume --out {run_dir}"
        )


def _numbered(folder: Path, stem: str) -> set[int]:
    pattern = re.compile(rf"{re.escape(stem)}_(\d+)")
    return {int(m.group(1)) for p in (folder.iterdir() if folder.is_dir() else []) if (m := pattern.fullmatch(p.name))}


def new_numbered_dir(folder: str | Path, stem: str, also: Sequence[str | Path] = ()) -> Path:
    """Create and return ``<folder>/<stem>_<N>`` with N one above every number used there and in the folders
    ``also`` (e.g. the TensorBoard runs of that name); two commands never get the same one."""
    folder = Path(folder)
    used = set().union(_numbered(folder, stem), *(_numbered(Path(other), stem) for other in also))
    n = max(used, default=0) + 1
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            (folder / f"{stem}_{n}").mkdir()
            return folder / f"{stem}_{n}"
        except FileExistsError:  # taken meanwhile by another command
            n += 1


def new_run_dir(root: str | Path, algo: str, env_id: str, tensorboard_log: str | Path | None = None) -> Path:
    """Create and return the run folder ``<root>/<algo>/<Env>_<N>``, N one above every number used by a run folder
    or a TensorBoard run (``<tensorboard_log>/<algo>/<Env>_<N>``) of that name."""
    stem = env_id.split("/")[-1]
    return new_numbered_dir(Path(root) / algo, stem, [Path(tensorboard_log) / algo] if tensorboard_log else [])


@contextlib.contextmanager
def _claimed(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir/.lock`` (this process's id) while the block runs; refuse a folder another live process holds."""
    lock = run_dir / ".lock"
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                raise ExperimentError(f"run folder {run_dir} is in use by process {pid}") from None
            lock.unlink(missing_ok=True)  # left by a process that no longer runs
    else:
        raise ExperimentError(f"run folder {run_dir} is in use (cannot take {lock})")
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checkpoint(run_dir: Path, model: Any, extra: Mapping[str, bytes] | None = None) -> Path:
    """Write the model (and, off-policy, its replay buffer and env) as one checkpoint set, then publish it by
    renaming ``checkpoint.json`` into place; remove the previous set and what writers killed mid-way left. One
    writer per run folder (the CLI holds the folder's ``.lock``). Returns the set's folder.

    ``extra``: more files of the set, name → content (e.g. a caller's own state, which must stay consistent with
    the model's); :func:`read_checkpoint` checks and returns them with the others."""
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    tmp = Path(tempfile.mkdtemp(prefix=".checkpoint-", suffix=".tmp", dir=run_dir))
    try:
        for name, content in (extra or {}).items():
            if name in _OFF_POLICY_FILES or Path(name).name != name:
                raise ValueError(f"extra: {name!r} must be a plain file name other than {_OFF_POLICY_FILES}")
            with atomic_path(tmp / name) as path:
                path.write_bytes(content)
        model.save(tmp / "model.zip")
        if isinstance(model, OffPolicyAlgorithm):  # the replay buffer (so the reward-scaling statistics) and the env
            model.save_replay_buffer(tmp / "replay_buffer.pkl")
            with atomic_path(tmp / "env.pkl") as path, path.open("wb") as file:
                pickle.dump(model.get_env(), file)
        files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
        final = run_dir / f"checkpoint-{model.num_timesteps}-{tmp.name.split('.')[1].removeprefix('checkpoint-')}"
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    manifest = {"folder": final.name, "timesteps": int(model.num_timesteps), "files": files}
    atomic_write_text(run_dir / "checkpoint.json", json.dumps(manifest, indent=2))
    for old in [*run_dir.glob("checkpoint-*"), *run_dir.glob(".checkpoint-*.tmp")]:  # older sets, crashed writers'
        if old.is_dir() and old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def read_checkpoint(run_dir: Path, off_policy: bool) -> dict[str, Path]:
    """The files of the run's published checkpoint, each checked against ``checkpoint.json`` (size and SHA-256);
    ``ExperimentError`` naming what is missing or does not match; the set's ``extra`` files (see
    :func:`write_checkpoint`) are checked and returned too. A run folder of an older is-rl (``checkpoint.zip``
    beside ``replay_buffer.pkl`` and ``env.pkl``) is read as it is, the off-policy one only with both pickles."""
    manifest_path = run_dir / "checkpoint.json"
    needed = _OFF_POLICY_FILES if off_policy else ("model.zip",)
    if not manifest_path.is_file():
        legacy = {"model.zip": run_dir / "checkpoint.zip", "replay_buffer.pkl": run_dir / "replay_buffer.pkl",
                  "env.pkl": run_dir / "env.pkl"}  # fmt: skip
        if not legacy["model.zip"].is_file():
            raise ExperimentError(f"--resume: no checkpoint in {run_dir} (no checkpoint.json)")
        missing = [name for name in needed if not legacy[name].is_file()]
        if missing:
            raise ExperimentError(f"--resume: the checkpoint in {run_dir} lacks {', '.join(missing)}")
        return {name: legacy[name] for name in needed}
    try:
        manifest = json.loads(manifest_path.read_text())
        folder, files = run_dir / str(manifest["folder"]), dict(manifest["files"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ExperimentError(f"--resume: {manifest_path} is damaged ({type(err).__name__}: {err})") from None
    if not folder.is_dir():
        raise ExperimentError(f"--resume: the checkpoint folder {folder} named by {manifest_path} is missing")
    out = {}
    for name in [*needed, *(name for name in files if name not in needed)]:  # the set's extra files too
        path = folder / name
        if name not in files:
            raise ExperimentError(f"--resume: the checkpoint in {folder} lacks {name}")
        if not path.is_file():
            raise ExperimentError(f"--resume: {path} is missing")
        if path.stat().st_size != files[name].get("bytes") or _sha256(path) != files[name].get("sha256"):
            raise ExperimentError(f"--resume: {path} does not match the size and SHA-256 in {manifest_path}")
        out[name] = path
    return out


def _read_run(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "hyperparams.yml"
    if not path.is_file():
        raise ExperimentError(f"--resume: no hyperparams.yml in {run_dir}")
    return read_run_meta(path, "--resume")


def train_run(
    algo: str | None,
    env_id: str | None,
    loss: str | None = None,
    risk_aversion: float | None = None,
    timesteps: int | None = None,
    seed: int | None = None,
    config: str | None = None,
    hyperparams: Sequence[str] = (),
    out: str | None = None,
    tensorboard_log: str | None = None,
    device: str = "auto",
    resume: bool = False,
    checkpoint_freq: int = 10_000,
    progress_bar: bool = False,
    overwrite: bool = False,
    models_root: str | Path = "models",
) -> dict[str, Any]:
    """Train (or resume) one run in its run folder (see the module doc); returns the result (also ``result.json``).

    :param algo: algorithm (default ``risk_ac``); with ``resume``, if given, it must be the run's.
    :param env_id: env id; with ``resume``, if given, it must be the run's.
    :param loss: critic loss (overrides the hyperparameters).
    :param risk_aversion: α (overrides the hyperparameters).
    :param timesteps: total length (overrides ``n_timesteps``; with ``resume`` it may extend the run, not shorten it
        below what is done).
    :param seed: seed (default 0); with ``resume``, if given, it must be the run's.
    :param config: YAML hyperparameter file (default: the shipped one).
    :param hyperparams: ``key=value`` overrides.
    :param out: run folder (default: a new ``<models_root>/<algo>/<Env>_<N>``); a folder that holds a run is refused
        unless ``resume`` or ``overwrite``.
    :param tensorboard_log: TensorBoard root (the run logs to ``<tensorboard_log>/<algo>/<run folder name>``).
    :param device: torch device.
    :param resume: continue the run in ``out`` from its checkpoint, with its own ``hyperparams.yml``.
    :param checkpoint_freq: timesteps between checkpoints.
    :param progress_bar: show SB3's progress bar.
    :param overwrite: replace the run in ``out`` (its files, checkpoints and TensorBoard run).
    :param models_root: where default run folders are made.
    :raises RunInterrupted: after SIGINT or SIGTERM, once the checkpoint is saved.
    """
    if resume:
        if out is None:
            raise ExperimentError("--resume needs --out RUN (the run folder to continue)")
        if loss is not None or risk_aversion is not None or config is not None or hyperparams or overwrite:
            raise ExperimentError(
                "--resume continues with the run's own hyperparams.yml; drop --loss, --risk-aversion, --config, "
                "--hyperparams and --overwrite"
            )
        run_dir = Path(out)
        meta = _read_run(run_dir)
        for flag, given, saved in (("--algo", algo, meta["algo"]), ("--env", env_id, meta["env"]),
                                   ("--seed", seed, meta["seed"])):  # fmt: skip
            if given is not None and given != saved:
                raise ExperimentError(f"--resume: {flag} {given} differs from the run's {saved} ({run_dir})")
        algo, env_id, seed = str(meta.pop("algo")), str(meta.pop("env")), int(meta.pop("seed"))
        tb_dir = meta.pop("tensorboard", None)  # absent in run folders of older versions: the default place
        if tb_dir is None and tensorboard_log:
            tb_dir = str(Path(tensorboard_log) / algo / run_dir.name)
        params = meta
        if timesteps is not None:
            params["n_timesteps"] = timesteps
    else:
        algo, seed = algo or "risk_ac", 0 if seed is None else seed
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
        run_dir = _fresh_run_dir(out, overwrite, models_root, algo, env_id, tensorboard_log)
    with _claimed(run_dir):  # nothing is removed before the folder is ours
        if not resume:
            if overwrite:
                _clear_run(run_dir)
            tb_dir = _tensorboard_dir(tensorboard_log, algo, run_dir.name, overwrite)
        return _train(algo, env_id, seed, params, run_dir, tb_dir, device, resume, checkpoint_freq, progress_bar)


def _tensorboard_dir(tensorboard_log: str | None, algo: str, name: str, overwrite: bool) -> str | None:
    """``<tensorboard_log>/<algo>/<name>``: the run folder's name. Where a TensorBoard run of that name exists (a
    run folder of that name was deleted, or is elsewhere), it is replaced with ``overwrite``, else the first free
    ``<name>_<k>`` (k ≥ 2) is used; the run records which in ``hyperparams.yml``."""
    if not tensorboard_log:
        return None
    folder = Path(tensorboard_log) / algo
    tb_dir = folder / name
    if tb_dir.exists():
        if overwrite:
            shutil.rmtree(tb_dir)
        else:
            k = 2
            while (folder / f"{name}_{k}").exists():
                k += 1
            tb_dir = folder / f"{name}_{k}"
    return str(tb_dir)


def _fresh_run_dir(
    out: str | None, overwrite: bool, models_root: str | Path, algo: str, env_id: str, tensorboard_log: str | None
) -> Path:
    if out is None:
        return new_run_dir(models_root, algo, env_id, tensorboard_log)
    run_dir = Path(out)
    if run_dir.exists() and not run_dir.is_dir():
        raise ExperimentError(f"--out {out} is a file, not a run folder")
    held = [name for name in RUN_FILES if (run_dir / name).exists()] + [p.name for p in run_dir.glob("checkpoint-*")]
    if held and not overwrite:
        raise ExperimentError(
            f"--out {out} holds a run ({', '.join(sorted(held)[:3])}); pass --resume to continue it or --overwrite "
            "to replace it"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ExperimentError(f"--out {out}: cannot create the run folder ({err.strerror})") from None
    if not os.access(run_dir, os.W_OK):
        raise ExperimentError(f"--out {out}: the run folder is not writable")
    return run_dir


def _clear_run(run_dir: Path) -> None:
    """Remove a previous run's files (``--overwrite``; called with the folder claimed, so never under a live run)."""
    for target in [*(run_dir / name for name in RUN_FILES), *run_dir.glob("checkpoint-*")]:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def _train(
    algo: str, env_id: str, seed: int, params: dict[str, Any], run_dir: Path, tb_dir: str | None, device: str,
    resume: bool, checkpoint_freq: int, progress_bar: bool,
) -> dict[str, Any]:  # fmt: skip
    from stable_baselines3.common.logger import configure
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    from is_sb3.experiments.config import algo_class

    total = int(params.get("n_timesteps", 10_000))
    off_policy = issubclass(algo_class(algo), OffPolicyAlgorithm)
    if resume:
        files = read_checkpoint(run_dir, off_policy)
        import gymnasium as gym

        if "env.pkl" in files:  # off-policy: the env mid-episode, as it was at the checkpoint (the run's own file)
            with files["env.pkl"].open("rb") as file:
                env: Any = pickle.load(file)
            model = load_model(algo, files["model.zip"], device, env=env, force_reset=False)
        else:
            model = load_model(algo, files["model.zip"], device, env=gym.make(env_id))
        if "replay_buffer.pkl" in files:
            model.load_replay_buffer(files["replay_buffer.pkl"])
        if total < model.num_timesteps:
            raise ExperimentError(
                f"--resume: --timesteps {total} is below the {model.num_timesteps} timesteps already done"
            )
    else:
        model = build_model(algo, env_id, params, seed, device, None)
    formats = (["stdout"] if model.verbose >= 1 else []) + (["tensorboard"] if tb_dir else [])
    model.set_logger(configure(tb_dir, formats or [""]))  # what SB3 configures, in the run's own TensorBoard folder
    meta = {"algo": algo, "env": env_id, "seed": seed, "tensorboard": tb_dir, **params}
    atomic_write_text(run_dir / "hyperparams.yml", yaml.safe_dump(meta, sort_keys=False))

    stop: dict[str, int] = {}
    last_saved = model.num_timesteps

    def on_signal(signum: int, frame: Any) -> None:
        stop.setdefault("signal", signum)  # finish the current iteration / step, then stop and save
        if hasattr(model, "request_stop"):
            model.request_stop()  # off-policy: stop before the next env step

    def periodic_checkpoint(model: Any) -> None:  # at step boundaries only (see is_sb3.resume)
        nonlocal last_saved
        if model.num_timesteps - last_saved >= checkpoint_freq:
            write_checkpoint(run_dir, model)
            last_saved = model.num_timesteps

    main_thread = threading.current_thread() is threading.main_thread()
    handled = (signal.SIGINT, signal.SIGTERM) if main_thread else ()
    previous = {s: signal.signal(s, on_signal) for s in handled}
    try:  # the handlers stay until the final checkpoint is written: a second Ctrl-C cannot cut it short
        remaining = total - model.num_timesteps
        if remaining > 0:
            try:
                with contextlib.redirect_stdout(sys.stderr):  # progress and SB3's logs on stderr: stdout is the JSON
                    model.learn(
                        remaining,
                        callback=BoundaryCallback(periodic_checkpoint, keep_going=lambda: not stop),
                        reset_num_timesteps=not resume,
                        progress_bar=progress_bar,
                    )
            except Exception as err:  # unexpected: the traceback goes to the run folder, one line to the user
                import traceback

                log = run_dir / "error.log"
                atomic_write_text(log, traceback.format_exc())
                first = (str(err).splitlines() or [""])[0]
                raise ExperimentError(
                    f"training stopped by {type(err).__name__}: {first} (traceback in {log})"
                ) from None
        write_checkpoint(run_dir, model)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if stop:
        raise RunInterrupted(stop["signal"], run_dir, model.num_timesteps)
    model.save(run_dir / "model.zip")
    result = {"algo": algo, "env": env_id, "seed": seed, "timesteps": model.num_timesteps, "run_dir": str(run_dir),
              "tensorboard": tb_dir, **params}  # fmt: skip
    result.update(quick_metrics(model, env_id))
    atomic_write_text(run_dir / "result.json", json.dumps(result, indent=2, default=str))
    print(f"is-rl: run folder {run_dir} (model.zip, checkpoint, hyperparams.yml, result.json)"
          + (f", TensorBoard run {tb_dir}" if tb_dir else ""), file=sys.stderr)  # fmt: skip
    return result
