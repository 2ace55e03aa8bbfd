"""The main job: a short risk-averse training run on the quadratic-penalty task.

    python -m is_sb3.quickstart [--iterations 20000] [--critic-loss is] [--risk-aversion 2.0]
                                [--tensorboard-log runs] [--device auto] [--seed 0]

Trains :class:`~is_sb3.RiskAC` with the Itakura-Saito critic loss and prints the learned value and
policy against the closed form V*(t, S) = −½(S − S_0)² + (T − t)/(2α)·log(1 − ασ²), π*(t, S) = S − S_0.
TensorBoard logs go to ``--tensorboard-log`` (``tensorboard --logdir runs``).
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table

from is_envs.finance import reference_solution, task_of
from is_sb3.ac import RiskAC
from is_sb3.common import positive_int
from is_sb3.schedules import WarmupConstantCosine


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="is_envs/QuadraticPenalty-v0")
    parser.add_argument("--iterations", type=positive_int, default=20_000)
    parser.add_argument("--critic-loss", default="is", choices=["is", "emse", "sp", "mse"])
    parser.add_argument("--risk-aversion", type=float, default=2.0)
    parser.add_argument("--tensorboard-log", default="runs")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    console = Console()
    model = RiskAC(
        "MlpPolicy",
        args.env,
        risk_aversion=args.risk_aversion,
        critic_loss=args.critic_loss,
        learning_rate=WarmupConstantCosine(1e-4),
        eval_freq=max(1, args.iterations // 10),
        tensorboard_log=args.tensorboard_log,
        device=args.device,
        seed=args.seed,
    )
    task = task_of(model.task)  # a finance task: the table below is in its price units
    console.print(
        f"RiskAC on {args.env}, α = {args.risk_aversion}, critic loss '{args.critic_loss}', "
        f"{args.iterations} iterations × {model.batch_size} transitions, device {model.device}"
    )
    model.learn(args.iterations, log_interval=max(1, args.iterations // 10), progress_bar=True)
    ref = reference_solution(task, args.risk_aversion)
    scale = task.sigma * np.sqrt(task.horizon)
    table = Table(title="learned vs closed form")
    for col in ("t", "S − S0", "V learned", "V* closed form", "π learned", "π* closed form"):
        table.add_column(col, justify="right")
    for t in (0, 3, 6, 9):
        for x in (-1.0, 0.0, 1.0):
            s = task.s0 + x * scale * np.sqrt(max(t, 1) / task.horizon)
            obs = np.array([[task.observe_time(t), task.observe_price(s)]], dtype=np.float32)
            v = float(model.predict_value(obs)[0])
            a = float(model.predict(obs, deterministic=True)[0][0, 0])
            table.add_row(
                str(t), f"{s - task.s0:+.3f}", f"{v:.4f}", f"{float(ref.value(t, s)):.4f}", f"{a:+.4f}",
                f"{float(ref.action(t, s)):+.4f}",
            )  # fmt: skip
    console.print(table)
    m = model.evaluate()
    console.print(
        f"relative RMSE over states of the price process: value {100 * m['value_rel_rmse']:.2f} %, "
        f"policy {100 * m['policy_rel_rmse']:.2f} %\n"
        f"V(s0): learned {m['value_s0']:.4f}, closed form {m['reference_value_s0']:.4f}; Monte-Carlo CE of the "
        f"learned policy's return {m['ce_return']:.4f} ± {m['ce_return_se']:.4f}\n"
        f"TensorBoard: tensorboard --logdir {args.tensorboard_log}"
    )
    return m


if __name__ == "__main__":
    main()
