"""Floating-point settings of the off-policy agents: subnormals flushed to zero during learn(), bf16 mixed
precision of DiscreteRiskSAC against float32, Enders' Keras initialisation and the critic loss honoured with
either target."""

import math
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from is_sb3 import DiscreteRiskSAC, RiskSAC
from is_sb3.discrete_sac.policies import keras_init_
from is_sb3.numerics import denormals_flushed, flush_denormals, has_fast_bf16, resolve_precision

SUBNORMAL = 1e-39  # below float32's smallest normal number, 1.18e-38
GRID = "is_envs/ItemPickup-v0"
DSAC_KW: dict[str, Any] = {"learning_starts": 100, "batch_size": 16, "train_freq": 4, "buffer_size": 2000, "seed": 0,
                           "device": "cpu", "policy_kwargs": {"net_arch": [32]}}  # fmt: skip


def _subnormals_kept_on_all_threads(n_threads: int) -> int:
    """How many of 4M subnormal float32 numbers survive ×1 computed on ``n_threads`` intra-op threads (0 when
    every thread flushes them)."""
    before = th.get_num_threads()
    th.set_num_threads(n_threads)
    try:
        return int((th.full((4_000_000,), SUBNORMAL) * 1.0).count_nonzero())
    finally:
        th.set_num_threads(before)


class _SeesFlushing(BaseCallback):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[bool, int]] = []

    def _on_step(self) -> bool:
        if not self.seen:
            self.seen.append((denormals_flushed(), _subnormals_kept_on_all_threads(2)))
        return True


@pytest.mark.parametrize("cls", [DiscreteRiskSAC, RiskSAC])
def test_learn_flushes_subnormals_on_every_thread_and_restores_the_setting(cls: Any) -> None:
    env = GRID if cls is DiscreteRiskSAC else "is_envs/QuadraticPenalty-v0"
    model = cls("MlpPolicy", env, **{**DSAC_KW, "train_freq": 1} if cls is DiscreteRiskSAC else
                {"learning_starts": 10, "batch_size": 8, "seed": 0, "device": "cpu"})  # fmt: skip
    assert not denormals_flushed() and _subnormals_kept_on_all_threads(2) == 4_000_000  # IEEE outside learn
    seen = _SeesFlushing()
    th.set_num_threads(2)  # the OpenMP team exists before learn(): it must be reached, not only new threads
    try:
        model.learn(20, callback=seen)
    finally:
        th.set_num_threads(1)
    assert seen.seen == [(True, 0)]  # during learn: the calling thread and both intra-op threads flush
    assert not denormals_flushed() and _subnormals_kept_on_all_threads(2) == 4_000_000  # restored
    model.flush_denormals = False
    seen = _SeesFlushing()
    model.learn(20, callback=seen)
    assert seen.seen == [(False, 4_000_000)]


def test_flush_denormals_nests_and_restores_an_enclosing_setting() -> None:
    with flush_denormals():
        with flush_denormals():
            assert denormals_flushed()
        assert denormals_flushed()  # the inner block restored the outer block's setting
        with flush_denormals(enabled=False):
            assert denormals_flushed()
    assert not denormals_flushed()


def _dead_units_with_subnormal_weights(model: DiscreteRiskSAC) -> int:
    """Enders' failure mode by hand: a third of each network's first hidden units dead (bias −1e3) with subnormal
    incoming and outgoing weights, which then get no gradient but the L2 term's (so they stay subnormal
    without flushing). Returns how many weights were made subnormal."""
    count = 0
    with th.no_grad():
        for net in [model.policy.actor, *model.policy.critics, *model.policy.critics_target]:
            first, second = net.mlp[0], net.mlp[2]
            dead = th.arange(0, first.out_features, 3)
            first.bias[dead] = -1e3
            first.weight[dead] = SUBNORMAL * th.sign(first.weight[dead])
            second.weight[:, dead] = SUBNORMAL
            count += first.weight[dead].numel() + second.weight[:, dead].numel()
    return count


def _subnormal_count(model: DiscreteRiskSAC) -> int:
    tiny = th.finfo(th.float32).tiny
    return sum(int(((p != 0) & (p.abs() < tiny)).sum()) for p in model.policy.parameters())


