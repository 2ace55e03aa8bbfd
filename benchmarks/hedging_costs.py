"""Hedging with proportional transaction costs: RiskAC against the entropic dynamic program over (t, S, p).

    python -m benchmarks.hedging_costs --quick                                  # minutes on CPU
    python -m benchmarks.hedging_costs --seeds 5 --workers 2 --out benchmarks/results
    python -m benchmarks.hedging_costs --from-json A.json B.json --tag merged   # merge runs of separate invocations

The task: short one at-the-money call, Bachelier, T = 10 dates, σ² = 0.1 (``gym.make("is_envs/OptionHedging-v0",
cost=c)``), trading from the position held p to a costs c·|a − p|; the seller starts unhedged (p = 0). For each
cost c and risk aversion α, RiskAC with the IS loss (the paper's recipe; the actor differentiated through the reward
and V̄(s'(a)), the position in the state) against :class:`~is_envs.finance.CostDynamicProgram` (401 prices × 201
positions), over seeds:

- the indifference price −V(0, S₀, 0) learned, against the DP's; the certainty equivalent the learned hedge
  achieves on 10k common paths, against the DP's optimum (the same number: V* is the best achievable CE);
- the value and policy errors over the evaluation states (t uniform, S from its law, p uniform on the action box);
- the **no-trade band** at mid-life (t = 5, S = S₀): the position the learned hedge trades to from far below
  (p = −0.5: buys up to b₊) and from far above (p = 1.5: sells down to b₋), against the DP's band edges; its
  width b₋ − b₊ grows with c (0 without costs).

Writes ``hedging_costs.{json,md,png}`` to ``--out`` (default ``benchmarks/out``); the PNG shows the price against the
cost and the learned trade a(p) against the DP's clip(p, b₊, b₋).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import fit_pfhedge, mean_std, parse_args, result_stem, run_parallel, write_results

COSTS = [0.0, 0.001, 0.01, 0.05]  #: c = 0: the control (the frictionless price, no band)
ALPHAS = [1.0, 10.0]
BAND_T = 5  #: mid-life date at which the band is read (S = S₀)
FAR_BELOW, FAR_ABOVE = -0.5, 1.5  #: positions held from which the hedge trades to the band's edges
POSITIONS = np.linspace(-0.5, 1.5, 81)  #: positions at which the learned trade a(p) is recorded for the plot


def train(cost: float, alpha: float, seed: int, iterations: int, device: str = "cpu") -> dict[str, Any]:
    """One RiskAC run on the cost task; its evaluation history, final metrics and learned band."""
    import torch

    from is_envs.finance import HedgingWithCostsTask
    from is_sb3 import RiskAC
    from is_sb3.hedging import indifference_price
    from is_sb3.schedules import WarmupConstantCosine

    torch.set_num_threads(1)
    task = HedgingWithCostsTask(cost=cost)
    model = RiskAC("MlpPolicy", task, risk_aversion=alpha, critic_loss="is", seed=seed, device=device,
                   learning_rate=WarmupConstantCosine(1e-4, warmup=min(0.5, 1000 / iterations)),
                   eval_freq=max(1, iterations // 20))  # fmt: skip
    cpu, wall = time.process_time(), time.perf_counter()
    model.learn(iterations, log_interval=max(1, iterations // 20))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    final = model.evaluate()
    obs = np.stack([np.full_like(POSITIONS, task.observe_time(BAND_T)), np.zeros_like(POSITIONS), POSITIONS], axis=-1)
    trade = model.predict(obs.astype(np.float32), deterministic=True)[0].reshape(-1)
    edges = model.predict(np.array([[task.observe_time(BAND_T), 0.0, p] for p in (FAR_BELOW, FAR_ABOVE)],
                                   dtype=np.float32), deterministic=True)[0].reshape(-1)  # fmt: skip
    return {
        "cost": cost, "alpha": alpha, "seed": seed, "iterations": iterations, "cpu_seconds": cpu, "wall_seconds": wall,
        "price": float(indifference_price(model)), "final": final, "history": model.eval_history,
        "band": [float(edges[0]), float(edges[1])], "trade": trade.astype(float).tolist(),
    }  # fmt: skip


def train_pfhedge(cost: float, alpha: float, seed: int, steps: int, hedger: str = "mlp", eval_every: int = 100,
                  n_paths: int = 1000) -> dict[str, Any]:  # fmt: skip
    """The peer on the same task: pfhedge's deep hedging with proportional costs, one network per (c, α).

    Paths from ``pfhedge.stochastic.generate_brownian`` (``n_paths`` per step), the entropic risk measure
    ``EntropicRiskMeasure(a=α)`` of the P&L Σ a_t ΔS_t − c Σ |a_t − a_{t−1}| − (S_T − K)⁺ (the costs in the price
    unit, as this task's; pfhedge's own ``cost`` scales with the spot, which is 0 here), minimised with Adam
    (lr 1e-3, as ``Hedger.fit``). The position is chosen date by date from the features time to maturity,
    normalised spot and the position held (a_{−1} = 0):

    - ``hedger="mlp"``: pfhedge's ``MultiLayerPerceptron`` (4 × 32 ReLU) outputs a_t;
    - ``hedger="ntb"``: pfhedge's no-transaction-band network (its example ``example_no_transaction_band.py``):
      the MLP outputs two widths w₁, w₂ and a_t = clamp(a_{t−1}, δ − softplus(w₁), δ + softplus(w₂)), δ the
      frictionless delta (the Bachelier call's Φ((S − K)/(σ√(T − t))) here, Black–Scholes' in pfhedge's example).

    Every ``eval_every`` steps: the CE its hedge achieves on RiskAC's common evaluation paths (same generator and
    seed as ``RiskAC.evaluate`` on this task) and the CPU seconds of training so far.
    """
    import torch
    from pfhedge.nn import EntropicRiskMeasure, MultiLayerPerceptron
    from pfhedge.stochastic import generate_brownian

    from is_envs.finance import HedgingWithCostsTask
    from is_sb3.ac.task import evaluation_set

    if hedger not in ("mlp", "ntb"):
        raise ValueError(f"hedger must be 'mlp' or 'ntb', got {hedger!r}")
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    task = HedgingWithCostsTask(cost=cost)
    horizon, sigma, strike = task.horizon, task.sigma, task.k
    model = MultiLayerPerceptron(in_features=3, out_features=1 if hedger == "mlp" else 2)
    criterion = EntropicRiskMeasure(a=alpha)
    optimizer = torch.optim.Adam(model.parameters())
    _, eval_paths = evaluation_set(task.simulator("cpu", torch.float32, 2025), 4096, 10_000)  # RiskAC's defaults
    eval_spot = eval_paths[..., 0]
    normal = torch.distributions.Normal(0.0, 1.0)

    def hedged_pl(spot: torch.Tensor) -> torch.Tensor:  # spot: (N, T + 1)
        held = torch.zeros(spot.shape[0])
        gains = torch.zeros(spot.shape[0])
        for t in range(horizon):
            ttm = torch.full_like(held, (horizon - t) / horizon)
            x = (spot[:, t] - strike) / (sigma * horizon**0.5)
            out = model(torch.stack([ttm, x, held], dim=-1))
            if hedger == "mlp":
                a = out[:, 0].clamp(-task.max_position, task.max_position)
            else:
                delta = normal.cdf((spot[:, t] - strike) / (sigma * (horizon - t) ** 0.5))
                lower, upper = (
                    delta - torch.nn.functional.softplus(out[:, 0]),
                    delta + torch.nn.functional.softplus(out[:, 1]),
                )
                a = torch.minimum(torch.maximum(held, lower), upper)
            gains = gains + a * (spot[:, t + 1] - spot[:, t]) - cost * (a - held).abs()
            held = a
        return gains - (spot[:, -1] - strike).clamp(min=0.0)

    def sample() -> torch.Tensor:
        return generate_brownian(n_paths, horizon + 1, init_state=(task.s0,), sigma=sigma, dt=1.0)

    history = fit_pfhedge(hedged_pl, optimizer, criterion, sample, steps, eval_spot, alpha, eval_every)
    return {"method": f"pfhedge-{hedger}", "cost": cost, "alpha": alpha, "seed": seed, "iterations": steps,
            "history": history, "final": {"ce_return": history[-1]["ce_return"]}}  # fmt: skip


def dynamic_program(cost: float, alpha: float) -> dict[str, Any]:
    """The DP's price −V(0, S₀, 0), its band at (BAND_T, S₀) and its trade clip(p, b₊, b₋) on POSITIONS."""
    from is_envs.finance import CostDynamicProgram, HedgingWithCostsTask

    task = HedgingWithCostsTask(cost=cost)
    dp = CostDynamicProgram(task, alpha, cost)
    lower, middle, upper = (float(x) for x in dp.band(BAND_T, task.s0))
    return {"price": -float(dp.value(0, task.s0, 0.0)), "band": [lower, upper], "frictionless": middle,
            "trade": np.clip(POSITIONS, lower, upper).tolist()}  # fmt: skip


