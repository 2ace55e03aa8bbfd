"""Why the entropic critic fails on the quadratic task at k = ασ² = 0.5 (and not at k = 0.2).

    python -m benchmarks.critic_tails --quick      # 2000 iterations per run, a few minutes on CPU
    python -m benchmarks.critic_tails              # 20000 iterations per run (the README's table)

RiskAC with the IS loss on the quadratic-penalty task, k ∈ {0.2, 0.5}, in three set-ups that take
the actor out of the picture step by step:

- ``joint``: the algorithm as shipped (actor and critic learn);
- ``frozen actor``: the actor is the optimal hedge π*(s) = S − S_0 (only the critic learns);
- ``frozen actor, SGD``: the same with plain SGD (lr 1e-2) instead of Adam for the critic;
- ``frozen critic`` (not in the default set): the critic is the closed form V*, only the actor learns.

Each run reports V(s_0) against V*(s_0), the relative value RMSE, the fitted curvature of V(T−1, ·)
against the true ½, and the Kish effective sample size of the IS weights e^{αδ} (the share of the
batch that carries the critic's gradient). Writes ``benchmarks/results/critic_tails.{json,md,png}``.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from benchmarks.common import parse_args, result_stem, run_parallel, write_results
from is_envs.finance import BachelierTask, QuadraticPenaltyTask, reference_solution, task_of
from is_sb3.ac.policies import RiskACPolicy

SETUPS = ["joint", "frozen actor", "frozen actor, SGD", "frozen critic"]


class _ReferencePolicy(RiskACPolicy):
    """RiskAC's policy with a part replaced by the task's reference solution (its closed form here).

    Observations [t/T, (S − S_0)/(σ√T)] are mapped back to (t, S) and answered by
    :func:`~is_envs.finance.reference_solution`; the replaced network stays in the graph with weight 0,
    so its optimizer runs but never moves the output.

    :param task: the Bachelier task.
    :param reference_risk_aversion: α of the reference solution.
    """

    def __init__(self, *args: Any, task: BachelierTask, reference_risk_aversion: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.task, self.reference_risk_aversion = task, reference_risk_aversion
        self.reference = reference_solution(task, reference_risk_aversion)

    def _state(self, obs: th.Tensor) -> tuple[np.ndarray, np.ndarray]:
        o = obs.detach().double().cpu().numpy()
        t = np.rint(o[:, 0] * self.task.horizon).astype(np.int64)
        return t, self.task.s0 + o[:, 1] * self.task.sigma * np.sqrt(self.task.horizon)

    def _as_tensor(self, x: np.ndarray, like: th.Tensor) -> th.Tensor:
        return th.as_tensor(x, dtype=like.dtype, device=like.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        extra = {"task": self.task, "reference_risk_aversion": self.reference_risk_aversion}
        return {**super()._get_constructor_parameters(), **extra}


class OptimalHedgePolicy(_ReferencePolicy):
    """The actor is the reference policy π*(s) (for the quadratic task, a = S − S_0)."""

    def action(self, obs: th.Tensor, alpha: float | th.Tensor | None = None) -> th.Tensor:
        a = self._as_tensor(self.reference.action(*self._state(obs)), obs)
        return a.unsqueeze(-1) + 0.0 * self.actor(obs)


class ExactCriticPolicy(_ReferencePolicy):
    """The critic and its target are the reference value V*(s)."""

    def value(self, obs: th.Tensor, alpha: float | th.Tensor | None = None) -> th.Tensor:
        return self.target_value(obs) + 0.0 * self.critic(obs).squeeze(-1)

    def target_value(self, obs: th.Tensor, alpha: float | th.Tensor | None = None) -> th.Tensor:
        return self._as_tensor(self.reference.value(*self._state(obs)), obs)


class _Trace(BaseCallback):
    """Every ``every`` iterations: V(s_0), V(T−1, ·) at S − S_0 ∈ {0, 1} and the critic's ESS share."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every = every
        self.rows: list[dict[str, float]] = []

    def _on_step(self) -> bool:
        from is_sb3 import RiskAC

        model = self.model
        assert isinstance(model, RiskAC) and model.task is not None
        if model.num_timesteps % self.every == 0:
            sim, task = model.simulator, task_of(model.task)
            t = th.tensor([0, task.horizon - 1, task.horizon - 1], device=model.device)
            s = th.tensor([task.s0, task.s0, task.s0 + 1.0], device=model.device)
            with th.no_grad():
                v = model.policy.value(sim.observe(t, s)).tolist()
            self.rows.append(
                {
                    "iteration": float(model.num_timesteps),
                    "value_s0": v[0],
                    "curvature_last_step": v[1] - v[2],  # V(T−1, 0) − V(T−1, 1) = q for V = c − q x²
                    "critic_ess_fraction": float(model._last_ess[0]),
                }
            )
        return True


