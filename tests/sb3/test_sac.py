"""RiskSAC and DiscreteRiskSAC: targets by hand, stock-SAC equivalence, stability, save/load, seeding."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3 import SAC

from is_envs.grid import evaluate
from is_sb3 import DiscreteRiskSAC, RiskSAC
from is_sb3.discrete_sac import discrete_sac_target
from is_sb3.discrete_sac.policies import sample_categorical
from is_sb3.losses import itakura_saito
from is_sb3.sac.risk_sac import _CriticLossAsMSE

SAC_KW = {"learning_starts": 40, "batch_size": 16, "seed": 0, "device": "cpu", "policy_kwargs": {"net_arch": [16, 16]}}
DSAC_KW = {"learning_starts": 100, "batch_size": 16, "train_freq": 4, "buffer_size": 2000, "seed": 0, "device": "cpu",
           "policy_kwargs": {"net_arch": [32]}}  # fmt: skip


def same_params(a: th.nn.Module, b: th.nn.Module) -> bool:
    return all(th.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def test_risk_sac_with_mse_is_stock_sac_and_is_differs() -> None:
    stock = SAC("MlpPolicy", "Pendulum-v1", **SAC_KW).learn(80)
    mse = RiskSAC("MlpPolicy", "Pendulum-v1", risk_aversion=7.0, critic_loss="mse", **SAC_KW).learn(80)
    risky = RiskSAC("MlpPolicy", "Pendulum-v1", risk_aversion=0.5, critic_loss="is", **SAC_KW).learn(80)
    assert same_params(stock.policy, mse.policy)
    assert not same_params(stock.policy, risky.policy)


def test_risk_sac_critic_loss_is_the_sum_of_per_critic_losses() -> None:
    q1, q2, y = th.randn(8, 1), th.randn(8, 1), th.randn(8, 1)
    f = _CriticLossAsMSE("is", 0.7)
    sb3_form = 0.5 * sum(f.mse_loss(q, y) for q in (q1, q2))  # what SB3's SAC.train computes
    by_hand = itakura_saito(q1, y, 0.7).mean() + itakura_saito(q2, y, 0.7).mean()
    th.testing.assert_close(sb3_form, by_hand)
    assert f.relu is th.nn.functional.relu  # everything else is torch.nn.functional


def test_risk_sac_on_a_finance_env_and_save_load(tmp_path: Path) -> None:
    model = RiskSAC("MlpPolicy", "is_envs/QuadraticPenalty-v0", risk_aversion=2.0, critic_loss="sp", **SAC_KW)
    model.learn(60)
    model.save(tmp_path / "m.zip")
    loaded = RiskSAC.load(tmp_path / "m.zip", device="cpu")
    assert (loaded.risk_aversion, loaded.critic_loss) == (2.0, "sp")
    obs = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0])


def test_sampled_target_by_hand() -> None:
    logits = th.tensor([[0.0, math.log(3.0)]])  # π' = (1/4, 3/4)
    next_q = th.tensor([[2.0, -1.0]])
    y = discrete_sac_target(
        th.tensor([1.0]), th.tensor([0.0]), logits, next_q, 0.9, 0.5, 0.1, "sampled", th.tensor([1])
    )
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    assert float(y) == pytest.approx(1.0 + 0.9 * (0.5 * entropy - 1.0))
    y_done = discrete_sac_target(
        th.tensor([1.0]), th.tensor([1.0]), logits, next_q, 0.9, 0.5, 0.1, "sampled", th.tensor([1])
    )
    assert float(y_done) == 1.0


def test_enders_target_by_hand_and_its_risk_neutral_limit() -> None:
    logits = th.tensor([[0.0, math.log(3.0)]], dtype=th.float64)
    next_q = th.tensor([[2.0, -1.0]], dtype=th.float64)
    r, d, gamma, kappa, alpha = th.tensor([1.0], dtype=th.float64), th.tensor([0.0], dtype=th.float64), 0.9, 0.5, 0.8
    entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
    beta = -alpha
    risk = math.log(0.25 * math.exp(beta * gamma * 2.0) + 0.75 * math.exp(beta * gamma * -1.0)) / beta
    y = discrete_sac_target(r, d, logits, next_q, gamma, kappa, alpha, "enders")
    assert float(y) == pytest.approx(1.0 + gamma * kappa * entropy + risk)
    neutral = 1.0 + gamma * kappa * entropy + gamma * (0.25 * 2.0 + 0.75 * -1.0)
    for tiny in (0.0, 1e-9):
        assert float(discrete_sac_target(r, d, logits, next_q, gamma, kappa, tiny, "enders")) == pytest.approx(
            neutral, abs=1e-8
        )


@pytest.mark.parametrize("alpha", [5.0, -5.0])
def test_targets_stay_finite_for_large_q_spreads(alpha: float) -> None:
    logits = th.randn(64, 5)
    next_q = th.randn(64, 5) * 1e4
    for target in ("sampled", "enders"):
        y = discrete_sac_target(
            th.zeros(64), th.zeros(64), logits, next_q, 0.99, 0.1, alpha, target, th.randint(0, 5, (64,))
        )
        assert th.isfinite(y).all()
        assert th.all(y <= 0.99 * (next_q.max(1).values + 0.1 * math.log(5)) + 1e-2)


def test_sample_categorical_draws_what_torch_categorical_draws() -> None:
    """Same generator state, same draws as ``Categorical(logits).sample()``, for flat, peaked and masked rows."""
    g = th.Generator().manual_seed(3)
    logits = th.randn(4096, 5, generator=g) * th.tensor([0.01, 1.0, 30.0]).repeat_interleave(1366)[:4096, None]
    logits[::7, 2] = -math.inf  # an impossible action
    th.manual_seed(11)
    expected = th.distributions.Categorical(logits=logits).sample()
    th.manual_seed(11)
    drawn = sample_categorical(logits)
    assert drawn.dtype == th.int64 and drawn.shape == (4096,)
    assert th.equal(drawn, expected)
    assert not (drawn[::7] == 2).any()


def test_stochastic_predict_draws_what_torch_categorical_draws() -> None:
    """The action taken at each training step (``predict(deterministic=False)``, one observation) is the draw of
    ``Categorical(logits=actor(obs)).sample()`` from the same generator state: the training trajectories are those
    of the distribution's own sampler."""
    model = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", **DSAC_KW)
    obs = np.stack([model.observation_space.sample() for _ in range(64)])
    with th.no_grad():
        logits = model.policy.actor(th.as_tensor(obs).float())
    for i in range(64):
        th.manual_seed(i)
        expected = th.distributions.Categorical(logits=logits[i : i + 1]).sample()
        th.manual_seed(i)
        action, _ = model.predict(obs[i : i + 1], deterministic=False)
        assert action.tolist() == expected.tolist()


