"""The plots of is-rl (headless matplotlib): what ``is-rl evaluate`` and ``is-rl sweep`` draw, and the helpers
the benchmarks draw with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_return_histogram", "plot_shift_heatmap", "plot_sweep", "plot_value_policy", "pyplot", "save_figure"]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 110, top: float = 1.0) -> None:
    """Lay out, write (creating the folder; a unique temporary file renamed into place) and close a figure.

    :param top: the fraction of the height the panels may use (below 1 leaves room for a ``suptitle``)
    """
    from is_sb3.files import atomic_path

    path = Path(path)
    fig.tight_layout(rect=(0.0, 0.0, 1.0, top))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    pyplot().close(fig)


def plot_return_histogram(returns: np.ndarray, stats: dict[str, float], path: Path, title: str) -> None:
    """Histogram of the returns with the mean and the certainty equivalent marked."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.hist(returns, bins=min(60, max(10, len(returns) // 20)), color="tab:blue", alpha=0.7)
    ax.axvline(stats["mean_return"], color="k", ls="-", label=f"mean {stats['mean_return']:.4g}")
    ce_label = f"CE (α = {stats['risk_aversion']:g}) {stats['ce_return']:.4g} ± {stats['ce_return_se']:.2g}"
    ax.axvline(stats["ce_return"], color="tab:red", ls="--", label=ce_label)
    ax.set(xlabel="return of an episode", ylabel="episodes", title=title)
    ax.legend(fontsize=8)
    save_figure(fig, path, dpi=110)


def plot_value_policy(model: Any, path: Path) -> None:
    """Learned vs reference V(t, S) and π(t, S) against S for several t."""
    plt = pyplot()

    from is_envs.finance import reference_solution, task_of

    task = task_of(model.task)  # a finance task: prices and positions in its units
    ref = reference_solution(task, model.risk_aversion)
    scale = task.sigma * np.sqrt(task.horizon)
    s = task.s0 + np.linspace(-2, 2, 81) * scale
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for t, color in zip((0, 3, 6, 9), ("C0", "C1", "C2", "C3"), strict=True):
        obs = np.stack([np.full_like(s, t / task.horizon), (s - task.s0) / scale], axis=1).astype(np.float32)
        axes[0].plot(s, model.predict_value(obs), color=color, label=f"t={t} learned")
        axes[0].plot(s, ref.value(t, s), color=color, ls="--", label=f"t={t} reference")
        axes[1].plot(s, model.predict(obs, deterministic=True)[0][:, 0], color=color)
        axes[1].plot(s, ref.action(t, s), color=color, ls="--")
    axes[0].set(xlabel="price S", ylabel="V(t, S)", title=f"value ({ref.method} dashed)")
    axes[1].set(xlabel="price S", ylabel="position π(t, S)", title="policy")
    axes[0].legend(fontsize=7, ncol=2)
    fig.suptitle(f"{task.name} task, α = {model.risk_aversion}, critic loss {model.critic_loss}")
    save_figure(fig, path, dpi=110)


def plot_shift_heatmap(table: dict[str, Any], path: Path, policy_name: str = "policy", source: str = "") -> None:
    """One row of cells, one per distribution, coloured on one scale (return ÷ greedy, with a colour bar) and
    labelled with the mean return; for greedy itself (every ratio 1) the cells show the returns on their own
    scale instead. The title names the policy and the episodes."""
    plt = pyplot()

    names = list(table)
    ratio = np.array([[table[n]["relative_to_greedy"] for n in names]])
    absolute = bool(np.allclose(ratio, 1.0))  # greedy itself (or its equal): the returns, not a row of ×1.00
    values = np.array([[table[n]["mean_return"] for n in names]]) if absolute else ratio
    fig, ax = plt.subplots(figsize=(13, 2.6))
    low, high = (float(np.nanmin(values)), float(np.nanmax(values))) if absolute else (
        min(0.0, float(np.nanmin(ratio))), max(1.0, float(np.nanmax(ratio))))  # fmt: skip
    image = ax.imshow(values, aspect="auto", cmap="viridis", vmin=low, vmax=high)
    for i, name in enumerate(names):
        row = table[name]
        if absolute:
            text = f"{row['mean_return']:.1f}"
        else:
            greedy = f"(greedy {row['greedy_mean_return']:.1f})"
            text = f"{row['mean_return']:.1f}\n{greedy}\n×{row['relative_to_greedy']:.2f}"
        red, green, blue, _ = image.cmap(image.norm(values[0, i]))
        ink = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"  # readable on the cell
        ax.text(i, 0, text, ha="center", va="center", color=ink, fontsize=8)
    ax.set_yticks([])
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=9)
    fig.colorbar(image, ax=ax, label="mean return per episode" if absolute else "mean return ÷ greedy's", pad=0.01)
    fig.suptitle(
        f"Item pick-up: {policy_name} on the twelve distributions ({source}; gradient1 = training distribution)",
        fontsize=10,
    )
    save_figure(fig, path, dpi=110)


def plot_sweep(results: list[dict[str, Any]], path: Path) -> None:
    """Bars of the relative value RMSE, mean ± std over seeds, one per (env, loss, α); failed runs counted."""
    plt = pyplot()
    groups: dict[tuple[str, str, float], list[float]] = {}
    for r in results:
        if "error" not in r:
            key = (str(r["env"]).split("/")[-1], r["critic_loss"], r["risk_aversion"])
            groups.setdefault(key, []).append(float(r.get("value_rel_rmse", np.nan)))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups)), 4))
    labels = [f"{env}\n{loss}, α={alpha} (n={len(groups[(env, loss, alpha)])})" for env, loss, alpha in groups]
    means = [100 * float(np.mean(v)) for v in groups.values()]
    errs = [100 * float(np.std(v)) for v in groups.values()]
    ax.bar(range(len(labels)), means, yerr=errs, color="tab:blue", alpha=0.8)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylabel("relative value RMSE (%), mean ± std over seeds")
    n_failed = sum("error" in r for r in results)
    ax.set_title(f"sweep: {len(results) - n_failed} runs" + (f" ({n_failed} failed, not shown)" if n_failed else ""))
    save_figure(fig, path, dpi=110)
