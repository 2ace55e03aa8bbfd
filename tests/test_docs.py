"""The documentation builds with Sphinx with warnings as errors (a broken reference, a missing page or figure, a
docstring that is not valid reStructuredText fails), and its environment pages follow the env docstrings."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_docs_build_without_a_warning(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "docs"), str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    pages = ["index", "getting_started", "sb3_api", "model_files", "own_task", "losses", "cli", "environments"]
    pages += ["reproducing", "diagnostics", "speed", "api"]
    pages += ["algos/risk_ac", "algos/risk_sac", "algos/discrete_risk_sac", "envs/itempickup", "envs/optionhedging"]
    for page in pages:
        assert (tmp_path / f"{page}.html").is_file(), page
    assert {"hedging_5seeds.png", "item_pickup_precision.png", "item_pickup_fig4_bf16.png", "conditioning.png"} <= {
        p.name for p in (tmp_path / "_images").iterdir()
    }
    assert "checkpoint.json" in (tmp_path / "cli.html").read_text()  # the run-folder section of the CLI page
    grid = (tmp_path / "envs" / "itempickup.html").read_text()
    assert "Observation space" in grid and "Discrete(5)" in grid  # generated from ItemPickupEnv's docstring