def test_a_model_full_of_subnormal_weights_trains_as_fast_as_one_without() -> None:
    """With flushing, the subnormal weights read as 0 and are written back as 0 at the first Adam step; the update
    then runs at the normal speed (on Intel CPUs an update with a third of its weights subnormal was measured 6.5×
    slower without flushing; AMD CPUs take no such penalty, where the timing half of this test cannot fail)."""
    kw = {**DSAC_KW, "batch_size": 128, "train_freq": 1, "learning_starts": 150, "policy_kwargs": {"net_arch": [256]}}
    normal, subnormal = DiscreteRiskSAC("CnnPolicy", GRID, **kw), DiscreteRiskSAC("CnnPolicy", GRID, **kw)
    for model in (normal, subnormal):
        model.learn(150)  # warm-up: fills the buffer, no update yet
    assert _dead_units_with_subnormal_weights(subnormal) > 100_000
    times: dict[str, list[float]] = {"normal": [], "subnormal": []}
    for _ in range(3):  # interleaved, best of three
        for name, model in (("normal", normal), ("subnormal", subnormal)):
            t0 = time.process_time()
            model.learn(10, reset_num_timesteps=False)
            times[name].append(time.process_time() - t0)
    assert _subnormal_count(subnormal) == 0  # flushed to 0 by the updates
    assert min(times["subnormal"]) < 1.5 * min(times["normal"])
    # and without flushing the subnormal weights survive the same training: the first assertion can fail
    kept = DiscreteRiskSAC("CnnPolicy", GRID, **kw)
    kept.learn(150)
    _dead_units_with_subnormal_weights(kept)
    kept.flush_denormals = False
    kept.learn(10, reset_num_timesteps=False)
    assert _subnormal_count(kept) > 100_000


def test_enders_keras_initialisation() -> None:
    """He-uniform U(±√(6/fan_in)) kernels, Glorot-uniform U(±√(6/(fan_in + fan_out))) output layer, zero biases,
    fan counts with the receptive field (Keras' formulas, keras.initializers.HeUniform / GlorotUniform)."""
    model = DiscreteRiskSAC("CnnPolicy", GRID, **{**DSAC_KW, "policy_kwargs": {}})
    assert model.policy.init == "keras"
    for net in [model.policy.actor, *model.policy.critics]:
        layers = [m for m in net.modules() if isinstance(m, th.nn.Conv2d | th.nn.Linear)]
        assert [tuple(layer.weight.shape) for layer in layers] == [
            (32, 3, 3, 3), (64, 32, 2, 2), (64, 64, 2, 2), (256, 1600), (256, 256), (5, 256)
        ]  # fmt: skip
        for i, layer in enumerate(layers):
            w = layer.weight.detach().double()
            receptive = int(np.prod(w.shape[2:])) if w.ndim == 4 else 1
            fan_in, fan_out = w.shape[1] * receptive, w.shape[0] * receptive
            limit = math.sqrt(6 / fan_in) if i < len(layers) - 1 else math.sqrt(6 / (fan_in + fan_out))
            assert w.abs().max() <= limit
            assert w.abs().max() > 0.9 * limit  # uniform over the whole interval, not a narrower law
            assert float(w.std()) == pytest.approx(limit / math.sqrt(3), rel=0.25 if w.numel() < 1000 else 0.05)
            assert th.equal(layer.bias, th.zeros_like(layer.bias))
    th.testing.assert_close(model.policy.critics.state_dict(), model.policy.critics_target.state_dict())
    torch_init = DiscreteRiskSAC("CnnPolicy", GRID, **{**DSAC_KW, "policy_kwargs": {"init": "torch"}})
    assert torch_init.policy.actor.mlp[-1].bias.abs().max() > 0  # PyTorch's default: uniform biases
    assert DiscreteRiskSAC("MlpPolicy", GRID, **DSAC_KW).policy.init == "torch"
    with pytest.raises(ValueError, match="init"):
        DiscreteRiskSAC("CnnPolicy", GRID, **{**DSAC_KW, "policy_kwargs": {"init": "glorot"}})
    with pytest.raises(ValueError, match="keras_init_"):
        keras_init_(th.nn.ReLU())


def test_critic_loss_is_honoured_with_the_enders_target() -> None:
    """Defaults: Huber with "enders", IS with "sampled". With a δ beyond every |Q − y| Huber is ½δ² exactly, so
    critic_loss="mse" trains the same model as "huber" (the name is used, not ignored); with δ small it does not."""
    assert DiscreteRiskSAC("MlpPolicy", GRID, target="enders", **DSAC_KW).critic_loss == "huber"
    assert DiscreteRiskSAC("MlpPolicy", GRID, **DSAC_KW).critic_loss == "is"

    def run(loss: str, delta: float) -> DiscreteRiskSAC:
        kw = {**DSAC_KW, "target": "enders", "risk_aversion": 0.0, "huber_delta": delta}
        return DiscreteRiskSAC("MlpPolicy", GRID, critic_loss=loss, **kw).learn(200)

    def same(a: DiscreteRiskSAC, b: DiscreteRiskSAC) -> bool:
        return all(th.equal(p, q) for p, q in zip(a.policy.parameters(), b.policy.parameters(), strict=True))

    assert same(run("mse", 1e6), run("huber", 1e6))
    assert not same(run("mse", 1e6), run("huber", 1e-3))
    with pytest.raises(ValueError, match="critic_loss"):
        DiscreteRiskSAC("MlpPolicy", GRID, critic_loss="l1", **DSAC_KW)


