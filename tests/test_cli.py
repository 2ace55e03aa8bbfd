"""The is-rl command line: train → save → evaluate, YAML precedence, sweeps, resume, errors."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from is_sb3.cli import main
from is_sb3.experiments import load_hyperparams
from is_sb3.experiments.runs import read_checkpoint

TINY = ["batch_size=64", "n_eval_states=32", "n_eval_paths=200", "eval_freq=0"]
ENV = "is_envs/QuadraticPenalty-v0"


def test_train_save_evaluate_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    argv = ["train", "--env", ENV, "--loss", "is", "--risk-aversion", "2", "--timesteps", "12", "--out", str(run),
            "--tensorboard-log", str(tmp_path / "tb"), "--no-progress-bar", "--checkpoint-freq", "5",
            "--hyperparams", *TINY]  # fmt: skip
    assert main(argv) == 0
    assert {"model.zip", "checkpoint.json", "hyperparams.yml", "result.json"} <= {p.name for p in run.iterdir()}
    assert len(list(run.glob("checkpoint-*"))) == 1  # the latest checkpoint set only
    assert not list(run.glob(".*tmp*"))  # atomic writes leave nothing half-written
    assert (tmp_path / "tb" / "risk_ac" / "run").is_dir()  # the TensorBoard run shares the run folder's name
    result = json.loads((run / "result.json").read_text())
    assert result["timesteps"] == 12 and result["critic_loss"] == "is" and result["risk_aversion"] == 2.0
    capsys.readouterr()
    assert main(["evaluate", str(run / "model.zip"), "--plots", str(tmp_path / "plots"), "--device", "cpu"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"value_rmse", "policy_rmse", "ce_return", "ce_return_se", "mean_return"} <= set(metrics)
    assert (tmp_path / "plots" / "value_policy.png").stat().st_size > 10_000


def test_yaml_then_overrides_then_flags(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg.yml"
    cfg.write_text(
        yaml.safe_dump({ENV: {"risk_aversion": 3.0, "critic_loss": "sp", "batch_size": 256, "n_timesteps": 7}})
    )
    params = load_hyperparams("risk_ac", ENV, str(cfg), ["batch_size=64", "critic_loss=emse"])
    assert params == {"risk_aversion": 3.0, "critic_loss": "emse", "batch_size": 64, "n_timesteps": 7}
    shipped = load_hyperparams("risk_ac", "is_envs/OptionHedging-v0")
    assert shipped["n_timesteps"] == 300_000 and shipped["learning_rate"]["lr"] == 1e-4
    run = tmp_path / "run"
    argv = ["train", "--env", ENV, "--config", str(cfg), "--hyperparams", "critic_loss=emse", *TINY,
            "--loss", "mse", "--out", str(run), "--no-progress-bar",
            "--tensorboard-log", str(tmp_path / "tb")]  # fmt: skip
    assert main(argv) == 0
    saved = yaml.safe_load((run / "hyperparams.yml").read_text())
    assert saved["critic_loss"] == "mse" and saved["risk_aversion"] == 3.0 and saved["n_timesteps"] == 7


def test_resume_continues_from_the_checkpoint(tmp_path: Path) -> None:
    run = tmp_path / "run"
    common = ["--out", str(run), "--no-progress-bar", "--tensorboard-log", str(tmp_path / "tb")]
    assert main(["train", "--env", ENV, "--timesteps", "6", *common, "--hyperparams", *TINY]) == 0
    saved = (run / "hyperparams.yml").read_text()
    assert main(["train", "--resume", *common]) == 0  # nothing left: the run's own total (6) is kept
    assert json.loads((run / "result.json").read_text())["timesteps"] == 6
    assert (run / "hyperparams.yml").read_text() == saved
    assert main(["train", "--resume", "--timesteps", "10", *common]) == 0  # extends the run
    assert json.loads((run / "result.json").read_text())["timesteps"] == 10
    assert main(["train", "--resume", *common, "--hyperparams", "batch_size=8"]) == 2  # the run's own settings


def test_ctrl_c_then_resume_equals_the_uninterrupted_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGINT during iteration 23 of 60: the run stops after that iteration, saves, exits 130; --resume
    finishes it; the model equals an uninterrupted run's bit for bit."""
    import signal

    import torch as th

    from is_sb3 import RiskAC

    tiny = ["batch_size=16", "eval_freq=0", "torch_compile=false"]
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert main(["train", "--env", ENV, "--timesteps", "60", "--out", str(whole), "--no-progress-bar",
                 "--hyperparams", *tiny]) == 0  # fmt: skip
    original = RiskAC.train_step
    calls = {"n": 0}

    def interrupted_step(self: RiskAC) -> tuple[th.Tensor, th.Tensor]:
        calls["n"] += 1
        if calls["n"] == 23:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C in the middle of an iteration
        return original(self)

    monkeypatch.setattr(RiskAC, "train_step", interrupted_step)
    argv = ["train", "--env", ENV, "--timesteps", "60", "--out", str(part), "--no-progress-bar", "--hyperparams", *tiny]
    assert main(argv) == 130
    assert RiskAC.load(read_checkpoint(part, off_policy=False)["model.zip"]).num_timesteps == 23
    monkeypatch.setattr(RiskAC, "train_step", original)
    assert main(["train", "--resume", "--out", str(part), "--no-progress-bar"]) == 0
    a, b = RiskAC.load(whole / "model.zip"), RiskAC.load(part / "model.zip")
    assert a.num_timesteps == b.num_timesteps == 60
    for (name, p), q in zip(a.policy.state_dict().items(), b.policy.state_dict().values(), strict=True):
        assert th.equal(p, q), name