@pytest.mark.skipif(not th.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize(("target", "loss"), [("sampled", "is"), ("sampled", "emse"), ("enders", "huber")])
def test_cuda_update_has_no_host_syncs(target: str, loss: str) -> None:
    model = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", target=target, critic_loss=loss,  # type: ignore[arg-type]
                            **{**DSAC_KW, "device": "cuda", "learning_starts": 10_000})  # fmt: skip
    assert next(model.policy.critics[0].parameters()).is_cuda  # else the sync check below would prove nothing
    model.learn(120)
    batches = [model.replay_buffer.sample(16) for _ in range(4)]  # type: ignore[union-attr]  # host-to-device copies
    model.update(batches[0], 0.1, 1.0)  # first call: allocations, cuDNN/cuBLAS handles
    th.cuda.synchronize()
    th.cuda.set_sync_debug_mode("error")
    try:
        for data in batches[1:]:
            model.update(data, 0.1, 1.0)
    finally:
        th.cuda.set_sync_debug_mode("default")


def test_short_discrete_run_beats_the_uniform_random_policy() -> None:
    model = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", risk_aversion=0.1, critic_loss="is", **DSAC_KW)
    model.learn(1200)

    class Uniform:
        rng = np.random.default_rng(0)

        def predict(self, obs, state=None, episode_start=None, deterministic=True):  # type: ignore[no-untyped-def]
            return self.rng.integers(0, 5, len(obs)), None

    trained = evaluate(model, "gradient1", n_episodes=20, seed=1)
    random = evaluate(Uniform(), "gradient1", n_episodes=20, seed=1)
    assert trained.mean() > random.mean() + 30


def test_discrete_save_load_and_determinism(tmp_path: Path) -> None:
    a = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", target="enders", **DSAC_KW).learn(200)
    b = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", target="enders", **DSAC_KW).learn(200)
    assert same_params(a.policy, b.policy)
    a.save(tmp_path / "d.zip")
    loaded = DiscreteRiskSAC.load(tmp_path / "d.zip", device="cpu")
    assert (loaded.target, loaded.risk_aversion, loaded.ent_coef) == ("enders", 0.1, a.ent_coef)
    assert same_params(a.policy, loaded.policy)


