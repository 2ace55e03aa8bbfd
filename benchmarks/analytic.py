"""IS paper Fig. 2: RiskAC on the Gaussian and quadratic tasks, all four critic losses, against closed forms.

    python -m benchmarks.analytic --quick                  # minutes on CPU
    python -m benchmarks.analytic                          # paper: 100k iterations, 5 seeds
    python -m benchmarks.analytic --iterations 20000 --seeds 1 --workers 2   # what the README reports
    python -m benchmarks.analytic --speed                  # it/s: compiled vs eager RiskAC vs plain PyTorch
    python -m benchmarks.analytic --from-json A.json B.json --tag merged   # merge runs of separate invocations

Writes ``benchmarks/results/analytic.json``, ``analytic.md`` (table) and ``analytic.png``
(relative value / policy RMSE against the closed form over training, mean over seeds).
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import (
    mean_std,
    parse_args,
    result_stem,
    run_parallel,
    settles_within,
    train_risk_ac,
    write_json,
    write_results,
)

#: name -> (env id, risk aversion α); k = ασ² for the quadratic task
TASKS: dict[str, tuple[str, float]] = {
    "gaussian α=100": ("is_envs/BachelierTrading-v0", 100.0),
    "gaussian α=1": ("is_envs/BachelierTrading-v0", 1.0),
    "quadratic k=0.2": ("is_envs/QuadraticPenalty-v0", 2.0),
    "quadratic k=0.5": ("is_envs/QuadraticPenalty-v0", 5.0),
}
LOSSES = ["is", "emse", "sp", "mse"]


def summarise(runs: list[dict[str, Any]], key_of: dict[tuple[str, float], str]) -> dict[str, dict[str, Any]]:
    """Per (task, loss): the final metrics of every seed (mean ± std in the table), and where V(s0)
    settles within 1 % of V*(s0) for good (iteration, CPU seconds)."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(key_of[(run["env_id"], run["risk_aversion"])], run["critic_loss"])].append(run)
    table: dict[str, dict[str, Any]] = {}
    for (task, loss), group in sorted(
        groups.items(), key=lambda kv: (list(TASKS).index(kv[0][0]), LOSSES.index(kv[0][1]))
    ):
        group = sorted(group, key=lambda g: g["seed"])
        row: dict[str, Any] = {"task": task, "loss": loss, "seeds": [g["seed"] for g in group]}
        for metric in ("value_rel_rmse", "policy_rel_rmse", "value_s0", "reference_value_s0", "ce_return"):
            row[metric] = [float(g["final"].get(metric, np.nan)) for g in group]
        settled = [
            settles_within(g["history"], g["final"]["reference_value_s0"])
            if "reference_value_s0" in g["final"]
            else {"iteration": np.nan, "cpu_seconds": np.nan}
            for g in group
        ]
        row["settled_iteration"] = [x["iteration"] for x in settled]
        row["settled_cpu_seconds"] = [x["cpu_seconds"] for x in settled]
        row["seconds"] = [float(g["seconds"]) for g in group]
        table[f"{task} | {loss}"] = row
    return table


