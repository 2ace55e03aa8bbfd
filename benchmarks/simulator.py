"""Speed of the Bachelier front ends (issue 3): batched torch simulator and SB3 vector env.

    python -m benchmarks.simulator [--quick]        # writes benchmarks/results/simulator.json

Measures, on one CPU thread: price path-steps per second of ``BachelierSimulator.sample_paths``
(float32) and of ``sample_transitions`` (the IS paper's training batches), and env-steps per second
of ``BachelierVecEnv`` at N = 4096 against SB3's ``DummyVecEnv`` of the single env, in the same run.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch as th
from rich.console import Console
from rich.table import Table
from stable_baselines3.common.vec_env import DummyVecEnv

from benchmarks.common import parse_args, rate, write_json
from is_envs.finance import BachelierSimulator, BachelierVecEnv, QuadraticPenaltyEnv, QuadraticPenaltyTask


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter timing blocks")
    parser.add_argument("--device", default="cpu")
    args = parse_args(parser, argv)
    th.set_num_threads(1)
    seconds = 0.5 if args.quick else 3.0
    task = QuadraticPenaltyTask()
    sim = BachelierSimulator(task, device=args.device, dtype=th.float32, seed=0)
    n_paths = 100_000

    def paths() -> int:
        sim.sample_paths(n_paths)
        return n_paths * task.horizon

    def transitions() -> int:
        sim.sample_transitions(1024)
        return 1024

    n_envs = 4096
    venv = BachelierVecEnv(task, n_envs, seed=0)
    venv.reset()
    actions = np.zeros((n_envs, 1), dtype=np.float32)

    def vec_steps() -> int:
        for _ in range(20):
            venv.step(actions)
        return 20 * n_envs

    n_dummy = 256 if args.quick else 1024
    dummy = DummyVecEnv([QuadraticPenaltyEnv for _ in range(n_dummy)])
    dummy.reset()
    dummy_actions = np.zeros((n_dummy, 1), dtype=np.float32)

    def dummy_steps() -> int:
        for _ in range(5):
            dummy.step(dummy_actions)
        return 5 * n_dummy

    results = {
        "simulator_path_steps_per_s": rate(paths, seconds),
        "simulator_transitions_per_s_batch1024": rate(transitions, seconds),
        "vecenv_steps_per_s_n4096": rate(vec_steps, seconds),
        "dummyvecenv_steps_per_s": rate(dummy_steps, seconds),
    }
    results["vecenv_speedup_vs_dummyvecenv"] = results["vecenv_steps_per_s_n4096"] / results["dummyvecenv_steps_per_s"]
    table = Table(title=f"Bachelier front ends, 1 CPU thread, device={args.device}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("goal", justify="right")
    goals = {
        "simulator_path_steps_per_s": "≥ 100 M",
        "vecenv_steps_per_s_n4096": "≥ 5 M",
        "vecenv_speedup_vs_dummyvecenv": "≥ 50×",
    }
    for key, value in results.items():
        shown = f"{value:.1f}×" if "speedup" in key else f"{value / 1e6:.2f} M"
        table.add_row(key, shown, goals.get(key, ""))
    Console().print(table)
    print(f"wrote {write_json('simulator.json', results)}")
    return results


if __name__ == "__main__":
    main()
