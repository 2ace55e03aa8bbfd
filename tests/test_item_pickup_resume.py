"""Runs of benchmarks/item_pickup.py continued across invocations: an invocation killed after a checkpoint, resumed
with ``--resume``, gives the run of an uninterrupted invocation (validation curves, training trace, test table)."""

from pathlib import Path
from typing import Any

import pytest

import is_envs.grid
from benchmarks import item_pickup
from is_sb3 import DiscreteRiskSAC, resume

SETTINGS: dict[str, Any] = {"agent": "is", "gamma": 0.99, "seed": 0, "steps": 2600, "device": "cpu", "quick": True,
                            "batch_size": 16, "eval_freq": 1300, "precision": "float32"}  # fmt: skip


class Killed(Exception):
    pass


def test_a_killed_run_resumed_from_its_checkpoint_equals_the_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the final model's weights, bit for bit, in place of its test table (12 distributions: slow, and less strict)
    monkeypatch.setattr(
        is_envs.grid, "shift_table", lambda model, *_, **__: [p.tolist() for p in model.policy.parameters()]
    )
    whole = item_pickup.train_grid(**SETTINGS)
    ckpt = tmp_path / "ckpt"

    class KilledAfter2100(resume.BoundaryCallback):  # the invocation dies between two checkpoints
        def _on_rollout_start(self) -> None:
            super()._on_rollout_start()
            if self.model.num_timesteps >= 2100:
                raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(resume, "BoundaryCallback", KilledAfter2100)
        with pytest.raises(Killed):
            item_pickup.train_grid(**SETTINGS, checkpoint_dir=str(ckpt), checkpoint_freq=1000)
    assert (ckpt / "checkpoint.json").is_file()  # the one at env step 2000
    with pytest.raises(ValueError, match="--resume"):  # never restarted over a checkpoint by mistake
        item_pickup.train_grid(**SETTINGS, checkpoint_dir=str(ckpt))
    with pytest.raises(ValueError, match="another configuration"):
        item_pickup.train_grid(**{**SETTINGS, "gamma": 1.0}, checkpoint_dir=str(ckpt), resume=True)
    models = tmp_path / "models"
    resumed = item_pickup.train_grid(**SETTINGS, checkpoint_dir=str(ckpt), resume=True, models_dir=str(models))
    assert resumed["steps"] == whole["steps"] == 2600
    for key in ("validation", "validation_training", "trace", "shift"):
        assert resumed[key] == whole[key], key
    assert [(s["from"], s["to"]) for s in resumed["segments"]] == [(0, 2000), (2000, 2600)]
    assert [p.name for p in ckpt.iterdir()] == ["finished.json"]  # finished: the checkpoint is removed
    kept = DiscreteRiskSAC.load(models / "final.zip")  # the final model is kept, as trained
    assert [p.tolist() for p in kept.policy.parameters()] == whole["shift"]
    assert not (models / "best.zip").exists()  # κ is never switched off in 2600 steps: no model selected
    with pytest.raises(ValueError, match="finished already"):  # and --resume does not run it again
        item_pickup.train_grid(**SETTINGS, checkpoint_dir=str(ckpt), resume=True)


def test_a_run_with_a_clock_observes_it_and_resumes_only_as_such(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    test_table = is_envs.grid.evaluate  # two test episodes in place of the twelve-distribution table (slow)
    monkeypatch.setattr(is_envs.grid, "shift_table", lambda model, *_, **__: test_table(model, n_episodes=2).tolist())
    ckpt, models = tmp_path / "ckpt", tmp_path / "models"
    item_pickup.train_grid(**SETTINGS, clock=True, stop_at=1300, checkpoint_dir=str(ckpt))
    with pytest.raises(ValueError, match="another configuration"):  # a clockless run never continues it
        item_pickup.train_grid(**SETTINGS, checkpoint_dir=str(ckpt), resume=True)
    run = item_pickup.train_grid(**SETTINGS, clock=True, checkpoint_dir=str(ckpt), resume=True, models_dir=str(models))
    assert run["clock"] is True and item_pickup.agent_label(run) == "is α=0.1, clock"
    assert DiscreteRiskSAC.load(models / "final.zip").observation_space.shape == (4, 5, 5)
    assert run["validation"][-1][0] == 2600 and len(run["shift"]) == 2  # validated and tested with its clock
