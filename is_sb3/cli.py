"""``is-rl``: train, evaluate, benchmark and sweep from the terminal (RL-Zoo style).

    is-rl train --env is_envs/QuadraticPenalty-v0 --loss is --risk-aversion 2 --timesteps 20000
    is-rl train --resume --out models/risk_ac/QuadraticPenalty-v0_1     # after Ctrl-C
    is-rl evaluate models/risk_ac/QuadraticPenalty-v0_1/model.zip --plots plots/
    is-rl evaluate greedy --env is_envs/ItemPickup-v0
    is-rl sweep --envs is_envs/QuadraticPenalty-v0 --losses is sp --seeds 0 1 --timesteps 2000 --workers 2
    is-rl bench simulator --quick
    is-rl quickstart                       # the README's main job

Hyperparameters come from the algorithm's YAML file (``is_sb3/configs/<algo>.yml``, or ``--config``),
then ``--hyperparams key=value`` overrides, then the explicit flags (``--loss``, ``--risk-aversion``,
``--timesteps``, ``--seed``) — later wins. Bad input gives a one-line error and exit status 2.
"""

# This file is only the argparse layer: the work is in is_sb3.experiments (config, runs, evaluation, sweep)
# and is_sb3.plotting.

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence

from is_sb3.common import positive_int
from is_sb3.experiments import (
    ALGOS,
    TIMESTEP,
    ExperimentError,
    check_device,
    evaluate_model,
    run_sweep,
    train_run,
)
from is_sb3.experiments.runs import RunInterrupted

__all__ = ["BENCHMARKS", "build_parser", "main"]

