"""The Fig. 4 report of benchmarks/item_pickup.py: agents labelled by target and loss, mean ± std over seeds."""

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from benchmarks import common, item_pickup
from is_envs.grid import DISTRIBUTIONS


def _run(agent: str, seed: int, level: float) -> dict[str, Any]:
    loss, target, alpha = item_pickup.AGENTS[agent]
    shift = {n: {"mean_return": level + i, "relative_to_greedy": (level + i) / 200, "greedy_mean_return": 200.0}
             for i, n in enumerate(DISTRIBUTIONS)}  # fmt: skip
    history = [(5000 * k, level * k / 4) for k in range(1, 5)]
    return {"agent": agent, "loss": loss, "target": target, "alpha": alpha, "gamma": 0.99, "seed": seed,
            "steps": 20_000, "schedule_steps": 20_000, "kappa_off": 800_000, "batch_size": 512, "shift": shift,
            "validation": history, "validation_training": history, "trace": []}  # fmt: skip


def test_report_gives_mean_and_std_over_seeds_per_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "_out_dir", tmp_path)
    runs = [_run("sac", 0, 100.0), _run("sac", 1, 140.0), _run("is", 0, 50.0)]
    runs[2]["shift"]["gradient1"]["relative_to_greedy"] = 0.0  # only the twelve-distribution mean sees it
    payload = item_pickup.report(runs, "t")
    sac, is_ = payload["table"]["SAC (Enders, α=0) γ=0.99"], payload["table"]["is α=0.1 γ=0.99"]
    assert sac["seeds"] == 2 and is_["seeds"] == 1
    assert sac["mean_return"]["gradient1"] == 120.0 and sac["std_return"]["gradient1"] == 20.0
    per_seed = [np.mean([(100 + i) / 200 for i in range(12)]), np.mean([(140 + i) / 200 for i in range(12)])]
    assert sac["relative_to_greedy_per_seed"] == pytest.approx(per_seed)
    assert sac["relative_to_greedy_std"] == pytest.approx(np.std(per_seed))
    shifted = [np.mean([(level + i) / 200 for i in range(1, 12)]) for level in (100, 140)]  # gradient1 is i = 0
    assert next(iter(DISTRIBUTIONS)) == item_pickup.TRAINING
    assert sac["relative_to_greedy_shifted_per_seed"] == pytest.approx(shifted)
    assert sac["relative_to_greedy_shifted_std"] == pytest.approx(np.std(shifted))
    text = (tmp_path / "item_pickup_t.md").read_text()
    assert "| SAC (Enders, α=0) | 0.99 | 20000 | 512 | 2 | 120.0 ± 20.0 |" in text
    assert "| is α=0.1 | 0.99 | 20000 | 512 | 1 | 50.0 | 51.0 |" in text  # one seed: no ± column value
    assert "| 0.26 | 0.28 |\n" in text  # is: 11 · 56 / 200 / 12 over the twelve, 56 / 200 over the eleven shifted
    assert (tmp_path / "item_pickup_t.png").stat().st_size > 10_000
    assert item_pickup.agent_label({"loss": "mse", "alpha": 0.0}) == "SAC (mse, α=0)"  # the runs before Enders'