def test_entropy_schedule_and_reward_scaling() -> None:
    model = DiscreteRiskSAC(
        "CnnPolicy", "is_envs/ItemPickup-v0", ent_coef_zero_at=0.4, ent_coef_zero_at_step=None, **DSAC_KW
    )
    model._current_progress_remaining = 0.7
    assert model.current_ent_coef() == pytest.approx(math.exp(-2))
    model._current_progress_remaining = 0.6
    assert model.current_ent_coef() == 0.0
    model.learn(150)
    buf = model.replay_buffer
    assert model._reward_scale() == pytest.approx(1 / np.std(buf.rewards[: buf.pos]))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="critic_loss"):
        RiskSAC("MlpPolicy", "Pendulum-v1", critic_loss="huber")
    with pytest.raises(ValueError, match="risk_aversion"):
        RiskSAC("MlpPolicy", "Pendulum-v1", risk_aversion=math.inf)
    with pytest.raises(ValueError, match="target"):
        DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", target="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ent_coef_zero_at"):
        DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", ent_coef_zero_at=2.0)


def test_validation_and_shift_callbacks(tmp_path: Path) -> None:
    from is_sb3.callbacks import GridValidationCallback, ShiftTableCallback

    model = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", **DSAC_KW)
    best = tmp_path / "best.zip"
    val = GridValidationCallback(
        eval_freq=100, episodes="gradient2", n_episodes=3, best_model_path=best, save_after=150
    )
    shift = ShiftTableCallback(n_episodes=2)
    model.learn(300, callback=[val, shift])
    assert [step for step, _ in val.history] == [100, 200, 300]
    assert best.is_file()  # saved after step 150 only
    expected = evaluate(model, "gradient2", "validation", 3, seed=0).mean()
    assert val.history[-1][1] == pytest.approx(expected)  # the batched evaluator, same episodes
    assert len(shift.table) == 12 and all(np.isfinite(r["relative_to_greedy"]) for r in shift.table.values())


def test_an_agent_with_a_clock_trains_and_is_validated_with_its_clock() -> None:
    import gymnasium as gym

    from is_sb3.callbacks import GridValidationCallback

    env = gym.make("is_envs/ItemPickup-v0", episodes="gradient1", split="training", clock=True)
    model = DiscreteRiskSAC("CnnPolicy", env, **DSAC_KW)
    convs = [m for m in model.policy.modules() if isinstance(m, th.nn.Conv2d) and m.out_channels == 32]
    assert len(convs) == 5 and all(c.in_channels == 4 for c in convs)  # actor, two critics, two target critics
    val = GridValidationCallback(eval_freq=100, episodes="gradient2", n_episodes=2)
    model.learn(200, callback=val)  # 4-channel observations in training and in the batched validation
    assert [step for step, _ in val.history] == [100, 200] and np.isfinite(val.history[-1][1])


def test_training_trace_records_pre_clip_gradient_norms_and_q_ranges() -> None:
    from is_sb3.callbacks import TrainingTraceCallback

    model = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", max_grad_norm=1e-6, **DSAC_KW)
    trace = TrainingTraceCallback(every=100)
    model.learn(300, callback=trace)
    assert [step for step, _ in trace.history] == [100, 200, 300]
    assert trace.history[0][1] == {}  # warm-up: no train call before learning_starts = 100
    for _, window in trace.history[1:]:
        assert set(window) == {"critic_loss", "critic_grad_norm", "q_mean", "q_abs_max"}
        assert all(stats["nonfinite"] == 0 for stats in window.values())
        assert window["critic_grad_norm"]["mean"] > 1e-3  # the norm before clipping to 1e-6
        assert window["q_abs_max"]["max"] >= abs(window["q_mean"]["mean"])
    with pytest.raises(ValueError, match="every"):
        TrainingTraceCallback(every=0)


def _grads_before_each_step(model: DiscreteRiskSAC) -> dict[str, list[th.Tensor]]:
    """The gradients each optimizer applies at the next update (after clipping), by optimizer name, and
    its parameters just before (``<name>_params``)."""
    seen: dict[str, list[th.Tensor]] = {}
    for name in ("critic_optimizer", "actor_optimizer"):
        opt = getattr(model.policy, name)

        def hook(optimizer: th.optim.Optimizer, args: object, kwargs: object, name: str = name) -> None:
            params = [p for g in optimizer.param_groups for p in g["params"]]
            seen[name] = [p.grad.detach().clone() for p in params]
            seen[name + "_params"] = [p.detach().clone() for p in params]

        opt.register_step_pre_hook(hook)
    return seen


