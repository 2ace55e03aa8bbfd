"""RiskAC through the SB3 API: learning toward closed forms, IS vs EMSE stability, save/load, seeding, logs."""

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th

from is_sb3 import RiskAC
from is_sb3.schedules import WarmupConstantCosine

# eager iterations here; the compiled iteration has its own tests (tests/sb3/test_compiled.py)
FAST = {"batch_size": 256, "eval_freq": 0, "n_eval_paths": 1000, "n_eval_states": 1024, "device": "cpu",
        "torch_compile": False}  # fmt: skip


@pytest.mark.parametrize(
    ("env_id", "alpha", "lr"),
    [("is_envs/BachelierTrading-v0", 1.0, 1e-3), ("is_envs/QuadraticPenalty-v0", 2.0, 1e-4)],
)
def test_short_runs_move_value_and_policy_toward_the_closed_form(env_id: str, alpha: float, lr: float) -> None:
    model = RiskAC("MlpPolicy", env_id, risk_aversion=alpha, learning_rate=lr, seed=0, **FAST)
    before = model.evaluate()
    model.learn(800, log_interval=0)
    after = model.evaluate()
    assert after["value_rmse"] < 0.75 * before["value_rmse"]
    assert after["policy_rmse"] < 0.75 * before["policy_rmse"]


def _large_negative_values(loss: str) -> RiskAC:
    model = RiskAC("MlpPolicy", "is_envs/BachelierTrading-v0", risk_aversion=1.0, critic_loss=loss, seed=0, **FAST)
    with th.no_grad():
        model.policy.critic[-1].bias.fill_(-100.0)  # V ≈ −100 everywhere
    return model


def test_emse_overflows_at_large_negative_values_where_is_stays_finite() -> None:
    c_emse, _ = _large_negative_values("emse").train_step()
    assert not th.isfinite(c_emse)  # e^{−2α·target} with target ≈ −100 overflows float32
    model = _large_negative_values("is")
    c_is, a_is = model.train_step()
    assert th.isfinite(c_is) and th.isfinite(a_is)
    assert all(th.isfinite(p).all() for p in model.policy.parameters())


def test_save_load_round_trip_is_exact(tmp_path: Path) -> None:
    model = RiskAC("MlpPolicy", "is_envs/OptionHedging-v0", risk_aversion=3.0, critic_loss="sp", seed=1, **FAST)
    model.learn(5, log_interval=0)
    model.save(tmp_path / "model.zip")
    loaded = RiskAC.load(tmp_path / "model.zip", device="cpu")
    assert (loaded.risk_aversion, loaded.critic_loss, loaded.batch_size) == (3.0, "sp", 256)
    assert loaded.task == model.task and loaded.num_timesteps == 5
    for (name, p), (_, q) in zip(model.policy.state_dict().items(), loaded.policy.state_dict().items(), strict=True):
        assert th.equal(p, q), name
    for opt in ("actor_optimizer", "critic_optimizer"):
        s1, s2 = getattr(model.policy, opt).state_dict(), getattr(loaded.policy, opt).state_dict()
        assert all(th.equal(s1["state"][k]["exp_avg"], s2["state"][k]["exp_avg"]) for k in s1["state"])
    obs = np.random.default_rng(0).normal(size=(16, 2)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(obs)[0], loaded.predict(obs)[0])
    np.testing.assert_array_equal(model.predict_value(obs), loaded.predict_value(obs))