def report(runs: list[dict[str, Any]], tag: str, peer_runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Table (mean ± std over seeds) and figure of the runs, against the DP; pfhedge's runs side by side."""
    peer_runs = peer_runs or []
    configs = sorted({(r["cost"], r["alpha"]) for r in runs})
    dps = {key: dynamic_program(*key) for key in configs}
    lines = [
        "Hedging a short ATM call with proportional costs c·|a − p| (Bachelier, T = 10, σ² = 0.1; the seller starts "
        "unhedged). RiskAC, IS loss, mean ± std over the seeds; the reference is the entropic dynamic program over "
        "(t, S, p) (401 prices × 201 positions). Price: −V(0, S₀, 0). CE gap: how far the certainty equivalent the "
        "learned hedge achieves on 10k common paths falls below the DP's optimum, in % of the price. Band at t = 5, "
        f"S = S₀: the positions traded to from p = {FAR_BELOW} (b₊) and from p = {FAR_ABOVE} (b₋).",
        "",
        "| c | α | seeds | iterations | price learned | DP price | price error (%) | CE gap (%) | value rel. RMSE (%) "
        "| policy rel. RMSE (%) | band learned [b₊, b₋] | DP band | width learned | DP width | CPU s per run |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    table: dict[str, Any] = {}
    for key in configs:
        rs = [r for r in runs if (r["cost"], r["alpha"]) == key]
        dp = dps[key]
        price = np.array([r["price"] for r in rs])
        error = 100 * (price - dp["price"]) / dp["price"]
        gap = np.array([100 * (-dp["price"] - r["final"]["ce_return"]) / dp["price"] for r in rs])
        lower, upper = np.array([r["band"][0] for r in rs]), np.array([r["band"][1] for r in rs])
        width = upper - lower
        row = {
            "cost": key[0], "alpha": key[1], "seeds": [r["seed"] for r in rs], "dp": dp,
            "price_mean": float(price.mean()), "price_std": float(price.std()), "error_pct": error.tolist(),
            "ce_gap_pct": gap.tolist(), "width": width.tolist(),
        }  # fmt: skip
        table[f"{key[0]} | {key[1]}"] = row
        lines.append(
            f"| {key[0]} | {key[1]:g} | {len(rs)} | {rs[0]['iterations']} | {mean_std(price.tolist())} "
            f"| {dp['price']:.4f} | {mean_std(error.tolist(), '{:+.2f}')} | {mean_std(gap.tolist(), '{:.2f}')} "
            f"| {mean_std([100 * r['final']['value_rel_rmse'] for r in rs], '{:.2f}')} "
            f"| {mean_std([100 * r['final']['policy_rel_rmse'] for r in rs], '{:.1f}')} "
            f"| [{mean_std(lower.tolist(), '{:.3f}')}, {mean_std(upper.tolist(), '{:.3f}')}] "
            f"| [{dp['band'][0]:.3f}, {dp['band'][1]:.3f}] | {mean_std(width.tolist(), '{:.3f}')} "
            f"| {dp['band'][1] - dp['band'][0]:.3f} | {np.mean([r['cpu_seconds'] for r in rs]):.0f} |"
        )
    for alpha in sorted({a for _, a in configs}):
        by_cost = sorted((c, table[f"{c} | {a}"]) for c, a in configs if a == alpha)
        if len(by_cost) > 1:
            pairs = list(itertools.pairwise(row for _, row in by_cost))
            rises = all(b["price_mean"] > a["price_mean"] for a, b in pairs)
            widens = all(np.mean(b["width"]) > np.mean(a["width"]) for a, b in pairs)
            verdict = f"the learned price {'rises' if rises else 'does NOT rise'} with the cost (mean over seeds)"
            lines += ["", f"α = {alpha:g}: {verdict}; the learned band {'widens' if widens else 'does NOT widen'}."]
    if peer_runs:
        lines += peer_table(runs, peer_runs, dps)
    text = "\n".join(lines)
    payload = {"runs": runs, "table": table, "peer_runs": peer_runs}
    write_results(result_stem("hedging_costs", tag), text, payload, lambda path: plot(runs, dps, path))
    return payload


def peer_table(
    runs: list[dict[str, Any]], peer_runs: list[dict[str, Any]], dps: dict[tuple[float, float], dict[str, Any]]
) -> list[str]:
    """RiskAC against pfhedge's two hedgers: the CE achieved on the common paths (its gap to the DP's optimum) and
    the CPU seconds of training from which it stays within 1 % of the optimum."""
    from benchmarks.common import settles_within

    lines = [
        "",
        "Side by side with pfhedge (same task, same 10k common evaluation paths; pfhedge: batches of 1000 paths, Adam "
        "lr 1e-3, its MultiLayerPerceptron, and its no-transaction-band network around the Bachelier delta). CE gap "
        "as above; 'within 1 %': CPU seconds of training from which the achieved CE stays within 1 % of the DP's "
        "optimum at every later evaluation (never: –).",
        "",
        "| c | α | method | seeds | steps | CE gap (%) | within 1 % from (CPU s) | CPU s per run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for cost, alpha in sorted(dps):
        dp = dps[(cost, alpha)]
        groups = [("RiskAC (IS)", [r for r in runs if (r["cost"], r["alpha"]) == (cost, alpha)])]
        for method in ("pfhedge-mlp", "pfhedge-ntb"):
            groups.append(
                (method, [r for r in peer_runs if (r["method"], r["cost"], r["alpha"]) == (method, cost, alpha)])
            )
        for method, rs in groups:
            if not rs:
                continue
            gap = [100 * (-dp["price"] - r["final"]["ce_return"]) / dp["price"] for r in rs]
            settle = [settles_within(r["history"], -dp["price"], key="ce_return")["cpu_seconds"] for r in rs]
            total = [
                r["history"][-1]["cpu_seconds"] if "cpu_seconds" in r["history"][-1] else r["cpu_seconds"] for r in rs
            ]
            lines.append(
                f"| {cost:g} | {alpha:g} | {method} | {len(rs)} | {rs[0]['iterations']} | {mean_std(gap, '{:.2f}')} "
                f"| {mean_std(settle, '{:.0f}') if np.isfinite(settle).any() else '–'} | {np.mean(total):.0f} |"
            )
    return lines


def plot(runs: list[dict[str, Any]], dps: dict[tuple[float, float], dict[str, Any]], path: str) -> None:
    """Left: the price against the cost per α, learned (mean ± std) and DP. Right: the trade a(p) at (t = 5, S₀)."""
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()
    alphas = sorted({a for _, a in dps})
    fig, axes = plt.subplots(1, 1 + len(alphas), figsize=(5.2 * (1 + len(alphas)), 4.4), squeeze=False)
    ax = axes[0, 0]
    for k, alpha in enumerate(alphas):
        costs = sorted(c for c, a in dps if a == alpha)
        prices = [[r["price"] for r in runs if (r["cost"], r["alpha"]) == (c, alpha)] for c in costs]
        n = min(len(p) for p in prices)
        ax.plot(costs, [dps[(c, alpha)]["price"] for c in costs], "-", color=f"C{k}", label=f"DP, α = {alpha:g}")
        ax.errorbar(costs, [np.mean(p) for p in prices], yerr=[np.std(p) for p in prices], fmt="o", color=f"C{k}",
                    ms=4, label=f"RiskAC (IS), α = {alpha:g} ({n} seeds)")  # fmt: skip
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set(xlabel="cost c per share traded (price units; c = 0: frictionless)",
           ylabel="indifference price −V(0, S₀, 0)", title="price against the transaction cost")  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    for col, alpha in enumerate(alphas, start=1):
        ax = axes[0, col]
        ax.plot(POSITIONS, POSITIONS, color="grey", lw=0.8, ls=":", label="no trade (a = p)")
        for k, cost in enumerate(sorted(c for c, a in dps if a == alpha)):
            rs = [r for r in runs if (r["cost"], r["alpha"]) == (cost, alpha)]
            trades = np.array([r["trade"] for r in rs])
            ax.plot(POSITIONS, dps[(cost, alpha)]["trade"], color=f"C{k}", lw=1, ls="--")
            ax.plot(POSITIONS, trades.mean(axis=0), color=f"C{k}", lw=1.6, label=f"c = {cost:g} ({len(rs)} seeds)")
            ax.fill_between(POSITIONS, *(trades.mean(axis=0) + s * trades.std(axis=0) for s in (-1, 1)),
                            color=f"C{k}", alpha=0.2, lw=0)  # fmt: skip
        ax.set(xlabel="position held p (shares)", ylabel="position traded to a (shares)",
               title=f"the hedge's trade at t = {BAND_T}, S = S₀, α = {alpha:g} (DP dashed)")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle("Hedging with transaction costs: RiskAC against the dynamic program, mean ± 1 std over seeds",
                 fontsize="medium")  # fmt: skip
    save_figure(fig, path, dpi=110, top=0.92)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3000 iterations, 1 seed, c = 0.01, α = 1")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per run (default 20000)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 5)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed, first-seed + 1, ...")
    parser.add_argument("--costs", nargs="+", type=float, default=None, help=f"costs c (default {COSTS})")
    parser.add_argument("--alphas", nargs="+", type=float, default=None, help=f"risk aversions (default {ALPHAS})")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tag", default="", help="suffix of the result files (hedging_costs_<tag>.*)")
    parser.add_argument("--peer-steps", type=int, default=0, help="also train pfhedge's two hedgers this many steps "
                        "per (c, α, seed) (pip install pfhedge; 0: none)")  # fmt: skip
    parser.add_argument("--peer-only", action="store_true", help="train pfhedge only (merge with --from-json later)")
    parser.add_argument(
        "--from-json", nargs="+", metavar="FILE", help="no training: re-report (and merge) the runs of these files"
    )
    args = parse_args(parser, argv)
    if args.from_json:
        loaded = [json.loads(Path(path).read_text()) for path in args.from_json]
        peer = [run for payload in loaded for run in payload.get("peer_runs", [])]
        return report([run for payload in loaded for run in payload["runs"]], args.tag, peer)
    iterations = args.iterations or (3000 if args.quick else 20_000)
    seeds = args.seeds or (1 if args.quick else 5)
    costs = args.costs or ([0.01] if args.quick else COSTS)
    alphas = args.alphas or ([1.0] if args.quick else ALPHAS)
    if any(not np.isfinite(c) or c < 0 for c in costs):
        parser.error(f"--costs must be numbers >= 0, got {costs}")
    if any(not np.isfinite(a) or a <= 0 for a in alphas):
        parser.error(f"--alphas must be positive numbers, got {alphas}")
    jobs = [{"cost": c, "alpha": a, "seed": s, "iterations": iterations, "device": args.device}
            for a in alphas for c in costs for s in range(args.first_seed, args.first_seed + seeds)]  # fmt: skip
    peer_runs: list[dict[str, Any]] = []
    if args.peer_steps:
        try:
            import pfhedge  # noqa: F401
        except ImportError:
            parser.error("--peer-steps needs pfhedge: pip install pfhedge")
        peer_jobs = [{**{k: job[k] for k in ("cost", "alpha", "seed")}, "steps": args.peer_steps, "hedger": hedger}
                     for job in jobs for hedger in ("mlp", "ntb")]  # fmt: skip
        peer_runs = run_parallel(train_pfhedge, peer_jobs, args.workers, desc="pfhedge")
    runs = run_parallel(train, jobs, args.workers, desc="hedging with costs") if not args.peer_only else []
    return report(runs, args.tag, peer_runs)


if __name__ == "__main__":
    main()