def test_precision_resolution() -> None:
    assert resolve_precision("float32", "cpu") == th.float32
    assert resolve_precision("bf16", "cpu") == th.bfloat16
    expected = th.bfloat16 if has_fast_bf16("cpu") else th.float32
    assert resolve_precision("auto", "cpu") == expected
    model = DiscreteRiskSAC("MlpPolicy", GRID, **DSAC_KW)
    assert model.precision == "auto" and model.compute_dtype == expected
    with pytest.raises(ValueError, match="precision"):
        DiscreteRiskSAC("MlpPolicy", GRID, precision="fp8", **DSAC_KW)


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "vendor", "expected"),
    [
        (True, True, "GenuineIntel", th.bfloat16),  # Sapphire Rapids and later: AMX tiles
        (False, True, "GenuineIntel", th.float32),  # AVX512-BF16 without AMX: 0.86× float32's speed
        (False, True, "AuthenticAMD", th.bfloat16),  # Zen 4 and later: 1.6× float32's speed
        (False, False, "AuthenticAMD", th.float32),  # AVX2 only: bf16 is emulated, many times slower
        (False, False, "GenuineIntel", th.float32),
    ],
)
def test_auto_picks_bf16_only_where_it_is_faster(
    monkeypatch: pytest.MonkeyPatch, amx: bool, avx512_bf16: bool, vendor: str, expected: th.dtype
) -> None:
    import is_sb3.numerics as numerics

    monkeypatch.setattr(th.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(th.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(numerics, "_cpu_vendor", lambda: vendor)
    assert resolve_precision("auto", "cpu") == expected
    assert resolve_precision("auto", "meta") == th.float32


def test_cpu_vendor_is_read() -> None:
    import is_sb3.numerics as numerics

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    match = re.search(r"^vendor_id\s*:\s*(\S+)", cpuinfo, re.MULTILINE)
    if match is None:
        pytest.skip("no vendor_id line in /proc/cpuinfo (not Linux on x86): nothing independent to compare with")
    assert numerics._cpu_vendor() == match.group(1)


def _twin(precision: str, policy: str = "CnnPolicy", **extra: Any) -> DiscreteRiskSAC:
    kw = {**DSAC_KW, "learning_starts": 10_000, "max_grad_norm": None, "policy_kwargs": {}, **extra}
    model = DiscreteRiskSAC(policy, GRID, precision=precision, **kw)
    model.learn(600)  # the same buffer for both (same seed; no update before learning_starts)
    return model


@pytest.mark.parametrize("loss", ["is", "sp", "emse", "huber"])
def test_bf16_update_keeps_the_maths_of_the_float32_update(loss: str) -> None:
    """On the same weights and the same batch (Enders' CNN, batch 128), bf16 autocast against float32: targets,
    Q-values, losses and each network's gradient direction agree within bf16's rounding (8 significand bits,
    relative 2⁻⁸ ≈ 4e-3 per product, averaged over sums)."""
    target = "enders" if loss == "huber" else "sampled"
    f32, bf16 = _twin("float32", critic_loss=loss, target=target), _twin("bf16", critic_loss=loss, target=target)
    bf16.policy.load_state_dict(f32.policy.state_dict())
    assert bf16.compute_dtype == th.bfloat16
    grads = {}
    for name, model in (("f32", f32), ("bf16", bf16)):
        np.random.seed(5)  # noqa: NPY002  (the replay buffer samples from numpy's global generator)
        th.manual_seed(5)  # the same next actions a' ~ π
        data = model.replay_buffer.sample(128)  # type: ignore[union-attr]
        terms = model.update_terms(data, ent_coef=math.exp(-2), reward_scale=model._reward_scale())
        model.policy.zero_grad()
        (terms.critic_loss + terms.actor_loss).backward()
        grads[name] = (terms, [p.grad.detach().clone() for p in model.policy.parameters() if p.grad is not None])
    (a, ga), (b, gb) = grads["f32"], grads["bf16"]
    assert b.q.dtype == b.target.dtype == b.critic_loss.dtype == th.float32  # float32 after the networks
    scale = a.q.abs().max()
    # measured at batch 512: Q 4.6e-3, y 6.4e-4 (of their largest value), critic loss 2.5e-4, cosine ≥ 0.9997
    assert (a.q - b.q).abs().max() <= 1e-2 * scale
    assert (a.target - b.target).abs().max() <= 3e-3 * a.target.abs().max()
    assert float(b.critic_loss.detach()) == pytest.approx(float(a.critic_loss.detach()), rel=2e-3)
    assert float(b.actor_loss.detach()) == pytest.approx(float(a.actor_loss.detach()), rel=1e-2)
    assert len(ga) == len(gb) > 0
    for net in (f32.policy.actor, *f32.policy.critics):
        ids = {id(p) for p in net.parameters()}
        pa = [g for p, g in zip([p for p in f32.policy.parameters() if p.grad is not None], ga, strict=True)
              if id(p) in ids]  # fmt: skip
        pb = [g for p, g in zip([p for p in f32.policy.parameters() if p.grad is not None], gb, strict=True)
              if id(p) in ids]  # fmt: skip
        u, v = th.cat([g.flatten() for g in pa]), th.cat([g.flatten() for g in pb])
        assert float(th.nn.functional.cosine_similarity(u, v, dim=0)) > 0.999
    # the comparison can fail: float32 on other weights is far off
    other = _twin("float32", critic_loss=loss, target=target, seed=1)
    assert (other.update_terms(data, math.exp(-2), 1.0).q - a.q).abs().max() > 1e-1 * scale


def test_predict_runs_in_float32_in_every_precision() -> None:
    model = _twin("bf16", policy="MlpPolicy", policy_kwargs={"net_arch": [32]})
    obs = model.observation_space.sample()[None]
    logits = model.policy.logits(th.as_tensor(obs, dtype=th.float32))
    assert logits.dtype == th.float32
    action, _ = model.predict(obs, deterministic=True)
    assert int(action[0]) == int(logits.argmax())


def test_bf16_training_is_deterministic_and_round_trips(tmp_path: Path) -> None:
    kw = {**DSAC_KW, "precision": "bf16"}
    a = DiscreteRiskSAC("MlpPolicy", GRID, **kw).learn(300)
    b = DiscreteRiskSAC("MlpPolicy", GRID, **kw).learn(300)
    c = DiscreteRiskSAC("MlpPolicy", GRID, **{**kw, "precision": "float32"}).learn(300)
    assert all(th.equal(p, q) for p, q in zip(a.policy.parameters(), b.policy.parameters(), strict=True))
    assert not all(th.equal(p, q) for p, q in zip(a.policy.parameters(), c.policy.parameters(), strict=True))
    assert all(p.dtype == th.float32 for p in a.policy.parameters())  # float32 master weights
    a.save(tmp_path / "m.zip")
    loaded = DiscreteRiskSAC.load(tmp_path / "m.zip", device="cpu")
    assert loaded.precision == "bf16" and loaded.compute_dtype == th.bfloat16
    assert all(th.equal(p, q) for p, q in zip(a.policy.parameters(), loaded.policy.parameters(), strict=True))


@pytest.mark.parametrize("dtype", [th.float32, th.bfloat16])
def test_enders_cnn_forward_is_its_sequential_written_out(dtype: th.dtype) -> None:
    """EndersCNN's forward (its layers applied one by one, each ReLU's gradient in one memory layout) gives the
    values of its Sequential ``net`` exactly, and the same input and parameter gradients up to rounding."""
    from gymnasium import spaces

    from is_sb3.discrete_sac.policies import EndersCNN

    th.manual_seed(0)
    cnn = EndersCNN(spaces.Box(0.0, 1.0, (3, 5, 5), np.float32))
    obs = th.rand(64, 3, 5, 5)
    weights = th.randn(64, 1600)
    grads = []
    for forward in (cnn.net, cnn):
        x = obs.clone().requires_grad_()
        cnn.zero_grad()
        with th.autocast("cpu", dtype=th.bfloat16, enabled=dtype == th.bfloat16):
            out = forward(x)
        assert out.shape == (64, 1600) and out.dtype == dtype
        (out.float() * weights).sum().backward()
        grads.append([out.detach().float(), x.grad] + [p.grad.clone() for p in cnn.parameters()])  # type: ignore[union-attr]
    reference, written_out = grads
    assert th.equal(reference[0], written_out[0])
    for a, b in zip(reference[1:], written_out[1:], strict=True):
        assert (a - b).abs().max() <= 1e-5 * a.abs().max()
