"""RiskAC's compiled iteration against the eager one, Mish from one exponential, and the no-compiler fallback."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch as th
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from is_sb3 import RiskAC
from is_sb3.ac import compiled
from is_sb3.activations import MISH_LINEAR_FROM, mish

SETTINGS = {"batch_size": 256, "eval_freq": 0, "n_eval_paths": 1000, "n_eval_states": 1024, "device": "cpu"}


def _model(loss: str, torch_compile: bool, seed: int = 0, env: str = "is_envs/QuadraticPenalty-v0") -> RiskAC:
    return RiskAC("MlpPolicy", env, risk_aversion=2.0, critic_loss=loss, seed=seed, torch_compile=torch_compile,
                  **SETTINGS)  # fmt: skip


def _assert_same_state(eager: RiskAC, fast: RiskAC) -> None:
    """Networks and target critic: ‖fast − eager‖∞ ≤ 1e-4·‖eager‖∞ per tensor; Adam's moments (averages of
    gradients and of their squares, which amplify relative float noise) 1e-3; step counts exactly. Float32
    reordering, amplified over hundreds of Adam steps, moves single entries by ~1e-5 of the scale."""
    for name, a, b in _state(eager, fast):
        if name == "step":
            assert th.equal(a, b)
            continue
        a, b = a.double(), b.double()
        rel = 1e-4 if name == "weights" else 1e-3
        assert (b - a).abs().max() <= rel * a.abs().max() + 1e-9, (name, a.shape, (b - a).abs().max(), a.abs().max())


def _state(*models: RiskAC) -> list[tuple[str, th.Tensor, ...]]:
    """(kind, tensor of each model) for every network parameter and optimizer state tensor."""
    weights = zip(*(m.policy.state_dict().values() for m in models), strict=True)
    rows: list[tuple[str, th.Tensor, ...]] = [("weights", *ts) for ts in weights]
    for opt in ("critic_optimizer", "actor_optimizer"):
        states = [getattr(m.policy, opt).state_dict()["state"] for m in models]
        for key in states[0]:
            for kind in ("exp_avg", "exp_avg_sq", "step"):
                rows.append(("step" if kind == "step" else "moments", *(st[key][kind] for st in states)))
    return rows


@pytest.mark.parametrize("loss", ["is", "sp", "emse", "mse"])
def test_compiled_iteration_equals_the_eager_one(loss: str) -> None:
    """300 iterations (with the learning-rate warm-up running) from the same seed: same networks,
    target critic, Adam moments and step counts, to float32 tolerance; the losses logged agree too."""
    eager, fast = _model(loss, False), _model(loss, True)
    eager.learn(300, log_interval=0)
    fast.learn(300, log_interval=0)
    assert fast._compiled is not None and not fast._compile_unavailable  # the fast path really ran
    _assert_same_state(eager, fast)
    c_eager, a_eager = eager.train_step()
    c_fast, a_fast = fast.train_step()
    th.testing.assert_close(c_fast, c_eager, rtol=1e-3, atol=1e-6)
    th.testing.assert_close(a_fast, a_eager, rtol=1e-3, atol=1e-6)
    th.testing.assert_close(fast._last_ess, eager._last_ess, rtol=1e-3, atol=1e-6)


def test_compiled_training_is_deterministic_and_survives_save_load(tmp_path: Path) -> None:
    a, b = _model("is", True, seed=3), _model("is", True, seed=3)
    a.learn(50, log_interval=0)
    b.learn(50, log_interval=0)
    assert all(th.equal(x, y) for _, x, y in _state(a, b))
    a.save(tmp_path / "model.zip")
    loaded = RiskAC.load(tmp_path / "model.zip", device="cpu")
    assert loaded.torch_compile and all(th.equal(x, y) for _, x, y in _state(a, loaded))
    loaded.learn(20, log_interval=0, reset_num_timesteps=False)  # compiles for the loaded model and trains on
    assert loaded._compiled is not None and loaded.num_timesteps == 70
    assert all(th.isfinite(p).all() for p in loaded.policy.parameters())


def test_models_of_different_settings_in_one_process_never_share_a_graph() -> None:
    """A graph bakes in the loss and α: a second model with other settings must get its own."""
    sp_fast, sp_eager = _model("sp", True, seed=5), _model("sp", False, seed=5)
    _model("is", True, seed=5).learn(3, log_interval=0)  # compile an IS graph first
    sp_fast.learn(30, log_interval=0)
    sp_eager.learn(30, log_interval=0)
    _assert_same_state(sp_eager, sp_fast)


def test_where_compiling_fails_training_warns_once_and_continues_eagerly(monkeypatch: pytest.MonkeyPatch) -> None:
    from torch._inductor.exc import InvalidCxxCompiler

    def no_compiler(fn: object, **kwargs: object) -> object:
        def fail(*args: object) -> None:
            raise InvalidCxxCompiler()

        return fail

    monkeypatch.setattr(compiled.th, "compile", no_compiler)
    fast, eager = _model("is", True), _model("is", False)
    with pytest.warns(RuntimeWarning, match="torch.compile is not available") as record:
        fast.learn(20, log_interval=0)
    assert len([w for w in record if "torch.compile" in str(w.message)]) == 1
    eager.learn(20, log_interval=0)
    assert fast._compile_unavailable
    assert all(th.equal(x, y) for _, x, y in _state(eager, fast))  # eager all along


def test_without_a_cxx_compiler_training_runs_eagerly(tmp_path: Path) -> None:
    """A real missing compiler (CXX points nowhere, empty inductor cache), in a fresh interpreter."""
    code = (
        "import warnings, torch; torch.set_num_threads(1)\n"
        "from is_sb3 import RiskAC\n"
        "m = RiskAC('MlpPolicy', 'is_envs/QuadraticPenalty-v0', eval_freq=0, seed=0, batch_size=64)\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    m.learn(5, log_interval=0)\n"
        "print(m.num_timesteps, m._compile_unavailable, sum('is not available' in str(x.message) for x in w))\n"
    )
    env = {**os.environ, "CXX": str(tmp_path / "no-such-g++"), "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["5", "True", "1"]


def test_torch_compile_false_never_compiles(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch.compile called")

    monkeypatch.setattr(compiled.th, "compile", forbidden)
    model = _model("is", False)
    model.learn(10, log_interval=0)
    assert model._compiled is None


@given(st.floats(-60.0, 60.0))
def test_mish_from_one_exponential_equals_torch_mish(x: float) -> None:
    t = th.tensor([x], dtype=th.float64, requires_grad=True)
    ref = th.tensor([x], dtype=th.float64, requires_grad=True)
    mish(t).backward()
    nn.functional.mish(ref).backward()
    assert mish(t).item() == pytest.approx(nn.functional.mish(ref).item(), rel=1e-13, abs=1e-15)
    assert t.grad is not None and ref.grad is not None
    assert t.grad.item() == pytest.approx(ref.grad.item(), rel=1e-12, abs=1e-14)


def test_mish_second_derivatives_equal_torch_mish() -> None:
    """Hessians through Mish (double backward, as is_sb3.diagnostics takes them of RiskAC's critic) need m'':
    the parameter Hessian of a small Mish network equals that of the same network with ``torch.nn.Mish``."""
    from is_sb3.activations import Mish
    from is_sb3.diagnostics import exact_hessian

    x = th.randn(32, 2, dtype=th.float64, generator=th.Generator().manual_seed(1))
    nets = []
    for activation in (Mish, nn.Mish):
        th.manual_seed(0)
        nets.append(nn.Sequential(nn.Linear(2, 8), activation(), nn.Linear(8, 1)).double())
    ours, torchs = (exact_hessian(lambda net=net: net(x).pow(2).mean(), net) for net in nets)
    np.testing.assert_allclose(ours, torchs, rtol=1e-10, atol=1e-12)


def test_mish_is_finite_and_exact_in_float32_far_out() -> None:
    x = th.tensor([-1e4, -100.0, -20.0, 0.0, MISH_LINEAR_FROM, 44.5, 88.0, 1e4], requires_grad=True)
    y = mish(x)
    y.sum().backward()
    assert th.isfinite(y).all() and x.grad is not None and th.isfinite(x.grad).all()
    reference = nn.functional.mish(x.detach().double()).numpy()
    np.testing.assert_allclose(y.detach().numpy(), reference, rtol=1e-6, atol=1e-30)
    assert th.autograd.gradcheck(mish, th.linspace(-30, 30, 61, dtype=th.float64, requires_grad=True))


def test_a_setting_changed_after_compiling_takes_effect() -> None:
    """The graph bakes in α, τ and the rest (its guards check tensors only): changing one between learn() calls
    must compile a new graph, so that the compiled run still equals the eager run given the same change."""
    eager, fast = _model("is", False, seed=7), _model("is", True, seed=7)
    for model in (eager, fast):
        model.learn(20, log_interval=0)
        model.tau, model.risk_aversion = 0.5, 3.0
        model.learn(20, log_interval=0, reset_num_timesteps=False)
    _assert_same_state(eager, fast)
    stale = _model("is", True, seed=7)  # and the change matters: without it the states differ
    stale.learn(40, log_interval=0)
    assert any((a - b).abs().max() > 1e-3 * a.abs().max() for kind, a, b in _state(eager, stale) if kind == "weights")


@pytest.mark.skipif(compiled.CustomGraphPass is None, reason="this torch has no custom inductor passes")
def test_unfuse_bias_pass_replaces_addmm_by_mm_plus_bias() -> None:
    from torch.fx.experimental.proxy_tensor import make_fx

    x, weight, bias = th.randn(8, 3), th.randn(5, 3), th.randn(5)
    gm = make_fx(lambda x, w, b: nn.functional.linear(x, w, b))(x, weight, bias)
    assert any(n.target is th.ops.aten.addmm.default for n in gm.graph.nodes)
    compiled.UnfuseBias()(gm.graph)
    gm.recompile()
    targets = {n.target for n in gm.graph.nodes}
    assert th.ops.aten.addmm.default not in targets and th.ops.aten.mm.default in targets
    th.testing.assert_close(gm(x, weight, bias), nn.functional.linear(x, weight, bias))


def test_a_task_changed_after_compiling_takes_effect() -> None:
    """What the graph reads of the simulator (here the task's σ) stays guarded: swapping the task compiles anew."""
    import dataclasses

    eager, fast = _model("is", False, seed=8), _model("is", True, seed=8)
    for model in (eager, fast):
        model.learn(20, log_interval=0)
        model.simulator.task = dataclasses.replace(model.simulator.task, sigma=0.5)
        model.learn(20, log_interval=0, reset_num_timesteps=False)
    _assert_same_state(eager, fast)
