"""Helpers shared by the benchmark scripts: timing, data location, result files."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def data_dir() -> Path:
    """Folder of the released item pick-up episodes (env var IS_RL_DATA overrides ../shared/data)."""
    return Path(os.environ.get("IS_RL_DATA", REPO.parent / "shared" / "data")) / "item_pickup"


def rate(fn: Callable[[], int], min_seconds: float) -> float:
    """Units per second of ``fn`` (which returns the units it did): best of timed blocks after a warm-up."""
    fn()
    best, spent = 0.0, 0.0
    while spent < min_seconds:
        t0 = time.perf_counter()
        units = fn()
        dt = time.perf_counter() - t0
        spent += dt
        best = max(best, units / dt)
    return best


def write_json(name: str, payload: dict[str, Any], out_dir: Path = RESULTS) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_text(json.dumps(payload, indent=2))
    return path