def test_agents_are_compared_by_welch_t_per_discount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "_out_dir", tmp_path)
    runs = [_run("sac", 0, 100.0), _run("sac", 1, 140.0), _run("is", 0, 60.0), _run("is", 1, 70.0), _run("is", 2, 86.0)]
    runs += [dict(_run("sp", s, 90.0 + s), gamma=1.0) for s in range(2)] + [dict(_run("is", 0, 1.0), gamma=1.0)]
    runs[2]["shift"]["gradient1"]["relative_to_greedy"] = 0.0  # only the twelve-distribution mean sees it
    payload = item_pickup.report(runs, "t")
    (pair,) = payload["comparisons"]  # γ = 1: one IS seed, no pair; SP at γ = 1 never meets γ = 0.99's agents
    assert (pair["gamma"], pair["a"], pair["b"], pair["seeds"]) == (0.99, "SAC (Enders, α=0)", "is α=0.1", [2, 3])
    x = np.array([np.mean([(level + i) / 200 for i in range(12)]) for level in (100.0, 140.0)])
    y = np.array([np.mean([(level + i) / 200 for i in range(12)]) for level in (60.0, 70.0, 86.0)])
    y[0] -= 60 / 200 / 12  # IS seed 0's gradient1 ratio set to 0
    vx, vy = x.var(ddof=1) / 2, y.var(ddof=1) / 3  # Welch: unpooled variances, Welch-Satterthwaite dof
    t = (x.mean() - y.mean()) / np.sqrt(vx + vy)
    dof = (vx + vy) ** 2 / (vx**2 / 1 + vy**2 / 2)
    assert pair["all"]["difference"] == pytest.approx(x.mean() - y.mean())
    assert pair["all"]["t"] == pytest.approx(t)
    assert pair["all"]["p"] == pytest.approx(2 * stats.t.sf(abs(t), dof))
    assert pair["shifted"]["difference"] == pytest.approx((140 + 100) / 400 - (60 + 70 + 86) / 600)  # i: 1..11
    assert "| 0.99 | SAC (Enders, α=0) | is α=0.1 | 2, 3 | +0.248 |" in (tmp_path / "item_pickup_t.md").read_text()


