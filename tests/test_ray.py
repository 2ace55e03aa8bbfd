"""``is-rl sweep --ray-address`` on a real (local) Ray cluster: ``ray start --head`` on 127.0.0.1, two tiny
runs, the same rows as the local process pool, the cluster stopped afterwards."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from is_sb3.cli import main

pytest.importorskip("ray", reason="the Ray extra (pip install 'is-rl[ray]'; the README's test command installs it)")

TINY = ["batch_size=64", "n_eval_states=32", "n_eval_paths=200", "eval_freq=0", "torch_compile=false"]
SWEEP = ["sweep", "--envs", "is_envs/QuadraticPenalty-v0", "--losses", "is", "sp", "--risk-aversions", "2",
         "--timesteps", "5", "--hyperparams", *TINY]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def ray_cluster() -> Iterator[str]:
    """A one-node Ray cluster (2 CPUs) on 127.0.0.1 with its own temp folder; yields its address."""
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    start = [str(ray_bin), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus",
             "2", "--include-dashboard", "false", "--temp-dir", temp_dir, "--disable-usage-stats"]  # fmt: skip
    subprocess.run(start, check=True, env=env, capture_output=True, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray_bin), "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _rows(out: Path) -> list[dict[str, object]]:
    rows = json.loads((out / "sweep.json").read_text())
    for row in rows:
        row.pop("run_dir")  # the only field that names the folder
    return sorted(rows, key=lambda r: str(r["critic_loss"]))


def test_a_sweep_on_a_ray_cluster_equals_the_local_pool(ray_cluster: str, tmp_path: Path) -> None:
    assert main([*SWEEP, "--workers", "1", "--out", str(tmp_path / "local")]) == 0
    assert main([*SWEEP, "--ray-address", ray_cluster, "--out", str(tmp_path / "ray")]) == 0
    local, on_ray = _rows(tmp_path / "local"), _rows(tmp_path / "ray")
    assert [r["critic_loss"] for r in on_ray] == ["is", "sp"] and all(r["timesteps"] == 5 for r in on_ray)
    assert on_ray == local  # same seeds, same maths, one thread each: the same numbers
    assert (
        tmp_path / "ray" / "QuadraticPenalty-v0_is_a2.0_s0" / "model.zip"
    ).is_file()  # the run folders, on the driver


def test_an_unreachable_ray_address_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [*SWEEP, "--ray-address", f"127.0.0.1:{_free_port()}", "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    assert "cannot connect to the Ray cluster" in capsys.readouterr().err
