"""IS paper Fig. 4: DiscreteRiskSAC on the item pick-up grid, robustness under distribution shift.

    python -m benchmarks.item_pickup --quick          # minutes on CPU (20k env steps, 1 seed, γ = 0.99)
    python -m benchmarks.item_pickup                  # paper: 500k env steps, 3 seeds, γ ∈ {0.99, 1}
    python -m benchmarks.item_pickup --speed          # RiskSAC vs SB3 SAC env-steps/s; DiscreteRiskSAC updates/s
    python -m benchmarks.item_pickup --from-json A.json B.json --tag merged   # merge runs of separate invocations
    python -m benchmarks.item_pickup --steps 2000000 --stop-at 600000 ...     # a long run's first 600k steps, then
    python -m benchmarks.item_pickup --steps 2000000 --resume ...             # ... continued from its checkpoint
    python -m benchmarks.item_pickup --clock ...     # the agents also observe the time left (not the paper's)

Losses is / sp / emse at α = 0.1 with the IS paper's sampled target, against Enders et al.'s risk-neutral
discrete SAC (``sac``: expectation over a', Huber δ = 2, α = 0) and the greedy baseline. Enders' settings
throughout (their args_RL): Keras initialisation (the CnnPolicy's default), κ = e^{-2} until the absolute env
step 800k (so never switched off within 500k), training on the 800 released gradient1 training episodes
(a random permutation per pass), validation every 5k env steps. Validation return on a shifted distribution
(gradient2 validation episodes) and on gradient1's (Enders' model selection) during training (PNG), and the
final twelve-distribution table on the released test episodes (JSON + Markdown). Writes
``benchmarks/out/item_pickup.{json,md,png}`` (``--out benchmarks/results`` for the committed ones), and keeps each
finished run's final model (and Enders' selected one) in ``<out>/item_pickup_models/<run>/{final,best}.zip``
(~22 MB each; ``python -m benchmarks.item_pickup_greedy_gap`` compares them with greedy).

Runs longer than one invocation: every run is checkpointed every ``--checkpoint-freq`` env steps (50k) and where
``--stop-at`` ends it early, in ``<out>/item_pickup_checkpoints/<agent>_g<γ>_s<seed>_<steps>_<precision>/`` (model,
replay buffer, env mid-episode, validation and trace so far, best model: ~145 MB); the same command
with ``--resume`` continues each run from its checkpoint (a killed invocation loses the steps since its last one)
and the continued run equals the uninterrupted one. A finished run's checkpoint is removed (``finished.json`` stays:
``--resume`` refuses to run it again).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from benchmarks.common import (
    data_dir,
    keep_freed_memory,
    out_dir,
    parse_args,
    result_stem,
    run_parallel,
    write_json,
    write_json_file,
    write_results,
)
from is_sb3.files import atomic_write_bytes, atomic_write_text

SHIFTED = "gradient2"
TRAINING = "gradient1"
ENT_COEF_ZERO_AT = 0.4  # runs before this commit: κ → 0 at 40 % of --steps (read from their result files)
FINISHED = "finished.json"  #: left in a run's checkpoint folder once the run is finished (its checkpoint removed)
KAPPA_ZERO_AT_STEP = 800_000  # Enders (args_RL alpha_schedule_steps): κ = 0 from this absolute env step
#: agent → (critic loss, target, α): the IS paper's three losses with the sampled target; Enders' risk-neutral
#: SAC (``sac``); ``mse``: the sampled target with ½δ² at α = 0 (the baseline of the runs before this commit)
AGENTS: dict[str, tuple[str, Literal["sampled", "enders"], float]] = {
    "is": ("is", "sampled", 0.1),
    "sp": ("sp", "sampled", 0.1),
    "emse": ("emse", "sampled", 0.1),
    "sac": ("huber", "enders", 0.0),
    "mse": ("mse", "sampled", 0.0),
}
DEFAULT_AGENTS = ["is", "sp", "emse", "sac"]


def agent_label(run: dict[str, Any]) -> str:
    """A run's row label: "is α=0.1", "SAC (Enders, α=0)", "SAC (mse, α=0)"; "…, clock" where the agent saw the
    time left (``clock``)."""
    clock = ", clock" if run.get("clock") else ""
    if run.get("agent") == "sac" or run.get("target") == "enders":
        return f"SAC (Enders, α=0){clock}"
    if run["loss"] == "mse":
        return f"SAC (mse, α=0){clock}"
    return f"{run['loss']} α={run['alpha']}{clock}"


def _source(name: str) -> Any:
    return data_dir() / f"{name}.npz"


def train_grid(
    agent: str,
    gamma: float,
    seed: int,
    steps: int,
    device: str,
    quick: bool,
    batch_size: int,
    stop_at: int | None = None,
    kappa_zero_at_step: int | None = KAPPA_ZERO_AT_STEP,
    eval_freq: int = 5000,
    fresh_episodes: bool = False,
    save_to: str | None = None,
    precision: str = "auto",
    checkpoint_dir: str | None = None,
    checkpoint_freq: int = 50_000,
    resume: bool = False,
    models_dir: str | None = None,
    clock: bool = False,
) -> dict[str, Any]:
    """One agent's run of ``steps`` env steps, or its first ``stop_at`` steps; κ → 0 at the absolute env step
    ``kappa_zero_at_step`` (Enders: 800k; ``None``: never). Training episodes: the released gradient1 training
    split, or generated ones (``fresh_episodes``). ``save_to``: also write the run as soon as it ends to this JSON
    file (``{"runs": [run]}``, readable by ``--from-json``), so a long invocation loses no finished run.
    ``precision``: DiscreteRiskSAC's (auto: bf16 where the machine trains faster in bf16, see
    :func:`is_sb3.numerics.has_fast_bf16`); the run records the one used and the code's commit.

    ``checkpoint_dir``: the run's checkpoint folder. Every ``checkpoint_freq`` env steps, and where the run stops
    before ``steps`` (``stop_at``), the run is saved there as one checked set (:func:`is_sb3.experiments.runs.
    write_checkpoint`: model, replay buffer, env mid-episode, the validation and trace histories, the best model so
    far); ``resume`` continues it from there (an invocation killed mid-run loses the steps since its last
    checkpoint; the continued run equals the uninterrupted one). Once the run is finished and written, its checkpoint
    is removed and ``finished.json`` left, which ``resume`` refuses to run again.
    A checkpoint found without ``resume`` is refused (``ValueError``), as is one of another configuration.
    ``models_dir``: where a finished run keeps its final model (``final.zip``) and the one of Enders' model selection
    (``best.zip``, where the run was long enough to select one), for analyses after the run
    (``python -m benchmarks.item_pickup_greedy_gap``). ``clock``: the agent also observes the time left
    (``ItemPickupEnv(clock=True)``; not the IS paper's setting)."""
    import gymnasium as gym
    import torch
    from stable_baselines3.common.callbacks import CallbackList

    from is_envs.grid import shift_table
    from is_sb3 import DiscreteRiskSAC
    from is_sb3.callbacks import GridValidationCallback, TrainingTraceCallback
    from is_sb3.resume import BoundaryCallback

    torch.set_num_threads(1)
    keep_freed_memory()
    loss, target, alpha = AGENTS[agent]
    scale = 0.1 if quick else 1.0  # quick: shorter warm-up
    run_steps = min(stop_at or steps, steps)
    kappa_off = kappa_zero_at_step
    identity = {"agent": agent, "gamma": gamma, "seed": seed, "steps": steps, "batch_size": batch_size, "quick": quick,
                "kappa_off": kappa_off, "eval_freq": eval_freq, "fresh_episodes": fresh_episodes,
                "precision": precision}  # fmt: skip
    if clock:  # only then: the checkpoints of runs made before the option keep their identity
        identity["clock"] = True
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    saved = _read_grid_checkpoint(ckpt, identity, device) if ckpt is not None and resume else None
    if ckpt is not None and saved is None and (ckpt / "checkpoint.json").is_file():
        raise ValueError(f"{ckpt} holds a checkpoint of this run: continue it with --resume, or remove the folder")
    if ckpt is not None and saved is None and resume and (ckpt / FINISHED).is_file():
        result = json.loads((ckpt / FINISHED).read_text()).get("result")
        raise ValueError(f"--resume: this run finished already (its result: {result}); drop --resume to run it again")
    saved_best: Path | None = None
    if saved is not None:
        model, state, saved_best = saved
        print(f"[{agent} γ={gamma} seed {seed}] resumed at env step {model.num_timesteps} from {ckpt}", flush=True)
    else:
        env = (
            gym.make("is_envs/ItemPickup-v0", clock=clock)
            if fresh_episodes
            else gym.make("is_envs/ItemPickup-v0", episodes=TRAINING, split="training", clock=clock)
        )
        model = DiscreteRiskSAC(
            "CnnPolicy", env, risk_aversion=alpha, critic_loss=loss, target=target, gamma=gamma, seed=seed,
            device=device, learning_starts=int(20_000 * scale), buffer_size=200_000, batch_size=batch_size,
            ent_coef_zero_at=None, ent_coef_zero_at_step=kappa_zero_at_step, precision=precision,
        )  # fmt: skip
        state = {"segments": []}
    if run_steps <= model.num_timesteps:
        raise ValueError(f"--stop-at {run_steps} is not beyond the {model.num_timesteps} env steps already done")
    n_val = None if not quick else 20
    name = f"{agent_label({'agent': agent, 'loss': loss, 'alpha': alpha, 'clock': clock})} γ={gamma} seed {seed}"
    val = GridValidationCallback(eval_freq, episodes=_source(SHIFTED), n_episodes=n_val, name=name, verbose=1)
    trace = TrainingTraceCallback(eval_freq)  # critic loss, gradient norm and |Q| per validation window
    episodes_dir = data_dir()
    with tempfile.TemporaryDirectory() as tmp:
        # Enders' model selection: best gradient1 validation return from 100k steps after κ was set to 0 on
        # (10k in --quick); within a 500k-step run κ stays on, so the final model is the one tested
        best_path = Path(tmp) / "best.zip"
        save_after = int(kappa_off + 100_000 * scale) if kappa_off is not None else 0
        select = GridValidationCallback(
            eval_freq, episodes=_source(TRAINING), n_episodes=n_val, best_model_path=best_path, save_after=save_after,
        )  # fmt: skip
        if saved is not None:
            _restore_callbacks(state, model.num_timesteps, val, select, trace)
            if saved_best is not None:  # the best model so far, as the checkpoint holds it
                shutil.copyfile(saved_best, best_path)
        segment_start = model.num_timesteps
        t0, c0 = time.perf_counter(), time.process_time()

        def segments() -> list[dict[str, Any]]:
            """The run's invocations so far (this one up to now): env steps, seconds, precision, machine, commit."""
            now = {"from": segment_start, "to": int(model.num_timesteps), "seconds": time.perf_counter() - t0,
                   "cpu_seconds": time.process_time() - c0, "commit": _commit(), "machine": _machine(),
                   "precision": str(model.compute_dtype).removeprefix("torch.")}  # fmt: skip
            return [*state["segments"], now]

        def save_checkpoint(model: Any) -> None:
            from is_sb3.experiments.runs import write_checkpoint

            assert ckpt is not None
            run_state = {"identity": identity, "segments": segments(), "val": _callback_state(val),
                         "select": _callback_state(select), "trace": _callback_state(trace)}  # fmt: skip
            extra = {"run_state.json": json.dumps(run_state).encode()}
            if best_path.is_file():
                extra["best.zip"] = best_path.read_bytes()
            ckpt.mkdir(parents=True, exist_ok=True)
            write_checkpoint(ckpt, model, extra)
            (ckpt / FINISHED).unlink(missing_ok=True)  # a run started again over a finished one

        callbacks: list[Any] = [val, select, trace]
        if ckpt is not None:  # last: the trace has read the previous update's values when the hook saves
            last_saved = model.num_timesteps

            def periodic(model: Any) -> None:
                nonlocal last_saved
                if model.num_timesteps - last_saved >= checkpoint_freq:
                    save_checkpoint(model)
                    last_saved = model.num_timesteps

            callbacks.append(BoundaryCallback(periodic))
        # SB3's progress then runs to run_steps, not to steps: only a schedule in progress could tell, and these
        # runs have none (constant learning rate, κ switched at an absolute step)
        model.learn(
            run_steps - model.num_timesteps, callback=CallbackList(callbacks), reset_num_timesteps=saved is None
        )
        parts = segments()
        if ckpt is not None and model.num_timesteps < steps:  # a partial run: continued by a later --resume
            trace.on_rollout_start()  # the last update's values, as the next rollout would read them
            save_checkpoint(model)
        out = {"agent": agent, "loss": loss, "target": target, "alpha": alpha, "gamma": gamma, "seed": seed,
               "steps": int(model.num_timesteps), "schedule_steps": steps, "kappa_off": kappa_off,
               "eval_freq": eval_freq,
               "training_episodes": "generated" if fresh_episodes else "released gradient1 training split",
               "init": model.policy.init, "batch_size": batch_size, "commit": _commit(),
               "precision": _joined(p["precision"] for p in parts), "seconds": sum(p["seconds"] for p in parts),
               "cpu_seconds": sum(p["cpu_seconds"] for p in parts), "machine": _joined(p["machine"] for p in parts),
               "validation": val.history, "validation_training": select.history, "trace": trace.history,
               "shift": shift_table(model, episodes_dir, n_episodes=20 if quick else 100)}  # fmt: skip
        if clock:
            out["clock"] = True
        if len(parts) > 1:
            out["segments"] = parts
        if best_path.is_file():
            late = [(s, v) for s, v in select.history if s >= select.save_after]
            out["best_step"] = next(s for s, v in late if v == select.best_mean)  # the first (saved) one
            best = DiscreteRiskSAC.load(best_path, device=device)
            out["shift_best"] = shift_table(best, episodes_dir, n_episodes=20 if quick else 100)
        if models_dir is not None and model.num_timesteps >= steps:
            buffer = io.BytesIO()
            model.save(buffer)
            atomic_write_bytes(Path(models_dir) / "final.zip", buffer.getvalue())
            if best_path.is_file():
                atomic_write_bytes(Path(models_dir) / "best.zip", best_path.read_bytes())
    if save_to is not None:
        write_json_file(Path(save_to), {"batch_size": batch_size, "runs": [out]})
    if ckpt is not None and model.num_timesteps >= steps and ckpt.is_dir():  # finished and written: the checkpoint
        for old in ckpt.iterdir():  # goes (~145 MB); a marker stays, so that --resume does not run it again
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        atomic_write_text(ckpt / FINISHED, json.dumps({"steps": int(model.num_timesteps), "result": save_to}))
    return out


def _joined(values: Any) -> str:
    """Distinct values in order of first appearance, joined by " then " (a run continued on another machine)."""
    return " then ".join(dict.fromkeys(str(v) for v in values))


def _callback_state(callback: Any) -> dict[str, Any]:
    """What a validation or trace callback has accumulated (restored by :func:`_restore_callbacks`)."""
    keys = ("history", "best_mean", "_window", "_seen_updates")
    return {key: getattr(callback, key) for key in keys if hasattr(callback, key)}


def _restore_callbacks(state: dict[str, Any], steps_done: int, val: Any, select: Any, trace: Any) -> None:
    """Put the callbacks of a resumed run where the checkpointed run had them (their step counters included: they
    act every ``eval_freq`` of their calls, one per env step)."""
    for name, callback in (("val", val), ("select", select), ("trace", trace)):
        saved = state[name]
        callback.n_calls = steps_done
        if name == "trace":
            callback.history = [(int(s), summary) for s, summary in saved["history"]]
            callback._window = {key: list(values) for key, values in saved["_window"].items()}
            callback._seen_updates = int(saved["_seen_updates"])
        else:
            callback.history = [(int(s), float(v)) for s, v in saved["history"]]
            callback.best_mean = float(saved["best_mean"])


def _read_grid_checkpoint(
    ckpt: Path, identity: dict[str, Any], device: str
) -> tuple[Any, dict[str, Any], Path | None] | None:
    """The model, run state and best model so far (its file, if any) of the run's checkpoint in ``ckpt`` (None if it
    has none), its files checked; a ``ValueError`` if it is a checkpoint of another configuration."""
    import pickle

    from is_sb3 import DiscreteRiskSAC
    from is_sb3.experiments.runs import read_checkpoint

    if not (ckpt / "checkpoint.json").is_file():
        return None
    files = read_checkpoint(ckpt, off_policy=True)
    if "run_state.json" not in files:
        raise ValueError(f"{ckpt}: the checkpoint has no run_state.json (not a checkpoint of benchmarks.item_pickup)")
    state = json.loads(files["run_state.json"].read_text())
    theirs = state["identity"]
    differ = sorted(k for k in identity.keys() | theirs.keys() if identity.get(k) != theirs.get(k))
    if differ:
        found = {k: theirs.get(k) for k in differ}
        raise ValueError(f"{ckpt} is a checkpoint of another configuration ({found}), not of {identity}")
    with files["env.pkl"].open("rb") as file:  # the run's own file, checked against checkpoint.json's SHA-256
        env = pickle.load(file)
    model = DiscreteRiskSAC.load(files["model.zip"], env=env, force_reset=False, device=device)
    model.load_replay_buffer(files["replay_buffer.pkl"])
    return model, state, files.get("best.zip")


def _commit() -> str | None:
    """The git commit of the code that runs (None outside a git checkout)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() or None


def _update_floor_ms(batch: int, dtype: Any, device: str, repeats: int) -> dict[str, float]:
    """The matrix-product floor of one DiscreteRiskSAC update: every convolution and linear layer of Enders' CNN
    timed alone in ``dtype`` (best of ``repeats``), forward ×6 (actor and both critics on s, both targets and the
    actor on s') and the two backward products ×3 (actor and critics; the first layer's input gradient is not
    needed), in CPU ms. What the update does on top (ReLU, padding, casts, Adam, Polyak, clipping, losses) is not
    in it."""
    import torch as th
    from torch.nn import functional

    from is_sb3.discrete_sac.policies import EndersCNN

    gen = th.Generator().manual_seed(0)
    x = th.rand(batch, 3, 5, 5, generator=gen).to(device=device, dtype=dtype).contiguous(memory_format=th.channels_last)
    layers: list[tuple[str, Any, th.Tensor]] = []
    with th.no_grad():
        h = x
        for conv in [m for m in EndersCNN(_grid_space()).net if isinstance(m, th.nn.Conv2d)]:
            w = conv.weight.to(device=device, dtype=dtype).contiguous(memory_format=th.channels_last)
            pad = conv.kernel_size[0] // 2 if conv.kernel_size[0] == 3 else 0
            h_in = h if pad else functional.pad(h, (0, 1, 0, 1))
            layers.append(("conv", (w, pad), h_in))
            h = th.relu(functional.conv2d(h_in, w, padding=pad))
        flat = h.reshape(batch, -1)
        for n_in, n_out in ((1600, 256), (256, 256), (256, 5)):
            w = th.randn(n_out, n_in, generator=gen).to(device=device, dtype=dtype) / n_in**0.5
            layers.append(("linear", w, flat))
            flat = th.relu(flat @ w.T)

    def best(fn: Any) -> float:
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.process_time()
            fn()
            if device.startswith("cuda"):
                th.cuda.synchronize()
            times.append(time.process_time() - t0)
        return 1000 * min(times)

    forward = backward = 0.0
    for i, (kind, w, inp) in enumerate(layers):
        if kind == "conv":
            weight, pad = w
            out = functional.conv2d(inp, weight, padding=pad)
            grad = th.ones_like(out)
            forward += best(lambda inp=inp, weight=weight, pad=pad: functional.conv2d(inp, weight, padding=pad))
            mask = [i > 0, True, False]  # input gradient (not for the first layer), weight gradient

            def conv_backward(inp: Any = inp, weight: Any = weight, pad: int = pad, grad: Any = grad,
                              mask: list[bool] = mask) -> Any:  # fmt: skip
                return th.ops.aten.convolution_backward(
                    grad, inp, weight, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask
                )

            backward += best(conv_backward)
        else:
            grad = th.ones(inp.shape[0], w.shape[0], device=device, dtype=dtype)
            forward += best(lambda inp=inp, w=w: inp @ w.T)
            backward += best(lambda inp=inp, w=w, grad=grad: (grad @ w, grad.T @ inp))
    return {"forward": forward, "backward": backward, "update": 6 * forward + 3 * backward}


def _grid_space() -> Any:
    from gymnasium import spaces

    return spaces.Box(0.0, 1.0, shape=(3, 5, 5))


def speed(device: str, quick: bool) -> dict[str, Any]:
    """DiscreteRiskSAC's update in float32 and bf16 in one process (interleaved, CPU ms per update, best of
    several blocks), the matrix-product floor of the update in each dtype, the env side (steps with the actor's
    forward, validation), the estimated 500k-step run, and RiskSAC against SB3's SAC in env steps/s."""
    import torch as th
    from stable_baselines3 import SAC

    from is_envs.grid import evaluate
    from is_sb3 import DiscreteRiskSAC, RiskSAC
    from is_sb3.numerics import flush_denormals, has_fast_bf16, resolve_precision

    th.set_num_threads(1)
    keep_freed_memory()
    out: dict[str, Any] = {
        "machine": _machine(),
        "fast_bf16": has_fast_bf16(device),
        "auto_precision": str(resolve_precision("auto", device)).replace("torch.", ""),
    }
    models = {}
    for precision in ("float32", "bf16"):
        model = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", learning_starts=2000, device=device, seed=0,
                                precision=precision)  # fmt: skip
        model.learn(2001)  # fills the buffer, then one update
        models[precision] = model
    blocks = {"float32": 3 if quick else 5, "bf16": 3 if quick else 5}
    per_block = {"float32": 3 if quick else 10, "bf16": 1 if quick or not out["fast_bf16"] else 10}
    ms: dict[str, list[float]] = {"float32": [], "bf16": []}
    with flush_denormals():
        for _ in range(max(blocks.values())):
            for precision, model in models.items():
                n = per_block[precision]
                t0 = time.process_time()
                model.train(gradient_steps=n, batch_size=512)
                if device.startswith("cuda"):
                    th.cuda.synchronize()
                ms[precision].append(1000 * (time.process_time() - t0) / n)
    for precision in ms:
        out[f"update_ms_{precision}"] = min(ms[precision])
    out["bf16_speedup"] = out["update_ms_float32"] / out["update_ms_bf16"]
    for name, dtype in (("float32", th.float32), ("bf16", th.bfloat16)):
        floor = _update_floor_ms(512, dtype, device, repeats=3 if quick else 5)
        out[f"floor_ms_{name}"] = floor["update"]
        out[f"update_over_floor_{name}"] = out[f"update_ms_{name}"] / floor["update"]
    # the env side: env steps with the actor's forward (batch 1), and one validation (100 episodes, batched)
    model = models["float32"]
    steps = 500 if quick else 2000
    t0 = time.process_time()
    model.learn(steps, reset_num_timesteps=False)  # past learning_starts: one update per 20 steps included
    learn_ms = 1000 * (time.process_time() - t0)
    out["env_step_ms_with_updates"] = learn_ms / steps
    out["env_step_ms"] = (learn_ms - steps / 20 * out["update_ms_float32"]) / steps
    t0 = time.process_time()
    evaluate(model, _source(SHIFTED), "validation")
    out["validation_s"] = time.process_time() - t0
    auto = "bf16" if out["auto_precision"] == "bfloat16" else "float32"
    updates = (500_000 - 20_000) / 20
    validations = 2 * 500_000 / 5000  # gradient2 and gradient1, every 5k steps
    out["run_500k_minutes_estimate"] = (
        updates * out[f"update_ms_{auto}"] / 1000
        + 500_000 * out["env_step_ms"] / 1000
        + validations * out["validation_s"]
    ) / 60
    out["run_500k_precision"] = auto
    sac_steps = 600 if quick else 3000
    kw = {"learning_starts": 100, "batch_size": 256, "seed": 0, "device": device}

    def sac_rate(cls: Any, **extra: Any) -> float:
        sac = cls("MlpPolicy", "is_envs/QuadraticPenalty-v0", **kw, **extra)
        t0 = time.perf_counter()
        sac.learn(sac_steps)
        return sac_steps / (time.perf_counter() - t0)

    stock, risky = [], []
    for _ in range(3):  # interleaved, best of three
        stock.append(sac_rate(SAC))
        risky.append(sac_rate(RiskSAC, risk_aversion=2.0, critic_loss="is"))
    out["sac_env_steps_per_s"], out["risk_sac_env_steps_per_s"] = max(stock), max(risky)
    out["risk_sac_over_sac"] = out["risk_sac_env_steps_per_s"] / out["sac_env_steps_per_s"]
    # would bf16 help RiskSAC? Its whole update under bf16 autocast (an upper bound: the targets, log-probabilities
    # and losses would also round to bf16) against float32, interleaved, best of 5 blocks of 50 updates
    sac = RiskSAC("MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=2.0, critic_loss="is", **kw)
    sac.learn(400)
    sac_ms: dict[str, list[float]] = {"float32": [], "bf16": []}
    for _ in range(3 if quick else 5):
        for precision, times in sac_ms.items():
            t0 = time.process_time()
            with th.autocast(th.device(device).type, dtype=th.bfloat16, enabled=precision == "bf16"):
                sac.train(gradient_steps=50, batch_size=256)
            if device.startswith("cuda"):
                th.cuda.synchronize()
            times.append(1000 * (time.process_time() - t0) / 50)
    out["risk_sac_update_ms_float32"] = min(sac_ms["float32"])
    out["risk_sac_update_ms_bf16_autocast"] = min(sac_ms["bf16"])
    out["risk_sac_bf16_speedup"] = out["risk_sac_update_ms_float32"] / out["risk_sac_update_ms_bf16_autocast"]
    return out


def _machine() -> str:
    """The CPU model and its bf16-relevant flags (Linux), and torch's version."""
    import platform

    import torch as th

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    shown = sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
    return f"{model} ({', '.join(shown) or 'no AVX2'}), torch {th.__version__}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None, help="env steps per run (paper: 500000)")
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed, first-seed + 1, ...")
    parser.add_argument("--gammas", nargs="+", type=float, default=None)
    parser.add_argument(
        "--stop-at", type=int, default=None, help="stop each run after this many of its --steps (partial runs)"
    )
    parser.add_argument("--batch-size", type=int, default=None, help="update batch (paper: 512; --quick: 128)")
    parser.add_argument(
        "--losses", nargs="+", choices=AGENTS, default=DEFAULT_AGENTS,
        help="agents: is/sp/emse (α = 0.1, sampled target), sac (Enders' risk-neutral SAC: expectation over a', "
        "Huber δ = 2), mse (sampled target, ½δ², α = 0)",
    )  # fmt: skip
    parser.add_argument(
        "--kappa-zero-at-step", type=int, default=KAPPA_ZERO_AT_STEP,
        help="set the entropy coefficient to 0 at this absolute env step (default Enders' 800000)",
    )  # fmt: skip
    parser.add_argument("--eval-freq", type=int, default=5000, help="env steps between validations (Enders: 5000)")
    parser.add_argument(
        "--fresh-episodes", action="store_true",
        help="train on generated gradient1 episodes instead of the 800 released training episodes (Enders)",
    )  # fmt: skip
    parser.add_argument(
        "--clock", action="store_true",
        help="the agents also observe the time left (ItemPickupEnv(clock=True); not the IS paper's setting)",
    )  # fmt: skip
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--tag", default="", help="suffix of the result files (item_pickup_<tag>.*)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--precision", choices=("auto", "float32", "bf16"), default="auto",
        help="DiscreteRiskSAC's precision (auto: bf16 where it is faster: AMX, AMD AVX512-BF16, a bf16 GPU; "
        "else float32)",
    )  # fmt: skip
    parser.add_argument(
        "--resume", action="store_true",
        help="continue each run from its checkpoint (<out>/item_pickup_checkpoints/), start those that have none",
    )  # fmt: skip
    parser.add_argument(
        "--checkpoint-freq", type=int, default=50_000,
        help="env steps between checkpoints (a killed invocation loses at most this many steps of each run)",
    )  # fmt: skip
    parser.add_argument("--speed", action="store_true")
    parser.add_argument(
        "--from-json", nargs="+", metavar="FILE", help="no training: re-report (and merge) the runs of these files"
    )
    args = parse_args(parser, argv)
    if args.stop_at is not None and args.stop_at < 1:
        parser.error(f"--stop-at must be >= 1, got {args.stop_at}")
    if args.from_json:
        return report(load_runs(args.from_json), args.tag)
    if args.speed:
        result = speed(args.device, args.quick)
        print(result)
        write_json(f"item_pickup_speed_{args.device.replace(':', '')}.json", result)
        return result
    steps = args.steps or (20_000 if args.quick else 500_000)
    seeds = args.seeds or (1 if args.quick else 3)
    gammas = args.gammas or ([0.99] if args.quick else [0.99, 1.0])
    batch_size = args.batch_size or (128 if args.quick else 512)
    stem = result_stem("item_pickup", args.tag)
    if args.eval_freq < 1:
        parser.error(f"--eval-freq must be >= 1, got {args.eval_freq}")
    if args.checkpoint_freq < 1:
        parser.error(f"--checkpoint-freq must be >= 1, got {args.checkpoint_freq}")
    clock = "_clock" if args.clock else ""
    jobs = [
        {"agent": agent, "gamma": g, "seed": s, "steps": steps, "device": args.device, "quick": args.quick,
         "batch_size": batch_size, "stop_at": args.stop_at, "kappa_zero_at_step": args.kappa_zero_at_step,
         "eval_freq": args.eval_freq if not args.quick else min(args.eval_freq, 1000),
         "fresh_episodes": args.fresh_episodes, "precision": args.precision, "clock": args.clock,
         "save_to": str(out_dir() / "item_pickup_runs" / f"{stem}_{run}.json"),
         "checkpoint_dir": str(out_dir() / "item_pickup_checkpoints" / run),
         "checkpoint_freq": args.checkpoint_freq, "resume": args.resume,
         "models_dir": str(out_dir() / "item_pickup_models" / f"{stem}_{run}")}
        for g in gammas for agent in args.losses for s in range(args.first_seed, args.first_seed + seeds)
        for run in [f"{agent}_g{g}_s{s}_{steps}_{args.precision}{clock}"]
    ]  # fmt: skip
    return report(run_parallel(train_grid, jobs, args.workers), args.tag)