def test_greedy_gap_splits_the_gap_into_items_and_moves(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks import item_pickup_greedy_gap
    from is_envs.grid import GreedyPolicy, evaluate, released_episodes
    from is_sb3 import DiscreteRiskSAC

    monkeypatch.setattr(common, "_out_dir", tmp_path)
    model = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", seed=0, device="cpu")  # untrained
    model.save(tmp_path / "m.zip")
    with pytest.raises(ValueError, match=r"not a \.zip"):
        item_pickup_greedy_gap.model_file(tmp_path / "nothing")
    out = item_pickup_greedy_gap.main([str(tmp_path / "m.zip"), "--quick", "--tag", "t", "--out", str(tmp_path)])
    greedy = out["rows"]["greedy"]["models"]["greedy"]
    assert (
        greedy["gradient1"]["return"] == evaluate(GreedyPolicy(), released_episodes("gradient1"), n_episodes=20).mean()
    )
    (row,) = [r for key, r in out["rows"].items() if key != "greedy"]
    mine = row["models"][str(tmp_path / "m.zip")]
    mine_return = evaluate(model, released_episodes("hotspots"), n_episodes=20).mean()
    assert mine["hotspots"]["return"] == pytest.approx(mine_return)
    gap = greedy["hotspots"]["return"] - mine_return
    assert mine["hotspots"]["items_gap"] + mine["hotspots"]["moves_gap"] == pytest.approx(gap)
    assert (tmp_path / "item_pickup_greedy_gap_t.png").is_file()


def test_standing_mass_reads_position_walls_and_probabilities() -> None:
    """A policy that always moves left from the depot (2, 0) bumps the wall: it stands on every step, and its
    probability on standing actions is π(stay) + π(left) = 0.1 + 0.4, recorded on the steps greedy would move."""
    import torch as th

    from benchmarks.item_pickup_greedy_gap import StandingMass
    from is_envs.grid import GreedyPolicy, episode_events, released_episodes

    probs = th.tensor([0.1, 0.2, 0.2, 0.1, 0.4])

    class Left:
        class policy:  # the attribute a DiscreteRiskSAC model has
            @staticmethod
            def logits(obs: th.Tensor) -> th.Tensor:
                return probs.log().expand(len(obs), -1)

    recorder = StandingMass(Left())
    events = episode_events(recorder, released_episodes("gradient1"), n_episodes=5, reference=GreedyPolicy())
    assert events.wall_bumps.sum() == 5 * 200 and events.stood_for_move.sum() > 0
    assert sum(len(m) for m in recorder.masses) == events.stood_for_move.sum()
    assert recorder.mean_mass() == pytest.approx(0.5)
    assert recorder.moved_for_stand == 0 and np.isnan(recorder.empty_grid_share())  # it never moves

    class Up:  # from the depot (2, 0): two moves up, then the wall
        class policy:
            @staticmethod
            def logits(obs: th.Tensor) -> th.Tensor:
                return probs[[0, 4, 2, 3, 1]].log().expand(len(obs), -1)  # most probable: up

    recorder = StandingMass(Up())
    events = episode_events(recorder, released_episodes("gradient1"), n_episodes=5, reference=GreedyPolicy())
    assert events.moves.sum() == 5 * 2
    assert recorder.moved_for_stand == events.moved_for_stand.sum()
    assert 5 <= recorder.moved_on_empty_grid <= recorder.moved_for_stand <= 10  # the first step: an empty grid


def test_returns_to_go_are_the_discounted_sums_of_the_rewards_still_to_come() -> None:
    from benchmarks.item_pickup_critic_time import returns_to_go

    rewards = np.random.default_rng(0).normal(size=(3, 7))
    for gamma in (1.0, 0.9):
        expected = [[sum(gamma ** (k - t) * r[k] for k in range(t, 7)) for t in range(7)] for r in rewards]
        assert returns_to_go(rewards, gamma) == pytest.approx(np.array(expected))


def test_critic_by_step_reads_q_of_the_action_taken_in_each_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch as th

    from benchmarks import item_pickup_critic_time
    from benchmarks.item_pickup_critic_time import ActionRecorder, critic_by_step
    from is_envs.grid import GreedyPolicy, episode_events, released_episodes
    from is_sb3 import DiscreteRiskSAC

    greedy = episode_events(GreedyPolicy(), released_episodes("gradient1"))
    assert greedy.step_rewards is not None and greedy.step_rewards.shape == (100, 200)
    assert greedy.step_rewards.sum(axis=1).mean() == pytest.approx(215.06, abs=0.005)  # the greedy reference, 2 d.p.
    model = DiscreteRiskSAC("CnnPolicy", "is_envs/ItemPickup-v0", seed=0, device="cpu", gamma=1.0)  # untrained
    found = critic_by_step(model, n_episodes=3)
    recorder = ActionRecorder(model)
    events = episode_events(recorder, released_episodes("gradient1"), n_episodes=3)
    for t in (0, 57, 199):  # Q of the taken action, the smaller of the twin critics, averaged over the episodes
        with th.no_grad():
            q = model.policy.q_values(th.as_tensor(recorder.observations[t])).min(dim=0).values
        taken = q[th.arange(3), th.as_tensor(recorder.actions[t])]
        assert found["q"][t] == pytest.approx(float(taken.mean()), rel=1e-5)
    sigma = np.std(events.step_rewards)
    assert found["g"][0] == pytest.approx(events.returns.mean() / sigma)  # γ = 1: the whole episode's return
    assert found["g"][199] == pytest.approx(events.step_rewards[:, 199].mean() / sigma)
    assert model.risk_aversion > 0  # the start state's value: the CE over the episodes of their whole returns
    ce = -np.log(np.mean(np.exp(-model.risk_aversion * events.returns / sigma))) / model.risk_aversion
    assert found["start_ce"] == pytest.approx(ce)
    monkeypatch.setattr(common, "_out_dir", tmp_path)
    model.save(tmp_path / "m.zip")
    out = item_pickup_critic_time.main([str(tmp_path / "m.zip"), "--quick", "--tag", "t", "--out", str(tmp_path)])
    (row,) = out["rows"].values()
    assert row["gamma"] == 1.0 and len(row["models"][str(tmp_path / "m.zip")]["q"]) == 200
    assert "| is α=0.1, γ=1, 0k steps | 1 |" in (tmp_path / "item_pickup_critic_time_t.md").read_text()


def test_time_blind_fixed_point_is_the_ce_of_a_geometric_horizon() -> None:
    from benchmarks.item_pickup_critic_time import time_blind_fixed_point
    from is_sb3.risk import certainty_equivalent

    rewards = np.array([-1.0, -1.0, 0.0, 0.0, 0.0, 0.0, 2.5, 2.5, 2.5, 2.5])  # r̄ = 0.8
    h, alpha = 0.1, 0.3
    m = np.mean(np.exp(-alpha * rewards))  # γ = 1: E[e^{−αS}] = Σ_n h (1−h)^{n−1} m^n = h m / (1 − (1−h) m)
    closed = -np.log(h * m / (1 - (1 - h) * m)) / alpha
    assert time_blind_fixed_point(rewards, 1.0, alpha, h) == pytest.approx(closed, rel=1e-8)
    rng = np.random.default_rng(0)  # and by simulation: the sum of the rewards of a geometric number of steps
    steps = rng.geometric(h, size=200_000)
    totals = np.array([rng.choice(rewards, size=n).sum() for n in steps[:20_000]])
    assert time_blind_fixed_point(rewards, 1.0, alpha, h) == pytest.approx(certainty_equivalent(totals, alpha), abs=0.1)
    assert time_blind_fixed_point(rewards, 0.9, 0.0, h) == pytest.approx(0.8 / (1 - 0.9 * 0.9))  # risk-neutral
    assert time_blind_fixed_point(rewards, 1.0, 0.0, 1 / 200) == pytest.approx(0.8 * 200)
    losing = np.array([-1.0, 1.0])  # r̄ = 0: (1 − h) E[e^{−αr}] = 0.99 cosh(1) > 1, the CE diverges
    assert time_blind_fixed_point(losing, 1.0, 1.0, 0.01) == float("-inf")
    with pytest.raises(ValueError, match="hazard"):
        time_blind_fixed_point(rewards, 1.0, alpha, 0.0)


def test_critic_by_step_shows_a_clock_model_the_time_left() -> None:
    from benchmarks.item_pickup_critic_time import ActionRecorder, critic_by_step
    from is_envs.grid import ItemPickupEnv, episode_events, released_episodes
    from is_sb3 import DiscreteRiskSAC

    model = DiscreteRiskSAC("CnnPolicy", ItemPickupEnv(clock=True), seed=0, device="cpu", gamma=1.0)  # untrained
    found = critic_by_step(model, n_episodes=2)  # a 3-channel observation would not fit its (4, 5, 5) space
    assert len(found["q"]) == 200 and np.isfinite(found["q"]).all()
    recorder = ActionRecorder(model)
    episode_events(recorder, released_episodes("gradient1"), n_episodes=2)
    for t in (0, 57, 199):  # the fourth channel: the share of the episode still to come, (200 − t)/200
        assert recorder.observations[t].shape == (2, 4, 5, 5)
        assert np.all(recorder.observations[t][:, 3] == (200 - t) / 200)


def test_greedy_gap_shows_a_clock_model_the_time_left(tmp_path: Path) -> None:
    from benchmarks import item_pickup_greedy_gap
    from is_envs.grid import ItemPickupEnv, evaluate, released_episodes
    from is_sb3 import DiscreteRiskSAC

    model = DiscreteRiskSAC("CnnPolicy", ItemPickupEnv(clock=True), seed=0, device="cpu")  # untrained
    model.save(tmp_path / "m.zip")
    out = item_pickup_greedy_gap.measure([tmp_path / "m.zip"], n_episodes=2)
    (key,) = [key for key in out["rows"] if key != "greedy"]
    assert "clock" in key
    found = out["rows"][key]["models"][str(tmp_path / "m.zip")]["uniform"]["return"]
    assert found == pytest.approx(evaluate(model, released_episodes("uniform"), n_episodes=2).mean())
