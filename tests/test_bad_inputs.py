"""The table of bad inputs (issue 15): each one is refused with a clear error naming the parameter.

API cases raise ``ValueError``; command-line cases print one ``is-rl: error`` / usage line and exit 2.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th

import is_envs  # noqa: F401
from is_sb3 import DiscreteRiskSAC, RiskAC, RiskSAC
from is_sb3.cli import main

AC = {"eval_freq": 0, "torch_compile": False, "device": "cpu", "batch_size": 16}
QP = "is_envs/QuadraticPenalty-v0"


def _ac(env: Any = QP, **kwargs: Any) -> RiskAC:
    return RiskAC("MlpPolicy", env, **{**AC, **kwargs})


def _grid(**kwargs: Any) -> object:
    return gym.make("is_envs/ItemPickup-v0", **kwargs)


def _finance_step(action: Any) -> Callable[[], object]:
    def run() -> object:
        env = gym.make("is_envs/OptionHedging-v0").unwrapped
        env.reset(seed=0)
        return env.step(action)

    return run


API_CASES: list[tuple[str, Callable[[], object], str]] = [
    ("NaN action", _finance_step(np.array([np.nan])), "finite position"),
    ("infinite action", _finance_step(np.inf), "finite position"),
    ("action of shape (3,)", _finance_step(np.zeros(3)), r"one position \(shape"),
    ("action of shape (1, 1)", _finance_step(np.zeros((1, 1))), r"one position \(shape"),
    ("learn(-5), RiskAC", lambda: _ac().learn(-5), "total_timesteps"),
    ("learn(0), RiskAC", lambda: _ac().learn(0), "total_timesteps"),
    ("learn(2.5), RiskAC", lambda: _ac().learn(2.5), "total_timesteps"),  # type: ignore[arg-type]
    ("learn(0), RiskSAC", lambda: RiskSAC("MlpPolicy", "Pendulum-v1", device="cpu").learn(0), "total_timesteps"),
    ("learn(-1), DiscreteRiskSAC",
     lambda: _discrete(policy="CnnPolicy", buffer_size=100).learn(-1),
     "total_timesteps"),
    ("quadratic task at k = ασ² = 1", lambda: _ac(risk_aversion=10.0),
     r"risk_aversion must be < 1/σ² = 10"),
    ("quadratic task at k = 3", lambda: _ac(risk_aversion=30.0),
     "certainty equivalent of every policy is −∞"),
    ("predict_value of 6 numbers",
     lambda: _ac().predict_value(np.zeros(6)), r"shape \(2,\) or \(n, 2\)"),
    ("predict_value of (2, 3)",
     lambda: _ac().predict_value(np.zeros((2, 3))), r"shape \(2,\)"),
    ("unknown released episodes", lambda: _grid(episodes="gradient13"), "distribution name"),
    ("episodes file that does not exist", lambda: _grid(episodes="/missing.npz"), "npz file"),
    ("ShiftTableCallback on a missing folder",
     lambda: __import__("is_sb3.callbacks", fromlist=["x"]).ShiftTableCallback("/missing"), "not a folder"),
    ("sigma = 1e200", lambda: gym.make("is_envs/OptionHedging-v0", sigma=1e200), r"sigma must be in \(0, 1e\+06\]"),
    ("mu = 1e308", lambda: gym.make("is_envs/BachelierTrading-v0", mu=1e308), "mu must be in"),
    ("s0 = 1e300", lambda: gym.make("is_envs/QuadraticPenalty-v0", s0=1e300), "s0 must be in"),
    ("RiskAC on a VecEnv of 4",
     lambda: _ac(env=__import__("stable_baselines3.common.env_util", fromlist=["x"]).make_vec_env(QP, n_envs=4)),
     "RiskAC trains on its task's simulator"),
    ("strike = -1e300", lambda: gym.make("is_envs/OptionHedging-v0", strike=-1e300), "strike must be in"),
    ("reset option typo", lambda: _grid().reset(options={"episod": 1}), "reset options must be among"),
    ("reset episode 1.5", lambda: _grid(episodes="gradient1").reset(options={"episode": 1.5}), "integer index"),
    ("reset episode True", lambda: _grid(episodes="gradient1").reset(options={"episode": True}), "integer index"),
    ("grid action 2.5", lambda: (e := _grid()).reset() and e.step(2.5), "action must be an integer in 0..4"),
    ("grid action [1, 2]", lambda: (e := _grid()).reset() and e.step(np.array([1, 2])), "action must be an integer"),
    ("grid action inf", lambda: (e := _grid()).reset() and e.step(np.inf), "action must be an integer"),
    ("grid action 5", lambda: (e := _grid()).reset() and e.step(np.array(5)), "action must be an integer"),
    ("Enders' κ step negative",
     lambda: DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", ent_coef_zero_at_step=-1), "ent_coef_zero_at_step"),
    # issue 22: every hyperparameter of every agent, at construction, naming the parameter and its range
    *[(f"RiskSAC {k}={v!r}", (lambda k=k, v=v: _sac(**{k: v})), m) for k, v, m in [
        ("gamma", 1.5, r"gamma must be a finite number in \(0, 1\]"), ("gamma", 0.0, "gamma"),
        ("tau", 0.0, r"tau must be a finite number in \(0, 1\]"), ("tau", 2.0, "tau"),
        ("ent_coef", -0.5, r"ent_coef must be a finite number in \[0, inf\]"),
        ("ent_coef", "auto_-1", "initial value x > 0"), ("ent_coef", "sometimes", "'auto'"),
        ("gradient_steps", 0, "gradient_steps"), ("gradient_steps", -3, "gradient_steps"),
        ("buffer_size", 0, "buffer_size must be an integer >= 1"),
        ("buffer_size", 10, r"buffer_size \(10\) must be >="),
        ("batch_size", 0, "batch_size must be an integer >= 1"), ("batch_size", 2.5, "batch_size"),
        ("train_freq", 0, "train_freq"), ("train_freq", (4, "hour"), "train_freq"),
        ("target_update_interval", 0, "target_update_interval"),
        ("learning_rate", 0.0, "learning_rate"), ("learning_rate", float("nan"), "learning_rate"),
        ("learning_rate", -1e-3, "learning_rate"), ("learning_starts", -1, "learning_starts"),
        ("risk_aversion", True, "risk_aversion must be a finite real number"),
        ("risk_aversion", 1e200, r"risk_aversion must be in \[-1e\+06, 1e\+06\]"),
        ("policy_kwargs", {"net_arch": [0]}, "net_arch layer size"),
        ("policy_kwargs", {"net_arch": [-4]}, "net_arch layer size"),
        ("policy_kwargs", {"net_arch": "64"}, "net_arch must be a list"),
        ("policy_kwargs", {"net_arch": {"pi": [8], "critic": [8]}}, "net_arch keys"),
        ("device", "tpu", "device must be 'auto'"), ("device", "mps", "MPS is not available"),
        ("device", "cuda:7", "cuda:7"),
    ]],
    *[(f"DiscreteRiskSAC {k}={v!r}", (lambda k=k, v=v: _discrete(**{k: v})), m) for k, v, m in [
        ("gamma", 2.0, "gamma"), ("tau", -1.0, "tau"), ("buffer_size", -5, "buffer_size"),
        ("reward_scaling", "no", "reward_scaling must be True or False"), ("batch_size", 0, "batch_size"),
        ("policy_kwargs", {"net_arch": [0]}, "net_arch"), ("device", "cuda:7", "cuda:7"),
    ]],
    *[(f"RiskAC {k}={v!r}", (lambda k=k, v=v: _ac(**{k: v})), m) for k, v, m in [
        ("risk_aversion", 1e200, "risk_aversion must be in"), ("risk_aversion", True, "risk_aversion"),
        ("learning_rate", 0.0, "learning_rate"), ("batch_size", 2.5, "batch_size"),
        ("policy_kwargs", {"net_arch": [0]}, "net_arch"), ("device", "cuda:7", "cuda:7"),
        ("n_eval_paths", 1, "n_eval_paths must be an integer >= 2"),
    ]],
]  # fmt: skip


def _sac(**kwargs: Any) -> RiskSAC:
    return RiskSAC("MlpPolicy", QP, **{"device": "cpu", **kwargs})


def _discrete(policy: str = "MlpPolicy", **kwargs: Any) -> DiscreteRiskSAC:
    return DiscreteRiskSAC(policy, "is_envs/ItemPickup-v0", **{"device": "cpu", "batch_size": 64, **kwargs})


@pytest.mark.parametrize(("case", "call", "message"), API_CASES, ids=[c[0] for c in API_CASES])
def test_api_refuses_bad_input(case: str, call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_out_of_range_positions_are_clipped_and_reported() -> None:
    env = gym.make("is_envs/OptionHedging-v0").unwrapped
    env.reset(seed=0)
    bound = env.task.max_position
    *_, info = env.step(np.array([10 * bound]))
    assert info["action_clipped"] and info["position"] == bound
    *_, info = env.step(np.array([0.5], dtype=np.float32))
    assert not info["action_clipped"] and info["position"] == 0.5


CLI_CASES: list[tuple[list[str], str]] = [
    (["train", "--env", "is_envs/QuadraticPenalty-v0", "--timesteps", "0"], "--timesteps: must be an integer >= 1"),
    (["train", "--env", "is_envs/QuadraticPenalty-v0", "--timesteps", "-5"], "--timesteps: must be an integer >= 1"),
    (["train", "--env", "is_envs/QuadraticPenalty-v0", "--checkpoint-freq", "0"], "--checkpoint-freq: must be"),
    (["sweep", "--envs", "is_envs/QuadraticPenalty-v0", "--workers", "0"], "--workers: must be an integer >= 1"),
    (["quickstart", "--iterations", "-1"], "--iterations: must be an integer >= 1"),
    (["evaluate", "greedy", "--episodes-dir", "/missing"], "is not a folder"),
    (["evaluate", "greedy", "--episodes", "0"], "--episodes: must be an integer >= 1"),
    (["train", "--env", QP, "--hyperparams", "learning_rate=abc"], "learning_rate must be a number"),
    (["train", "--env", QP, "--hyperparams", "learning_rate={lr: 1.0e-4, peak: 2}"], "learning_rate schedule"),
    (["train", "--algo", "discrete_risk_sac", "--env", QP, "--timesteps", "5"], "cannot build discrete_risk_sac"),
    (["train", "--env", "is_envs/ItemPickup-v0", "--timesteps", "5"], "cannot build risk_ac"),
    (["train", "--env", "CartPole-v1", "--timesteps", "5"], "cannot build risk_ac"),
    (["train", "--resume"], "--resume needs --out"),
    (["train"], "train needs --env"),
    # issue 22
    (["train", "--env", QP, "--hyperparams", "n_timesteps=abc"], "n_timesteps must be an integer >= 1"),
    (["train", "--env", QP, "--hyperparams", "n_timesteps=2.5"], "n_timesteps must be an integer >= 1"),
    (["bench", "common"], "no benchmark 'common'"),
    (["train", "--env", QP, "--device", "tpu"], "--device 'tpu'"),
]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("is_envs/QuadraticPenalty-v0: [1, 2]", "must be a mapping of hyperparameters"),
        ("is_envs/QuadraticPenalty-v0: 3", "must be a mapping of hyperparameters"),
        ("is_envs/OptionHedging-v0: {batch_size: 64}", "has no entry for is_envs/QuadraticPenalty-v0"),
    ],
)
def test_cli_refuses_a_config_without_a_usable_entry(
    config: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "cfg.yml"
    path.write_text(config)
    assert main(["train", "--env", QP, "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_evaluate_refuses_a_bad_hyperparams_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ac().save(tmp_path / "model.zip")
    for text in ("!!python/object/apply:os.system ['touch marker']", "algo: [", "- 1"):
        (tmp_path / "hyperparams.yml").write_text(text)
        assert main(["evaluate", str(tmp_path / "model.zip")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("is-rl: error: evaluate:") and err.count("\n") == 1, err
    assert not (tmp_path / "marker").exists() and not Path("marker").exists()


@pytest.mark.parametrize(("argv", "message"), CLI_CASES, ids=[" ".join(c[0]) for c in CLI_CASES])
def test_cli_refuses_bad_input_with_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        status = exit_.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_cli_refuses_files_that_are_not_models_of_the_algorithm(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corrupt = tmp_path / "corrupt.zip"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    sac = tmp_path / "sac.zip"
    RiskSAC("MlpPolicy", "Pendulum-v1", device="cpu", learning_starts=5).learn(10).save(sac)
    for path, algo in ((corrupt, "risk_ac"), (sac, "risk_ac")):
        assert main(["evaluate", str(path), "--algo", algo]) == 2
        err = capsys.readouterr().err
        assert f"cannot load '{path}' as a {algo} model" in err and "Traceback" not in err


@pytest.mark.skipif(th.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cli_refuses_cuda_without_cuda(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--env", "is_envs/QuadraticPenalty-v0", "--timesteps", "5", "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err


def test_an_unexpected_error_in_a_run_goes_to_the_run_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(self: RiskAC) -> None:
        raise ZeroDivisionError("something inside training")

    monkeypatch.setattr(RiskAC, "train_step", broken)
    run = tmp_path / "run"
    argv = ["train", "--env", QP, "--timesteps", "5", "--out", str(run), "--no-progress-bar",
            "--hyperparams", "eval_freq=0"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "ZeroDivisionError: something inside training" in err and "Traceback" not in err
    assert "Traceback" in (run / "error.log").read_text()


def test_grid_accepts_an_action_of_shape_one_and_refuses_bad_episode_tables(tmp_path: Path) -> None:
    env = _grid(episodes="gradient1")
    env.reset(seed=0, options={"episode": 3})
    *_, info_array = env.step(np.array([2]))  # SB3's predict gives actions of shape (1,)
    env.reset(seed=0, options={"episode": 3})
    *_, info_int = env.step(2)
    assert info_array == info_int
    base = {"episode": np.array([0, 0, 1]), "row": np.array([1, 2, 3]), "col": np.array([0, 1, 2]),
            "training": np.array([0]), "validation": np.array([1]), "test": np.array([1])}  # fmt: skip
    cases = [
        ({"step": np.array([1.5, 2.0, 3.0])}, "step must hold integers"),
        ({"step": np.array([1, 2, 3]), "validation": np.array([1, 1])}, "more than once"),
        ({"step": np.array([1, 2, 3]), "validation": np.array([], dtype=np.int64)}, "lists no episode"),
    ]
    for extra, message in cases:
        path = tmp_path / "table.npz"
        np.savez(path, **{**base, **extra})
        with pytest.raises(ValueError, match=message):
            _grid(episodes=str(path), split="validation")
    np.savez(tmp_path / "ok.npz", **{**base, "step": np.array([1.0, 2.0, 3.0])})  # integral floats are fine
    _grid(episodes=str(tmp_path / "ok.npz"), split="validation").reset(seed=0)
