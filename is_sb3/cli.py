"""``is-rl``: train, evaluate, benchmark and sweep from the terminal (RL-Zoo style).

    is-rl train --env is_envs/QuadraticPenalty-v0 --loss is --risk-aversion 2 --timesteps 20000
    is-rl train --env is_envs/OptionHedging-v0 --hyperparams batch_size=512 learning_rate=3e-4 --resume
    is-rl evaluate models/risk_ac_QuadraticPenalty-v0_is_a2.0_s0/model.zip --plots plots/
    is-rl evaluate greedy --env is_envs/ItemPickup-v0
    is-rl sweep --env is_envs/QuadraticPenalty-v0 --losses is sp --seeds 0 1 --timesteps 2000 --workers 2
    is-rl bench simulator --quick
    is-rl quickstart                       # the README's main job

Hyperparameters come from the algorithm's YAML file (``is_sb3/configs/<algo>.yml``, or ``--config``),
then ``--hyperparams key=value`` overrides, then the explicit flags (``--loss``, ``--risk-aversion``,
``--timesteps``, ``--seed``) — later wins. Bad input gives a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from is_sb3.common import positive_int

__all__ = ["main"]

ALGOS = ("risk_ac", "risk_sac", "discrete_risk_sac")
LOSS_NAMES = ("is", "emse", "sp", "mse")
#: the benchmark scripts of a source checkout (benchmarks/<name>.py)
BENCHMARKS = (
    "simulator", "item_pickup_env", "analytic", "hedging", "item_pickup", "conditioning", "critic_tails", "cartpole",
)  # fmt: skip
#: what --timesteps counts, per algorithm
TIMESTEP = (
    "one timestep = one iteration of 1024 simulated transitions for risk_ac, one environment step for risk_sac "
    "and discrete_risk_sac"
)


class CLIError(Exception):
    """A user error: reported as one line, exit status 2."""


# ---------------------------------------------------------------------------------------- config


def _algo_class(algo: str) -> Any:
    if algo not in ALGOS:
        raise CLIError(f"unknown algorithm {algo!r}; available: {', '.join(ALGOS)}")
    from is_sb3 import DiscreteRiskSAC, RiskAC, RiskSAC

    return {"risk_ac": RiskAC, "risk_sac": RiskSAC, "discrete_risk_sac": DiscreteRiskSAC}[algo]


def _check_env(env_id: str) -> None:
    import gymnasium as gym

    import is_envs  # noqa: F401

    try:
        gym.spec(env_id)
    except Exception:
        known = sorted(k for k in gym.registry if k.startswith("is_envs/"))
        raise CLIError(f"unknown env {env_id!r}; is-rl envs: {', '.join(known)}") from None


def load_hyperparams(
    algo: str, env_id: str, config: str | None = None, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Hyperparameters for ``env_id``: the YAML entry, then ``key=value`` overrides (values parsed as YAML)."""
    _algo_class(algo)  # validates the name
    if config is None:
        text = resources.files("is_sb3").joinpath("configs", f"{algo}.yml").read_text()
        source = f"is_sb3/configs/{algo}.yml"
    else:
        path = Path(config)
        if not path.is_file():
            raise CLIError(f"config file {config!r} does not exist")
        text, source = path.read_text(), config
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise CLIError(f"malformed YAML in {source}: {str(err).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise CLIError(f"malformed YAML in {source}: expected a mapping of env ids to hyperparameters")
    params = dict(data.get(env_id) or {})
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"--hyperparams expects key=value, got {item!r}")
        try:
            params[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise CLIError(f"cannot parse the value of {key!r}: {value!r}") from None
    return params


def _learning_rate(spec: Any) -> Any:
    if isinstance(spec, dict):
        from is_sb3.schedules import WarmupConstantCosine

        spec = dict(spec)
        kind = spec.pop("schedule", "warmup_constant_cosine")
        if kind != "warmup_constant_cosine":
            raise CLIError(f"unknown learning_rate schedule {kind!r}; available: warmup_constant_cosine")
        try:
            return WarmupConstantCosine(**spec)
        except TypeError as err:  # an unknown key
            fields = "lr, warmup, constant_until, start_factor"
            raise CLIError(f"learning_rate schedule: {err} (keys: schedule, {fields})") from None
    try:
        return float(spec)
    except (TypeError, ValueError):
        raise CLIError(f"learning_rate must be a number or a schedule mapping, got {spec!r}") from None


def build_model(
    algo: str, env_id: str, params: dict[str, Any], seed: int, device: str, tensorboard_log: str | None
) -> Any:
    kwargs = {k: v for k, v in params.items() if k not in ("n_timesteps", "policy")}
    if "learning_rate" in kwargs:
        kwargs["learning_rate"] = _learning_rate(kwargs["learning_rate"])
    if kwargs.get("critic_loss", "is") not in LOSS_NAMES:
        raise CLIError(f"unknown loss {kwargs['critic_loss']!r}; available: {', '.join(LOSS_NAMES)}")
    try:
        return _algo_class(algo)(
            params.get("policy", "MlpPolicy"),
            env_id,
            seed=seed,
            device=device,
            tensorboard_log=tensorboard_log,
            **kwargs,
        )
    except (TypeError, ValueError, AssertionError) as err:  # SB3 asserts on unsupported spaces
        message = str(err) or type(err).__name__
        raise CLIError(f"cannot build {algo} on {env_id}: {message}") from None


def load_model(algo: str, path: Path, device: str, **kwargs: Any) -> Any:
    """``<algo class>.load`` with one-line errors for files that are not models of that algorithm."""
    try:
        return _algo_class(algo).load(path, device=device, **kwargs)
    except Exception as err:  # a corrupt zip, another algorithm's file, a missing entry, ...
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise CLIError(
            f"cannot load {str(path)!r} as a {algo} model ({type(err).__name__}: {first}); "
            "is it a model of another algorithm (--algo) or a damaged file?"
        ) from None


def atomic_save(model: Any, path: Path) -> None:
    """Save to a temporary file in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.zip")
    model.save(tmp)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------- train


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

    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    if resume:
        if out is None:
            raise CLIError("--resume needs --out RUN (the run folder to continue)")
        if loss is not None or risk_aversion is not None or config is not None or hyperparams:
            raise CLIError("--resume continues with the run's own hyperparams.yml; drop --loss, --risk-aversion, "
                           "--config and --hyperparams")  # fmt: skip
        meta_path = Path(out) / "hyperparams.yml"
        if not meta_path.is_file():
            raise CLIError(f"--resume: no hyperparams.yml in {out}")
        meta = yaml.safe_load(meta_path.read_text()) or {}
        algo, env_id, seed = meta.pop("algo"), meta.pop("env"), int(meta.pop("seed"))
        params = meta
        if timesteps is not None:
            params["n_timesteps"] = timesteps
    else:
        if not env_id:
            raise CLIError("train needs --env (or --resume --out RUN)")
        _check_env(env_id)
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
    checkpoint, buffer_path = run_dir / "checkpoint.zip", run_dir / "replay_buffer.pkl"
    if resume:
        if not checkpoint.is_file():
            raise CLIError(f"--resume: no checkpoint at {checkpoint}")
        import gymnasium as gym

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
        if isinstance(model, OffPolicyAlgorithm):  # the replay buffer (and so the reward-scaling statistics)
            tmp = buffer_path.with_name(f".{buffer_path.stem}.tmp.pkl")
            model.save_replay_buffer(tmp)
            os.replace(tmp, buffer_path)

    interrupted = False

    def on_sigint(signum: int, frame: Any) -> None:
        nonlocal interrupted
        interrupted = True  # finish the current iteration, then stop and save

    class Checkpoint(BaseCallback):
        def _on_step(self) -> bool:
            if interrupted:
                return False
            if self.num_timesteps % checkpoint_freq == 0:
                save_checkpoint(self.model)
            return True

    remaining = total - model.num_timesteps
    if remaining > 0:
        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            import contextlib

            with contextlib.redirect_stdout(sys.stderr):  # progress and SB3's logs on stderr: stdout is the JSON
                model.learn(
                    remaining,
                    callback=Checkpoint(),
                    reset_num_timesteps=not resume,
                    tb_log_name=name,
                    progress_bar=progress_bar,
                )
        except Exception as err:  # unexpected: the traceback goes to the run folder, one line to the user
            import traceback

            log = run_dir / "error.log"
            log.write_text(traceback.format_exc())
            first = (str(err).splitlines() or [""])[0]
            raise CLIError(f"training stopped by {type(err).__name__}: {first} (traceback in {log})") from None
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


# -------------------------------------------------------------------------------------- evaluate


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
        "episodes": float(n),
        "mean_return": float(np.mean(returns)),
        "se_return": float(np.std(returns, ddof=1) / np.sqrt(n)) if n > 1 else float("nan"),
        "ce_return": float(ce),
        "ce_return_se": float(ce_se),
        "risk_aversion": float(risk_aversion),
    }


def plot_return_histogram(returns: np.ndarray, stats: dict[str, float], path: Path, title: str) -> None:
    """Histogram of the returns with the mean and the certainty equivalent marked."""
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.hist(returns, bins=min(60, max(10, len(returns) // 20)), color="tab:blue", alpha=0.7)
    ax.axvline(stats["mean_return"], color="k", ls="-", label=f"mean {stats['mean_return']:.4g}")
    ce_label = f"CE (α = {stats['risk_aversion']:g}) {stats['ce_return']:.4g} ± {stats['ce_return_se']:.2g}"
    ax.axvline(stats["ce_return"], color="tab:red", ls="--", label=ce_label)
    ax.set(xlabel="return of an episode", ylabel="episodes", title=title)
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=110)


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


def evaluate_bachelier(model: Any, plots: Path | None) -> dict[str, Any]:
    """RiskAC: reference errors, V(s0), CE ± SE on the common evaluation paths; plots of value/policy against
    the reference and of the returns on those paths."""
    metrics: dict[str, Any] = model.evaluate()
    if plots is not None:
        if model.reference_value_s0 is not None:
            plot_value_policy(model, plots / "value_policy.png")
            metrics["plot"] = str(plots / "value_policy.png")
        returns = model.evaluation_returns().cpu().numpy()
        stats = return_statistics(returns, model.risk_aversion)
        plot_return_histogram(returns, stats, plots / "returns.png", f"RiskAC on {model.task.name}: returns")
        metrics["returns_plot"] = str(plots / "returns.png")
    return metrics


def plot_value_policy(model: Any, path: Path) -> None:
    """Learned vs reference V(t, S) and π(t, S) against S for several t."""
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()

    from is_envs.finance import reference_solution

    task = model.task
    ref = reference_solution(task, model.risk_aversion)
    scale = task.sigma * np.sqrt(task.horizon)
    s = task.s0 + np.linspace(-2, 2, 81) * scale
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for t, color in zip((0, 3, 6, 9), ("C0", "C1", "C2", "C3"), strict=True):
        obs = np.stack([np.full_like(s, t / task.horizon), (s - task.s0) / scale], axis=1).astype(np.float32)
        axes[0].plot(s, model.predict_value(obs), color=color, label=f"t={t} learned")
        axes[0].plot(s, ref.value(t, s), color=color, ls="--", label=f"t={t} reference")
        axes[1].plot(s, model.predict(obs, deterministic=True)[0][:, 0], color=color)
        axes[1].plot(s, ref.action(t, s), color=color, ls="--")
    axes[0].set(xlabel="price S", ylabel="V(t, S)", title=f"value ({ref.method} dashed)")
    axes[1].set(xlabel="price S", ylabel="position π(t, S)", title="policy")
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"{task.name} task, α = {model.risk_aversion}, critic loss {model.critic_loss}")
    save_figure(fig, path, dpi=110)


def evaluate_grid(
    policy: Any, episodes_dir: Path | None, n_episodes: int, plots: Path | None, policy_name: str = "policy"
) -> dict[str, Any]:
    """The twelve-distribution table of :func:`is_envs.grid.shift_table`, plus its heat map."""
    from is_envs.grid import shift_table

    table = shift_table(policy, episodes_dir, n_episodes)
    if plots is not None:
        source = "released test episodes" if episodes_dir is not None else f"{n_episodes} generated episodes each"
        plot_shift_heatmap(table, plots / "shift_table.png", policy_name, source)
    return table


def plot_shift_heatmap(table: dict[str, Any], path: Path, policy_name: str = "policy", source: str = "") -> None:
    """One row of cells, one per distribution, coloured on one scale (return ÷ greedy, with a colour bar) and
    labelled with the mean return; the title names the policy and the episodes."""
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()

    names = list(table)
    ratio = np.array([[table[n]["relative_to_greedy"] for n in names]])
    fig, ax = plt.subplots(figsize=(13, 2.6))
    image = ax.imshow(ratio, aspect="auto", cmap="viridis", vmin=min(0.0, float(np.nanmin(ratio))),
                      vmax=max(1.0, float(np.nanmax(ratio))))  # fmt: skip
    for i, name in enumerate(names):
        row = table[name]
        text = f"{row['mean_return']:.1f}\n(greedy {row['greedy_mean_return']:.1f})\n×{row['relative_to_greedy']:.2f}"
        red, green, blue, _ = image.cmap(image.norm(row["relative_to_greedy"]))
        ink = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"  # readable on the cell
        ax.text(i, 0, text, ha="center", va="center", color=ink, fontsize=8)
    ax.set_yticks([])
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=9)
    fig.colorbar(image, ax=ax, label="mean return ÷ greedy's", pad=0.01)
    fig.suptitle(
        f"Item pick-up: {policy_name} on the twelve distributions ({source}; gradient1 = training distribution)",
        fontsize=10,
    )
    save_figure(fig, path, dpi=110)


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    plots = Path(args.plots) if args.plots else None
    result: dict[str, Any]
    if args.model == "greedy":
        from is_envs.grid import GreedyPolicy

        result = evaluate_grid(GreedyPolicy(), _episodes_dir(args.episodes_dir), args.episodes, plots, "greedy")
    else:
        path = Path(args.model)
        if not path.is_file():
            raise CLIError(f"model file {args.model!r} does not exist")
        meta_path = path.parent / "hyperparams.yml"
        meta = (yaml.safe_load(meta_path.read_text()) or {}) if meta_path.is_file() else {}
        algo = args.algo or meta.get("algo", "risk_ac")
        model = load_model(algo, path, args.device)
        env_id = args.env or meta.get("env")
        if env_id == "is_envs/ItemPickup-v0":
            result = evaluate_grid(model, _episodes_dir(args.episodes_dir), args.episodes, plots, f"{algo} {path.name}")
        elif hasattr(model, "evaluate"):
            result = evaluate_bachelier(model, plots)
        else:
            if not env_id:
                raise CLIError("evaluate needs --env for this model (no hyperparams.yml beside it)")
            returns = episode_returns(model, env_id, args.episodes, args.seed)
            result = dict(return_statistics(returns, float(getattr(model, "risk_aversion", 0.0))))
            if plots is not None:
                plot_return_histogram(returns, result, plots / "returns.png", f"{algo} on {env_id}: returns")
                result["returns_plot"] = str(plots / "returns.png")
    print(json.dumps(result, indent=2))
    return result


def _episodes_dir(arg: str | None) -> Path | None:
    """The folder of episode tables: ``--episodes-dir``, "generated" for fresh episodes, else the released ones."""
    from is_envs.grid import RELEASED_DIR

    if not arg:
        return RELEASED_DIR
    if arg == "generated":
        return None
    if not Path(arg).is_dir():
        raise CLIError(f"--episodes-dir {arg!r} is not a folder (give a folder of <name>.npz tables or 'generated')")
    return Path(arg)


# ----------------------------------------------------------------------------------------- sweep


def cmd_sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    for loss in args.losses:
        if loss not in LOSS_NAMES:
            raise CLIError(f"unknown loss {loss!r}; available: {', '.join(LOSS_NAMES)}")
    for env_id in args.envs:
        _check_env(env_id)
    out = Path(args.out)
    alphas = args.risk_aversions or [None]  # None: each env's configured α
    jobs = [
        {"algo": args.algo, "env_id": env_id, "loss": loss, "risk_aversion": alpha, "timesteps": args.timesteps,
         "seed": seed, "config": args.config, "hyperparams": list(args.hyperparams), "device": args.device,
         "out": str(out / f"{env_id.split('/')[-1]}_{loss}_a{'cfg' if alpha is None else alpha}_s{seed}")}
        for env_id in args.envs for loss in args.losses for alpha in alphas for seed in args.seeds
    ]  # fmt: skip
    if args.ray_address:
        try:
            import ray  # type: ignore[import-not-found]
        except ImportError:
            raise CLIError("--ray-address needs Ray: pip install 'is-rl[ray]'") from None
        ray.init(address=args.ray_address)
        remote = ray.remote(sweep_job)
        results: list[dict[str, Any]] = ray.get([remote.remote(**job) for job in jobs])
    else:
        from is_sb3.parallel import run_parallel

        results = run_parallel(sweep_job, jobs, args.workers, desc="sweep")
    write_sweep_table(results, out)
    failed = [r for r in results if "error" in r]
    if failed:
        print(f"is-rl: {len(failed)} of {len(results)} sweep runs failed (rows with 'error' in {out}/sweep.md)",
              file=sys.stderr)  # fmt: skip
    return results


def sweep_job(**job: Any) -> dict[str, Any]:
    """One sweep run (:func:`train_run`); a failure becomes a result row with its one-line ``error``, so the
    other runs finish and the tables are written."""
    try:
        return train_run(**job)
    except Exception as err:  # CLIError included
        row = {"env": job["env_id"], "critic_loss": job["loss"], "risk_aversion": job["risk_aversion"],
               "seed": job["seed"], "error": f"{type(err).__name__}: {(str(err).splitlines() or [''])[0]}"}  # fmt: skip
        return row


def write_sweep_table(results: list[dict[str, Any]], out: Path) -> None:
    """``sweep.json``, ``sweep.md`` (one row per run) and ``sweep.png`` (value error by loss and α)."""
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()

    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(results, indent=2, default=str))
    cols = ["env", "critic_loss", "risk_aversion", "seed", "value_rel_rmse", "policy_rel_rmse", "value_s0", "ce_return",
            "error"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in results:
        lines.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    groups: dict[tuple[str, str, float], list[float]] = {}
    for r in results:
        if "error" not in r:
            key = (str(r["env"]).split("/")[-1], r["critic_loss"], r["risk_aversion"])
            groups.setdefault(key, []).append(float(r.get("value_rel_rmse", np.nan)))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups)), 4))
    labels = [f"{env}\n{loss}, α={alpha} (n={len(groups[(env, loss, alpha)])})" for env, loss, alpha in groups]
    means = [100 * float(np.mean(v)) for v in groups.values()]
    errs = [100 * float(np.std(v)) for v in groups.values()]
    ax.bar(range(len(labels)), means, yerr=errs, color="tab:blue", alpha=0.8)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel("relative value RMSE (%), mean ± std over seeds")
    n_failed = sum("error" in r for r in results)
    ax.set_title(f"sweep: {len(results) - n_failed} runs" + (f" ({n_failed} failed, not shown)" if n_failed else ""))
    save_figure(fig, out / "sweep.png", dpi=110)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


# ------------------------------------------------------------------------------------------ main


def _check_device(device: str) -> None:
    """Refuse a CUDA device where none is available (torch would silently train elsewhere or fail late)."""
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {device!r}: CUDA is not available on this machine (use 'auto' or 'cpu')")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="is-rl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--algo", default="risk_ac", help=f"algorithm ({', '.join(ALGOS)})")
        p.add_argument("--config", default=None, help="YAML hyperparameter file (default: the shipped one)")
        p.add_argument("--hyperparams", nargs="*", default=[], metavar="KEY=VALUE", help="override hyperparameters")
        p.add_argument("--device", default="auto", help="torch device: auto (CUDA if available), cpu, cuda, cuda:1")

    t = sub.add_parser("train", help="train one model")
    common(t)
    t.add_argument("--env", default=None, help="env id, e.g. is_envs/QuadraticPenalty-v0 (not with --resume)")
    t.add_argument("--loss", default=None, help="critic loss: is, emse, sp, mse")
    t.add_argument("--risk-aversion", type=float, default=None, help="α (default: the env's configured value)")
    t.add_argument(
        "--timesteps",
        type=positive_int,
        default=None,
        help="training length (overrides n_timesteps); " + TIMESTEP,
    )
    t.add_argument("--seed", type=int, default=0, help="seed of torch, numpy and the simulator/env")
    t.add_argument("--out", default=None, help="run folder (default models/<name>)")
    t.add_argument("--tensorboard-log", default="runs", help="TensorBoard folder (tensorboard --logdir runs)")
    t.add_argument(
        "--checkpoint-freq", type=positive_int, default=10_000, help="timesteps between checkpoints (checkpoint.zip)"
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint, with its own hyperparams.yml and total length "
        "(--timesteps extends it); Ctrl-C stops at an iteration boundary and saves a checkpoint",
    )
    t.add_argument("--no-progress-bar", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="evaluate a saved model (or 'greedy' on the grid)")
    e.add_argument("model", help="path to model.zip, or 'greedy'")
    e.add_argument("--algo", default=None, help="algorithm of the file (default: from its run's hyperparams.yml)")
    e.add_argument("--env", default=None, help="for 'greedy': is_envs/ItemPickup-v0")
    e.add_argument(
        "--episodes",
        type=positive_int,
        default=100,
        help="episodes: per distribution with --episodes-dir generated (grid), or of the env (SAC agents)",
    )
    e.add_argument(
        "--episodes-dir",
        default=None,
        help="grid: folder of the twelve <name>.npz tables (default: the released ones shipped with is-rl), "
        "or 'generated' for fresh episodes",
    )
    e.add_argument("--plots", default=None, help="folder for PNG plots")
    e.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes (SAC agents)")
    e.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")

    s = sub.add_parser("sweep", help="losses × risk aversions × seeds × envs, in parallel")
    common(s)
    s.add_argument("--envs", nargs="+", required=True, help="env ids")
    s.add_argument("--losses", nargs="+", default=["is"], help="critic losses: is, emse, sp, mse")
    s.add_argument(
        "--risk-aversions", nargs="+", type=float, default=None, help="α values (default: each env's configured α)"
    )
    s.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds")
    s.add_argument(
        "--timesteps",
        type=positive_int,
        default=None,
        help="training length of each run; " + TIMESTEP,
    )
    s.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1, help="local processes")
    s.add_argument("--ray-address", default=None, help="run on a Ray cluster (e.g. 'auto'); needs is-rl[ray]")
    s.add_argument("--out", default="sweeps/latest", help="sweep folder (one run folder per job, sweep.json/md/png)")

    sub.add_parser(
        "quickstart",
        help="the main job: a short RiskAC run printed against the closed form "
        "(options of python -m is_sb3.quickstart, e.g. --iterations 20000, pass through)",
    )

    b = sub.add_parser("bench", help="run a benchmark script (from a source checkout); its options pass through")
    b.add_argument("name", help=f"one of: {', '.join(BENCHMARKS)}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``is-rl`` console script; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("quickstart", "bench"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        if getattr(args, "device", None):
            _check_device(args.device)
        if args.command == "train":
            result = train_run(
                args.algo, args.env, args.loss, args.risk_aversion, args.timesteps, args.seed, args.config,
                args.hyperparams, args.out, args.tensorboard_log, args.device, args.resume, args.checkpoint_freq,
                progress_bar=not args.no_progress_bar,
            )  # fmt: skip
            print(json.dumps(result, indent=2, default=str))
        elif args.command == "evaluate":
            cmd_evaluate(args)
        elif args.command == "sweep":
            cmd_sweep(args)
        elif args.command == "quickstart":
            from is_sb3 import quickstart

            quickstart.main(extra)
        elif args.command == "bench":
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())  # console scripts do not put the working folder on the path
            try:
                module = importlib.import_module(f"benchmarks.{args.name}")
            except ModuleNotFoundError:
                raise CLIError(
                    f"no benchmark {args.name!r} (benchmarks run from the repository root: {', '.join(BENCHMARKS)})"
                ) from None
            module.main(extra)
    except CLIError as err:
        print(f"is-rl: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("is-rl: interrupted (checkpoint saved)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