def _twin_models(**kwargs: object) -> tuple[DiscreteRiskSAC, DiscreteRiskSAC]:
    """Two models with the same seed and replay buffer, ready for one update on the same batch."""
    base = {**DSAC_KW, "max_grad_norm": None, "learning_starts": 10_000}
    pair = []
    for extra in kwargs.pop("variants"):  # type: ignore[attr-defined]
        model = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", **{**base, **kwargs, **extra})
        model.learn(120)  # fills the buffer, no update yet (learning_starts)
        pair.append(model)
    return pair[0], pair[1]


def test_l2_penalty_is_enders_kernel_regulariser_on_weights_only() -> None:
    """Hand computation: the gradient applied with l2 = c minus the one with l2 = 0, on the same batch
    from the same state, is 2·c·W for every weight tensor and exactly 0 for every bias."""
    c = 0.05
    plain, penalised = _twin_models(variants=[{"l2": 0.0}, {"l2": c}])
    assert all(g["weight_decay"] == 0 for g in penalised.policy.critic_optimizer.param_groups)  # no Adam decay
    grads_plain, grads_pen = _grads_before_each_step(plain), _grads_before_each_step(penalised)
    for model in (plain, penalised):  # the same minibatch and next actions for both
        np.random.seed(1)  # noqa: NPY002  (SB3's replay buffer samples from the legacy global generator)
        th.manual_seed(1)
        model.train(1, batch_size=16)
    for name in ("critic_optimizer", "actor_optimizer"):
        for w0, w, g0, g1 in zip(grads_plain[name + "_params"], grads_pen[name + "_params"], grads_plain[name],
                                 grads_pen[name], strict=True):  # fmt: skip
            assert th.equal(w0, w)  # the same state before the update
            expected = 2 * c * w if w.ndim >= 2 else th.zeros_like(w)
            th.testing.assert_close(g1 - g0, expected, rtol=1e-4, atol=1e-7)


def test_each_critic_is_clipped_on_its_own() -> None:
    """With max_grad_norm = m, each critic's applied gradient has norm m (not the two together)."""
    m = 1e-3
    model = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", **{**DSAC_KW, "max_grad_norm": m,
                                                                     "learning_starts": 10_000})  # fmt: skip
    model.learn(120)
    grads = _grads_before_each_step(model)
    model.train(1, batch_size=16)
    sizes = [sum(1 for _ in critic.parameters()) for critic in model.policy.critics]
    first, second = grads["critic_optimizer"][: sizes[0]], grads["critic_optimizer"][sizes[0] :]
    for part in (first, second, grads["actor_optimizer"]):
        assert th.nn.utils.get_total_norm(part).item() == pytest.approx(m, rel=1e-4)


def test_entropy_coefficient_switches_off_at_enders_absolute_step() -> None:
    from is_sb3.discrete_sac.discrete_sac import ENDERS_ENT_COEF_ZERO_AT_STEP

    assert ENDERS_ENT_COEF_ZERO_AT_STEP == 800_000
    model = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", **DSAC_KW)  # default: Enders' schedule
    assert model.ent_coef_zero_at is None and model.ent_coef_zero_at_step == 800_000
    model._current_progress_remaining = 0.01  # late in a run: the fraction no longer matters
    for step, kappa in ((0, math.exp(-2)), (799_999, math.exp(-2)), (800_000, 0.0), (2_000_000, 0.0)):
        model.num_timesteps = step
        assert model.current_ent_coef() == pytest.approx(kappa)
    both = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", ent_coef_zero_at=0.4, ent_coef_zero_at_step=1000,
                           **DSAC_KW)  # fmt: skip
    both.num_timesteps, both._current_progress_remaining = 999, 0.7  # neither reached
    assert both.current_ent_coef() > 0
    both._current_progress_remaining = 0.6  # the fraction first
    assert both.current_ent_coef() == 0.0
    both.num_timesteps, both._current_progress_remaining = 1000, 0.9  # the step first
    assert both.current_ent_coef() == 0.0
    for bad in (-1, 2.5):
        with pytest.raises(ValueError, match="ent_coef_zero_at_step"):
            DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", ent_coef_zero_at_step=bad)  # type: ignore[arg-type]