def markdown(table: dict[str, dict[str, Any]], config: str) -> str:
    lines = [
        f"Configuration: {config}",
        "",
        "Mean ± std over seeds (n = seeds); 'settles' = the iteration (and CPU seconds) from which V(s0) stays",
        "within 1 % of V*(s0) at every later evaluation (evaluations every 1 % of the run); CE of the return:",
        "the policy's certainty equivalent on 10k common evaluation paths (own generator).",
        "",
        "| task | loss | n | value rel. RMSE (%) | policy rel. RMSE (%) | V(s0) learned | V*(s0) | settles (it.) "
        "| settles (CPU s) | CE of return |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in table.values():
        lines.append(
            f"| {row['task']} | {row['loss']} | {len(row['seeds'])} | {mean_std(row['value_rel_rmse'], '{:.2f}', 100)} "
            f"| {mean_std(row['policy_rel_rmse'], '{:.2f}', 100)} | {mean_std(row['value_s0'], '{:.4g}')} "
            f"| {np.mean(row['reference_value_s0']):.4g} | {mean_std(row['settled_iteration'], '{:.0f}')} "
            f"| {mean_std(row['settled_cpu_seconds'], '{:.0f}')} | {mean_std(row['ce_return'], '{:.4g}')} |"
        )
    return "\n".join(lines)


def plot(runs: list[dict[str, Any]], key_of: dict[tuple[str, float], str], tasks: list[str], path: str) -> None:
    """Relative value and policy RMSE over training: mean over seeds with a ±1 std band (the paper's Fig. 2)."""
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()

    fig, axes = plt.subplots(2, len(tasks), figsize=(4.2 * len(tasks), 6.5), squeeze=False)
    curves: dict[tuple[str, str], list[list[dict[str, float]]]] = defaultdict(list)
    for run in runs:
        curves[(key_of[(run["env_id"], run["risk_aversion"])], run["critic_loss"])].append(run["history"])
    for col, task in enumerate(tasks):
        for loss in LOSSES:
            histories = curves.get((task, loss))
            if not histories:
                continue
            n = min(len(h) for h in histories)
            it = [h["iteration"] for h in histories[0][:n]]
            for row, metric in enumerate(("value_rel_rmse", "policy_rel_rmse")):
                vals = 100 * np.array([[h.get(metric, np.nan) for h in hist[:n]] for hist in histories])
                mean, std = np.nanmean(vals, axis=0), np.nanstd(vals, axis=0)
                (line,) = axes[row, col].plot(it, mean, label=f"{loss} (n={len(histories)})")
                lower = np.maximum(mean - std, 0.1 * mean)  # log axis: the band stops at a tenth of the mean
                axes[row, col].fill_between(it, lower, mean + std, color=line.get_color(), alpha=0.2)
        for row, name in enumerate(("value", "policy")):
            ax = axes[row, col]
            ax.set_yscale("log")
            ax.set_title(f"{task}: {name}")
            ax.set_xlabel("iteration")
            ax.set_ylabel(f"relative {name} RMSE (%), mean ± 1 std")
            ax.grid(alpha=0.3)
    axes[0, 0].legend()
    save_figure(fig, path, dpi=110)


def speed(iterations: int, device: str, losses: list[str]) -> dict[str, Any]:
    """Compiled RiskAC (the default) against the eager iteration of before (``torch_compile=False``,
    ``torch.nn.Mish``) and a plain PyTorch loop of the same computation: iterations/s in one process,
    runs interleaved, best of three (the machine is noisy); the paper's settings (2×64 Mish, batch 1024).
    """
    import torch as th
    from stable_baselines3.common.utils import polyak_update
    from torch import nn

    from is_envs.finance import BachelierSimulator, QuadraticPenaltyTask
    from is_sb3 import RiskAC
    from is_sb3.losses import critic_loss, exponential_utility_actor_loss

    th.set_num_threads(1)
    alpha = 2.0

    def sync() -> None:
        if device.startswith("cuda"):
            th.cuda.synchronize()

    def plain(n: int, loss: str) -> float:
        sim = BachelierSimulator(QuadraticPenaltyTask(), device, seed=0)

        def mlp(out: int) -> nn.Sequential:
            return nn.Sequential(nn.Linear(2, 64), nn.Mish(), nn.Linear(64, 64), nn.Mish(), nn.Linear(64, out)).to(
                device
            )

        actor, critic, target = mlp(1), mlp(1), mlp(1)
        target.load_state_dict(critic.state_dict())
        scale = 1.0 / max(1.0, alpha)  # RiskAC's networks output αV and αa
        opt_a = th.optim.Adam(actor.parameters(), lr=1e-4, betas=(0.99, 0.999))
        opt_c = th.optim.Adam(critic.parameters(), lr=1e-4, betas=(0.99, 0.999))
        t0 = time.perf_counter()
        for _ in range(n):
            tr = sim.sample_transitions(1024)
            obs = sim.observe(tr.t, tr.s)
            a = actor(obs).squeeze(-1) * scale
            with th.no_grad():
                v_next = target(sim.observe(tr.t + 1, tr.s_next)).squeeze(-1).masked_fill(tr.done, 0.0) * scale
                v_now = target(obs).squeeze(-1) * scale
            v = critic(obs).squeeze(-1) * scale
            c_loss = critic_loss(loss, v, sim.reward(tr.t, tr.s, a.detach(), tr.s_next) + v_next, alpha)
            opt_c.zero_grad(set_to_none=True)
            c_loss.backward()
            nn.utils.clip_grad_value_(critic.parameters(), 1.0)
            nn.utils.clip_grad_norm_(critic.parameters(), 10.0)
            opt_c.step()
            gain = sim.reward(tr.t, tr.s, a, tr.s_next) + v_next - v_now
            a_loss = exponential_utility_actor_loss(gain, alpha).mean()
            opt_a.zero_grad(set_to_none=True)
            a_loss.backward()
            nn.utils.clip_grad_value_(actor.parameters(), 1.0)
            nn.utils.clip_grad_norm_(actor.parameters(), 10.0)
            opt_a.step()
            polyak_update(critic.parameters(), target.parameters(), 0.01)
        sync()
        return n / (time.perf_counter() - t0)

    def model(loss: str, compiled: bool) -> RiskAC:
        kwargs: dict[str, Any] = {} if compiled else {"policy_kwargs": {"activation_fn": nn.Mish}}
        return RiskAC(
            "MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=alpha, critic_loss=loss, eval_freq=0, seed=0,
            device=device, torch_compile=compiled, **kwargs,
        )  # fmt: skip

    def rate(m: RiskAC, n: int) -> float:
        t0 = time.perf_counter()
        m.learn(n, log_interval=0, reset_num_timesteps=False)
        sync()
        return n / (time.perf_counter() - t0)

    out: dict[str, Any] = {"device": device, "iterations_per_measurement": iterations, "losses": {}}
    for loss in losses:
        eager, fast = model(loss, False), model(loss, True)
        rate(eager, 20)
        t0 = time.perf_counter()
        fast.learn(2, log_interval=0)  # iteration 1 eager (creates Adam's state), iteration 2 compiles
        sync()
        compile_seconds = time.perf_counter() - t0
        plain(20, loss)
        p, e, f = [], [], []
        for _ in range(3):  # interleaved, best of three
            p.append(plain(iterations, loss))
            e.append(rate(eager, iterations))
            f.append(rate(fast, iterations))
        row = {
            "plain_torch_it_per_s": max(p),
            "eager_it_per_s": max(e),
            "compiled_it_per_s": max(f),
            "speedup_vs_eager": max(f) / max(e),
            "eager_vs_plain_torch": max(e) / max(p),
            "compile_seconds": compile_seconds,
            "minutes_per_100k_iterations": 100_000 / max(f) / 60,
        }
        out["losses"][loss] = row
        print(
            f"{loss}: compiled {row['compiled_it_per_s']:.0f} it/s, eager {row['eager_it_per_s']:.0f} it/s "
            f"(×{row['speedup_vs_eager']:.2f}), plain PyTorch {row['plain_torch_it_per_s']:.0f} it/s; "
            f"one-off compile {compile_seconds:.1f} s; 100k iterations = {row['minutes_per_100k_iterations']:.1f} min",
            flush=True,
        )
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3000 iterations, 1 seed, minutes on CPU")
    parser.add_argument("--iterations", type=int, default=None, help="iterations per run (paper: 100000)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per configuration (paper: 5)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run are first-seed, first-seed + 1, ...")
    parser.add_argument("--losses", nargs="+", default=LOSSES, choices=LOSSES)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--speed", action="store_true", help="only measure iterations/s")
    parser.add_argument("--tag", default="", help="suffix of the result files (analytic_<tag>.*)")
    parser.add_argument(
        "--from-json", nargs="+", metavar="FILE", help="no training: re-report (and merge) the runs of these files"
    )
    args = parse_args(parser, argv)
    if args.speed:
        result = speed(300 if args.quick else 2000, args.device, args.losses)
        write_json(f"analytic_speed_{args.device.replace(':', '')}{'_' + args.tag if args.tag else ''}.json", result)
        return result
    if args.from_json:
        runs = [run for path in args.from_json for run in json.loads(Path(path).read_text())["runs"]]
        return report(runs, args.tag)
    iterations = args.iterations or (3000 if args.quick else 100_000)
    seeds = args.seeds or (1 if args.quick else 5)
    jobs = [
        {"env_id": TASKS[t][0], "risk_aversion": TASKS[t][1], "critic_loss": loss, "seed": seed,
         "iterations": iterations, "device": args.device}
        for t in args.tasks for loss in args.losses for seed in range(args.first_seed, args.first_seed + seeds)
    ]  # fmt: skip
    return report(run_parallel(train_risk_ac, jobs, args.workers), args.tag)


def report(runs: list[dict[str, Any]], tag: str) -> dict[str, Any]:
    """Table (mean ± std over seeds), JSON and plot of ``runs`` (of one or several invocations)."""
    key_of = {v: k for k, v in TASKS.items()}
    runs = [r for r in runs if (r["env_id"], r["risk_aversion"]) in key_of]
    tasks = [t for t in TASKS if any(key_of[(r["env_id"], r["risk_aversion"])] == t for r in runs)]
    table = summarise(runs, key_of)
    iterations = sorted({r["iterations"] for r in runs})
    devices = sorted({r.get("device", "cpu") for r in runs})
    config = (
        f"{'/'.join(map(str, iterations))} iterations, batch 1024, paper schedule (peak lr 1e-4), "
        f"device {'/'.join(devices)}, one CPU thread per run"
    )
    text = markdown(table, config)
    payload = {"config": config, "table": table, "runs": runs}
    write_results(result_stem("analytic", tag), text, payload, lambda path: plot(runs, key_of, tasks, path))
    return payload


if __name__ == "__main__":
    main()