def test_sweep_finishes_the_runs_that_can_finish_and_keeps_envs_apart(tmp_path: Path) -> None:
    """α = 10 on the quadratic task (k = ασ² = 1) fails; the other runs finish and the tables are written.
    Without --risk-aversions each env trains at its configured α (QuadraticPenalty 2.0, OptionHedging 1.0)."""
    out = tmp_path / "sweep"
    tiny = [*TINY, "torch_compile=false"]
    argv = ["sweep", "--envs", ENV, "--risk-aversions", "2", "10", "--timesteps", "3", "--workers", "1",
            "--out", str(out), "--hyperparams", *tiny]  # fmt: skip
    assert main(argv) == 0
    rows = {r["risk_aversion"]: r for r in json.loads((out / "sweep.json").read_text())}
    assert rows[2.0]["timesteps"] == 3 and "error" not in rows[2.0]
    assert "risk_aversion must be < 1/σ²" in rows[10.0]["error"]
    assert "risk_aversion must be < 1/σ²" in (out / "sweep.md").read_text() and (out / "sweep.png").is_file()
    default = tmp_path / "default"
    argv = ["sweep", "--envs", ENV, "is_envs/OptionHedging-v0", "--timesteps", "3", "--workers", "1",
            "--out", str(default), "--hyperparams", *tiny]  # fmt: skip
    assert main(argv) == 0
    alphas = {r["env"]: r["risk_aversion"] for r in json.loads((default / "sweep.json").read_text())}
    assert alphas == {ENV: 2.0, "is_envs/OptionHedging-v0": 1.0}


def test_sweep_on_the_local_pool(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    argv = ["sweep", "--envs", ENV, "--losses", "is", "sp", "--risk-aversions", "2", "--seeds", "0", "--timesteps", "4",
            "--workers", "2", "--out", str(out), "--hyperparams", *TINY]  # fmt: skip
    assert main(argv) == 0
    rows = json.loads((out / "sweep.json").read_text())
    assert sorted(r["critic_loss"] for r in rows) == ["is", "sp"] and all(r["timesteps"] == 4 for r in rows)
    assert (out / "sweep.png").is_file() and (out / "sweep.md").read_text().count("\n") == 4


def test_grid_table_for_the_greedy_baseline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["evaluate", "greedy", "--episodes", "4", "--episodes-dir", "generated", "--plots", str(tmp_path)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    table = out["table"]
    assert len(table) == 12 and all(row["relative_to_greedy"] == 1.0 for row in table.values())
    assert {row["episodes"] for row in table.values()} == {"4 generated"}
    assert out["plot"] == str(tmp_path / "shift_table.png") and (tmp_path / "shift_table.png").is_file()
    assert main(["evaluate", "greedy"]) == 0  # default: the released episodes shipped with the package
    out = json.loads(capsys.readouterr().out)
    assert out["plot"] is None and out["policy"] == "greedy"
    table = out["table"]
    assert table["gradient1"]["episodes"] == "released test"
    assert table["gradient1"]["greedy_mean_return"] == pytest.approx(215.06, abs=0.01)  # SPEC §5


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--env", "Nope-v0"], "unknown env 'Nope-v0'"),
        (["train", "--env", ENV, "--loss", "huber"], "unknown loss 'huber'"),
        (["train", "--algo", "ppo", "--env", ENV], "unknown algorithm 'ppo'"),
        (["evaluate", "missing.zip"], "model file 'missing.zip' does not exist"),
        (["train", "--env", ENV, "--hyperparams", "oops"], "key=value"),
        (["bench", "nothing"], "no benchmark 'nothing'"),
        (["evaluate", "greedy", "--episodes-dir", "/missing"], "--episodes-dir '/missing' is not a folder"),
    ],
)
def test_bad_input_gives_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("is-rl: error:") and message in err


