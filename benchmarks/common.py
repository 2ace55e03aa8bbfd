"""Helpers shared by the benchmark scripts: timing, data location, result files."""

from __future__ import annotations

import argparse
import ctypes
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from is_sb3.files import atomic_write_text
from is_sb3.parallel import run_parallel

__all__ = [
    "FRESH",
    "RESULTS",
    "data_dir",
    "keep_freed_memory",
    "mean_std",
    "out_dir",
    "parse_args",
    "rate",
    "result_stem",
    "run_parallel",
    "settles_within",
    "train_risk_ac",
    "write_json",
    "write_json_file",
    "write_results",
]

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"  #: the committed results (README figures)
FRESH = REPO / "benchmarks" / "out"  #: where a run writes unless told otherwise (untracked)
_out_dir = FRESH


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` with ``--out DIR``: where the results go (default ``benchmarks/out``, untracked;
    ``--out benchmarks/results`` replaces the committed files the README quotes)."""
    global _out_dir
    parser.add_argument(
        "--out", default=str(FRESH), help="results folder (default benchmarks/out, untracked; benchmarks/results "
        "holds the committed results)"
    )  # fmt: skip
    args = parser.parse_args(argv)
    _out_dir = Path(args.out)
    return args


def out_dir() -> Path:
    """The results folder of this run (see :func:`parse_args`)."""
    return _out_dir


def data_dir() -> Path:
    """Folder of the released item pick-up episodes (shipped with the package)."""
    from is_envs.grid import RELEASED_DIR

    return RELEASED_DIR


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel (Linux only).

    By default glibc serves each allocation above ~128 kB-32 MB with fresh ``mmap`` pages and unmaps
    them on free, so every batch-512 activation of the grid CNN costs page faults. Measured here: kernel
    time of 10 DiscreteRiskSAC updates 0.37 s → 0, and 4.49 → 4.71 updates/s on one quiet thread
    (``python -m benchmarks.item_pickup --speed --quick``). Returns whether it applied.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
    return bool(libc.mallopt(m_mmap_threshold, 32 * 2**20)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))


def rate(fn: Callable[[], int], min_seconds: float) -> float:
    """Units per second of ``fn`` (which returns the units it did): best of timed blocks after a warm-up."""
    fn()
    best, spent = 0.0, 0.0
    while spent < min_seconds:
        t0 = time.perf_counter()
        units = fn()
        dt = time.perf_counter() - t0
        spent += dt
        best = max(best, units / dt)
    return best


def settles_within(
    history: list[dict[str, float]], reference: float, tol: float = 0.01, key: str = "value_s0"
) -> dict[str, float]:
    """Where ``history[key]`` enters |x − ref| ≤ tol·|ref| for good: the first evaluation from which every
    later one is within (not the first touch). Returns its ``iteration``, ``cpu_seconds`` and
    ``wall_seconds`` (NaN if the last evaluation is outside)."""
    nan = {"iteration": float("nan"), "cpu_seconds": float("nan"), "wall_seconds": float("nan")}
    inside = [abs(h[key] - reference) <= tol * abs(reference) for h in history]
    if not inside or not inside[-1]:
        return nan
    first = len(inside) - 1
    while first > 0 and inside[first - 1]:
        first -= 1
    h = history[first]
    return {k: float(h.get(k, float("nan"))) for k in ("iteration", "cpu_seconds", "wall_seconds")}


def mean_std(values: list[float], fmt: str = "{:.4f}", scale: float = 1.0) -> str:
    """``mean ± std`` over seeds (NaN-aware; "n/a" if none is finite; ``(k/n)`` where only k are finite; the value
    alone where only one is, as no spread was measured)."""
    import numpy as np

    x = np.asarray(values, dtype=float) * scale
    ok = np.isfinite(x)
    if not ok.any():
        return "n/a"
    if ok.sum() == 1:  # one value: no spread was measured
        text = fmt.format(x[ok][0])
    else:
        text = f"{fmt.format(np.mean(x[ok]))} ± {fmt.format(np.std(x[ok]))}"
    return text if ok.all() else f"{text} ({ok.sum()}/{len(x)})"


def result_stem(name: str, tag: str = "") -> str:
    """File stem of a benchmark's results: ``name`` or ``name_tag`` (runs of other configurations)."""
    return f"{name}_{tag}" if tag else name


def write_json(name: str, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as ``name`` in the results folder; returns the path."""
    return write_json_file(out_dir() / name, payload)


def write_json_file(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as JSON to ``path`` (folders made), through a temporary file renamed into place, so a
    crash or a full disk leaves any previous file whole; returns the path."""
    return atomic_write_text(path, json.dumps(payload, indent=2))


def write_results(stem: str, markdown: str, payload: dict[str, Any], plot: Callable[[str], None] | None = None) -> None:
    """Print the Markdown table and write ``<stem>.md``, ``<stem>.json`` and (via ``plot(path)``) ``<stem>.png``."""
    print(markdown)
    folder = out_dir()
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / f"{stem}.md", markdown + "\n")
    if plot is not None:
        plot(str(folder / f"{stem}.png"))
    print(f"wrote {write_json(f'{stem}.json', payload)}, {stem}.md" + (f", {stem}.png" if plot else ""))


def train_risk_ac(
    env_id: str,
    risk_aversion: float,
    critic_loss: str,
    seed: int,
    iterations: int,
    device: str = "cpu",
    eval_points: int = 100,
    warmup: float = 0.01,
    lr: float = 1e-4,
    tensorboard_log: str | None = None,
) -> dict[str, Any]:
    """One RiskAC run with the paper's recipe; returns its evaluation history (``eval_points`` evaluations,
    every 1 % of the run by default, on common evaluation paths) and final metrics."""
    import torch

    from is_sb3 import RiskAC
    from is_sb3.schedules import WarmupConstantCosine

    torch.set_num_threads(1)
    model = RiskAC(
        "MlpPolicy",
        env_id,
        risk_aversion=risk_aversion,
        critic_loss=critic_loss,
        learning_rate=WarmupConstantCosine(lr, warmup=warmup),
        eval_freq=max(1, iterations // eval_points),
        seed=seed,
        device=device,
        tensorboard_log=tensorboard_log,
    )
    t0 = time.perf_counter()
    model.learn(iterations, log_interval=max(1, iterations // eval_points))
    seconds = time.perf_counter() - t0
    final = model.evaluate()
    return {
        "env_id": env_id,
        "risk_aversion": risk_aversion,
        "critic_loss": critic_loss,
        "seed": seed,
        "iterations": iterations,
        "device": device,
        "seconds": seconds,
        "final": final,
        "history": model.eval_history,
    }


def fit_pfhedge(
    hedged_pl: Callable[[Any], Any], optimizer: Any, criterion: Any, sample_spot: Callable[[], Any], steps: int,
    eval_spot: Any, alpha: float, eval_every: int,
) -> list[dict[str, float]]:  # fmt: skip
    """pfhedge's training loop (as ``Hedger.fit``): ``steps`` Adam steps on ``criterion(hedged_pl(sample_spot()))``;
    every ``eval_every`` steps the certainty equivalent of ``hedged_pl(eval_spot)`` at α, with the CPU and wall
    seconds of training so far (evaluations excluded) and the loss (pfhedge's price estimate). Returns the history."""
    import torch

    from is_sb3.risk import certainty_equivalent

    history: list[dict[str, float]] = []
    cpu0, wall0, eval_cpu, eval_wall = time.process_time(), time.perf_counter(), 0.0, 0.0
    for step in range(1, steps + 1):
        loss = criterion(hedged_pl(sample_spot()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % eval_every == 0:
            c_now, w_now = time.process_time(), time.perf_counter()
            with torch.no_grad():
                ce = float(certainty_equivalent(hedged_pl(eval_spot).double(), alpha))
            history.append({"iteration": float(step), "cpu_seconds": c_now - cpu0 - eval_cpu,
                            "wall_seconds": w_now - wall0 - eval_wall, "ce_return": ce,
                            "price_estimate": float(loss.detach())})  # fmt: skip
            eval_cpu += time.process_time() - c_now
            eval_wall += time.perf_counter() - w_now
    return history
