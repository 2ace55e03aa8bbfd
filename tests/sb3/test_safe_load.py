"""Loading executes nothing from a model file, whatever its name: the safety check reads exactly the bytes
that SB3's loader reads (SB3 opens ``path`` if it is a file, else ``f"{path}.zip"``)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
import torch as th

from is_sb3 import DiscreteRiskSAC, RiskAC, RiskSAC
from is_sb3.experiments.config import ExperimentError, load_model
from is_sb3.safe_load import UnsafeModelFileError, read_model_file


def _off_policy(cls: Any, env_id: str) -> Any:
    return cls("MlpPolicy", env_id, policy_kwargs={"net_arch": [8]}, learning_starts=8, buffer_size=100, batch_size=8,
               seed=0, device="cpu")  # fmt: skip


AGENTS = {
    "risk_ac": lambda: RiskAC(
        "MlpPolicy", "is_envs/QuadraticPenalty-v0", batch_size=64, seed=0, device="cpu", torch_compile=False
    ),
    "risk_sac": lambda: _off_policy(RiskSAC, "is_envs/QuadraticPenalty-v0"),
    "discrete_risk_sac": lambda: _off_policy(DiscreteRiskSAC, "is_envs/ItemPickup-v0"),
}
CLASSES = {"risk_ac": RiskAC, "risk_sac": RiskSAC, "discrete_risk_sac": DiscreteRiskSAC}


def _params(model: Any) -> dict[str, th.Tensor]:
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items()}


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """Per agent: a harmless model file and one of another seed (different weights)."""
    root = tmp_path_factory.mktemp("models")
    out = {}
    for name, make in AGENTS.items():
        a, b = make(), make()
        with th.no_grad():
            for p in b.policy.parameters():
                p.add_(1.0)
        a.save(root / f"{name}_a.zip")
        b.save(root / f"{name}_b.zip")
        out[name] = (root / f"{name}_a.zip", root / f"{name}_b.zip")
    return out


@pytest.mark.parametrize("name", list(AGENTS))
def test_a_crafted_file_behind_a_dotted_name_is_refused(
    name: str, saved: dict[str, tuple[Path, Path]], tmp_path: Path, craft_pickle: Any
) -> None:
    cls, (harmless, _) = CLASSES[name], saved[name]
    marker = tmp_path / "marker"
    (tmp_path / "ckpt.zip").write_bytes(harmless.read_bytes())  # Path("ckpt.best").with_suffix(".zip")
    craft_pickle(harmless, tmp_path / "ckpt.best.zip", marker)  # what SB3 opens for "ckpt.best"
    for path in (tmp_path / "ckpt.best", str(tmp_path / "ckpt.best"), tmp_path / "ckpt.best.zip"):
        with pytest.raises(UnsafeModelFileError, match="policy_kwargs"):
            cls.load(path, device="cpu")
        assert not marker.exists()
    with pytest.raises(ExperimentError, match="policy_kwargs"):  # the CLI's evaluate and --resume load this way
        load_model(name, tmp_path / "ckpt.best", "cpu")
    assert not marker.exists()
    # a crafted file without suffix beside a harmless .zip of the same stem: SB3 opens the former
    craft_pickle(harmless, tmp_path / "plain", marker)
    (tmp_path / "plain.zip").write_bytes(harmless.read_bytes())
    with pytest.raises(UnsafeModelFileError):
        cls.load(tmp_path / "plain", device="cpu")
    assert not marker.exists()
    # an open file object and a symbolic link are read once, like the path itself
    with open(tmp_path / "ckpt.best.zip", "rb") as file, pytest.raises(UnsafeModelFileError):
        cls.load(file, device="cpu")
    os.symlink(tmp_path / "ckpt.best.zip", tmp_path / "link.zip")
    with pytest.raises(UnsafeModelFileError):
        cls.load(tmp_path / "link", device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize("name", list(AGENTS))
def test_the_file_loaded_is_the_file_checked(name: str, saved: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    cls, (a, b) = CLASSES[name], saved[name]
    (tmp_path / "ckpt.zip").write_bytes(a.read_bytes())
    (tmp_path / "ckpt.best.zip").write_bytes(b.read_bytes())
    loaded = cls.load(tmp_path / "ckpt.best", device="cpu")  # ckpt.best.zip, as SB3 names it
    expected = cls.load(b, device="cpu")
    other = cls.load(a, device="cpu")
    got, want, wrong = _params(loaded), _params(expected), _params(other)
    assert all(th.equal(got[k], want[k]) for k in want)
    assert not all(th.equal(got[k], wrong[k]) for k in wrong)


def test_read_model_file_follows_sb3s_rule(tmp_path: Path) -> None:
    (tmp_path / "m").write_bytes(b"plain")
    (tmp_path / "m.zip").write_bytes(b"zipped")
    (tmp_path / "n.v1.zip").write_bytes(b"dotted")
    (tmp_path / "n.zip").write_bytes(b"wrong")
    assert read_model_file(tmp_path / "m").read() == b"plain"
    assert read_model_file(str(tmp_path / "m.zip")).read() == b"zipped"
    assert read_model_file(tmp_path / "n.v1").read() == b"dotted"
    file = io.BytesIO(b"xxhello")
    file.seek(2)
    assert read_model_file(io.BufferedReader(file)).read() == b"hello"  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match="nor"):
        read_model_file(tmp_path / "absent")
    with pytest.raises(TypeError, match="path"):
        read_model_file(3)  # type: ignore[arg-type]
