"""RiskAC on tasks whose next state depends on the action (the position carried with transaction costs).

What must hold: the paper's tasks train exactly as before (the iteration written out here from the paper's
formulas, bit for bit); with ``next_state`` the actor's gradient is that of the objective (14) through both the
reward and V_θ̄(s'(a)) (autograd of the formula written here); the compiled iteration equals the eager one; returns
along paths chain the state (hand sums); the Gymnasium front end and model files carry the new task."""

import copy
from pathlib import Path

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.utils import polyak_update

from is_envs.finance import HedgingWithCostsTask
from is_sb3 import RiskAC
from is_sb3.ac.task import TaskEnv, rollout_returns
from is_sb3.losses import critic_loss, exponential_utility_actor_loss

SETTINGS = {"batch_size": 256, "eval_freq": 0, "n_eval_paths": 500, "n_eval_states": 512, "device": "cpu"}


def _paper_iteration(model: RiskAC, tr: object) -> None:
    """One iteration of the IS paper's RiskAC (§4.1), the next state independent of the action: the critic on
    r(s, π(s), s') + V̄(s'), then the actor on (1/α)exp(−α(r(s, π(s), s') + V̄(s') − V̄(s))), then Polyak."""
    sim, policy, alpha = model.simulator, model.policy, model.risk_aversion
    obs = sim.observe(tr.t, tr.s)
    action = policy.action(obs).squeeze(-1)
    with th.no_grad():
        v_next = policy.target_value(sim.observe(tr.t + 1, tr.s_next)).masked_fill(tr.done, 0.0)
        v_now = policy.target_value(obs)
    value = policy.value(obs)
    target = sim.reward(tr.t, tr.s, action.detach(), tr.s_next) + v_next
    loss = critic_loss(model.critic_loss, value, target, alpha)
    policy.critic_optimizer.zero_grad(set_to_none=True)
    loss.backward()
    model._clip(policy.critic)
    policy.critic_optimizer.step()
    gain = sim.reward(tr.t, tr.s, action, tr.s_next) + v_next - v_now
    a_loss = exponential_utility_actor_loss(gain, alpha).mean()
    policy.actor_optimizer.zero_grad(set_to_none=True)
    a_loss.backward()
    model._clip(policy.actor)
    policy.actor_optimizer.step()
    polyak_update(policy.critic.parameters(), policy.critic_target.parameters(), model.tau)


@pytest.mark.parametrize("env", ["is_envs/QuadraticPenalty-v0", "is_envs/OptionHedging-v0"])
def test_the_papers_tasks_train_exactly_as_the_paper_writes_the_iteration(env: str) -> None:
    model = RiskAC("MlpPolicy", env, risk_aversion=2.0, seed=0, torch_compile=False, **SETTINGS)
    model.learn(3, log_interval=0)  # optimizer states exist
    twin = copy.deepcopy(model)
    for _ in range(5):
        tr = model.simulator.sample_transitions(model.batch_size)
        model._eager_step(tr)
        _paper_iteration(twin, tr)
    for (name, a), b in zip(model.policy.state_dict().items(), twin.policy.state_dict().values(), strict=True):
        assert th.equal(a, b), name


def _cost_model(torch_compile: bool = False, **kwargs: object) -> RiskAC:
    return RiskAC("MlpPolicy", HedgingWithCostsTask(cost=0.02), risk_aversion=1.0, seed=0, torch_compile=torch_compile,
                  **{**SETTINGS, **kwargs})  # fmt: skip


