"""Exact resume and safe loading of the off-policy agents (RiskSAC, DiscreteRiskSAC).

Interrupted (a stop requested mid-run, as Ctrl-C does), saved, loaded in a process whose random generators
were used in between, and continued: the networks equal the uninterrupted run's bit for bit. Through the CLI:
SIGINT during a training step, exit 130, ``--resume``. Loading runs no code from the file.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from is_sb3 import DiscreteRiskSAC, RiskSAC
from is_sb3.cli import main
from is_sb3.experiments.runs import read_checkpoint
from is_sb3.safe_load import UnsafeModelFileError
from is_sb3.schedules import WarmupConstantCosine

CASES = [
    (RiskSAC, "is_envs/QuadraticPenalty-v0", {"policy_kwargs": {"net_arch": [16, 16]}}),
    (DiscreteRiskSAC, "is_envs/ItemPickup-v0", {"policy_kwargs": {"net_arch": [16]}, "train_freq": 4}),
    (
        DiscreteRiskSAC,
        "is_envs/ItemPickup-v0",
        {"policy_kwargs": {"net_arch": [16]}, "train_freq": 4, "precision": "bf16"},
    ),
]


class StopAt(BaseCallback):
    """Requests a stop at env step ``n`` (it takes effect at the next step boundary)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def _on_step(self) -> bool:
        if self.num_timesteps == self.n:
            self.model.request_stop()  # type: ignore[attr-defined]
        return True


def _make(cls: Any, env_id: str, extra: dict[str, Any]) -> Any:
    # a schedule (the lr depends on the run's progress) and few warm-up steps: the resumed part trains
    return cls("MlpPolicy", env_id, learning_starts=16, buffer_size=500, batch_size=16, seed=3, device="cpu",
               learning_rate=WarmupConstantCosine(1e-3), **extra)  # fmt: skip


def _assert_same_networks(a: Any, b: Any) -> None:
    sa, sb = a.policy.state_dict(), b.policy.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert th.equal(sa[key], sb[key]), key


@pytest.mark.parametrize(("cls", "env_id", "extra"), CASES, ids=["risk_sac", "discrete_risk_sac", "discrete_bf16"])
def test_save_load_learn_equals_the_uninterrupted_run(
    cls: Any, env_id: str, extra: dict[str, Any], tmp_path: Path
) -> None:
    whole = _make(cls, env_id, extra).learn(80)
    part = _make(cls, env_id, extra).learn(80, callback=StopAt(37))
    assert 37 <= part.num_timesteps < 80  # stopped at the next step boundary
    part.save(tmp_path / "m.zip")
    part.save_replay_buffer(tmp_path / "buffer.pkl")
    th.manual_seed(12345), np.random.seed(6789)  # the process goes on using the global generators  # noqa: NPY002
    resumed = cls.load(tmp_path / "m.zip", env=part.get_env(), force_reset=False, device="cpu")
    resumed.load_replay_buffer(tmp_path / "buffer.pkl")
    resumed.learn(80 - resumed.num_timesteps, reset_num_timesteps=False)
    assert resumed.num_timesteps == whole.num_timesteps == 80
    _assert_same_networks(whole, resumed)
    # without the saved generator state, the same steps give another model: the test can fail
    replay = cls.load(tmp_path / "m.zip", env=part.get_env(), force_reset=False, device="cpu")
    replay.resume_state = th.zeros(0, dtype=th.uint8)
    replay.set_random_seed(3)
    replay.load_replay_buffer(tmp_path / "buffer.pkl")
    replay.learn(80 - replay.num_timesteps, reset_num_timesteps=False)
    assert not all(th.equal(p, q) for p, q in zip(whole.policy.parameters(), replay.policy.parameters(), strict=True))


@pytest.mark.parametrize(
    ("algo", "env_id", "hyperparams"),
    [
        ("risk_sac", "is_envs/QuadraticPenalty-v0", ["policy_kwargs={net_arch: [16, 16]}"]),
        ("discrete_risk_sac", "is_envs/ItemPickup-v0", ["policy_kwargs={net_arch: [16]}", "train_freq=4"]),
    ],
)
def test_ctrl_c_then_resume_through_the_cli_equals_the_uninterrupted_run(
    algo: str, env_id: str, hyperparams: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = RiskSAC if algo == "risk_sac" else DiscreteRiskSAC
    tiny = ["learning_starts=16", "buffer_size=500", "batch_size=16", *hyperparams]
    whole, part = tmp_path / "whole", tmp_path / "part"
    common = ["--algo", algo, "--env", env_id, "--timesteps", "72", "--no-progress-bar", "--device", "cpu",
              "--checkpoint-freq", "8", "--tensorboard-log", str(tmp_path / "tb"), "--hyperparams", *tiny]  # fmt: skip
    assert main(["train", *common, "--out", str(whole)]) == 0
    original, calls = cls.train, {"n": 0}

    def interrupted_train(self: Any, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 9:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of a training step
        original(self, *args, **kwargs)

    monkeypatch.setattr(cls, "train", interrupted_train)
    assert main(["train", *common, "--out", str(part)]) == 130
    files = read_checkpoint(part, off_policy=True)  # model, replay buffer and env, checked against checkpoint.json
    monkeypatch.setattr(cls, "train", original)
    stopped = cls.load(files["model.zip"]).num_timesteps
    assert 16 < stopped < 72
    assert main(["train", "--resume", "--out", str(part), "--no-progress-bar", "--device", "cpu"]) == 0
    a, b = cls.load(whole / "model.zip"), cls.load(part / "model.zip")
    assert a.num_timesteps == b.num_timesteps == 72
    _assert_same_networks(a, b)


@pytest.mark.parametrize(("cls", "env_id", "extra"), CASES, ids=["risk_sac", "discrete_risk_sac", "discrete_bf16"])
def test_loading_runs_nothing_from_the_file(
    cls: Any, env_id: str, extra: dict[str, Any], tmp_path: Path, craft_pickle: Any
) -> None:
    model = _make(cls, env_id, extra)
    model.save(tmp_path / "m.zip")
    loaded = cls.load(tmp_path / "m.zip", device="cpu")  # every pickled entry rebuilt from readable fields
    assert loaded.observation_space == model.observation_space and loaded.action_space == model.action_space
    assert type(loaded.policy) is type(model.policy) and loaded.train_freq == model.train_freq
    _assert_same_networks(model, loaded)
    # a crafted entry whose unpickling would create a marker file
    marker = tmp_path / "marker"

    crafted = tmp_path / "crafted.zip"
    craft_pickle(tmp_path / "m.zip", crafted, marker)
    with pytest.raises(UnsafeModelFileError, match="policy_kwargs"):
        cls.load(crafted, device="cpu")
    assert not marker.exists()
