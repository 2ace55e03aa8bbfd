"""Does the grid critic know how much of the episode is left? Q(s_t, a_t) against the return still to come, by step.

    python -m benchmarks.item_pickup_critic_time benchmarks/out/fig4_g1/item_pickup_models/*/final.zip
    python -m benchmarks.item_pickup_critic_time --quick MODEL.zip ...     # 20 test episodes

The grid's observation (depot, waiting items, agent) does not contain the step count (unless the model was trained with
``ItemPickupEnv(clock=True)``, whose fourth channel is the time left: such models are shown it here), and an episode
ends after 200 steps, so the value of a state depends on something the critic cannot see: at γ = 1 the return still to
come falls from its whole-episode size to nothing over an episode, at γ = 0.99 only after its first ~70 steps. Each
model (a saved DiscreteRiskSAC ``.zip``, a run folder or a checkpoint folder, as for ``item_pickup_greedy_gap``) plays
the released gradient1 test episodes greedily (its deterministic action); at every step t its critic's Q(s_t, a_t) (the
minimum of the twin critics, in the reward units it was trained in) is set against the realised discounted return-to-go
G_t = Σ_{k ≥ t} γ^{k−t} r_k of that episode, with the model's γ, divided by σ, the standard deviation of the per-step
rewards on these episodes (the critic's rewards were divided by that of its replay buffer, close to it for a trained
policy). The risk-averse critics learn a certainty equivalent, below the mean: what matters is the shape in t.
Statistic: how much Q falls from the episode's first 20 steps to its steps 171–190, as a share of how much G_t/σ falls
(1: the critic tracks the time left; 0: it cannot tell). Models are grouped by agent, γ and env steps; cells are mean ±
std over the models of a group (seeds).
Writes ``item_pickup_critic_time[_tag].{md,json,png}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import data_dir, mean_std, result_stem, write_results
from benchmarks.item_pickup import agent_label
from benchmarks.item_pickup_greedy_gap import model_file, parse_model_args

#: the steps (0-based) averaged for "start" and "end" of an episode
START, END = slice(0, 20), slice(170, 190)


class ActionRecorder:
    """A predictor that acts as ``model`` (its deterministic action) and keeps each step's observations and
    actions. It has the model's ``observation_space``, so that evaluation shows a model trained with
    ``ItemPickupEnv(clock=True)`` the time left (:func:`~is_envs.grid.observes_clock`)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.observation_space = getattr(model, "observation_space", None)
        self.observations: list[np.ndarray] = []
        self.actions: list[np.ndarray] = []

    def predict(self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:  # fmt: skip
        actions, _ = self.model.predict(observation, deterministic=deterministic)
        self.observations.append(np.array(observation, copy=True))
        self.actions.append(np.asarray(actions, dtype=np.int64).reshape(-1))
        return actions, state


def returns_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """G_t = Σ_{k ≥ t} γ^{k−t} r_k along axis 1 of ``rewards`` (episodes × steps), same shape."""
    out = np.zeros_like(rewards, dtype=float)
    following = np.zeros(rewards.shape[0])
    for k in range(rewards.shape[1] - 1, -1, -1):
        following = rewards[:, k] + gamma * following
        out[:, k] = following
    return out


def time_blind_fixed_point(step_rewards: np.ndarray, gamma: float, risk_aversion: float, hazard: float) -> float:
    """The value a critic blind to time and state would settle on: one state whose rewards are drawn i.i.d. from
    ``step_rewards`` and whose episode ends after each step with probability ``hazard`` (a fixed end, seen without a
    clock): the Q with ``Q = CE_α[r] + CE_α[(1 − d) γ Q]``, d ~ Bernoulli(hazard), the CE of the return over a
    geometric number of steps; for α = 0, r̄ / (1 − γ(1 − h)). ``-inf`` where that CE diverges (γ = 1 and
    (1 − h) E[e^{−αr}] ≥ 1: the longer the episode, the worse).

    :param step_rewards: the rewards, any shape.
    :param gamma: the discount γ ∈ [0, 1].
    :param risk_aversion: α ≥ 0 of the entropic certainty equivalent CE_α.
    :param hazard: h ∈ (0, 1]: the chance that a step is the episode's last.
    """
    from scipy.optimize import brentq

    from is_sb3.risk import certainty_equivalent

    if not 0.0 < hazard <= 1.0:
        raise ValueError(f"hazard must be in (0, 1], got {hazard!r}")
    reward = float(certainty_equivalent(np.asarray(step_rewards, dtype=float), risk_aversion))
    log_w = np.log([1.0 - hazard, hazard]) if hazard < 1.0 else np.array([-np.inf, 0.0])

    def excess(q: float) -> float:  # increasing in q (slope 1 − γ · the tilted weight of continuing > 0)
        return q - reward - float(certainty_equivalent(np.array([gamma * q, 0.0]), risk_aversion, log_weights=log_w))

    if gamma == 1.0 and hazard < 1.0 and np.log1p(-hazard) - risk_aversion * reward >= 0.0:  # log((1 − h) m) ≥ 0
        return float("-inf")
    low, high = -1.0, 1.0
    while excess(low) > 0.0:  # as q → −∞, excess → −∞ (γ < 1 or α = 0), or → log((1 − h) m)/α < 0 (γ = 1)
        low *= 2.0
    while excess(high) < 0.0:
        high *= 2.0
    return float(brentq(excess, low, high, xtol=1e-10))


def critic_by_step(model: Any, n_episodes: int | None) -> dict[str, Any]:
    """Mean over the gradient1 test episodes, per step, of the model's Q(s_t, a_t) and of G_t/σ (see the module
    docstring), and the share of G_t/σ's fall that Q's fall makes from the first 20 steps to steps 171–190."""
    import torch as th

    from is_envs.grid import episode_events
    from is_envs.grid.items import EPISODE_LENGTH
    from is_sb3.risk import certainty_equivalent

    recorder = ActionRecorder(model)
    events = episode_events(recorder, data_dir() / "gradient1.npz", n_episodes=n_episodes)
    assert events.step_rewards is not None
    obs = np.stack(recorder.observations, axis=1)  # episodes × steps × (3, 5, 5)
    actions = np.stack(recorder.actions, axis=1)
    flat_obs = th.as_tensor(obs.reshape(-1, *obs.shape[2:]), device=model.device)
    with th.no_grad():
        q_all = th.cat([model.policy.q_values(chunk).min(dim=0).values for chunk in flat_obs.split(4096)])
    q = q_all.gather(1, th.as_tensor(actions.reshape(-1, 1), device=model.device)).view(actions.shape)
    sigma = float(np.std(events.step_rewards))
    g = returns_to_go(events.step_rewards, model.gamma) / sigma
    q_t, g_t = q.cpu().numpy().astype(float).mean(axis=0), g.mean(axis=0)
    fall_q, fall_g = q_t[START].mean() - q_t[END].mean(), g_t[START].mean() - g_t[END].mean()
    return {"q": q_t.tolist(), "g": g_t.tolist(), "sigma": sigma, "q_start": float(q_t[START].mean()),
            "q_end": float(q_t[END].mean()), "g_start": float(g_t[START].mean()), "g_end": float(g_t[END].mean()),
            "fall_share": float(fall_q / fall_g), "return": float(events.returns.mean()),
            "time_blind": time_blind_fixed_point(events.step_rewards / sigma, model.gamma, model.risk_aversion,
                                                 1.0 / EPISODE_LENGTH),
            "start_ce": float(certainty_equivalent(g[:, 0], model.risk_aversion)),
            "time_blind_mean": time_blind_fixed_point(events.step_rewards / sigma, model.gamma, 0.0,
                                                      1.0 / EPISODE_LENGTH)}  # fmt: skip


def measure(paths: list[Path], n_episodes: int | None) -> dict[str, Any]:
    """:func:`critic_by_step` of each model, grouped by agent, γ and env steps."""
    import torch as th

    from is_envs.grid import observes_clock
    from is_sb3 import DiscreteRiskSAC

    th.set_num_threads(1)
    rows: dict[str, Any] = {}
    for path in paths:
        model = DiscreteRiskSAC.load(model_file(path), device="cpu")
        model.policy.set_training_mode(False)
        label = agent_label({"target": model.target, "loss": model.critic_loss, "alpha": model.risk_aversion,
                             "clock": observes_clock(model)})  # fmt: skip
        key = f"{label}, γ={model.gamma:g}, {model.num_timesteps // 1000}k steps"
        row = rows.setdefault(key, {"label": key, "gamma": float(model.gamma), "models": {}})
        row["models"][str(path)] = found = critic_by_step(model, n_episodes)
        print(f"{key}: {path}: Q falls {found['fall_share']:.2f} of the return-to-go's fall", flush=True)
    return {"episodes": "released test" if n_episodes is None else f"first {n_episodes} released test", "rows": rows}


def report(result: dict[str, Any], tag: str) -> dict[str, Any]:
    """Markdown table and the by-step plot."""
    columns = (("q_start", "{:.1f}"), ("q_end", "{:.1f}"), ("g_start", "{:.1f}"), ("g_end", "{:.1f}"),
               ("start_ce", "{:.1f}"), ("fall_share", "{:.2f}"), ("time_blind", "{:.1f}"),
               ("time_blind_mean", "{:.1f}"), ("return", "{:.1f}"))  # fmt: skip
    lines = [
        f"gradient1 {result['episodes']} episodes, the model acting greedily on its policy; per step t, the mean over "
        "the episodes of its critic's Q(s_t, a_t) and of the realised return-to-go G_t (with its γ) divided by σ, "
        "the std of the per-step rewards; start: steps 1–20, end: steps 171–190; mean ± std over the models of a row",
        "",
        "| agent | models | Q, start | Q, end | G/σ, start | G/σ, end | CE_α of G_0/σ | Q's fall ÷ G/σ's fall "
        "| time-blind value | the same, α = 0 | return |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"].values():
        models = list(row["models"].values())
        cells = " | ".join(mean_std([m[k] for m in models], fmt) for k, fmt in columns)
        lines.append(f"| {row['label']} | {len(models)} | {cells} |")
    lines += [
        "",
        "Without the clock (rows not marked 'clock': ItemPickupEnv(clock=True)'s fourth channel, the time left) the "
        "observation holds no step count: a critic that cannot tell how much of the episode is left "
        "learns one value for states that differ only in the time left, and its Q stays level while the "
        "return still to come falls (a fall share near 0). 'CE_α of G_0/σ': the certainty equivalent, with the "
        "model's α, of the episodes' whole discounted returns: every episode starts in the same state, so this is "
        "that state's value for the policy played (risk-neutral: the mean). 'time-blind value': the value of one "
        "state whose rewards (÷ σ) are drawn from these episodes' and whose episode ends after each step with "
        "probability 1/200, as a fixed end looks to a critic without a clock: with the model's γ and α, Q = CE_α[r] "
        "+ CE_α[(1 − d) γ Q] (α = 0: r̄ / (1 − γ(1 − 1/200)); at γ = 1 the CE of the return over a geometric number "
        "of steps); 'the same, α = 0': that value without risk aversion, from the same rewards.",
    ]
    write_results(result_stem("item_pickup_critic_time", tag), "\n".join(lines), result,
                  lambda path: plot(result, path))  # fmt: skip
    return result


def plot(result: dict[str, Any], path: str) -> None:
    """Per γ, the mean Q(s_t, a_t) (solid) and G_t/σ (dashed) against t, one colour per row (mean over its
    models)."""
    from is_sb3.plotting import pyplot, save_figure

    plt = pyplot()
    gammas = sorted({row["gamma"] for row in result["rows"].values()})
    fig, axes = plt.subplots(1, len(gammas), figsize=(6.5 * len(gammas), 4.2), squeeze=False)
    for i, row in enumerate(result["rows"].values()):
        ax = axes[0, gammas.index(row["gamma"])]
        q = np.mean([m["q"] for m in row["models"].values()], axis=0)
        g = np.mean([m["g"] for m in row["models"].values()], axis=0)
        steps = np.arange(1, len(q) + 1)
        ax.plot(steps, q, color=f"C{i}", label=f"{row['label']}: Q(s_t, a_t)")
        ax.plot(steps, g, color=f"C{i}", ls="--", label="  its realised return-to-go / σ")
    for ax, gamma in zip(axes[0], gammas, strict=True):
        ax.set(title=f"γ = {gamma:g}: critic against the return still to come", xlabel="step t of the episode",
               ylabel="reward-std units")  # fmt: skip
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", loc="lower left")  # the corner both curves leave free
    save_figure(fig, path, dpi=110)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_model_args(__doc__ or "", "item_pickup_critic_time", "the first 20 gradient1 test episodes", argv)
    return report(measure(args.models, 20 if args.quick else None), args.tag)


if __name__ == "__main__":
    main()
