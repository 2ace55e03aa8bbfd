"""Run folders and checkpoints lose nothing: numbered folders that never overwrite, checkpoint sets that are whole or
absent (kill -9 at random moments while they are written), atomic saves, SIGTERM like Ctrl-C, and one-line refusals
for a run that cannot be resumed as asked."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch as th
import yaml

from is_sb3 import DiscreteRiskSAC, RiskAC, RiskSAC
from is_sb3.cli import main
from is_sb3.experiments import ExperimentError
from is_sb3.experiments.runs import new_run_dir, read_checkpoint, write_checkpoint

ENV = "is_envs/QuadraticPenalty-v0"
TINY = ["batch_size=16", "n_eval_states=32", "n_eval_paths=100", "eval_freq=0", "torch_compile=false"]


def _train(tmp_path: Path, *extra: str, timesteps: int = 3) -> int:
    argv = ["train", "--env", ENV, "--timesteps", str(timesteps), "--no-progress-bar",
            "--tensorboard-log", str(tmp_path / "tb"), "--hyperparams", *TINY, *extra]  # fmt: skip
    return main(argv)


def test_default_run_folders_are_numbered_and_share_the_tensorboard_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _train(tmp_path) == 0
    assert _train(tmp_path, "--seed", "1") == 0
    runs = sorted(p.name for p in (tmp_path / "models" / "risk_ac").iterdir())
    assert runs == ["QuadraticPenalty-v0_1", "QuadraticPenalty-v0_2"]
    assert sorted(p.name for p in (tmp_path / "tb" / "risk_ac").iterdir()) == runs
    assert yaml.safe_load((tmp_path / "models/risk_ac/QuadraticPenalty-v0_2/hyperparams.yml").read_text())["seed"] == 1
    # a number taken by a TensorBoard run alone is skipped, so the two names stay equal
    (tmp_path / "tb" / "risk_ac" / "QuadraticPenalty-v0_3").mkdir()
    assert new_run_dir(tmp_path / "models", "risk_ac", ENV, tmp_path / "tb").name == "QuadraticPenalty-v0_4"


def test_a_folder_holding_a_run_is_refused_without_resume_or_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert _train(tmp_path, "--out", str(run)) == 0
    first = (run / "model.zip").read_bytes()
    capsys.readouterr()
    assert _train(tmp_path, "--out", str(run), "--seed", "5") == 2
    err = capsys.readouterr().err
    assert "holds a run" in err and "--overwrite" in err and err.count("\n") == 1
    assert (run / "model.zip").read_bytes() == first  # untouched
    assert _train(tmp_path, "--out", str(run), "--seed", "5", "--overwrite") == 0
    assert yaml.safe_load((run / "hyperparams.yml").read_text())["seed"] == 5
    assert (run / "model.zip").read_bytes() != first
    (tmp_path / "file").write_text("x")
    assert _train(tmp_path, "--out", str(tmp_path / "file")) == 2
    assert "is a file" in capsys.readouterr().err


def test_a_folder_in_use_by_a_live_process_is_refused_and_a_stale_lock_is_taken(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert _train(tmp_path, "--out", str(run)) == 0
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    (run / ".lock").write_text(str(os.getppid()))  # a live process (pytest's parent) trains here
    assert _train(tmp_path, "--out", str(run), "--overwrite") == 2
    assert "in use by process" in capsys.readouterr().err
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before and (tmp_path / "tb" / "risk_ac" / "run").is_dir()  # --overwrite removed nothing
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)  # a process id that no longer runs
    (run / ".lock").write_text(str(pid))
    assert _train(tmp_path, "--out", str(run), "--overwrite") == 0
    assert not (run / ".lock").exists()


def test_resume_refuses_conflicting_flags_a_shorter_total_and_bad_run_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert _train(tmp_path, "--out", str(run), timesteps=4) == 0
    capsys.readouterr()
    cases = [
        (["--algo", "risk_sac"], "--algo risk_sac differs"),
        (["--env", "is_envs/OptionHedging-v0"], "--env is_envs/OptionHedging-v0 differs"),
        (["--seed", "3"], "--seed 3 differs"),
        (["--timesteps", "2"], "below the 4 timesteps already done"),
    ]
    for extra, message in cases:
        assert main(["train", "--resume", "--out", str(run), "--no-progress-bar", *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.startswith("is-rl: error:") and err.count("\n") == 1, err
    assert main(["train", "--resume", "--out", str(run), "--no-progress-bar", "--seed", "0", "--algo", "risk_ac"]) == 0
    capsys.readouterr()
    hyper = run / "hyperparams.yml"
    good = hyper.read_text()
    for text, message in [
        ("algo: [unclosed", "not a readable hyperparameter file"),
        ("!!python/object/apply:os.system ['touch marker']", "not a readable hyperparameter file"),
        ("env: x\nseed: 0\n", "lacks algo"),
        ("- a list", "must hold a mapping"),
    ]:
        hyper.write_text(text)
        assert main(["train", "--resume", "--out", str(run), "--no-progress-bar"]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "marker").exists() and not Path("marker").exists()
    hyper.write_text(good)


def _model(name: str) -> Any:
    if name == "risk_ac":
        return RiskAC("MlpPolicy", ENV, batch_size=16, seed=0, device="cpu", torch_compile=False)
    if name == "risk_sac":
        model = RiskSAC("MlpPolicy", ENV, policy_kwargs={"net_arch": [8]}, learning_starts=5, buffer_size=50,
                        batch_size=4, seed=0, device="cpu")  # fmt: skip
    else:
        model = DiscreteRiskSAC("MlpPolicy", "is_envs/ItemPickup-v0", policy_kwargs={"net_arch": [8]},
                                learning_starts=5, buffer_size=50, batch_size=4, seed=0, device="cpu")  # fmt: skip
    model.learn(12)
    return model


@pytest.mark.parametrize("name", ["risk_ac", "risk_sac", "discrete_risk_sac"])
def test_a_checkpoint_killed_at_random_moments_is_whole_or_the_previous_one(name: str, tmp_path: Path) -> None:
    """A child process writes checkpoints in a loop (the k-th with k timesteps and, off-policy, buffer position
    k mod 50) and is killed with SIGKILL at a random moment, 12 times: the published set always verifies and is
    one checkpoint, never parts of two."""
    model = _model(name)
    off_policy = name != "risk_ac"
    cls = type(model)
    rng = random.Random(0)
    model.num_timesteps = 1
    write_checkpoint(tmp_path, model)
    for attempt in range(12):
        pid = os.fork()
        if pid == 0:  # the child: checkpoints in a loop, until killed
            try:
                k = 2 + 1000 * attempt
                while True:
                    model.num_timesteps = k
                    if off_policy:
                        model.replay_buffer.pos = k % 50
                    write_checkpoint(tmp_path, model)
                    k += 1
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        files = read_checkpoint(tmp_path, off_policy)  # raises on an incomplete or mismatched set
        manifest = json.loads((tmp_path / "checkpoint.json").read_text())
        loaded = cls.load(files["model.zip"], device="cpu")
        assert loaded.num_timesteps == manifest["timesteps"]
        if off_policy:
            loaded.load_replay_buffer(files["replay_buffer.pkl"])
            assert loaded.replay_buffer.pos == manifest["timesteps"] % 50
        assert len(list(tmp_path.glob("checkpoint-*"))) <= 2  # the published set, and at most one being written
    write_checkpoint(tmp_path, model)  # the next checkpoint clears what the killed writers left
    assert len(list(tmp_path.glob("checkpoint-*"))) == 1 and not list(tmp_path.glob(".checkpoint-*"))
    # damaged sets are refused, naming what is wrong
    folder = tmp_path / json.loads((tmp_path / "checkpoint.json").read_text())["folder"]
    data = bytearray((folder / "model.zip").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "model.zip").write_bytes(bytes(data))
    with pytest.raises(ExperimentError, match=r"model\.zip does not match"):
        read_checkpoint(tmp_path, off_policy)
    (folder / "model.zip").unlink()
    with pytest.raises(ExperimentError, match=r"model\.zip is missing"):
        read_checkpoint(tmp_path, off_policy)


def test_an_old_off_policy_checkpoint_without_its_buffer_is_refused(tmp_path: Path) -> None:
    model = _model("risk_sac")
    model.save(tmp_path / "checkpoint.zip")  # an older is-rl's layout, the buffer never written
    with pytest.raises(ExperimentError, match=r"lacks replay_buffer\.pkl, env\.pkl"):
        read_checkpoint(tmp_path, off_policy=True)
    assert read_checkpoint(tmp_path, off_policy=False) == {"model.zip": tmp_path / "checkpoint.zip"}


def test_sigterm_stops_like_ctrl_c_and_a_second_signal_cannot_cut_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import is_sb3.experiments.runs as runs

    original_step, original_write = RiskAC.train_step, runs.write_checkpoint
    calls = {"n": 0}

    def step(self: RiskAC) -> tuple[th.Tensor, th.Tensor]:
        calls["n"] += 1
        if calls["n"] == 5:
            signal.raise_signal(signal.SIGTERM)
        return original_step(self)

    def write(run_dir: Path, model: Any) -> Path:
        signal.raise_signal(signal.SIGINT)  # a second signal while the final checkpoint is written
        return original_write(run_dir, model)

    monkeypatch.setattr(RiskAC, "train_step", step)
    monkeypatch.setattr(runs, "write_checkpoint", write)
    run = tmp_path / "run"
    assert _train(tmp_path, "--out", str(run), timesteps=20) == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    resume = f"is-rl train --resume --out {run}"
    assert f"SIGTERM: stopped at timestep 5, checkpoint saved in {run}; resume with: {resume}" in err
    monkeypatch.setattr(RiskAC, "train_step", original_step)
    monkeypatch.setattr(runs, "write_checkpoint", original_write)
    assert RiskAC.load(read_checkpoint(run, off_policy=False)["model.zip"]).num_timesteps == 5
    assert main(["train", "--resume", "--out", str(run), "--no-progress-bar"]) == 0
    assert json.loads((run / "result.json").read_text())["timesteps"] == 20


@pytest.mark.parametrize("name", ["risk_ac", "risk_sac", "discrete_risk_sac"])
def test_a_failed_save_leaves_the_previous_file_whole(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``save`` over a good file fails half-way (a full disk): the good file is untouched and nothing is left over."""
    import zipfile

    model = _model(name)
    path = tmp_path / "m.zip"
    model.save(path)
    good = path.read_bytes()
    original = zipfile.ZipFile.writestr
    calls = {"n": 0}

    def full_disk(self: zipfile.ZipFile, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        original(self, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "writestr", full_disk)
    with pytest.raises(OSError, match="No space left"):
        model.save(path)
    monkeypatch.setattr(zipfile.ZipFile, "writestr", original)
    assert path.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["m.zip"]
    assert type(model).load(path, device="cpu").num_timesteps == model.num_timesteps


def test_each_sweep_gets_a_new_folder_and_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["sweep", "--envs", ENV, "--timesteps", "2", "--workers", "1", "--hyperparams", *TINY]
    assert main(argv) == 0 and main(argv) == 0
    assert sorted(p.name for p in (tmp_path / "sweeps").iterdir()) == ["sweep_1", "sweep_2"]
    assert f"sweep folder {tmp_path / 'sweeps' / 'sweep_2'}" in capsys.readouterr().err
    assert main([*argv, "--out", "sweeps/sweep_1"]) == 2
    assert "holds a sweep" in capsys.readouterr().err