def test_seeding_makes_training_deterministic() -> None:
    def params(seed: int) -> list[th.Tensor]:
        m = RiskAC("MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=2.0, seed=seed, **FAST)
        m.learn(20, log_interval=0)
        return [p.detach().clone() for p in m.policy.parameters()]

    a, b, c = params(3), params(3), params(4)
    assert all(th.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(th.equal(x, y) for x, y in zip(a, c, strict=True))


def test_tensorboard_receives_training_and_reference_metrics(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model = RiskAC(
        "MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=2.0, seed=0, tensorboard_log=str(tmp_path),
        **{**FAST, "eval_freq": 10},
    )  # fmt: skip
    model.learn(20, log_interval=10, tb_log_name="run")
    (run_dir,) = list(tmp_path.iterdir())
    tags = set(EventAccumulator(str(run_dir)).Reload().Tags()["scalars"])
    expected = {
        "train/critic_loss", "train/actor_loss", "train/learning_rate", "eval/value_s0", "eval/ce_return",
        "eval/ce_return_se", "reference/value_rmse", "reference/value_rel_rmse", "reference/policy_rmse",
        "reference/policy_rel_rmse", "train/critic_ess_fraction", "train/actor_ess_fraction",
    }  # fmt: skip
    assert expected <= tags
    ess = [e.value for e in EventAccumulator(str(run_dir)).Reload().Scalars("train/critic_ess_fraction")]
    assert all(0.0 < v <= 1.0 for v in ess)


def test_predict_follows_sb3_conventions() -> None:
    model = RiskAC("MlpPolicy", "is_envs/OptionHedging-v0", risk_aversion=1.0, seed=0, **FAST)
    action, state = model.predict(np.zeros(2, dtype=np.float32))
    assert action.shape == (1,) and state is None
    assert model.device.type == "cpu"


def test_invalid_arguments_and_environments() -> None:
    env = "is_envs/QuadraticPenalty-v0"
    with pytest.raises(ValueError, match="risk_aversion"):
        RiskAC("MlpPolicy", env, risk_aversion=math.nan)
    with pytest.raises(ValueError, match="critic_loss"):
        RiskAC("MlpPolicy", env, critic_loss="huber")
    with pytest.raises(ValueError, match="batch_size"):
        RiskAC("MlpPolicy", env, batch_size=0)
    with pytest.raises(ValueError, match="max_grad_norm"):
        RiskAC("MlpPolicy", env, max_grad_norm=-1.0)
    with pytest.raises(ValueError, match="differentiable"):
        RiskAC("MlpPolicy", "Pendulum-v1")


def test_paper_schedule() -> None:
    s = WarmupConstantCosine(1e-4, warmup=0.01, constant_until=0.5)
    assert s(1.0) == pytest.approx(1e-6)  # start of the warm-up: factor 0.01
    assert s(0.995) == pytest.approx(1e-6 + 0.99e-4 * 0.5)
    assert s(0.7) == pytest.approx(1e-4) and s(0.5) == pytest.approx(1e-4)
    assert s(0.25) == pytest.approx(0.5e-4) and s(0.0) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="warmup"):
        WarmupConstantCosine(1e-4, warmup=0.6)


def test_networks_work_in_units_of_alpha_and_the_target_critic_is_polyak() -> None:
    model = RiskAC("MlpPolicy", "is_envs/BachelierTrading-v0", risk_aversion=100.0, tau=0.25, seed=0, **FAST)
    policy = model.policy
    assert policy.value_scale == pytest.approx(0.01) and policy.action_scale == pytest.approx(0.01)
    obs = th.randn(7, 2)
    th.testing.assert_close(policy.value(obs), policy.critic(obs).squeeze(-1) * 0.01)
    th.testing.assert_close(policy.action(obs), policy.actor(obs) * 0.01)
    assert RiskAC("MlpPolicy", "is_envs/OptionHedging-v0", risk_aversion=0.3, **FAST).policy.value_scale == 1.0
    old_target = [p.detach().clone() for p in policy.critic_target.parameters()]
    model.train_step()
    for tgt, new, old in zip(policy.critic_target.parameters(), policy.critic.parameters(), old_target, strict=True):
        th.testing.assert_close(tgt, 0.75 * old + 0.25 * new)
    with pytest.raises(ValueError, match="tau"):
        RiskAC("MlpPolicy", "is_envs/BachelierTrading-v0", tau=0.0)


@pytest.mark.skipif(not th.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("loss", ["is", "sp", "emse", "mse"])
def test_cuda_training_has_no_host_syncs_per_iteration(loss: str) -> None:
    model = RiskAC("MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=2.0, critic_loss=loss, seed=0,
                   **{**FAST, "device": "cuda"})  # fmt: skip
    model.train_step()  # first call: allocations, cuBLAS handles
    th.cuda.synchronize()
    th.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            model.train_step()
    finally:
        th.cuda.set_sync_debug_mode("default")
    assert model.policy.critic[0].weight.is_cuda


def test_warns_where_the_exponential_weights_have_infinite_variance() -> None:
    import warnings

    with pytest.warns(RuntimeWarning, match="infinite variance"):
        RiskAC("MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=5.0, seed=0, **FAST)  # k = 0.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RiskAC("MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=4.0, seed=0, **FAST)  # k = 0.4
        RiskAC("MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=5.0, critic_loss="mse", seed=0, **FAST)


def test_evaluation_never_changes_training_and_uses_common_paths() -> None:
    """Evaluations draw from their own generator: eval_freq does not change the trained networks, and the
    CE of the return is measured on the same paths every time (two evaluations in a row agree exactly)."""

    def trained(eval_freq: int) -> RiskAC:
        model = RiskAC("MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=2.0, seed=7,
                       **{**FAST, "eval_freq": eval_freq})  # fmt: skip
        model.learn(40, log_interval=0)
        return model

    quiet, evaluated = trained(0), trained(10)
    assert len(evaluated.eval_history) == 4 and not quiet.eval_history
    for p, q in zip(quiet.policy.state_dict().values(), evaluated.policy.state_dict().values(), strict=True):
        assert th.equal(p, q)
    first, second = evaluated.evaluate(), evaluated.evaluate()
    assert first["ce_return"] == second["ce_return"]
    history = evaluated.eval_history
    assert all(h["cpu_seconds"] >= 0 and h["wall_seconds"] > 0 for h in history)
    assert [h["wall_seconds"] for h in history] == sorted(h["wall_seconds"] for h in history)


def test_resume_after_save_and_load_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    """Interrupted at 37 of 120 iterations, saved, loaded and continued with reset_num_timesteps=False:
    every network, target and Adam tensor equals the uninterrupted run's bit for bit (the simulator's
    generator state is saved; the learning-rate schedule continues from the saved step)."""

    def model() -> RiskAC:
        return RiskAC("MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=2.0, seed=11,
                      **{**FAST, "eval_freq": 25})  # fmt: skip

    from stable_baselines3.common.callbacks import BaseCallback

    class StopAt(BaseCallback):  # an interruption (Ctrl-C) of the 120-iteration run after 37 iterations
        def _on_step(self) -> bool:
            return self.num_timesteps < 37

    whole = model().learn(120, log_interval=0)
    first = model().learn(120, log_interval=0, callback=StopAt())
    assert first.num_timesteps == 37
    first.save(tmp_path / "part.zip")
    resumed = RiskAC.load(tmp_path / "part.zip", device="cpu")
    assert th.equal(resumed.simulator.generator.get_state(), first.simulator.generator.get_state())
    assert not th.equal(resumed.simulator.generator.get_state(), model().simulator.generator.get_state())
    resumed.learn(120 - 37, log_interval=0, reset_num_timesteps=False)
    assert resumed.num_timesteps == whole.num_timesteps == 120
    for (name, p), q in zip(whole.policy.state_dict().items(), resumed.policy.state_dict().values(), strict=True):
        assert th.equal(p, q), name
    for opt in ("actor_optimizer", "critic_optimizer"):
        a, b = getattr(whole.policy, opt).state_dict()["state"], getattr(resumed.policy, opt).state_dict()["state"]
        assert all(th.equal(a[k][f], b[k][f]) for k in a for f in ("exp_avg", "exp_avg_sq", "step"))


def _zip_with_data(source: Path, target: Path, edit: Any) -> None:
    """Copy a model zip, with its JSON ``data`` entry changed by ``edit(dict)``."""
    import json
    import zipfile

    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            payload = src.read(item.filename)
            if item.filename == "data":
                data = json.loads(payload)
                edit(data)
                payload = json.dumps(data).encode()
            dst.writestr(item, payload)


def test_loading_a_model_file_runs_no_code_from_it(tmp_path: Path) -> None:
    """A crafted ':serialized:' entry (a pickle that would create a marker file) is never unpickled: in an
    entry RiskAC rebuilds, the readable fields are used instead; in any other entry the load is refused.
    The honest file loads exactly; allow_pickle=True is the explicit opt-in (and does run the pickle)."""
    import base64
    import pickle

    from is_sb3.safe_load import UnsafeModelFileError

    marker = tmp_path / "pwned"

    class Exploit:  # unpickling creates the marker file and yields 1
        def __reduce__(self) -> tuple[Any, ...]:
            return (eval, (f"open({str(marker)!r}, 'w').close() or 1",))

    bad = base64.b64encode(pickle.dumps(Exploit())).decode()
    model = RiskAC("MlpPolicy", "is_envs/OptionHedging-v0", risk_aversion=3.0, seed=0, **FAST)
    model.learn(3, log_interval=0)
    honest = tmp_path / "honest.zip"
    model.save(honest)

    def poison_task(data: dict) -> None:
        data["task"][":serialized:"] = bad

    def poison_other(data: dict) -> None:
        data["verbose"] = {":type:": "<class 'builtins.object'>", ":serialized:": bad}

    _zip_with_data(honest, tmp_path / "task.zip", poison_task)
    _zip_with_data(honest, tmp_path / "other.zip", poison_other)
    loaded = RiskAC.load(tmp_path / "task.zip", device="cpu")  # rebuilt from the readable fields
    assert not marker.exists() and loaded.task == model.task
    with pytest.raises(UnsafeModelFileError, match=r"'verbose'.*allow_pickle=True"):
        RiskAC.load(tmp_path / "other.zip", device="cpu")
    assert not marker.exists()
    again = RiskAC.load(honest, env="is_envs/OptionHedging-v0", device="cpu")  # an env id, as the constructor takes
    for p, q in zip(model.policy.state_dict().values(), again.policy.state_dict().values(), strict=True):
        assert th.equal(p, q)
    assert again.learning_rate == model.learning_rate and again.observation_space == model.observation_space
    opted_in = RiskAC.load(tmp_path / "other.zip", device="cpu", allow_pickle=True)  # SB3's unpickling, on request
    assert marker.exists() and opted_in.verbose == 1