def load_runs(paths: list[str]) -> list[dict[str, Any]]:
    """The runs stored in earlier result files (``item_pickup*.json``), e.g. made by separate invocations."""
    runs = []
    for path in paths:
        payload = json.loads(Path(path).read_text())
        runs += [{"batch_size": payload.get("batch_size"), **run} for run in payload["runs"]]
    return runs


def _steps_label(run: dict[str, Any]) -> str:
    done, planned = run["steps"], run.get("schedule_steps", run["steps"])
    return f"{done}" if done == planned else f"{done} of {planned}"


def report(runs: list[dict[str, Any]], tag: str) -> dict[str, Any]:
    """Shift table (Markdown + JSON) and validation curves (PNG) of ``runs``, averaged over seeds."""
    from is_envs.grid import DISTRIBUTIONS

    groups: dict[tuple[str, float, float], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(agent_label(run), run["alpha"], run["gamma"])].append(run)
    names = list(DISTRIBUTIONS)
    lines = [
        "Mean test return on the released test episodes of each distribution (gradient1: training) of the "
        "final model and, where the run was long enough, of the checkpoint with the best gradient1 validation "
        "return from 100k steps after κ = 0 on (Enders' selection)",
        "",
        "| agent | γ | env steps | batch | seeds | " + " | ".join(names) + " | mean ÷ greedy | shifted ÷ greedy |",
        "|---|---|---|---|---|" + "---|" * (len(names) + 2),
    ]
    shifted = [n for n in names if n != TRAINING]
    greedy = runs[0]["shift"]
    greedy_row = " | ".join(f"{greedy[n]['greedy_mean_return']:.1f}" for n in names)
    lines.append(f"| greedy | – | – | – | – | {greedy_row} | 1.00 | 1.00 |")
    table = {}
    for (loss, _alpha, gamma), group in groups.items():
        label = loss  # the agent's label
        steps = "/".join(sorted({_steps_label(g) for g in group}))
        batch = "/".join(sorted({str(g.get("batch_size")) for g in group}))
        rows = [("shift", label, f"{label} γ={gamma}")]
        if all("shift_best" in g for g in group):  # Enders' selected checkpoint
            at = "/".join(str(g["best_step"]) for g in group)
            rows.append(("shift_best", f"{label}, best checkpoint ({at})", f"{label} γ={gamma} best"))
        for key, row_label, table_key in rows:
            returns = {n: [g[key][n]["mean_return"] for g in group] for n in names}
            rel_seed = [float(np.mean([g[key][n]["relative_to_greedy"] for n in names])) for g in group]
            rel_shifted = [float(np.mean([g[key][n]["relative_to_greedy"] for n in shifted])) for g in group]
            table[table_key] = {
                "mean_return": {n: float(np.mean(v)) for n, v in returns.items()},
                "std_return": {n: float(np.std(v)) for n, v in returns.items()},
                "relative_to_greedy": float(np.mean(rel_seed)),
                "relative_to_greedy_std": float(np.std(rel_seed)),
                "relative_to_greedy_per_seed": rel_seed,
                "relative_to_greedy_shifted": float(np.mean(rel_shifted)),
                "relative_to_greedy_shifted_std": float(np.std(rel_shifted)),
                "relative_to_greedy_shifted_per_seed": rel_shifted,
                "seeds": len(group),
                "agent": label,
                "gamma": gamma,
                "model": "best" if key == "shift_best" else "final",
            }
            cells = " | ".join(_mean_std(returns[n], "{:.1f}") for n in names)
            rel, rel_sh = _mean_std(rel_seed, "{:.2f}"), _mean_std(rel_shifted, "{:.2f}")
            lines.append(f"| {row_label} | {gamma} | {steps} | {batch} | {len(group)} | {cells} | {rel} | {rel_sh} |")
    lines += [
        "",
        f"÷ greedy: the mean over the twelve distributions (shifted: the eleven other than {TRAINING}, the "
        "training distribution) of each distribution's mean return divided by greedy's, per seed.",
    ]
    if any(len(g) > 1 for g in groups.values()):
        lines += ["", "Cells: mean ± std over seeds (std of the seeds' values, ddof 0)."]
    comparisons = compare_agents(table)
    lines += _comparison_lines(comparisons)
    lines += _critic_health(groups)
    text = "\n".join(lines)
    payload = {"table": table, "comparisons": comparisons, "runs": runs}
    write_results(result_stem("item_pickup", tag), text, payload, lambda path: _plot(groups, path))
    return payload


