"""Speed of the item pick-up grid and the greedy baseline on every released distribution (issue 4).

    python -m benchmarks.item_pickup_env [--quick]   # writes benchmarks/results/item_pickup_env.json

Measures single-env steps/s (``ItemPickupEnv.step``, random actions) and batched evaluation
steps/s (``is_envs.grid.evaluate`` with the greedy policy, 1000 episodes at once), then the greedy
baseline's mean return on the released test episodes of all twelve distributions.
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks.common import data_dir, parse_args, rate, write_json
from is_envs.grid import DISTRIBUTIONS, GreedyPolicy, ItemPickupEnv, evaluate


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="shorter timing blocks")
    args = parse_args(parser, argv)
    seconds = 0.5 if args.quick else 3.0

    env = ItemPickupEnv("gradient1")
    env.reset(seed=0)
    actions = np.random.default_rng(0).integers(0, 5, 1000)

    def single() -> int:
        env.reset()
        for a in actions[:200]:
            env.step(int(a))
        return 200

    n_batch = 1000

    def batched() -> int:
        evaluate(GreedyPolicy(), "gradient1", n_episodes=n_batch, seed=0)
        return n_batch * 200

    speeds = {
        "single_env_steps_per_s": rate(single, seconds),
        "batched_eval_steps_per_s": rate(batched, seconds),
    }
    greedy: dict[str, dict[str, float]] = {}
    for name in DISTRIBUTIONS:
        r = evaluate(GreedyPolicy(), data_dir() / f"{name}.npz", split="test")
        greedy[name] = {"mean": float(r.mean()), "std": float(r.std(ddof=1)), "n": len(r)}
    console = Console()
    t = Table(title="Item pick-up speed (1 CPU thread)")
    t.add_column("measure")
    t.add_column("steps/s", justify="right")
    t.add_column("goal", justify="right")
    t.add_row("single env", f"{speeds['single_env_steps_per_s']:,.0f}", "≥ 20,000")
    t.add_row(
        "batched evaluation (greedy, 1000 episodes)",
        f"{speeds['batched_eval_steps_per_s']:,.0f}",
        "≥ 500,000",
    )
    console.print(t)
    g = Table(title="Greedy baseline, released test episodes (0-99)")
    g.add_column("distribution")
    g.add_column("mean return", justify="right")
    g.add_column("std", justify="right")
    for name, row in greedy.items():
        g.add_row(name, f"{row['mean']:.2f}", f"{row['std']:.2f}")
    console.print(g if greedy else f"released episodes not found under {data_dir()}")
    results: dict[str, object] = {**speeds, "greedy_test_returns": greedy}
    print(f"wrote {write_json('item_pickup_env.json', results)}")
    return results


if __name__ == "__main__":
    main()
