"""Sanity check of DiscreteRiskSAC's learning machinery on CartPole-v1 (dense reward, MlpPolicy).

    python -m benchmarks.cartpole --quick     # 10k env steps per loss, about a minute each on CPU
    python -m benchmarks.cartpole             # 30k env steps per loss

The grid experiment (Fig. 4) needs hundreds of thousands of steps before its sparse rewards show;
CartPole tells within minutes whether the discrete agent (categorical actor, twin critics, Polyak
targets, entropy bonus) learns at all, with each critic loss. Settings: one update per env step,
batch 64, 2×64 MLPs, fixed ent_coef 0.01, no reward scaling or L2 (not Enders' grid options).
Writes ``benchmarks/results/cartpole.{json,md}``: mean return of 10 deterministic episodes every 5k
steps (the uniform-random policy scores about 22, the maximum is 500).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.common import parse_args, run_parallel, write_results

CONFIGS = [("mse", 0.0), ("is", 0.1), ("sp", 0.1), ("emse", 0.1)]


def run(loss: str, alpha: float, steps: int, seed: int = 0) -> dict[str, Any]:
    """Train on CartPole-v1 and evaluate every 5k env steps."""
    import torch as th
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    from is_sb3 import DiscreteRiskSAC

    th.set_num_threads(1)
    curve: list[tuple[int, float]] = []

    class _Eval(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % 5000 == 0:
                env = self.model.get_env()
                assert env is not None
                mean, _ = evaluate_policy(self.model, env, n_eval_episodes=10)
                curve.append((self.num_timesteps, float(mean)))  # type: ignore[arg-type]
            return True

    model = DiscreteRiskSAC(
        "MlpPolicy", "CartPole-v1", risk_aversion=alpha, critic_loss=loss, learning_starts=1000, batch_size=64,
        train_freq=1, ent_coef=0.01, ent_coef_zero_at=None, reward_scaling=False, l2=0.0, seed=seed,
        device="cpu", policy_kwargs={"net_arch": [64, 64]},
    )  # fmt: skip
    t0 = time.perf_counter()
    model.learn(steps, callback=_Eval())
    return {"loss": loss, "alpha": alpha, "steps": steps, "seconds": time.perf_counter() - t0, "curve": curve}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10k env steps per loss")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--workers", type=int, default=1)
    args = parse_args(parser, argv)
    steps = args.steps or (10_000 if args.quick else 30_000)
    runs = run_parallel(run, [{"loss": loss, "alpha": a, "steps": steps} for loss, a in CONFIGS], args.workers)
    checkpoints = [s for s, _ in runs[0]["curve"]]
    lines = [
        f"DiscreteRiskSAC on CartPole-v1, {steps} env steps, seed 0; mean return of 10 deterministic episodes",
        "",
        "| loss | α | " + " | ".join(f"{s // 1000}k" for s in checkpoints) + " | minutes |",
        "|---|---|" + "---|" * (len(checkpoints) + 1),
    ]
    for r in runs:
        returns = " | ".join(f"{v:.0f}" for _, v in r["curve"])
        lines.append(f"| {r['loss']} | {r['alpha']} | {returns} | {r['seconds'] / 60:.1f} |")
    payload = {"steps": steps, "runs": runs}
    write_results("cartpole", "\n".join(lines), payload)
    return payload


if __name__ == "__main__":
    main()
