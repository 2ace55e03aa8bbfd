"""One agent for a whole range of risk aversions: RiskAC with α as an input, against the per-α dynamic program.

    python -m benchmarks.hedging_alpha_range --quick                         # minutes on CPU
    python -m benchmarks.hedging_alpha_range --seeds 5 --out benchmarks/results
    python -m benchmarks.hedging_alpha_range --peer-only --peer-steps 1500 --seeds 5 --tag peer  # pfhedge, per α
    python -m benchmarks.hedging_alpha_range --from-json A.json B.json --tag merged

The hedging task of the IS paper's Fig. 3 (short ATM call, Bachelier, T = 10, σ² = 0.1). One RiskAC per seed with
``risk_aversion_range=(0.1, 10)`` (α drawn per transition, log-uniform; the IS loss) is read at α ∈ {0.1, 0.3, 1, 3,
10}: the price −V(0, S₀) against the DP's, and the certainty equivalent its hedge achieves at that α on 10k common
paths. The separately trained agents are the committed 5-seed runs of ``hedging_5seeds.json`` (one RiskAC per α,
IS loss, 100k iterations each). CPU: the α-range agent's own, against five separate runs' at the same iteration
count, both timed in this process (``--speed-iterations`` iterations of each, interleaved: the per-iteration cost of
the range agent and of a one-α agent, both compiled as by default on a CPU). With ``--peer-steps``, the peer:
pfhedge's MultiLayerPerceptron trained for each α on its own (``benchmarks.hedging_costs.train_pfhedge`` at c = 0,
``EntropicRiskMeasure(a=α)``), its CE on the same common paths and its CPU seconds, summed over the five α.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import mean_std, parse_args, result_stem, run_parallel, write_results

ALPHAS = [0.1, 0.3, 1.0, 3.0, 10.0]
RANGE = (0.1, 10.0)
CURVE = np.geomspace(RANGE[0], RANGE[1], 41)  #: the α grid the final agent's price is read on (the figure's curve)
SEPARATE = Path(__file__).resolve().parent / "results" / "hedging_5seeds.json"


def _read_out(model: Any, alphas: list[float]) -> dict[str, list[float]]:
    """Price −V(0, S₀) and the CE achieved at each α (the policy acting at α on the common paths)."""
    from is_sb3.hedging import indifference_price
    from is_sb3.risk import certainty_equivalent_with_se

    prices, ces = [], []
    for alpha in alphas:
        prices.append(float(indifference_price(model, risk_aversion=alpha)))
        with model.policy.acting_at(alpha):
            ce, _ = certainty_equivalent_with_se(model.evaluation_returns(), alpha)
        ces.append(float(ce))
    return {"price": prices, "ce": ces}


def train(seed: int, iterations: int, alphas: list[float], device: str = "cpu") -> dict[str, Any]:
    """One α-range agent; its read-out at ``alphas`` every 10 % of the run and at the end, and its CPU seconds."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    from is_sb3 import RiskAC
    from is_sb3.schedules import WarmupConstantCosine

    torch.set_num_threads(1)
    schedule = WarmupConstantCosine(1e-4, warmup=min(0.5, 1000 / iterations))
    model = RiskAC("MlpPolicy", "is_envs/OptionHedging-v0", risk_aversion=1.0, risk_aversion_range=RANGE, seed=seed,
                   device=device, eval_freq=0, learning_rate=schedule)  # fmt: skip
    history: list[dict[str, Any]] = []
    excluded = 0.0  # CPU seconds of the read-outs, not of training

    class ReadOut(BaseCallback):
        """The read-out every 10 % of one ``learn`` call (one learning-rate schedule over the whole run: ten
        ``learn`` calls with ``reset_num_timesteps=False`` would restart SB3's progress, and the schedule, in each)."""

        def _on_step(self) -> bool:
            nonlocal excluded
            if self.num_timesteps % (iterations // 10) == 0:
                start = time.process_time()
                spent = start - cpu_start - excluded
                history.append({"iteration": self.num_timesteps, "cpu_seconds": spent, **_read_out(model, alphas)})
                excluded += time.process_time() - start
            return True

    cpu_start = time.process_time()
    model.learn(iterations, callback=ReadOut(), log_interval=0)
    cpu = time.process_time() - cpu_start - excluded
    from is_sb3.hedging import indifference_price

    curve = [float(indifference_price(model, risk_aversion=float(a))) for a in CURVE]
    return {"seed": seed, "iterations": iterations, "alphas": alphas, "cpu_seconds": cpu, "history": history,
            "curve": {"alphas": CURVE.tolist(), "price": curve}, **_read_out(model, alphas)}  # fmt: skip


def speed(iterations: int) -> dict[str, float]:
    """CPU seconds per iteration of the range agent and of a one-α agent (both compiled, the default on a CPU),
    interleaved in this process, best of 3 blocks each (the compile excluded)."""
    import torch

    from is_sb3 import RiskAC

    torch.set_num_threads(1)
    agents = {
        "range": RiskAC(
            "MlpPolicy", "is_envs/OptionHedging-v0", risk_aversion=1.0, risk_aversion_range=RANGE, seed=0, eval_freq=0
        ),
        "one_alpha": RiskAC("MlpPolicy", "is_envs/OptionHedging-v0", risk_aversion=1.0, seed=0, eval_freq=0),
    }
    for agent in agents.values():
        agent.learn(20, log_interval=0)  # optimizer states, the compile
    best = {name: float("inf") for name in agents}
    for _ in range(3):
        for name, agent in agents.items():
            start = time.process_time()
            agent.learn(iterations, reset_num_timesteps=False, log_interval=0)
            best[name] = min(best[name], (time.process_time() - start) / iterations)
    return best


def report(runs: list[dict[str, Any]], per_iteration: dict[str, float] | None, tag: str,
           peer_runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    from is_envs.finance import OptionHedgingTask, reference_solution

    task = OptionHedgingTask()
    peer_runs = peer_runs or []
    if not runs:  # the peer alone (--peer-only): its table, to merge with the agents' runs later
        return _report_peer(peer_runs, tag)
    alphas = runs[0]["alphas"]
    dp = {a: -float(reference_solution(task, a).value(0, task.s0)) for a in alphas}
    separate = json.loads(SEPARATE.read_text())["table"] if SEPARATE.exists() else {}
    iterations = runs[0]["iterations"]
    peer = {a: [r for r in peer_runs if r["alpha"] == a] for a in alphas}
    lines = [
        f"One RiskAC (IS loss) per seed for every α in [{RANGE[0]:g}, {RANGE[1]:g}] (α an input, drawn per transition "
        f"log-uniformly), {iterations} iterations, {len(runs)} seeds, read at each α; against the per-α dynamic "
        "program and the separately trained agents (one per α, 100k iterations, 5 seeds: hedging_5seeds.json). "
        "Price error: (−V(0, S₀) − DP)/DP; CE gap: how far the CE the hedge achieves at α on 10k common paths falls "
        "below the DP's optimum, in % of the price. Mean ± std over seeds.",
        "",
        "| α | DP price | α-range agent: price | price error (%) | CE gap (%) | separate agents: price error (%) "
        "| separate: CE gap (%) |" + (" pfhedge MLP per α: CE gap (%) | pfhedge: CPU s |" if peer_runs else ""),
        "|---|---|---|---|---|---|---|" + ("---|---|" if peer_runs else ""),
    ]
    table = {}
    for k, alpha in enumerate(alphas):
        price = np.array([r["price"][k] for r in runs])
        error = 100 * (price - dp[alpha]) / dp[alpha]
        gap = np.array([100 * (-dp[alpha] - r["ce"][k]) / dp[alpha] for r in runs])
        row = separate.get(f"{alpha} | is", {})
        sep_error = [100 * (-v - dp[alpha]) / dp[alpha] for v in row.get("v0", [])]
        sep_gap = [100 * (-dp[alpha] - ce) / dp[alpha] for ce in row.get("ce_return", [])]
        table[str(alpha)] = {
            "dp": dp[alpha], "price": price.tolist(), "error_pct": error.tolist(), "ce_gap_pct": gap.tolist(),
            "separate_error_pct": sep_error, "separate_gap_pct": sep_gap,
        }  # fmt: skip
        peer_gap, peer_cpu = _peer_stats(peer[alpha], dp[alpha])
        table[str(alpha)].update(peer_gap_pct=peer_gap, peer_cpu_seconds=peer_cpu)
        lines.append(
            f"| {alpha:g} | {dp[alpha]:.4f} | {mean_std(price.tolist())} | {mean_std(error.tolist(), '{:+.2f}')} "
            f"| {mean_std(gap.tolist(), '{:.2f}')} | {mean_std(sep_error, '{:+.2f}')} | {mean_std(sep_gap, '{:.2f}')} |"
            + (f" {mean_std(peer_gap, '{:.2f}')} | {mean_std(peer_cpu, '{:.0f}')} |" if peer_runs else "")
        )
    cpu = float(np.mean([r["cpu_seconds"] for r in runs]))
    lines += ["", f"CPU: {cpu:.0f} s per α-range agent (mean over seeds, training only)."]
    if per_iteration:
        five = 5 * 100_000 * per_iteration["one_alpha"]
        lines += [
            "Per iteration, measured in one process (both compiled): "
            f"α-range agent {1e3 * per_iteration['range']:.2f} ms, "
            f"one-α agent {1e3 * per_iteration['one_alpha']:.2f} ms; five separate 100k-iteration runs: "
            f"{five:.0f} s, the α-range agent's {iterations} iterations: {iterations * per_iteration['range']:.0f} s "
            f"({iterations * per_iteration['range'] / five:.2f}× the five runs)."
        ]
    if peer_runs:
        per_seed = [sum(r["history"][-1]["cpu_seconds"] for r in peer_runs if r["seed"] == seed)
                    for seed in sorted({r["seed"] for r in peer_runs})]  # fmt: skip
        lines += [
            f"pfhedge ({peer_runs[0]['iterations']} steps of {len(alphas)} networks, one per α, "
            f"{len(per_seed)} seeds): {np.mean(per_seed):.0f} s of CPU for the five α together (mean over seeds), "
            f"against the α-range agent's {cpu:.0f} s."
        ]
    text = "\n".join(lines)
    payload = {"runs": runs, "per_iteration": per_iteration, "table": table, "peer_runs": peer_runs}
    write_results(result_stem("hedging_alpha_range", tag), text, payload, lambda path: plot(runs, dp, separate, path))
    return payload


def _peer_stats(peer_runs: list[dict[str, Any]], dp_price: float) -> tuple[list[float], list[float]]:
    """Each pfhedge run's CE gap to the DP's optimum (% of the price) and its training CPU seconds."""
    gap = [100 * (-dp_price - r["final"]["ce_return"]) / dp_price for r in peer_runs]
    return gap, [r["history"][-1]["cpu_seconds"] for r in peer_runs]


def _report_peer(peer_runs: list[dict[str, Any]], tag: str) -> dict[str, Any]:
    """The peer's runs alone (``--peer-only``): its CE gap and CPU per α; merged into the full table by
    ``--from-json`` with the agents' runs."""
    from is_envs.finance import OptionHedgingTask, reference_solution

    task = OptionHedgingTask()
    lines = ["pfhedge MLP, one network per α (c = 0): CE gap to the DP's optimum on the common paths, CPU s.", "",
             "| α | seeds | CE gap (%) | CPU s |", "|---|---|---|---|"]  # fmt: skip
    for alpha in sorted({r["alpha"] for r in peer_runs}):
        dp = -float(reference_solution(task, alpha).value(0, task.s0))
        rs = [r for r in peer_runs if r["alpha"] == alpha]
        gap, cpu = _peer_stats(rs, dp)
        lines.append(f"| {alpha:g} | {len(rs)} | {mean_std(gap, '{:.2f}')} | {mean_std(cpu, '{:.0f}')} |")
    payload: dict[str, Any] = {"runs": [], "per_iteration": None, "table": {}, "peer_runs": peer_runs}
    write_results(result_stem("hedging_alpha_range", tag), "\n".join(lines), payload, None)
    return payload


def plot(runs: list[dict[str, Any]], dp: dict[float, float], separate: dict[str, Any], path: str) -> None:
    """The price against α: the DP's curve, the α-range agent read at the five α and (runs that recorded it) on a
    fine α grid (mean ± std), and the separately trained agents."""
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    from is_envs.finance import OptionHedgingTask, reference_solution

    task = OptionHedgingTask()
    grid = np.geomspace(RANGE[0], RANGE[1], 40)
    ax.plot(grid, [-float(reference_solution(task, a).value(0, task.s0)) for a in grid], "k-", label="dynamic program")
    alphas = runs[0]["alphas"]
    prices = np.array([r["price"] for r in runs])
    if all("curve" in r for r in runs):  # the agent's price on a fine α grid (runs of this version)
        curves = np.array([r["curve"]["price"] for r in runs])
        grid_a = np.array(runs[0]["curve"]["alphas"])
        ax.plot(grid_a, curves.mean(0), "-", color="C0", lw=1)
        ax.fill_between(grid_a, curves.mean(0) - curves.std(0), curves.mean(0) + curves.std(0), color="C0", alpha=0.2)
    ax.errorbar(np.array(alphas) * 0.97, prices.mean(0), yerr=prices.std(0), fmt="o", ms=5, color="C0",
                label=f"one agent for all α ({len(runs)} seeds)")  # fmt: skip
    sep = [(a, [-v for v in separate[f"{a} | is"]["v0"]]) for a in alphas if f"{a} | is" in separate]
    if sep:
        ax.errorbar([a * 1.03 for a, _ in sep], [np.mean(v) for _, v in sep], yerr=[np.std(v) for _, v in sep],
                    fmt="s", ms=4, color="C3", label=f"one agent per α ({len(sep[0][1])} seeds each)")  # fmt: skip
    ax.set(xscale="log", xlabel="risk aversion α", ylabel="indifference price −V(0, S₀) (price units)",
           title="Short ATM call (Bachelier, T = 10): the price against α, mean ± 1 std")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend()
    save_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3000 iterations, 1 seed")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per agent (default 100000)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 5)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--speed-iterations", type=int, default=500, help="per block of the speed probe (0: none)")
    parser.add_argument("--peer-steps", type=int, default=0, help="also train pfhedge's MLP for each α (steps)")
    parser.add_argument("--peer-only", action="store_true", help="train pfhedge only (merge with --from-json later)")
    parser.add_argument("--tag", default="")
    parser.add_argument("--from-json", nargs="+", metavar="FILE", help="no training: re-report (merge) these runs")
    args = parse_args(parser, argv)
    if args.from_json:
        loaded = [json.loads(Path(p).read_text()) for p in args.from_json]
        per_iteration = next((d["per_iteration"] for d in loaded if d.get("per_iteration")), None)
        peer = [r for d in loaded for r in d.get("peer_runs", [])]
        return report([r for d in loaded for r in d["runs"]], per_iteration, args.tag, peer)
    iterations = args.iterations or (3000 if args.quick else 100_000)
    seeds = args.seeds or (1 if args.quick else 5)
    jobs = [{"seed": s, "iterations": iterations, "alphas": ALPHAS}
            for s in range(args.first_seed, args.first_seed + seeds)]  # fmt: skip
    peer_runs: list[dict[str, Any]] = []
    if args.peer_steps:
        from benchmarks.hedging_costs import train_pfhedge

        peer_jobs = [{"cost": 0.0, "alpha": a, "seed": job["seed"], "steps": args.peer_steps, "hedger": "mlp"}
                     for job in jobs for a in ALPHAS]  # fmt: skip
        peer_runs = run_parallel(train_pfhedge, peer_jobs, args.workers, desc="pfhedge")
    if args.peer_only:
        return report([], None, args.tag, peer_runs)
    runs = run_parallel(train, jobs, args.workers, desc="α-range agents")
    per_iteration = speed(args.speed_iterations) if args.speed_iterations else None
    return report(runs, per_iteration, args.tag, peer_runs)


if __name__ == "__main__":
    main()
