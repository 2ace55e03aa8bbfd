"""bf16 mixed precision against float32 in DiscreteRiskSAC on the item pick-up grid (issue: Fig. 4 on the CPU).

    python -m benchmarks.item_pickup_precision --quick        # 2 seeds × 200 updates at batch 128 (a few minutes)
    python -m benchmarks.item_pickup_precision                # 3 seeds × 1000 updates at batch 512
    python -m benchmarks.item_pickup_precision --runs A.json B.json   # learning curves of item_pickup runs by precision

Fixed data: one replay buffer of random-policy transitions (Enders' released gradient1 training episodes), shared
by every model; per seed a float32 and a bf16 model from the same initial weights train on the same batches (numpy's
and torch's generators re-seeded identically), so the two curves differ only by the precision. The difference is
set against what a different seed changes (the spread of the float32 curves over seeds). Writes
``item_pickup_precision.{json,md,png}``. ``--runs``: the validation curves of real training runs
(``benchmarks.item_pickup`` result files), grouped by agent and precision, mean ± 1 std over seeds.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from typing import Any

import numpy as np

from benchmarks.common import keep_freed_memory, parse_args, result_stem, write_results

PRECISIONS = ("float32", "bf16")


def fixed_data_curves(seeds: list[int], updates: int, batch_size: int, fill: int) -> dict[str, Any]:
    """Per seed and precision, the critic loss and mean Q(s, a) of every update on one shared replay buffer."""
    import gymnasium as gym
    import torch as th
    from stable_baselines3.common.logger import configure

    from is_sb3 import DiscreteRiskSAC
    from is_sb3.numerics import flush_denormals

    th.set_num_threads(1)
    keep_freed_memory()
    env = gym.make("is_envs/ItemPickup-v0", episodes="gradient1", split="training")
    source = DiscreteRiskSAC("CnnPolicy", env, learning_starts=fill, buffer_size=fill, seed=12345, device="cpu")
    source.learn(fill)  # uniform random actions until learning_starts: the buffer is full, no update made
    curves: dict[str, dict[str, dict[str, list[float]]]] = {}
    cpu: dict[str, float] = defaultdict(float)
    for seed in seeds:
        curves[str(seed)] = {}
        initial = None
        for precision in PRECISIONS:
            model = DiscreteRiskSAC("CnnPolicy", env, learning_starts=0, buffer_size=fill, seed=seed, device="cpu",
                                    precision=precision)  # fmt: skip
            state = {k: v.clone() for k, v in model.policy.state_dict().items()}
            if initial is None:
                initial = state
            assert all(th.equal(initial[k], state[k]) for k in state), "the two precisions start from one network"
            model.replay_buffer = source.replay_buffer
            model.set_logger(configure(None, [""]))
            np.random.seed(seed)  # noqa: NPY002 (SB3's replay buffer samples with numpy's global generator)
            th.manual_seed(seed)
            loss, q_mean = [], []
            t0 = time.process_time()
            with flush_denormals():
                for _ in range(updates):
                    model.train(gradient_steps=1, batch_size=batch_size)
                    loss.append(float(model.logger.name_to_value["train/critic_loss"]))
                    q_mean.append(float(model.logger.name_to_value["train/q_mean"]))
            cpu[precision] += time.process_time() - t0
            curves[str(seed)][precision] = {"critic_loss": loss, "q_mean": q_mean}
    return {"curves": curves, "cpu_seconds": dict(cpu), "updates": updates, "batch_size": batch_size, "fill": fill}


def _windows(values: list[float], width: int) -> np.ndarray:
    n = len(values) // width
    return np.asarray(values[: n * width]).reshape(n, width).mean(axis=1)


def summarise(result: dict[str, Any], width: int) -> tuple[str, dict[str, Any]]:
    """Per quantity, window means (``width`` updates): the bf16 − float32 difference per seed against the spread
    of the float32 curves over seeds."""
    seeds = list(result["curves"])
    lines = [
        f"bf16 against float32, same seed, same batches, {result['updates']} updates at batch "
        f"{result['batch_size']} on {result['fill']} fixed random-policy transitions, {len(seeds)} seeds; window "
        f"means of {width} updates. |bf16 − float32|: the precision's effect; seed spread: std over seeds of the "
        "float32 curve (what a different seed changes). CPU seconds: "
        + ", ".join(f"{p} {s:.0f}" for p, s in result["cpu_seconds"].items()),
        "",
        "| quantity | mean abs(bf16 − float32) | max abs(bf16 − float32) | mean seed spread (float32) | ratio |",
        "|---|---|---|---|---|",
    ]
    summary = {}
    for key in ("critic_loss", "q_mean"):
        f32 = np.stack([_windows(result["curves"][s]["float32"][key], width) for s in seeds])
        b16 = np.stack([_windows(result["curves"][s]["bf16"][key], width) for s in seeds])
        diff = np.abs(b16 - f32)
        spread = f32.std(axis=0) if len(seeds) > 1 else np.full(f32.shape[1], np.nan)
        summary[key] = {
            "mean_abs_diff": float(diff.mean()),
            "max_abs_diff": float(diff.max()),
            "mean_seed_spread": float(np.mean(spread)),
            "ratio": float(diff.mean() / np.mean(spread)),
        }
        s = summary[key]
        lines.append(
            f"| {key} | {s['mean_abs_diff']:.4g} | {s['max_abs_diff']:.4g} | {s['mean_seed_spread']:.4g} "
            f"| {s['ratio']:.3f} |"
        )
    return "\n".join(lines), summary


def _plot_fixed(result: dict[str, Any], width: int, path: str) -> None:
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for i, (seed, curves) in enumerate(result["curves"].items()):
        for precision, style in zip(PRECISIONS, ("-", "--"), strict=True):
            for ax, key in zip(axes, ("critic_loss", "q_mean"), strict=True):
                y = _windows(curves[precision][key], width)
                x = (np.arange(len(y)) + 1) * width
                ax.plot(x, y, style, color=f"C{i}", label=f"seed {seed}, {precision}")
    for ax, title, unit in zip(
        axes, ("critic loss", "mean Q(s, a) on the batch"), ("loss (reward-std units²)", "Q (reward-std units)"),
        strict=True,
    ):  # fmt: skip
        ax.set(title=f"{title}, window mean of {width} updates", xlabel="update", ylabel=unit)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.suptitle(
        f"DiscreteRiskSAC bf16 (dashed) vs float32 (solid): same seed, same batches, {len(result['curves'])} seeds",
        fontsize="medium",
    )
    save_figure(fig, path, dpi=110)


def runs_by_precision(paths: list[str], tag: str) -> dict[str, Any]:
    """Validation curves (gradient1 and gradient2) of ``benchmarks.item_pickup`` runs, grouped by agent, γ and
    precision: mean ± 1 std over seeds on the steps every run of a group reached; the bf16 − float32 difference
    of the means against the seed spread."""
    from benchmarks.item_pickup import agent_label, load_runs
    from is_sb3.plotting import pyplot, save_figure

    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = defaultdict(list)
    for run in load_runs(paths):
        if "precision" not in run:
            raise ValueError(f"run {agent_label(run)} seed {run['seed']} does not record its precision")
        groups[(agent_label(run), run["gamma"], run["precision"])].append(run)
    plt = pyplot()
    fields = (("validation_training", "gradient1 (training distribution)"), ("validation", "gradient2 (shifted)"))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    stats: dict[tuple[str, float, str], dict[str, Any]] = {}
    for i, ((label, gamma, precision), group) in enumerate(sorted(groups.items())):
        stats[(label, gamma, precision)] = {}
        for ax, (field, title) in zip(axes, fields, strict=True):
            histories = [dict(run[field]) for run in group]
            steps = sorted(set.intersection(*(set(h) for h in histories)))
            values = np.array([[h[s] for s in steps] for h in histories])
            mean, std = values.mean(axis=0), values.std(axis=0)
            stats[(label, gamma, precision)][field] = (steps, mean, std)
            style = "-" if precision == "float32" else "--"
            ax.plot(steps, mean, style, color=f"C{i // 2}", label=f"{label} γ={gamma} {precision} ({len(group)} seeds)")
            ax.fill_between(steps, mean - std, mean + std, color=f"C{i // 2}", alpha=0.15, lw=0)
            ax.set(title=f"validation on {title}", xlabel="env steps", ylabel="mean return per episode (100 episodes)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
    fig.suptitle("DiscreteRiskSAC on the item pick-up grid: bf16 (dashed) vs float32 (solid), mean ± 1 std over seeds",
                 fontsize="medium")  # fmt: skip
    stem = result_stem("item_pickup_precision_runs", tag)
    lines = [
        "Validation return during training, bf16 against float32 (same agent, γ and seeds), over the env steps both "
        "reached: mean over those steps of |mean_bf16 − mean_float32| against the mean seed std of each precision",
        "",
        "| agent | γ | validation on | steps compared | seeds f32 / bf16 | mean abs(diff of means) | seed std f32 | "
        "seed std bf16 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    summary = []
    for (label, gamma, precision), per_field in stats.items():
        if precision != "float32" or (label, gamma, "bfloat16") not in stats:
            continue
        other = stats[(label, gamma, "bfloat16")]
        for field, title in fields:
            s32, m32, d32 = per_field[field]
            s16, m16, d16 = other[field]
            common = sorted(set(s32) & set(s16))
            a = np.array([m32[s32.index(s)] for s in common])
            b = np.array([m16[s16.index(s)] for s in common])
            sa = np.array([d32[s32.index(s)] for s in common])
            sb = np.array([d16[s16.index(s)] for s in common])
            row = {"agent": label, "gamma": gamma, "field": field, "steps": [common[0], common[-1]],
                   "mean_abs_diff": float(np.abs(a - b).mean()), "seed_std_float32": float(sa.mean()),
                   "seed_std_bf16": float(sb.mean())}  # fmt: skip
            summary.append(row)
            n32, n16 = len(groups[(label, gamma, "float32")]), len(groups[(label, gamma, "bfloat16")])
            lines.append(
                f"| {label} | {gamma} | {title} | {common[0]}–{common[-1]} | {n32} / {n16} | "
                f"{row['mean_abs_diff']:.1f} | {row['seed_std_float32']:.1f} | {row['seed_std_bf16']:.1f} |"
            )
    payload = {"summary": summary, "runs": [f"{k[0]} γ={k[1]} {k[2]}: {len(v)} seeds" for k, v in groups.items()]}
    write_results(stem, "\n".join(lines), payload, lambda path: save_figure(fig, path, dpi=110))
    return payload


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0 … n−1 (default 3; --quick 2)")
    parser.add_argument("--updates", type=int, default=None, help="updates per model (default 1000; --quick 200)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 512 (Enders); --quick 128")
    parser.add_argument("--window", type=int, default=None, help="updates per window mean (default 50; --quick 20)")
    parser.add_argument("--runs", nargs="+", metavar="FILE", help="compare item_pickup runs by precision instead")
    parser.add_argument("--tag", default="")
    args = parse_args(parser, argv)
    if args.runs:
        return runs_by_precision(args.runs, args.tag)
    seeds = list(range(args.seeds or (2 if args.quick else 3)))
    updates = args.updates or (200 if args.quick else 1000)
    batch = args.batch_size or (128 if args.quick else 512)
    width = args.window or (20 if args.quick else 50)
    for name, value in (("--updates", updates), ("--batch-size", batch), ("--window", width)):
        if value < 1:
            parser.error(f"{name} must be >= 1, got {value}")
    if width > updates:
        parser.error(f"--window ({width}) must not exceed --updates ({updates})")
    result = fixed_data_curves(seeds, updates, batch, fill=max(4 * batch, 5000))
    text, summary = summarise(result, width)
    payload = {**result, "summary": summary, "window": width}
    write_results(result_stem("item_pickup_precision", args.tag), text, payload,
                  lambda path: _plot_fixed(result, width, path))  # fmt: skip
    return payload


if __name__ == "__main__":
    main()
