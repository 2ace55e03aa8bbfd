"""IS paper Fig. 3: the price of a short at-the-money call learned by RiskAC, against the entropic DP.

    python -m benchmarks.hedging --quick                   # minutes on CPU
    python -m benchmarks.hedging                           # paper: 300k iterations, 5 seeds
    python -m benchmarks.hedging --iterations 20000 --seeds 1 --workers 2   # what the README reports

For α ∈ {0.1, 0.3, 1, 3, 10} and every critic loss: V_θ(s_0) (minus the option price) against the
dynamic-programming reference, mean ± std over seeds, and the first iteration at which the relative
error falls below 1 %. Writes ``benchmarks/results/hedging.json``, ``hedging.md``, ``hedging.png``.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

import numpy as np

from benchmarks.common import result_stem, run_parallel, train_risk_ac, write_results

ENV_ID = "is_envs/OptionHedging-v0"
ALPHAS = [0.1, 0.3, 1.0, 3.0, 10.0]
LOSSES = ["is", "emse", "sp", "mse"]


def first_below(history: list[dict[str, float]], reference: float, tol: float = 0.01) -> float:
    """First evaluated iteration with |V(s0) − ref| ≤ tol·|ref| (NaN if never)."""
    for h in history:
        if abs(h["value_s0"] - reference) <= tol * abs(reference):
            return h["iteration"]
    return float("nan")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3000 iterations, 1 seed")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per run (paper: 300000)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (paper: 5)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed, first-seed + 1, ...")
    parser.add_argument("--alphas", nargs="+", type=float, default=ALPHAS)
    parser.add_argument("--losses", nargs="+", default=LOSSES, choices=LOSSES)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tag", default="", help="suffix of the result files (hedging_<tag>.*)")
    args = parser.parse_args(argv)
    iterations = args.iterations or (3000 if args.quick else 300_000)
    seeds = args.seeds or (1 if args.quick else 5)
    warmup = min(0.5, 1000 / iterations)  # the paper: 1k warm-up iterations
    jobs = [
        {"env_id": ENV_ID, "risk_aversion": a, "critic_loss": loss, "seed": seed, "iterations": iterations,
         "device": args.device, "warmup": warmup}
        for a in args.alphas for loss in args.losses for seed in range(args.first_seed, args.first_seed + seeds)
    ]  # fmt: skip
    runs = run_parallel(train_risk_ac, jobs, args.workers)
    groups: dict[tuple[float, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["risk_aversion"], run["critic_loss"])].append(run)
    table: dict[str, dict[str, Any]] = {}
    for (alpha, loss), group in sorted(groups.items()):
        ref = group[0]["final"]["reference_value_s0"]
        v = np.array([g["final"]["value_s0"] for g in group])
        hit = [first_below(g["history"], ref) for g in group]
        table[f"{alpha} | {loss}"] = {
            "alpha": alpha,
            "loss": loss,
            "reference_v0": ref,
            "v0_mean": float(np.nanmean(v)) if np.isfinite(v).any() else float("nan"),
            "v0_std": float(np.nanstd(v)) if np.isfinite(v).any() else float("nan"),
            "rel_error_mean": float(np.mean(np.abs(v - ref) / abs(ref))),
            "failed_runs": int(np.sum(~np.isfinite(v) | (np.abs(v - ref) > 0.5 * abs(ref)))),
            "first_iteration_within_1pct": float(np.nanmedian(hit)) if np.isfinite(hit).any() else float("nan"),
            "seconds": float(np.mean([g["seconds"] for g in group])),
        }
    config = (
        f"{iterations} iterations, {seeds} seed(s), batch 1024, warm-up {warmup:.4f}, peak lr 1e-4, "
        f"device {args.device}"
    )
    lines = [
        f"Configuration: {config}",
        "",
        "| α | loss | reference V(s0) | learned V(s0) (mean ± std) | rel. error | failed runs | iterations to 1 % |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in table.values():
        lines.append(
            f"| {row['alpha']} | {row['loss']} | {row['reference_v0']:.4f} | {row['v0_mean']:.4f} ± {row['v0_std']:.4f}"
            f" | {100 * row['rel_error_mean']:.2f} % | {row['failed_runs']}/{seeds}"
            f" | {row['first_iteration_within_1pct']:.0f} |"
        )
    text = "\n".join(lines)
    payload = {"config": config, "table": table, "runs": runs}
    stem = result_stem("hedging", args.tag)
    write_results(stem, text, payload, lambda path: plot(table, args.alphas, args.losses, path))
    return payload


def plot(table: dict[str, dict[str, Any]], alphas: list[float], losses: list[str], path: str) -> None:
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()

    from is_envs.finance import OptionHedgingTask, reference_solution

    task = OptionHedgingTask()
    grid = np.geomspace(min(alphas) / 2, max(alphas), 40)
    price = [-float(reference_solution(task, a).value(0, task.s0)) for a in grid]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(grid, price, "k-", label="dynamic program")
    ax.axhline(-float(reference_solution(task, 0.0).value(0, task.s0)), color="grey", ls=":", label="risk-neutral")
    top = 1.6 * max(price)
    off = []
    for k, loss in enumerate(losses):
        rows = [table[f"{a} | {loss}"] for a in alphas if f"{a} | {loss}" in table]
        xs = np.array([r["alpha"] for r in rows]) * (1 + 0.04 * (k - 1.5))
        ys = np.array([-r["v0_mean"] for r in rows])
        shown = np.isfinite(ys) & (ys < top) & (ys > 0)
        ax.errorbar(xs[shown], ys[shown], yerr=np.array([r["v0_std"] for r in rows])[shown], fmt="o", label=loss, ms=4)
        off += [f"{loss} at α={r['alpha']}: {-r['v0_mean']:.3g}" for r, ok in zip(rows, shown, strict=True) if not ok]
    ax.set_ylim(0.8 * min(price), top)
    if off:
        ax.text(0.02, 0.97, "off scale: " + "; ".join(off), transform=ax.transAxes, va="top", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("risk aversion α")
    ax.set_ylabel("option price −V(s0)")
    ax.set_title("Short ATM call, Bachelier, T = 10, σ² = 0.1")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path, dpi=110)


if __name__ == "__main__":
    main()