def test_malformed_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("a: [1\n")
    assert main(["train", "--env", ENV, "--config", str(bad)]) == 2
    assert "malformed YAML" in capsys.readouterr().err


def test_grid_model_trains_and_gets_the_twelve_distribution_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "grid"
    argv = ["train", "--algo", "discrete_risk_sac", "--env", "is_envs/ItemPickup-v0", "--timesteps", "150",
            "--out", str(run), "--no-progress-bar", "--tensorboard-log", str(tmp_path / "tb"),
            "--hyperparams", "learning_starts=50", "batch_size=8", "train_freq=10", "buffer_size=500"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run / "model.zip"), "--episodes", "2", "--episodes-dir", "generated"]) == 0
    table = json.loads(capsys.readouterr().out)["table"]
    assert len(table) == 12 and all("relative_to_greedy" in row for row in table.values())


def test_every_shipped_config_builds_its_model() -> None:
    from is_sb3.experiments import build_model

    for algo, env_ids in {
        "risk_ac": ["is_envs/BachelierTrading-v0", "is_envs/QuadraticPenalty-v0", "is_envs/OptionHedging-v0"],
        "risk_sac": ["is_envs/QuadraticPenalty-v0"],
        "discrete_risk_sac": ["is_envs/ItemPickup-v0"],
    }.items():
        for env_id in env_ids:
            params = load_hyperparams(algo, env_id)
            assert params["n_timesteps"] > 0
            params.pop("buffer_size", None)  # keep the test light
            model = build_model(
                algo,
                env_id,
                {**params, "buffer_size": max(100, params.get("batch_size", 256))} if algo != "risk_ac" else params,
                0,
                "cpu",
                None,
            )
            assert model.risk_aversion == params["risk_aversion"]