#: the benchmark scripts of a source checkout (benchmarks/<name>.py)
BENCHMARKS = (
    "simulator", "item_pickup_env", "analytic", "hedging", "item_pickup", "item_pickup_precision",
    "item_pickup_greedy_gap", "item_pickup_critic_time", "conditioning", "critic_tails", "cartpole", "hedging_costs",
    "hedging_alpha_range",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="is-rl", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def threads(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--num-threads", type=positive_int, default=1, help="torch threads (per run in a sweep; default 1: the "
            "agents' batches are small, and processes sharing cores with several threads each slow each other 10-20x)"
        )  # fmt: skip

    def common(p: argparse.ArgumentParser) -> None:
        threads(p)
        p.add_argument("--algo", default=None, help=f"algorithm ({', '.join(ALGOS)}; default risk_ac)")
        p.add_argument("--config", default=None, help="YAML hyperparameter file (default: the shipped one)")
        p.add_argument("--hyperparams", nargs="*", default=[], metavar="KEY=VALUE", help="override hyperparameters")
        p.add_argument("--device", default="auto", help="torch device: auto (CUDA if available), cpu, cuda, cuda:1")

    t = sub.add_parser("train", help="train one model")
    common(t)
    t.add_argument("--env", default=None, help="env id, e.g. is_envs/QuadraticPenalty-v0 (not with --resume)")
    t.add_argument("--loss", default=None, help="critic loss: is, emse, sp, mse")
    t.add_argument("--risk-aversion", type=float, default=None, help="α (default: the env's configured value)")
    t.add_argument(
        "--timesteps",
        type=positive_int,
        default=None,
        help="training length (overrides n_timesteps); " + TIMESTEP,
    )
    t.add_argument("--seed", type=int, default=None, help="seed of torch, numpy and the simulator/env (default 0)")
    t.add_argument(
        "--out", default=None, help="run folder (default: a new models/<algo>/<Env>_<N>, its TensorBoard run the same "
        "name under --tensorboard-log); a folder holding a run is refused without --resume or --overwrite"
    )  # fmt: skip
    t.add_argument("--overwrite", action="store_true", help="replace the run in --out (files and TensorBoard run)")
    t.add_argument("--tensorboard-log", default="runs", help="TensorBoard folder (tensorboard --logdir runs)")
    t.add_argument(
        "--checkpoint-freq", type=positive_int, default=10_000, help="timesteps between checkpoints (checkpoint.zip)"
    )
    t.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its checkpoint, with its own hyperparams.yml and total length "
        "(--timesteps extends it); Ctrl-C or SIGTERM stops at a step boundary and saves a checkpoint",
    )
    t.add_argument("--no-progress-bar", action="store_true", help="no progress bar")

    e = sub.add_parser("evaluate", help="evaluate a saved model (or 'greedy' on the grid)")
    e.add_argument("model", help="path to model.zip, or 'greedy'")
    e.add_argument("--algo", default=None, help="algorithm of the file (default: from its run's hyperparams.yml)")
    e.add_argument("--env", default=None, help="for 'greedy': is_envs/ItemPickup-v0")
    e.add_argument(
        "--episodes",
        type=positive_int,
        default=100,
        help="episodes: per distribution with --episodes-dir generated (grid), or of the env (SAC agents)",
    )
    e.add_argument(
        "--episodes-dir",
        default=None,
        help="grid: folder of the twelve <name>.npz tables (default: the released ones shipped with is-rl), "
        "or 'generated' for fresh episodes",
    )
    e.add_argument("--plots", default=None, help="folder for PNG plots")
    e.add_argument("--seed", type=int, default=0, help="seed of the evaluation episodes (SAC agents)")
    e.add_argument("--device", default="auto", help="torch device: auto, cpu, cuda")
    threads(e)

    s = sub.add_parser("sweep", help="losses × risk aversions × seeds × envs, in parallel")
    common(s)
    s.add_argument("--envs", nargs="+", required=True, help="env ids")
    s.add_argument("--losses", nargs="+", default=["is"], help="critic losses: is, emse, sp, mse")
    s.add_argument(
        "--risk-aversions", nargs="+", type=float, default=None, help="α values (default: each env's configured α)"
    )
    s.add_argument("--seeds", nargs="+", type=int, default=[0], help="seeds")
    s.add_argument(
        "--timesteps",
        type=positive_int,
        default=None,
        help="training length of each run; " + TIMESTEP,
    )
    s.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1, help="local processes")
    s.add_argument(
        "--ray-address",
        default=None,
        help="run on the Ray cluster at this address (HEAD_IP:6379, 'auto', ray://...); needs Ray "
        "(pip install -e '.[ray]' in the repository)",
    )
    s.add_argument(
        "--out", default=None, help="sweep folder (default: a new sweeps/sweep_<N>; one run folder per job, "
        "sweep.json/md/png)"
    )  # fmt: skip

    q = sub.add_parser(
        "quickstart",
        help="the main job: a short RiskAC run printed against the closed form "
        "(options of python -m is_sb3.quickstart, e.g. --iterations 20000, pass through)",
    )

    threads(q)
    b = sub.add_parser("bench", help="run a benchmark script (from a source checkout); its options pass through")
    b.add_argument("name", help=f"one of: {', '.join(BENCHMARKS)}")
    threads(b)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``is-rl`` console script; returns the exit status."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("quickstart", "bench"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        import torch

        torch.set_num_threads(args.num_threads)
        if getattr(args, "device", None):
            check_device(args.device)
        if args.command == "train":
            result = train_run(
                args.algo, args.env, args.loss, args.risk_aversion, args.timesteps, args.seed, args.config,
                args.hyperparams, args.out, args.tensorboard_log, args.device, args.resume, args.checkpoint_freq,
                progress_bar=not args.no_progress_bar, overwrite=args.overwrite,
            )  # fmt: skip
            print(json.dumps(result, indent=2, default=str))
        elif args.command == "evaluate":
            metrics = evaluate_model(
                args.model, args.algo, args.env, args.episodes, args.episodes_dir, args.plots, args.seed, args.device
            )
            print(json.dumps(metrics, indent=2))
        elif args.command == "sweep":
            rows = run_sweep(
                args.envs, args.losses, args.risk_aversions, args.seeds, args.algo or "risk_ac", args.timesteps,
                args.config,
                args.hyperparams, args.device, args.out, args.workers, args.ray_address, args.num_threads,
            )  # fmt: skip
            print(json.dumps(rows, indent=2, default=str))
        elif args.command == "quickstart":
            from is_sb3 import quickstart

            quickstart.main(extra)
        elif args.command == "bench":
            if os.getcwd() not in sys.path:
                sys.path.insert(0, os.getcwd())  # console scripts do not put the working folder on the path
            if args.name not in BENCHMARKS:
                raise ExperimentError(f"no benchmark {args.name!r}; available: {', '.join(BENCHMARKS)}")
            try:
                module = importlib.import_module(f"benchmarks.{args.name}")
            except ModuleNotFoundError:
                raise ExperimentError(
                    f"no benchmark {args.name!r} (benchmarks run from the repository root: {', '.join(BENCHMARKS)})"
                ) from None
            module.main(extra)
    except ExperimentError as err:
        print(f"is-rl: error: {err}", file=sys.stderr)
        return 2
    except RunInterrupted as err:  # SIGINT or SIGTERM during training, after its checkpoint was written
        print(f"is-rl: {err}", file=sys.stderr)
        return 128 + err.signum
    except KeyboardInterrupt:
        print("is-rl: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
