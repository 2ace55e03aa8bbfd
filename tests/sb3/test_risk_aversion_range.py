"""One RiskAC for a range of risk aversions: per-sample α in the losses, α as a network input, and the SB3 contract
(save/load, exact resume, compiled = eager) with it.

Independent truths: the per-sample losses equal the one-α losses sample by sample (an exact identity); the input
feature maps the range's ends to ∓1; a resumed run equals the uninterrupted one bit for bit."""

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.callbacks import BaseCallback

from is_sb3 import RiskAC
from is_sb3.losses import critic_loss, exponential_utility_actor_loss

SETTINGS = {"batch_size": 256, "eval_freq": 0, "n_eval_paths": 500, "n_eval_states": 512, "device": "cpu"}


def _model(torch_compile: bool = False, seed: int = 0) -> RiskAC:
    return RiskAC("MlpPolicy", "is_envs/OptionHedging-v0", risk_aversion=1.0, risk_aversion_range=(0.1, 10.0),
                  seed=seed, torch_compile=torch_compile, **SETTINGS)  # fmt: skip


@pytest.mark.parametrize("loss", ["is", "mse"])
def test_per_sample_risk_aversions_give_each_sample_its_own_loss(loss: str) -> None:
    gen = th.Generator().manual_seed(0)
    v, y = th.randn(64, generator=gen, dtype=th.float64), th.randn(64, generator=gen, dtype=th.float64) * 3
    alphas = th.exp(th.empty(64, dtype=th.float64).uniform_(math.log(0.1), math.log(50), generator=gen))
    per_sample = critic_loss(loss, v, y, alphas, reduction="none")
    one_by_one = th.stack(
        [critic_loss(loss, v[i : i + 1], y[i : i + 1], float(alphas[i]), "none")[0] for i in range(64)]
    )
    assert th.equal(per_sample, one_by_one)
    gain = th.randn(64, generator=gen, dtype=th.float64)
    z = -alphas * gain
    th.testing.assert_close(exponential_utility_actor_loss(gain, alphas), th.exp(z - z.max()) / alphas)


@pytest.mark.parametrize("loss", ["emse", "sp"])
def test_per_sample_risk_aversions_are_refused_by_the_other_losses(loss: str) -> None:
    with pytest.raises(ValueError, match="per-sample"):
        critic_loss(loss, th.zeros(4), th.zeros(4), th.ones(4))


def test_bad_per_sample_risk_aversions_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        critic_loss("is", th.zeros(4), th.zeros(4), th.ones(3))
    with pytest.raises(ValueError, match="finite"):
        critic_loss("is", th.zeros(2), th.zeros(2), th.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="finite"):
        exponential_utility_actor_loss(th.zeros(2), th.tensor([1.0, 0.0]))


@pytest.mark.parametrize("bad", [(1.0, 0.5), (0.0, 1.0), (-1.0, 2.0), (0.1, float("inf")), (0.1,), "ab", (0.1, 2e6)])
def test_bad_ranges_are_refused_naming_the_parameter(bad: object) -> None:
    with pytest.raises(ValueError, match="risk_aversion_range"):
        RiskAC("MlpPolicy", "is_envs/OptionHedging-v0", risk_aversion_range=bad, **SETTINGS)


def test_the_default_risk_aversion_must_lie_in_the_range_and_the_loss_be_is() -> None:
    with pytest.raises(ValueError, match="risk_aversion"):
        RiskAC("MlpPolicy", "is_envs/OptionHedging-v0", risk_aversion=20.0, risk_aversion_range=(0.1, 10), **SETTINGS)
    with pytest.raises(ValueError, match="critic_loss"):
        RiskAC("MlpPolicy", "is_envs/OptionHedging-v0", critic_loss="sp", risk_aversion_range=(0.1, 10), **SETTINGS)