def test_the_actor_is_differentiated_through_the_next_states_value() -> None:
    model = _cost_model(max_grad_value=None, max_grad_norm=None)
    policy, sim = model.policy, model.simulator
    with th.no_grad():  # a target critic far from constant in the position, so V̄(s'(a)) matters
        for p in policy.critic_target.parameters():
            p.mul_(3.0)
    recorded: dict[str, list[th.Tensor]] = {}
    step = policy.actor_optimizer.step

    def record_then_step(*args: object, **kwargs: object) -> object:
        recorded["grads"] = [p.grad.detach().clone() for p in policy.actor.parameters()]
        return step(*args, **kwargs)

    policy.actor_optimizer.step = record_then_step  # type: ignore[method-assign]
    tr = sim.sample_transitions(model.batch_size)
    actor = copy.deepcopy(policy.actor)
    target = copy.deepcopy(policy.critic_target)
    model._eager_step(tr)

    def objective(with_next_value: bool) -> list[th.Tensor]:
        obs = sim.observe(tr.t, tr.s)
        a = actor(obs).squeeze(-1) * policy.action_scale
        held, price, price_next = tr.s[:, 1], tr.s[:, 0], tr.s_next[:, 0]
        traded = a.clamp(-2.0, 2.0)
        payoff = tr.done * price_next.clamp(min=0.0)  # strike K = S_0 = 0
        reward = traded * (price_next - price) - 0.02 * (traded - held).abs() - payoff
        reached = th.stack([price_next, traded], dim=-1)
        v_next = target(sim.observe(tr.t + 1, reached)).squeeze(-1) * policy.value_scale
        if not with_next_value:
            v_next = v_next.detach()
        v_now = (target(obs).squeeze(-1) * policy.value_scale).detach()
        gain = reward + v_next.masked_fill(tr.done, 0.0) - v_now
        z = -model.risk_aversion * gain  # (1/α)e^{−α·gain}, scaled by e^{−max z} per batch (the loss's docstring)
        loss = (th.exp(z - z.detach().max()) / model.risk_aversion).mean()
        return list(th.autograd.grad(loss, list(actor.parameters())))

    expected, through_reward_only = objective(True), objective(False)
    for got, want, other in zip(recorded["grads"], expected, through_reward_only, strict=True):
        th.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)
        assert not th.allclose(got, other, rtol=1e-2, atol=1e-6)  # the V̄(s'(a)) term is not negligible here


def test_compiled_iteration_equals_the_eager_one_with_costs() -> None:
    eager, fast = _cost_model(False), _cost_model(True)
    eager.learn(100, log_interval=0)
    fast.learn(100, log_interval=0)
    assert fast._compiled is not None and not fast._compile_unavailable
    for (name, a), b in zip(eager.policy.state_dict().items(), fast.policy.state_dict().values(), strict=True):
        a, b = a.double(), b.double()
        assert (b - a).abs().max() <= 1e-4 * a.abs().max() + 1e-9, name


def test_returns_along_paths_follow_the_positions_chosen() -> None:
    task = HedgingWithCostsTask(cost=0.03)
    sim = task.simulator("cpu", th.float64, seed=1)
    paths = sim.sample_paths(64)
    prices = paths[..., 0]
    payoff = (prices[:, -1] - task.k).clamp(min=0)
    # a policy that reads the position it holds: buy 0.1 more each period
    got = rollout_returns(sim, lambda t, s: s[:, 1] + 0.1, paths)
    positions = 0.1 * th.arange(1, task.horizon + 1, dtype=th.float64)
    want = (positions * prices.diff(dim=1)).sum(dim=1) - 0.03 * 0.1 * task.horizon - payoff
    th.testing.assert_close(got, want)
    # the frictionless task's returns are those of the same positions without the costs
    frictionless = task.simulator("cpu", th.float64, seed=1)
    assert th.equal(frictionless.sample_paths(64), paths)


def test_task_env_chains_the_state_and_charges_costs() -> None:
    task = HedgingWithCostsTask(cost=0.05)
    env = TaskEnv(task)
    obs, _ = env.reset(seed=3)
    assert obs.shape == (3,) and obs[2] == 0.0
    obs, r1, *_ = env.step(np.array([0.5]))
    assert obs[2] == np.float32(0.5)
    obs, r2, *_ = env.step(np.array([0.5]))  # no trade, no cost
    obs, r3, *_ = env.step(np.array([0.2]))
    assert obs[2] == np.float32(0.2)
    path = env._path[:, 0].numpy()  # the episode's prices
    np.testing.assert_allclose([r1, r2, r3], [0.5 * (path[1] - path[0]) - 0.025, 0.5 * (path[2] - path[1]),
                                              0.2 * (path[3] - path[2]) - 0.015], rtol=1e-9)  # fmt: skip


def test_model_files_of_the_cost_task_load_safely_and_exactly(tmp_path: Path) -> None:
    model = _cost_model()
    model.learn(20, log_interval=0)
    model.save(tmp_path / "m.zip")
    loaded = RiskAC.load(tmp_path / "m.zip")
    assert isinstance(loaded.task, HedgingWithCostsTask) and loaded.task.cost == 0.02
    assert loaded.observation_space.shape == (3,)
    obs = np.array([[0.0, 0.0, 0.0], [0.5, 0.3, 0.7]], dtype=np.float32)
    np.testing.assert_array_equal(loaded.predict_value(obs), model.predict_value(obs))
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
