"""IS paper Fig. 3: the price of a short at-the-money call learned by RiskAC, against the entropic DP.

    python -m benchmarks.hedging --quick                   # minutes on CPU
    python -m benchmarks.hedging                           # paper: 300k iterations, 5 seeds
    python -m benchmarks.hedging --iterations 20000 --seeds 1 --workers 2   # what the README reports
    python -m benchmarks.hedging --from-json A.json B.json --tag merged    # merge runs of separate invocations

For α ∈ {0.1, 0.3, 1, 3, 10} and every critic loss: V_θ(s_0) (minus the option price) against the
dynamic-programming reference, mean ± std over seeds, and the first iteration at which the relative
error falls below 1 %. Writes ``benchmarks/results/hedging.json``, ``hedging.md``, ``hedging.png``.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    fit_pfhedge,
    mean_std,
    parse_args,
    result_stem,
    run_parallel,
    settles_within,
    train_risk_ac,
    write_results,
)

ENV_ID = "is_envs/OptionHedging-v0"
ALPHAS = [0.1, 0.3, 1.0, 3.0, 10.0]
LOSSES = ["is", "emse", "sp", "mse"]


def first_below(history: list[dict[str, float]], reference: float, tol: float = 0.01) -> float:
    """First evaluated iteration with |V(s0) − ref| ≤ tol·|ref| (NaN if never)."""
    for h in history:
        if abs(h["value_s0"] - reference) <= tol * abs(reference):
            return h["iteration"]
    return float("nan")


def train_pfhedge(alpha: float, seed: int, steps: int, eval_every: int = 50, n_paths: int = 1000) -> dict[str, Any]:
    """The peer: pfhedge's deep hedging on the same problem (short ATM call, Bachelier, T = 10, σ² = 0.1).

    Arithmetic Brownian paths from ``pfhedge.stochastic.generate_brownian`` (``n_paths`` per step, as
    ``Hedger.fit``), pfhedge's default ``MultiLayerPerceptron`` (4 × 32 ReLU) on the features time to
    maturity (T − t)/T and normalised spot (S − K)/(σ√T), P&L by ``pfhedge.nn.functional.pl``,
    ``EntropicRiskMeasure(a=α)`` minimised with Adam (lr 1e-3, as ``Hedger.fit``). Every ``eval_every``
    steps: the certainty equivalent its hedge achieves on RiskAC's common evaluation paths (same generator
    and seed as ``RiskAC.evaluate``) and pfhedge's own price estimate (the risk measure on the batch).
    """
    import torch
    from pfhedge.nn import EntropicRiskMeasure, MultiLayerPerceptron
    from pfhedge.nn.functional import pl
    from pfhedge.stochastic import generate_brownian

    from is_envs.finance import OptionHedgingTask
    from is_sb3.ac.task import evaluation_set

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    task = OptionHedgingTask()
    horizon, sigma, strike = task.horizon, task.sigma, task.k
    model = MultiLayerPerceptron(in_features=2, out_features=1)
    criterion = EntropicRiskMeasure(a=alpha)
    optimizer = torch.optim.Adam(model.parameters())
    _, eval_paths = evaluation_set(task.simulator("cpu", torch.float32, 2025), 4096, 10_000)  # RiskAC's defaults
    ttm = 1.0 - torch.arange(horizon + 1, dtype=torch.float32) / horizon

    def hedged_pl(spot: torch.Tensor) -> torch.Tensor:  # spot: (N, T + 1)
        features = torch.stack([ttm.expand_as(spot), (spot - strike) / (sigma * horizon**0.5)], dim=-1)
        unit = model(features).squeeze(-1)  # (N, T + 1); the last column is not used by pl
        payoff = (spot[:, -1] - strike).clamp(min=0.0)
        out: torch.Tensor = pl(spot.unsqueeze(1), unit.unsqueeze(1), payoff=payoff)
        return out

    def sample() -> torch.Tensor:
        return generate_brownian(n_paths, horizon + 1, init_state=(task.s0,), sigma=sigma, dt=1.0)

    history = fit_pfhedge(hedged_pl, optimizer, criterion, sample, steps, eval_paths, alpha, eval_every)
    final = {"ce_return": history[-1]["ce_return"], "price_estimate": history[-1]["price_estimate"]}
    return {"method": "pfhedge", "risk_aversion": alpha, "seed": seed, "iterations": steps, "history": history,
            "final": final}  # fmt: skip


def peer_table(runs: list[dict[str, Any]], peer_runs: list[dict[str, Any]]) -> str:
    """RiskAC (IS loss) and pfhedge side by side at each α of ``peer_runs``: the CE their hedges achieve on
    the common paths, its error against the DP, and the CPU seconds to stay within 1 % for good."""
    from is_envs.finance import OptionHedgingTask, reference_solution

    task = OptionHedgingTask()
    lines = [
        "| α | method | n | V*(s0) (DP) | CE achieved (common paths) | error vs DP (%) | CE settles (it.) "
        "| CE settles (CPU s) | V(s0) settles (CPU s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for alpha in sorted({r["risk_aversion"] for r in peer_runs}):
        ref = float(reference_solution(task, alpha).value(0, task.s0))
        groups = {
            "RiskAC (is)": [r for r in runs if r["risk_aversion"] == alpha and r["critic_loss"] == "is"],
            "pfhedge": [r for r in peer_runs if r["risk_aversion"] == alpha],
        }
        for method, group in groups.items():
            if not group:
                continue
            ce = [g["final"]["ce_return"] for g in group]
            ce_settle = [settles_within(g["history"], ref, key="ce_return") for g in group]
            v_settle = [settles_within(g["history"], ref)["cpu_seconds"] if method != "pfhedge" else np.nan
                        for g in group]  # fmt: skip
            lines.append(
                f"| {alpha} | {method} | {len(group)} | {ref:.4f} | {mean_std(ce)} "
                f"| {mean_std([abs(c - ref) / abs(ref) for c in ce], '{:.2f}', 100)} "
                f"| {mean_std([x['iteration'] for x in ce_settle], '{:.0f}')} "
                f"| {mean_std([x['cpu_seconds'] for x in ce_settle], '{:.0f}')} | {mean_std(v_settle, '{:.0f}')} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3000 iterations, 1 seed")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per run (paper: 300000)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (paper: 5)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed, first-seed + 1, ...")
    parser.add_argument(
        "--alphas", nargs="*", type=float, default=ALPHAS, help="RiskAC runs at these α (none: only the peer)"
    )
    parser.add_argument("--losses", nargs="+", default=LOSSES, choices=LOSSES)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tag", default="", help="suffix of the result files (hedging_<tag>.*)")
    parser.add_argument(
        "--from-json", nargs="+", metavar="FILE", help="no training: re-report (and merge) the runs of these files"
    )
    parser.add_argument(
        "--peer-alphas", nargs="*", type=float, default=None,
        help="also train pfhedge's deep hedger at these α (pip install pfhedge; the issue's α = 1 and 10)",
    )  # fmt: skip
    parser.add_argument("--peer-steps", type=int, default=5000, help="pfhedge's training steps (batch 1000 paths)")
    args = parse_args(parser, argv)
    peer_runs: list[dict[str, Any]] = []
    if args.peer_alphas:
        try:
            import pfhedge  # noqa: F401
        except ImportError:
            parser.error("--peer-alphas needs pfhedge: pip install pfhedge")
        n_peer = args.seeds or (1 if args.quick else 5)
        peer_seeds = range(args.first_seed, args.first_seed + n_peer)
        peer_jobs = [{"alpha": a, "seed": s, "steps": args.peer_steps} for a in args.peer_alphas for s in peer_seeds]
        peer_runs = run_parallel(train_pfhedge, peer_jobs, args.workers, desc="pfhedge")
    if args.from_json:
        loaded = [json.loads(Path(path).read_text()) for path in args.from_json]
        peer_runs += [run for payload in loaded for run in payload.get("peer_runs", [])]
        return report([run for payload in loaded for run in payload["runs"]], args.tag, peer_runs)
    iterations = args.iterations or (3000 if args.quick else 300_000)
    seeds = args.seeds or (1 if args.quick else 5)
    warmup = min(0.5, 1000 / iterations)  # the paper: 1k warm-up iterations
    jobs = [
        {"env_id": ENV_ID, "risk_aversion": a, "critic_loss": loss, "seed": seed, "iterations": iterations,
         "device": args.device, "warmup": warmup}
        for a in args.alphas for loss in args.losses for seed in range(args.first_seed, args.first_seed + seeds)
    ]  # fmt: skip
    return report(run_parallel(train_risk_ac, jobs, args.workers) if jobs else [], args.tag, peer_runs)


def report(runs: list[dict[str, Any]], tag: str, peer_runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Table (mean ± std over seeds), JSON and plot of ``runs`` (of one or several invocations)."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["risk_aversion"], run["critic_loss"])].append(run)
    table: dict[str, dict[str, Any]] = {}
    for (alpha, loss), group in sorted(groups.items(), key=lambda kv: (kv[0][0], LOSSES.index(kv[0][1]))):
        group = sorted(group, key=lambda g: g["seed"])
        ref = group[0]["final"]["reference_value_s0"]
        v = np.array([g["final"]["value_s0"] for g in group])
        settled = [settles_within(g["history"], ref) for g in group]
        finite = np.isfinite(v)
        table[f"{alpha} | {loss}"] = {
            "alpha": alpha,
            "loss": loss,
            "seeds": [g["seed"] for g in group],
            "reference_v0": ref,
            "v0": v.tolist(),
            "v0_mean": float(np.mean(v[finite])) if finite.any() else float("nan"),
            "v0_std": float(np.std(v[finite])) if finite.any() else float("nan"),
            "rel_error": (np.abs(v - ref) / abs(ref)).tolist(),
            "failed_runs": int(np.sum(~finite | (np.abs(v - ref) > 0.5 * abs(ref)))),
            "first_iteration_within_1pct": [first_below(g["history"], ref) for g in group],
            "settled_iteration": [x["iteration"] for x in settled],
            "settled_cpu_seconds": [x["cpu_seconds"] for x in settled],
            "ce_return": [float(g["final"].get("ce_return", np.nan)) for g in group],
            "seconds": [float(g["seconds"]) for g in group],
        }
    iterations = sorted({r["iterations"] for r in runs})
    config = (
        f"{'/'.join(map(str, iterations))} iterations, batch 1024, paper warm-up (1k iterations), peak lr 1e-4, "
        f"device {'/'.join(sorted({r.get('device', 'cpu') for r in runs}))}, one CPU thread per run"
    )
    lines = [
        f"Configuration: {config}",
        "",
        "Mean ± std over seeds (n). 'settles': the iteration (and CPU seconds of training) from which V(s0) stays",
        "within 1 % of the DP at every later evaluation (every 1 % of the run); 'first 1 %': the first touch.",
        "Failed: non-finite or more than 50 % off at the end. CE of return: the learned policy's certainty",
        "equivalent on 10k common evaluation paths (own generator); the DP's optimum is V*(s0).",
        "",
        "| α | loss | n | V*(s0) (DP) | learned V(s0) | rel. error (%) | failed | first 1 % (it.) | settles (it.) "
        "| settles (CPU s) | CE of return |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table.values():
        lines.append(
            f"| {row['alpha']} | {row['loss']} | {len(row['seeds'])} | {row['reference_v0']:.4f} "
            f"| {mean_std(row['v0'])} | {mean_std(row['rel_error'], '{:.2f}', 100)} "
            f"| {row['failed_runs']}/{len(row['seeds'])} | {mean_std(row['first_iteration_within_1pct'], '{:.0f}')} "
            f"| {mean_std(row['settled_iteration'], '{:.0f}')} | {mean_std(row['settled_cpu_seconds'], '{:.0f}')} "
            f"| {mean_std(row['ce_return'])} |"
        )
    if peer_runs:
        steps = sorted({r["iterations"] for r in peer_runs})
        lines += [
            "",
            f"Against the peer: pfhedge's deep hedger ({'/'.join(map(str, steps))} Adam steps of 1000 paths, "
            "4 × 32 ReLU MLP, EntropicRiskMeasure) and RiskAC (is), on the same 10k common evaluation paths:",
            "",
            peer_table(runs, peer_runs),
        ]
    text = "\n".join(lines)
    payload = {"config": config, "table": table, "runs": runs, "peer_runs": peer_runs or []}
    alphas = sorted({row["alpha"] for row in table.values()})
    losses = [loss for loss in LOSSES if any(row["loss"] == loss for row in table.values())]
    write_results(result_stem("hedging", tag), text, payload, lambda path: plot(table, alphas, losses, path))
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
    top = 1.15 * max(price)
    off = []
    for k, loss in enumerate(losses):
        rows = [table[f"{a} | {loss}"] for a in alphas if f"{a} | {loss}" in table]
        xs = np.array([r["alpha"] for r in rows]) * (1 + 0.04 * (k - 1.5))
        ys = np.array([-r["v0_mean"] for r in rows])
        shown = np.isfinite(ys) & (ys < top) & (ys > 0)
        seeds = sorted({len(r["seeds"]) for r in rows})
        label = f"{loss} (n = {'/'.join(map(str, seeds))} seeds)" if rows else loss
        ax.errorbar(xs[shown], ys[shown], yerr=np.array([r["v0_std"] for r in rows])[shown], fmt="o", label=label, ms=4)
        off += [f"{loss} at α={r['alpha']}: {-r['v0_mean']:.3g}" for r, ok in zip(rows, shown, strict=True) if not ok]
    ax.set_ylim(0.9 * min(price), top)
    if off:
        ax.text(0.02, 0.97, "off scale: " + "; ".join(off), transform=ax.transAxes, va="top", fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("risk aversion α")
    ax.set_ylabel("indifference price −V(s0) (price units)")
    ax.set_title("Short ATM call, Bachelier, T = 10, σ² = 0.1: RiskAC, mean ± 1 std over seeds", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path, dpi=110)


if __name__ == "__main__":
    main()