def test_risk_aversion_is_an_input_of_both_networks() -> None:
    model = _model()
    policy = model.policy
    obs = th.tensor([[0.0, 0.0], [0.5, 0.2]])
    # one output scale for the whole range, that of its most risk-averse end (1/max(1, high)), as a one-α agent at
    # α = high has: a per-sample scale 1/max(1, α) made the networks' outputs differ 10× across the range and the
    # agent failed (benchmarks/hedging_alpha_range.py)
    assert policy.value_scale == policy.action_scale == 1 / 10
    # two features of α: u, linear in log α over the range, and α/high (the risk premium is about linear in α)
    for alpha, u in ((0.1, -1.0), (10.0, 1.0), (1.0, 0.0)):
        x = policy._inputs(obs, alpha)
        th.testing.assert_close(x[:, 2], th.full((2,), u), atol=1e-6, rtol=0)
        th.testing.assert_close(x[:, 3], th.full((2,), alpha / 10), atol=1e-7, rtol=0)
        th.testing.assert_close(x[:, :2], obs)
        th.testing.assert_close(policy.value(obs, alpha), policy.critic(x).squeeze(-1) / 10)
        th.testing.assert_close(policy.action(obs, alpha), policy.actor(x) / 10)
    values = [model.predict_value(obs.numpy(), risk_aversion=a) for a in (0.1, 1.0, 10.0)]
    assert not np.allclose(values[0], values[1]) and not np.allclose(values[1], values[2])
    np.testing.assert_array_equal(model.predict_value(obs.numpy()), values[1])  # the default α
    a01, _ = model.predict(obs.numpy(), deterministic=True, risk_aversion=0.1)
    np.testing.assert_allclose(a01.reshape(-1), policy.action(obs, 0.1).detach().numpy().reshape(-1).clip(-2, 2))
    with pytest.raises(ValueError, match=r"risk_aversion must be in the trained range \[0.1, 10\]"):
        model.predict_value(obs.numpy(), risk_aversion=20.0)
    one = RiskAC("MlpPolicy", "is_envs/OptionHedging-v0", **SETTINGS)
    with pytest.raises(ValueError, match="one risk aversion"):
        one.predict_value(obs.numpy(), risk_aversion=1.0)
    with pytest.raises(ValueError, match="one risk aversion"):
        one.predict(obs.numpy(), risk_aversion=1.0)


def test_save_load_and_resume_are_exact(tmp_path: Path) -> None:
    class StopAt(BaseCallback):  # an interruption of the 40-iteration run after 17 iterations
        def _on_step(self) -> bool:
            return self.num_timesteps < 17

    whole = _model().learn(40, log_interval=0)
    part = _model().learn(40, log_interval=0, callback=StopAt())
    part.save(tmp_path / "part.zip")
    resumed = RiskAC.load(tmp_path / "part.zip", device="cpu")
    assert resumed.risk_aversion_range == (0.1, 10.0)
    obs = np.array([[0.2, 0.1]], dtype=np.float32)
    np.testing.assert_array_equal(
        resumed.predict_value(obs, risk_aversion=3.0), part.predict_value(obs, risk_aversion=3.0)
    )
    resumed.learn(40 - 17, reset_num_timesteps=False, log_interval=0)
    for (name, a), b in zip(whole.policy.state_dict().items(), resumed.policy.state_dict().values(), strict=True):
        assert th.equal(a, b), name


def test_compiled_iteration_equals_the_eager_one_over_a_range() -> None:
    eager, fast = _model(False), _model(True)
    eager.learn(200, log_interval=0)
    fast.learn(200, log_interval=0)
    assert fast._compiled is not None and not fast._compile_unavailable
    for (name, a), b in zip(eager.policy.state_dict().items(), fast.policy.state_dict().values(), strict=True):
        a, b = a.double(), b.double()
        assert (b - a).abs().max() <= 1e-4 * a.abs().max() + 1e-9, name
    assert copy.deepcopy(fast.policy.risk_aversion_range) == (0.1, 10.0)