def run(k: float, setup: str, iterations: int, seed: int = 0) -> dict[str, Any]:
    """One training run; returns its trace and final reference errors."""
    from is_sb3 import RiskAC

    th.set_num_threads(1)
    sigma2 = 0.1
    alpha = k / sigma2
    kwargs: dict[str, Any] = {}
    if setup != "joint":
        kwargs["policy"] = ExactCriticPolicy if setup == "frozen critic" else OptimalHedgePolicy
        kwargs["policy_kwargs"] = {"task": QuadraticPenaltyTask(), "reference_risk_aversion": alpha}
    if setup.endswith("SGD"):
        kwargs["policy_kwargs"].update(optimizer_class=th.optim.SGD, optimizer_kwargs={})
        kwargs["learning_rate"] = 1e-2
    model = RiskAC(
        kwargs.pop("policy", "MlpPolicy"),
        "is_envs/QuadraticPenalty-v0",
        risk_aversion=alpha,
        critic_loss="is",
        seed=seed,
        eval_freq=0,
        device="cpu",
        **kwargs,
    )
    trace = _Trace(max(1, iterations // 40))
    model.learn(iterations, callback=trace, log_interval=0)
    final = model.evaluate()
    return {"k": k, "setup": setup, "iterations": iterations, "trace": trace.rows, "final": final}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2000 iterations per run")
    parser.add_argument("--iterations", type=int, default=None)
    parser.add_argument("--setups", nargs="+", default=SETUPS[:3], choices=SETUPS)
    parser.add_argument("--tag", default="", help="suffix of the result files (critic_tails_<tag>.*)")
    parser.add_argument("--workers", type=int, default=1)
    args = parse_args(parser, argv)
    iterations = args.iterations or (2000 if args.quick else 20_000)
    jobs = [{"k": k, "setup": setup, "iterations": iterations} for k in (0.2, 0.5) for setup in args.setups]
    runs = run_parallel(run, jobs, args.workers)
    text = markdown(runs, iterations)
    payload = {"iterations": iterations, "runs": runs}
    write_results(result_stem("critic_tails", args.tag), text, payload, lambda path: _plot(runs, path))
    return payload


def markdown(runs: list[dict[str, Any]], iterations: int) -> str:
    """The results table: final V(s0), value and policy errors, curvature, ESS share."""
    lines = [
        f"{iterations} iterations per run, IS loss, quadratic task (σ² = 0.1, α = k/σ²), seed 0.",
        "",
        "| k | set-up | V(s0) learned | V*(s0) | value rel. RMSE | policy rel. RMSE "
        "| curvature of V(T−1,·) (true 0.5) | critic ESS share (mean of last quarter) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        f, last = r["final"], r["trace"][-1]
        tail = r["trace"][3 * len(r["trace"]) // 4 :]
        ess = float(np.mean([row["critic_ess_fraction"] for row in tail]))
        lines.append(
            f"| {r['k']} | {r['setup']} | {f['value_s0']:.3f} | {f['reference_value_s0']:.3f} "
            f"| {100 * f['value_rel_rmse']:.0f} % | {100 * f['policy_rel_rmse']:.1f} % "
            f"| {last['curvature_last_step']:.3f} | {100 * ess:.2f} % |"
        )
    return "\n".join(lines)


def _plot(runs: list[dict[str, Any]], path: str) -> None:
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for r in runs:
        its = [row["iteration"] for row in r["trace"]]
        style = "-" if r["k"] == 0.5 else "--"
        label = f"k={r['k']}, {r['setup']}"
        axes[0].plot(its, [row["value_s0"] for row in r["trace"]], style, label=label)
        axes[1].plot(its, [row["curvature_last_step"] for row in r["trace"]], style, label=label)
        axes[2].semilogy(its, [row["critic_ess_fraction"] for row in r["trace"]], style, label=label)
    for k, ls in ((0.5, "-"), (0.2, "--")):
        axes[0].axhline(5 * np.log(1 - k) / (k / 0.1), color="k", ls=ls, lw=0.8)  # V*(s0) = T/(2α) log(1 − k)
    axes[1].axhline(0.5, color="k", lw=0.8)
    axes[0].set(title="V(s0) (black: V*, solid k = 0.5, dashed k = 0.2)", xlabel="iteration",
                ylabel="learned V(s0) (price units)", ylim=(-4, 0.5))  # fmt: skip
    axes[1].set(title="curvature of V(T−1, ·) (black: true 0.5)", xlabel="iteration",
                ylabel="V(T−1, 0) − V(T−1, 1) (= q of c − q x²)")  # fmt: skip
    axes[2].set(title="critic ESS share of e^{αδ}", xlabel="iteration", ylabel="Kish ESS / batch size")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    title = "RiskAC, IS loss, quadratic task: joint training against a frozen optimal actor (seed 0, one run each)"
    fig.suptitle(title, fontsize="medium")
    save_figure(fig, path, dpi=110, top=0.94)


if __name__ == "__main__":
    main()