def compare_agents(table: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pair of agents at the same γ with two seeds or more each (final models): the difference of their
    ÷-greedy ratios (over the twelve distributions and over the eleven shifted ones, first agent minus second) with
    Welch's t-test on the per-seed values (two-sided; NaN where both agents' seeds agree exactly).

    :param table: ``report``'s table (its rows of selected checkpoints, ``"model": "best"``, are left out).
    :return: one dict per pair, in the table's order of agents.
    """
    from scipy import stats

    rows = [row for row in table.values() if row["model"] == "final"]
    out = []
    for i, a in enumerate(rows):
        for b in rows[i + 1 :]:
            if a["gamma"] != b["gamma"] or min(a["seeds"], b["seeds"]) < 2:
                continue
            pair: dict[str, Any] = {"gamma": float(a["gamma"]), "a": a["agent"], "b": b["agent"],
                                    "seeds": [a["seeds"], b["seeds"]]}  # fmt: skip
            for field, name in (("relative_to_greedy", "all"), ("relative_to_greedy_shifted", "shifted")):
                x, y = a[f"{field}_per_seed"], b[f"{field}_per_seed"]
                test = stats.ttest_ind(x, y, equal_var=False)
                pair[name] = {"difference": float(np.mean(x) - np.mean(y)), "t": float(test.statistic),
                              "p": float(test.pvalue)}  # fmt: skip
            out.append(pair)
    return out


def _comparison_lines(comparisons: list[dict[str, Any]]) -> list[str]:
    """Markdown table of ``compare_agents``' pairs (nothing when no agent has two seeds)."""
    if not comparisons:
        return []
    lines = [
        "",
        "Pairs of agents (final models): difference of the mean ÷ greedy (first minus second) and Welch's t-test "
        "on the per-seed values, two-sided; with 2–3 seeds per agent only large differences reach p < 0.05",
        "",
        "| γ | first | second | seeds | Δ ÷ greedy, twelve | t | p | Δ ÷ greedy, shifted | t | p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        cells = " | ".join(f"{c[k]['difference']:+.3f} | {c[k]['t']:.2f} | {c[k]['p']:.2g}" for k in ("all", "shifted"))
        lines.append(f"| {c['gamma']} | {c['a']} | {c['b']} | {c['seeds'][0]}, {c['seeds'][1]} | {cells} |")
    return lines


def _mean_std(values: list[float], fmt: str) -> str:
    """``mean ± std`` over seeds, or the value alone for one seed (no spread was measured)."""
    if len(values) == 1:
        return fmt.format(values[0])
    return f"{fmt.format(np.mean(values))} ± {fmt.format(np.std(values))}"


def _critic_health(groups: dict[tuple[str, float, float], list[dict[str, Any]]]) -> list[str]:
    """Markdown lines: each traced run's critic gradient norm (before clipping) and |Q| range, before and
    after κ → 0, and its count of non-finite values (the signs of a diverging critic)."""
    traced = [(key, run) for key, group in groups.items() for run in group if run.get("trace")]
    if not traced:
        return []
    lines = [
        "",
        "Critic health per run (means and maxima over each phase of the per-update values; Q in "
        "reward-std units): gradient norm before clipping to 10, max |Q(s, a)| and the mean Q(s, a) on the update "
        "batches; the precision the run trained in, its CPU minutes (one thread) and the machine",
        "",
        "| agent | γ | seed | grad norm, κ > 0: mean / max | grad norm, κ = 0: mean / max | max abs Q, κ > 0 "
        "| max abs Q, κ = 0 | mean Q: at κ → 0, lowest after, final | final critic loss | non-finite "
        "| precision | CPU min | machine |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (loss, _alpha, gamma), run in traced:
        off = run.get("kappa_off", ENT_COEF_ZERO_AT * run.get("schedule_steps", run["steps"]))
        windows = [(step, w) for step, w in run["trace"] if w]
        phases = [[w for step, w in windows if step <= off], [w for step, w in windows if step > off]]

        def stat(phase: list[dict[str, Any]], key: str, how: str) -> str:
            values = [w[key][how] for w in phase if key in w]
            if not values:
                return "–"
            return f"{np.mean(values):.3g}" if how == "mean" else f"{np.max(values):.3g}"

        norms = [f"{stat(p, 'critic_grad_norm', 'mean')} / {stat(p, 'critic_grad_norm', 'max')}" for p in phases]
        qmax = [stat(p, "q_abs_max", "max") for p in phases]
        q_means = [w["q_mean"]["mean"] for w in phases[1] if "q_mean" in w]
        at_off = phases[0][-1]["q_mean"]["mean"] if phases[0] and "q_mean" in phases[0][-1] else float("nan")
        q_path = f"{at_off:.3g}, {min(q_means):.3g}, {q_means[-1]:.3g}" if q_means else "–"
        final_loss = windows[-1][1].get("critic_loss", {}).get("mean", float("nan")) if windows else float("nan")
        bad = sum(v["nonfinite"] for _, w in windows for v in w.values())
        label = loss
        lines.append(
            f"| {label} | {gamma} | {run['seed']} | {norms[0]} | {norms[1]} | {qmax[0]} | {qmax[1]} | {q_path} "
            f"| {final_loss:.3g} | {bad} | {run.get('precision', '–')} | "
            f"{run['cpu_seconds'] / 60:.0f} | {run.get('machine', '–')} |"
        )
    return lines


def _plot(groups: dict[tuple[str, float, float], list[dict[str, Any]]], path: str) -> None:
    """Fig. 4: validation return during training, mean ± 1 std over seeds, on the shifted distribution (gradient2)
    and on the training one (gradient1, Enders' model selection), one column per γ, greedy drawn on each; below,
    when the runs were traced, the critics' gradient norm and mean Q per window (one line per seed)."""
    from is_envs.grid import GreedyPolicy, evaluate
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()
    greedy = {name: float(evaluate(GreedyPolicy(), _source(name), "validation").mean()) for name in (SHIFTED, TRAINING)}
    gammas = sorted({k[2] for k in groups})
    curves = [("validation", SHIFTED, "shifted"), ("validation_training", TRAINING, "training distribution")]
    traced = any(run.get("trace") for group in groups.values() for run in group)
    panels = [("critic_grad_norm", "critic gradient norm before clipping", "gradient norm (L2)", True),
              ("q_mean", "mean Q(s, a)", "Q (scaled reward units)", False)]  # fmt: skip
    rows = len(curves) + len(panels) * traced
    fig, axes = plt.subplots(rows, len(gammas), figsize=(6.5 * len(gammas), 3.8 * rows), squeeze=False)
    labels = list(dict.fromkeys(key[0] for key in groups))  # one colour per agent, the same in every γ's column
    colours = {key: f"C{labels.index(key[0])}" for key in groups}
    for col, gamma in enumerate(gammas):
        last_step = 0
        for key, group in groups.items():
            label, _, g = key
            if g != gamma:
                continue
            for row, (field, _, _) in enumerate(curves):
                histories = [run.get(field) or [] for run in group]
                n = min(len(h) for h in histories)
                if n == 0:  # every panel names the same agents: a run without this validation says so
                    axes[row, col].plot([], [], color=colours[key], ls=":", label=f"{label}: not recorded")
                    continue
                steps = np.array([s for s, _ in histories[0][:n]])
                values = np.array([[v for _, v in h[:n]] for h in histories])
                mean, std = values.mean(axis=0), values.std(axis=0)
                ax = axes[row, col]
                ax.plot(steps, mean, color=colours[key], label=f"{label} ({len(group)} seed{'s' * (len(group) > 1)})")
                if len(group) > 1:
                    ax.fill_between(steps, mean - std, mean + std, color=colours[key], alpha=0.2, lw=0)
                last_step = max(last_step, int(steps[-1]))
            for row, (field, _, _, _) in enumerate(panels[: rows - len(curves)], start=len(curves)):
                for run in group:
                    xy = [(s, w[field]["mean"]) for s, w in run.get("trace", []) if field in w]
                    if xy:
                        axes[row, col].plot(*zip(*xy, strict=True), color=colours[key], lw=0.8,
                                            label=f"{label} seed {run['seed']}")  # fmt: skip
                    else:  # every panel names the same agents: an untraced run says so
                        axes[row, col].plot([], [], color=colours[key], lw=0.8, ls=":",
                                            label=f"{label} seed {run['seed']}: not traced")  # fmt: skip
        kappa_off = {group[0].get("kappa_off") for key, group in groups.items() if key[2] == gamma}
        for row, (_, name, what) in enumerate(curves):
            ax = axes[row, col]
            ax.axhline(greedy[name], color="k", ls="--", lw=1, label=f"greedy ({greedy[name]:.0f})")
            ax.set(title=f"validation on {name} ({what}), γ = {gamma}", xlabel="env steps",
                   ylabel="mean return per episode (100 episodes)")  # fmt: skip
        for row, (_, title, ylabel, log) in enumerate(panels[: rows - len(curves)], start=len(curves)):
            axes[row, col].set(title=f"{title} (window mean), γ = {gamma}", xlabel="env steps", ylabel=ylabel,
                               yscale="log" if log else "linear")  # fmt: skip
        for row in range(rows):
            for off in kappa_off:
                if off is not None and off <= last_step:
                    axes[row, col].axvline(off, color="grey", ls=":", lw=1, label="κ → 0")
            axes[row, col].grid(alpha=0.3)
            axes[row, col].legend(fontsize="small")
    title = "DiscreteRiskSAC on the item pick-up grid: validation return, mean ± 1 std over seeds"
    fig.suptitle(title, fontsize="medium")
    save_figure(fig, path, dpi=110, top=1 - 0.25 / fig.get_figheight())  # room for the title above the panels


if __name__ == "__main__":
    main()