def test_quickstart_and_bench_pass_their_options_through(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quickstart", "--iterations", "3", "--tensorboard-log", str(tmp_path / "tb"), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "learned vs closed form" in out and "V* closed form" in out
    assert (tmp_path / "tb").is_dir()
    with pytest.raises(SystemExit):
        main(["train", "--env", ENV, "--nonsense"])


def test_bench_writes_fresh_results_to_the_untracked_folder_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    """``is-rl bench simulator --quick`` leaves the committed ``benchmarks/results/simulator.json`` alone and
    writes ``benchmarks/out/simulator.json``, which git ignores."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)
    committed = (repo / "benchmarks" / "results" / "simulator.json").read_bytes()
    fresh = repo / "benchmarks" / "out" / "simulator.json"
    fresh.unlink(missing_ok=True)
    assert main(["bench", "simulator", "--quick"]) == 0
    assert (repo / "benchmarks" / "results" / "simulator.json").read_bytes() == committed
    assert json.loads(fresh.read_text()) != json.loads(committed)  # measured now, not the committed numbers
    ignored = subprocess.run(["git", "check-ignore", "-q", str(fresh)], cwd=repo, check=False)
    assert ignored.returncode == 0 or not (repo / ".git").exists()


def test_every_option_has_help_and_bench_lists_every_script() -> None:
    from is_sb3.cli import BENCHMARKS, build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"is-rl {name} {action.option_strings or action.dest} has no help"
    scripts = {p.stem for p in (Path(__file__).resolve().parents[1] / "benchmarks").glob("*.py")} - {
        "__init__",
        "common",
    }
    assert set(BENCHMARKS) == scripts


def test_train_prints_clean_json_on_stdout_and_the_run_folder_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = ["train", "--env", ENV, "--timesteps", "4", "--out", str(run), "--hyperparams", *TINY,
            "torch_compile=false"]  # fmt: skip
    assert main(argv) == 0  # with the progress bar on
    captured = capsys.readouterr()
    result = json.loads(captured.out)  # nothing but the JSON
    assert result["run_dir"] == str(run) and result["timesteps"] == 4
    assert f"run folder {run}" in captured.err


def test_evaluate_gives_every_algorithm_a_seeded_ce_and_a_return_histogram(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A RiskSAC model: the same seed gives the same CE; the CE and mean agree with the returns' own
    closed-form statistics (CE_α = −log mean e^{−αR}/α); the histogram is written. RiskAC too."""
    from is_sb3.experiments import episode_returns

    run = tmp_path / "sac"
    argv = ["train", "--algo", "risk_sac", "--env", ENV, "--timesteps", "30", "--out", str(run), "--no-progress-bar",
            "--hyperparams", "learning_starts=10", "batch_size=8"]  # fmt: skip
    assert main(argv) == 0
    capsys.readouterr()
    model_zip = str(run / "model.zip")
    results = []
    for _ in range(2):
        assert main(["evaluate", model_zip, "--episodes", "20", "--seed", "3", "--plots", str(tmp_path)]) == 0
        results.append(json.loads(capsys.readouterr().out))
    assert results[0]["ce_return"] == results[1]["ce_return"] and results[0]["episodes"] == 20
    from is_sb3 import RiskSAC

    returns = episode_returns(RiskSAC.load(model_zip), ENV, 20, 3)
    alpha = results[0]["risk_aversion"]
    assert results[0]["ce_return"] == pytest.approx(-np.log(np.mean(np.exp(-alpha * returns))) / alpha, rel=1e-9)
    assert results[0]["mean_return"] == pytest.approx(returns.mean())
    assert (tmp_path / "returns.png").is_file()
    ac = tmp_path / "ac"
    assert main(["train", "--env", ENV, "--timesteps", "3", "--out", str(ac), "--no-progress-bar", "--hyperparams",
                 *TINY, "torch_compile=false"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["evaluate", str(ac / "model.zip"), "--plots", str(tmp_path / "acplots")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"ce_return", "ce_return_se", "value_rel_rmse"} <= set(out)
    assert (tmp_path / "acplots" / "returns.png").is_file() and (tmp_path / "acplots" / "value_policy.png").is_file()


def test_num_threads_sets_torchs_threads_for_the_command_and_each_pool_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import is_sb3.cli as cli
    from is_sb3.parallel import run_parallel

    seen: list[int] = []

    def fake_train(*args: object, **kwargs: object) -> dict[str, int]:
        seen.append(torch.get_num_threads())
        return {}

    monkeypatch.setattr(cli, "train_run", fake_train)
    try:
        assert main(["train", "--env", ENV, "--num-threads", "2"]) == 0
        assert main(["train", "--env", ENV]) == 0
    finally:
        torch.set_num_threads(1)
    assert seen == [2, 1]  # the default is one thread
    assert run_parallel(torch.get_num_threads, [{}, {}], workers=2, threads=2) == [2, 2]
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--env", ENV, "--num-threads", "0"])
    assert exit_info.value.code == 2


def test_train_json_holds_real_numbers_mappings_and_integer_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No reprs and no numbers as strings: 3e-4 is a float (YAML 1.2), the schedule a mapping, counts integers."""
    argv = ["train", "--env", ENV, "--timesteps", "3", "--out", str(tmp_path / "a"), "--no-progress-bar",
            "--tensorboard-log", str(tmp_path / "tb"), "--hyperparams", *TINY, "torch_compile=false",
            "max_grad_norm=1e1"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert isinstance(result["learning_rate"], dict) and result["learning_rate"]["lr"] == 1e-4
    assert result["max_grad_norm"] == 10.0 and isinstance(result["max_grad_norm"], float)
    assert isinstance(result["timesteps"], int) and isinstance(result["n_timesteps"], int)
    assert json.loads((tmp_path / "a" / "result.json").read_text()) == result
    argv = ["train", "--algo", "risk_sac", "--env", ENV, "--timesteps", "20", "--out", str(tmp_path / "b"),
            "--no-progress-bar", "--hyperparams", "learning_starts=10", "batch_size=8",
            "learning_rate=3e-4"]  # fmt: skip
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["learning_rate"] == 3e-4 and isinstance(result["episodes"], int)


def test_every_number_in_a_yaml_value_is_a_number() -> None:
    from is_sb3.experiments.config import yaml_load

    assert yaml_load("a: 3e-4\nb: 1E5\nc: -2.5e+3\nd: .5\ne: 7\nf: 1e") == {
        "a": 3e-4, "b": 1e5, "c": -2500.0, "d": 0.5, "e": 7, "f": "1e"}  # fmt: skip
