"""Run many independent jobs on a local process pool (the default scheduler of sweeps and benchmarks)."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm.auto import tqdm

__all__ = ["run_parallel"]


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


def run_parallel(fn: Callable[..., Any], jobs: list[dict[str, Any]], workers: int, desc: str = "runs") -> list[Any]:
    """``[fn(**job) for job in jobs]`` on ``workers`` processes (1: in this process), each torch
    process on one thread, with a progress bar; results in job order.

    Workers are started with "spawn", not "fork": a forked child of a process whose torch has started
    threads (``torch.compile``'s compile workers, OpenMP pools) can deadlock. ``fn`` must be importable.
    """
    if workers <= 1:
        return [fn(**job) for job in tqdm(jobs, desc=desc)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, initializer=_single_thread, mp_context=context) as pool:
        futures = [pool.submit(fn, **job) for job in jobs]
        return [f.result() for f in tqdm(futures, desc=desc)]
