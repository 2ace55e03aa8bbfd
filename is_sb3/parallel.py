"""Run many independent jobs on a local process pool (the default scheduler of sweeps and benchmarks)."""

from __future__ import annotations

import functools
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from tqdm.auto import tqdm

__all__ = ["run_parallel"]


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_parallel(
    fn: Callable[..., Any], jobs: list[dict[str, Any]], workers: int, desc: str = "runs", threads: int = 1
) -> list[Any]:
    """``[fn(**job) for job in jobs]`` on ``workers`` processes (1: in this process, with the caller's torch
    threads), each worker's torch on ``threads`` threads (default one: the agents' batches are small, so
    processes are the parallelism, and two multi-threaded processes on the same cores slow each other 10-20×),
    with a progress bar; results in job order.

    Workers are started with "spawn", not "fork": a forked child of a process whose torch has started
    threads (``torch.compile``'s compile workers, OpenMP pools) can deadlock. ``fn`` must be importable.
    """
    if workers <= 1:
        return [fn(**job) for job in tqdm(jobs, desc=desc)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, initializer=functools.partial(_set_threads, threads), mp_context=context
    ) as pool:
        futures = [pool.submit(fn, **job) for job in jobs]
        return [f.result() for f in tqdm(futures, desc=desc)]
