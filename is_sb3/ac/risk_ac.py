"""RiskAC: the IS paper's risk-averse actor-critic (§4.1) for tasks with a known, differentiable reward."""

from __future__ import annotations

import math
import os
import time
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.common.vec_env import VecEnv

from is_sb3.ac.compiled import CompiledIteration, supports_functional_step
from is_sb3.ac.policies import RiskACPolicy, check_risk_aversion_range
from is_sb3.ac.task import (
    RiskACTask,
    TaskEnv,
    TransitionBatch,
    action_dependent,
    check_task,
    evaluation_set,
    find_task,
    rollout_returns,
)
from is_sb3.common import check_risk_settings, check_total_timesteps, make_env
from is_sb3.files import atomic_path, sb3_path
from is_sb3.losses import critic_loss, exponential_utility_actor_loss
from is_sb3.risk import certainty_equivalent_with_se, effective_sample_size
from is_sb3.safe_load import load_arguments
from is_sb3.schedules import WarmupConstantCosine
from is_sb3.validation import check_device, check_integer, check_learning_rate, check_net_arch

__all__ = ["RiskAC"]

SelfRiskAC = TypeVar("SelfRiskAC", bound="RiskAC")


class RiskAC(BaseAlgorithm):
    """Risk-averse actor-critic with a state-value critic and a deterministic actor (IS paper §4.1).

    Each iteration draws ``batch_size`` transitions from the task's batched simulator on the model's
    device (t ~ U{0..T−1}, S_t from its exact marginal, a fresh increment), then

    - **critic**: one optimizer step on ``critic_loss``(V_θ(s), r(s, π(s), s') + V_θ̄(s')) with α =
      ``risk_aversion`` (the target detached, V(s') = 0 at t + 1 = T);
    - **actor**: one optimizer step on the objective (14), (1/α) exp(−α(r(s, π_φ(s), s') + V_θ̄(s') −
      V_θ̄(s))), differentiated through the action inside the reward (the paper's setting, where s' does not
      depend on the action) and, for tasks whose simulator has ``next_state`` (transaction costs: the position
      is part of the state), also through V_θ̄(s'(π_φ(s))).

    Gradients are clipped by value (``max_grad_value``) and then by norm (``max_grad_norm``).
    V_θ̄ is a Polyak-averaged copy of the critic (rate ``tau``; ``tau=1`` bootstraps from the critic
    itself).

    **Scale**: the networks output αV and αa (for |α| > 1), i.e. V_θ = critic(s)/max(1, |α|) and
    π_φ = actor(s)/max(1, |α|) (override with ``policy_kwargs`` ``value_scale`` / ``action_scale``).
    Adam moves a network's output by steps of a fixed size whatever the gradient's scale, and the
    entropic critic turns the noise s of its own estimates into a bias of order αs²/2 per step
    (the CE of the noise); in V's units that bias diverges at α = 100. In units of αV it does not.
    Measured: with V's units, the Gaussian task at α = 100 diverged even with the policy frozen at
    the optimum; with αV it converges (see the README).

    **What a timestep is here**: one iteration, i.e. one critic and one actor update on a fresh batch
    of ``batch_size`` simulated transitions. ``learn(total_timesteps=100_000)`` is the paper's
    100k-iteration run (102.4 M simulated transitions at the default batch size); callbacks and the
    progress bar count iterations.

    **Logged** (``self.logger``, TensorBoard when ``tensorboard_log`` is set): ``train/critic_loss``,
    ``train/actor_loss``, ``train/learning_rate``, ``train/critic_ess_fraction`` and
    ``train/actor_ess_fraction`` (Kish effective sample size of e^{αδ} and e^{−α·gain} over the batch,
    as a share of it: near 0 means a few samples drive the update), and every ``eval_freq`` iterations
    ``eval/value_s0``, ``eval/ce_return`` ± ``eval/ce_return_se`` (Monte-Carlo CE of the policy's
    return) and, with a reference answer, ``reference/{value,policy}_{rmse,rel_rmse}``.

    **The task**: RiskAC learns from a model of the task, not from an environment's samples: anything that
    implements the small protocol :class:`~is_sb3.ac.task.RiskACTask` (batched transitions on a device, observations,
    a reward differentiable in the action, the horizon; optionally a reference answer and a validity check of α),
    given directly or as the ``task`` of an env. The finance tasks of :mod:`is_envs.finance` implement it; a bare
    task is wrapped in :class:`~is_sb3.ac.task.TaskEnv` for SB3's bookkeeping.

    :param policy: "MlpPolicy" or a :class:`RiskACPolicy` subclass.
    :param env: the environment, its id (e.g. "is_envs/QuadraticPenalty-v0") or a :class:`RiskACTask`.
    :param risk_aversion: α (> 0 averse, < 0 seeking, 0 neutral).
    :param critic_loss: "is", "emse", "sp" or "mse".
    :param learning_rate: float or schedule of progress_remaining; default: the paper's warm-up,
        constant, cosine schedule peaking at 1e-4.
    :param batch_size: transitions per iteration.
    :param max_grad_value: clip each gradient entry to ±this (``None``: no value clipping).
    :param max_grad_norm: then clip the gradient norm of each network (``None``: no norm clipping).
    :param tau: Polyak rate of the target critic V_θ̄ in (0, 1].
    :param eval_freq: every this many iterations, log reference errors and the Monte-Carlo CE of the
        return (0 disables).
    :param n_eval_states: states (from the price process at all t) for the reference RMSEs.
    :param n_eval_paths: simulated episodes for the Monte-Carlo CE of the return.
    :param eval_seed: seed of the evaluation's own generator (its states and common price paths).
    :param policy_kwargs: keyword arguments of the policy (``net_arch``, ``activation_fn``, ...).
    :param tensorboard_log: TensorBoard log folder (``None``: no TensorBoard).
    :param verbose: 0 silent, 1 info (tables of logged values), 2 debug.
    :param seed: seed of torch, numpy and the simulator.
    :param device: "auto", "cpu", "cuda", ...
    :param torch_compile: run each iteration as one ``torch.compile``d function (same maths, ~4× faster
        on a CPU; a one-off compile of ~5–15 s at the second iteration). ``None`` (default): on for CPU
        devices, off on CUDA, where the compiled path has not been measured yet (pass ``True`` to try it).
        Where compiling is impossible (no C++ compiler, unsupported platform) training warns once and
        continues eagerly; ``False`` always uses the eager iteration.
    :param risk_aversion_range: ``(low, high)``: train **one agent for every α in the range**: α is an input of
        critic and actor, drawn per transition log-uniformly over the range, and ``predict``, ``predict_value``
        (and :func:`is_sb3.hedging.indifference_price`) take ``risk_aversion=α``; ``risk_aversion`` is then the
        default α (of ``evaluate`` and of calls without one) and must lie in the range. IS loss only. The networks'
        output scale is that of a one-α agent at α = high, 1/max(1, high), for the whole range. Measured on the
        hedging task over [0.1, 10] (``benchmarks/hedging_alpha_range.py``, 5 seeds): prices within 0.3 % of the
        per-α dynamic program for α ≤ 3 and 0.7 % at α = 10 (one agent per α: 0.25 %) for about a fifth of the
        five runs' CPU (docs, Hedging page). The networks see α as log-scale and linear features
        (:class:`~is_sb3.ac.policies.RiskACPolicy`). ``None`` (default): one α.
    :param _init_setup_model: build the networks at construction (internal; used by ``load``).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"MlpPolicy": RiskACPolicy}
    policy: RiskACPolicy

    def __init__(
        self,
        policy: str | type[RiskACPolicy],
        env: GymEnv | str | RiskACTask | None,
        risk_aversion: float = 1.0,
        critic_loss: str = "is",
        learning_rate: float | Schedule = WarmupConstantCosine(),  # noqa: B008  (immutable dataclass)
        batch_size: int = 1024,
        max_grad_value: float | None = 1.0,
        max_grad_norm: float | None = 10.0,
        tau: float = 0.01,
        eval_freq: int = 1000,
        n_eval_states: int = 4096,
        n_eval_paths: int = 10_000,
        eval_seed: int = 2025,
        policy_kwargs: dict[str, Any] | None = None,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        torch_compile: bool | None = None,
        risk_aversion_range: tuple[float, float] | None = None,
        _init_setup_model: bool = True,
    ) -> None:
        alpha = check_risk_settings(risk_aversion, critic_loss)
        if risk_aversion_range is not None:
            low, high = risk_aversion_range = check_risk_aversion_range(risk_aversion_range)
            if critic_loss != "is":
                raise ValueError(f"risk_aversion_range trains with critic_loss='is', got {critic_loss!r}")
            if not low <= alpha <= high:
                raise ValueError(
                    f"risk_aversion (the default α of predict and evaluate) must be in risk_aversion_range "
                    f"[{low:g}, {high:g}], got {alpha!r}"
                )
        check_integer("batch_size", batch_size, 1)
        check_learning_rate(learning_rate)
        check_device(device)
        if policy_kwargs and policy_kwargs.get("net_arch") is not None:
            check_net_arch(policy_kwargs["net_arch"], keys=("pi", "vf"))
        for name, value in (("max_grad_value", max_grad_value), ("max_grad_norm", max_grad_norm)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value!r}")
        if not 0 < tau <= 1:
            raise ValueError(f"tau must be in (0, 1], got {tau!r}")
        for name, count in (
            ("eval_freq", eval_freq),
            ("n_eval_states", n_eval_states),
            ("n_eval_paths", n_eval_paths),
        ):
            check_integer(name, count, 0 if name == "eval_freq" else 2)
        task: RiskACTask | None = None
        if isinstance(env, VecEnv) and env.num_envs != 1:
            raise ValueError(
                f"RiskAC trains on its task's simulator ({batch_size} transitions per iteration), not on env steps: "
                f"pass the env, its id or the task itself, not a VecEnv of {env.num_envs} envs"
            )
        if env is not None:  # a bare task is wrapped in an env: SB3 resets one once per learn()
            env = TaskEnv(env) if isinstance(env, RiskACTask) else make_env(env)
            task = find_task(env)
            check = getattr(task, "check_risk_aversion", None)
            if check is not None:  # the task refuses α whose optimal value is infinite, warns where training fails
                check(alpha, critic_loss)
        super().__init__(
            policy,
            env,
            learning_rate,
            policy_kwargs=policy_kwargs,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            supported_action_spaces=(spaces.Box,),
        )
        self.risk_aversion = alpha
        self.risk_aversion_range = risk_aversion_range
        self.critic_loss = critic_loss
        self.batch_size = int(batch_size)
        self.max_grad_value = max_grad_value
        self.max_grad_norm = max_grad_norm
        self.tau = float(tau)
        self.eval_freq = int(eval_freq)
        self.n_eval_states = int(n_eval_states)
        self.n_eval_paths = int(n_eval_paths)
        self.eval_seed = int(eval_seed)
        self.torch_compile = torch_compile
        self.task = task
        self.eval_history: list[dict[str, float]] = []
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------ setup
    def _setup_model(self) -> None:
        if self.task is None:
            raise ValueError("RiskAC needs an environment (its task) to build the simulator")
        self._setup_lr_schedule()
        self.set_random_seed(self.seed)
        scale = 1.0 / max(1.0, abs(self.risk_aversion))
        kwargs: dict[str, Any] = {"value_scale": scale, "action_scale": scale}
        alpha_range = getattr(self, "risk_aversion_range", None)  # files of earlier versions have none
        if alpha_range is not None:  # one scale for the whole range: that of its most risk-averse end
            self.risk_aversion_range = check_risk_aversion_range(alpha_range)  # a list after a JSON round trip
            scale = 1.0 / max(1.0, self.risk_aversion_range[1])
            kwargs = {"value_scale": scale, "action_scale": scale, "risk_aversion_range": self.risk_aversion_range,
                      "risk_aversion": self.risk_aversion}  # fmt: skip
        kwargs.update(self.policy_kwargs)
        self.policy = self.policy_class(  # type: ignore[assignment]
            self.observation_space, self.action_space, self.lr_schedule, **kwargs
        ).to(self.device)
        self.simulator = check_task(self.task).simulator(self.device, th.float32, self.seed)
        self._compiled: CompiledIteration | None = None
        self.simulator_state = self.simulator.generator.get_state()  # refreshed by save(), applied by load()
        self._compile_unavailable = False
        self._last_stats = th.zeros(4, device=self.device)
        self._setup_reference()

    def _setup_reference(self) -> None:
        """Fixed evaluation states and paths from their own generator (seed ``eval_seed``, never the training
        one: evaluating changes nothing in training, and every evaluation, every seed and every loss uses the
        same common states and paths), and, where the task has one, the reference answer."""
        assert self.task is not None
        eval_sim = self.task.simulator(self.device, th.float32, self.eval_seed)
        states, self._eval_paths = evaluation_set(eval_sim, self.n_eval_states, self.n_eval_paths)
        self._eval_obs = self.simulator.observe(states.t, states.s)
        self._s0_obs = self.simulator.observe(th.zeros(1, dtype=th.long, device=self.device), self._eval_paths[:1, 0])
        self._ref_value: th.Tensor | None = None
        self._ref_action: th.Tensor | None = None
        self.reference_value_s0: float | None = None
        solve = getattr(self.task, "reference_solution", None)
        if solve is None:
            return
        try:
            ref = solve(self.risk_aversion)
        except ValueError as err:
            if self.verbose >= 1:
                print(f"RiskAC: no reference solution ({err}); reference errors are not logged")
            return
        t_np, s_np = states.t.cpu().numpy(), states.s.double().cpu().numpy()
        self._ref_value = th.as_tensor(ref.value(t_np, s_np), dtype=th.float32, device=self.device)
        self._ref_action = th.as_tensor(ref.action(t_np, s_np), dtype=th.float32, device=self.device)
        self.reference_value_s0 = float(np.asarray(ref.value(0, self._eval_paths[0, 0].double().cpu().numpy())))

    def _excluded_save_params(self) -> list[str]:
        return [
            *super()._excluded_save_params(),
            "simulator",
            "_eval_obs",
            "_eval_paths",
            "_s0_obs",
            "_ref_value",
            "_ref_action",
            "_last_stats",
            "_compiled",
            "_compile_unavailable",
        ]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        # the training simulator's generator state travels with the model: a loaded model continues the
        # random stream where the saved one stopped (resume = the uninterrupted run, bit for bit)
        return ["policy", "policy.actor_optimizer", "policy.critic_optimizer"], ["simulator_state"]

    def save(self, path: Any, exclude: Any = None, include: Any = None) -> None:
        """SB3's ``save``, with the state of the training simulator's random generator, written to a unique temporary
        file renamed into place (a crash or a full disk leaves any previous file whole)."""
        self.simulator_state = self.simulator.generator.get_state()
        if isinstance(path, (str, os.PathLike)):  # a unique temporary file renamed into place (is_sb3.files)
            with atomic_path(sb3_path(path, "zip")) as tmp:
                super().save(tmp, exclude, include)
        else:
            super().save(path, exclude, include)

    @classmethod
    def load(cls: type[SelfRiskAC], path: Any, env: GymEnv | str | None = None, device: th.device | str = "auto",
             custom_objects: dict[str, Any] | None = None, print_system_info: bool = False,
             force_reset: bool = True, allow_pickle: bool = False, **kwargs: Any) -> SelfRiskAC:  # fmt: skip
        """SB3's ``load``, running no code from the file; the training simulator continues from the saved
        generator state.

        SB3 files keep some objects as pickles, which would run code on loading. By default those of a RiskAC
        file are rebuilt from their readable fields instead (:mod:`is_sb3.safe_load`) and a file holding any
        other pickle is refused (``UnsafeModelFileError``); ``allow_pickle=True`` unpickles them as SB3
        does: only for files you trust. Other arguments as in SB3.
        """
        source, gym_env, custom_objects = load_arguments(path, None, env, custom_objects, allow_pickle)
        model = super().load(source, gym_env, device, custom_objects, print_system_info, force_reset, **kwargs)
        if model.env is None and model.task is not None:  # SB3's learn() resets an env once: the task's own
            model.set_env(TaskEnv(model.task))
        model.simulator.generator.set_state(model.simulator_state.detach().cpu())
        return model

    # --------------------------------------------------------------- training
    def _clip(self, module: th.nn.Module) -> None:
        if self.max_grad_value is not None:
            th.nn.utils.clip_grad_value_(module.parameters(), self.max_grad_value)
        if self.max_grad_norm is not None:
            th.nn.utils.clip_grad_norm_(module.parameters(), self.max_grad_norm)

    def train_step(self) -> tuple[th.Tensor, th.Tensor]:
        """One critic and one actor update on a fresh batch; returns the two losses (detached tensors).

        Runs the compiled iteration (:mod:`is_sb3.ac.compiled`) when compiling is on (see ``torch_compile``) and the
        optimizers' state exists (after the first, eager, iteration), otherwise :meth:`_eager_step`. Optimizers
        other than plain Adam always run eagerly.
        """
        tr = self.simulator.sample_transitions(self.batch_size)
        alphas = self._sample_risk_aversions(tr.t.shape[0]) if self.risk_aversion_range is not None else None
        policy = self.policy
        use_compile = self.device.type == "cpu" if self.torch_compile is None else self.torch_compile
        if (
            use_compile
            and not self._compile_unavailable
            and policy.critic_optimizer.state
            and policy.actor_optimizer.state
        ):
            if self._compiled is None:  # first compiled iteration: can the functional step reproduce the optimizers?
                pairs = ((policy.critic_optimizer, policy.critic), (policy.actor_optimizer, policy.actor))
                if all(supports_functional_step(opt, net) for opt, net in pairs):
                    self._compiled = CompiledIteration(self)
                else:
                    self._compile_unavailable = True
            if self._compiled is not None:
                out = self._compiled(tr.t, tr.s, tr.s_next, tr.done, alphas)
                if out is not None:
                    self._last_stats = out
                    return out[0], out[1]
                self._compile_unavailable = True  # compiling is impossible here: warned once, eager from now on
        return self._eager_step(tr, alphas)

    def _sample_risk_aversions(self, n: int) -> th.Tensor:
        """One α per transition, log-uniform over ``risk_aversion_range``, from the simulator's generator (saved and
        resumed with it)."""
        assert self.risk_aversion_range is not None
        low, high = (math.log(x) for x in self.risk_aversion_range)
        u = th.rand(n, generator=self.simulator.generator, device=self.device, dtype=th.float32)
        return th.exp(low + u * (high - low))

    @property
    def _last_ess(self) -> th.Tensor:
        """ESS fractions (critic, actor) of the last iteration's exponential weights, shape ``(2,)``."""
        return self._last_stats[2:]

    def _eager_step(self, tr: TransitionBatch, alphas: th.Tensor | None = None) -> tuple[th.Tensor, th.Tensor]:
        """The iteration in plain PyTorch (``backward``, ``clip_grad_*``, ``optimizer.step``): the reference.
        ``alphas``: one α per transition (an agent for a range of risk aversions: α is an input of both networks
        and each sample's loss uses its own)."""
        sim, policy = self.simulator, self.policy
        alpha: float | th.Tensor = self.risk_aversion if alphas is None else alphas
        obs = sim.observe(tr.t, tr.s)
        action = policy.action(obs, alphas).squeeze(-1)
        dependent = action_dependent(sim)
        with th.no_grad():
            v_now = policy.target_value(obs, alphas)
            if not dependent:
                v_next = policy.target_value(sim.observe(tr.t + 1, tr.s_next), alphas).masked_fill(tr.done, 0.0)
        if dependent:  # V̄(s'(a)) once: differentiable in the action for the actor, detached for the critic's target
            reached = sim.next_state(tr.t, tr.s, action, tr.s_next)  # type: ignore[attr-defined]
            v_reached = policy.target_value(sim.observe(tr.t + 1, reached), alphas).masked_fill(tr.done, 0.0)
            v_next = v_reached.detach()
        # critic: TD(0) with the chosen loss, target fixed
        value = policy.value(obs, alphas)
        target = sim.reward(tr.t, tr.s, action.detach(), tr.s_next) + v_next
        c_loss = critic_loss(self.critic_loss, value, target, alpha)
        policy.critic_optimizer.zero_grad(set_to_none=True)
        c_loss.backward()
        self._clip(policy.critic)
        policy.critic_optimizer.step()
        # actor: objective (14), gradient through the action inside the reward (and inside V_θ̄(s'(a)) where the
        # next state depends on the action)
        gain = sim.reward(tr.t, tr.s, action, tr.s_next) + (v_reached if dependent else v_next) - v_now
        a_loss = exponential_utility_actor_loss(gain, alpha).mean()
        policy.actor_optimizer.zero_grad(set_to_none=True)
        a_loss.backward()
        self._clip(policy.actor)
        policy.actor_optimizer.step()
        polyak_update(policy.critic.parameters(), policy.critic_target.parameters(), self.tau)
        # share of the batch carrying each gradient (Kish ESS of e^{αδ} and e^{−α·gain}); on device, no sync
        with th.no_grad():
            critic_ess = effective_sample_size(alpha * (value - target)) / self.batch_size
            actor_ess = effective_sample_size(-alpha * gain) / self.batch_size
            self._last_stats = th.stack([c_loss, a_loss, critic_ess, actor_ess])
        return c_loss.detach(), a_loss.detach()

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
        risk_aversion: float | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict`` (the actor is deterministic); ``risk_aversion``: for an agent trained over
        ``risk_aversion_range``, the α to act at (default: the model's ``risk_aversion``; ``ValueError`` outside
        the range or for a one-α agent)."""
        if risk_aversion is None:
            return super().predict(observation, state, episode_start, deterministic)
        if self.risk_aversion_range is None:
            raise ValueError("this model was trained for one risk aversion; risk_aversion is not an input")
        with self.policy.acting_at(risk_aversion):
            return super().predict(observation, state, episode_start, deterministic)

    @th.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Reference errors on the fixed evaluation states, V(s_0), and the Monte-Carlo CE of the return."""
        assert self.task is not None
        policy = self.policy
        out = {"value_s0": float(policy.value(self._s0_obs)[0])}
        if self._ref_value is not None and self._ref_action is not None:
            v = policy.value(self._eval_obs)
            a = policy.action(self._eval_obs).squeeze(-1)
            for name, pred, ref in (("value", v, self._ref_value), ("policy", a, self._ref_action)):
                rmse = float(th.sqrt(th.mean((pred - ref) ** 2)))
                scale = float(th.sqrt(th.mean(ref**2)))
                out[f"{name}_rmse"] = rmse
                out[f"{name}_rel_rmse"] = rmse / scale if scale > 0 else float("nan")
            assert self.reference_value_s0 is not None
            out["reference_value_s0"] = self.reference_value_s0
        returns = self.evaluation_returns()
        ce, se = certainty_equivalent_with_se(returns, self.risk_aversion)
        out["ce_return"], out["ce_return_se"] = float(ce), float(se)
        out["mean_return"], out["std_return"] = float(returns.mean()), float(returns.std())
        return out

    def learn(
        self: SelfRiskAC,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 100,
        tb_log_name: str = "RiskAC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfRiskAC:
        """Train for ``total_timesteps`` iterations (see the class docstring for what a timestep is).

        :param total_timesteps: number of iterations.
        :param callback: SB3 callback(s), called after every iteration.
        :param log_interval: dump the logs every this many iterations.
        :param tb_log_name: name of the TensorBoard run.
        :param reset_num_timesteps: restart the iteration counter (False continues a run). As in SB3, a
            learning-rate schedule (the default one included) runs over the iterations done plus this call's, so it
            reaches its end (the default's cosine: lr 0) at the end of every call of a run split into several; train
            in one call and read out with a ``callback`` (or continue a saved run with
            ``learn(total − done, reset_num_timesteps=False)``, which equals the uninterrupted one).
        :param progress_bar: show a progress bar (tqdm + rich).
        """
        total_timesteps, cb = self._setup_learn(
            check_total_timesteps(total_timesteps), callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        cb.on_training_start(locals(), globals())
        cpu_start, wall_start, eval_cpu, eval_wall = time.process_time(), time.perf_counter(), 0.0, 0.0
        optimizers = [self.policy.actor_optimizer, self.policy.critic_optimizer]
        sums = th.zeros(4, device=self.device)
        n_sum = 0
        while self.num_timesteps < total_timesteps:
            self._update_current_progress_remaining(self.num_timesteps, total_timesteps)
            self._update_learning_rate(optimizers)
            self.train_step()
            sums += self._last_stats  # (critic loss, actor loss, ESS fractions)
            n_sum += 1
            self.num_timesteps += 1
            self._n_updates += 1
            if not cb.on_step():
                break
            if self.eval_freq > 0 and self._n_updates % self.eval_freq == 0:
                cpu_now, wall_now = time.process_time(), time.perf_counter()
                metrics = self.evaluate()
                # seconds of this learn() call so far, evaluations excluded (CPU time of this process; the
                # one-off compile partly runs in worker processes, so it shows in the wall time only)
                spent = {
                    "cpu_seconds": cpu_now - cpu_start - eval_cpu,
                    "wall_seconds": wall_now - wall_start - eval_wall,
                }
                eval_cpu += time.process_time() - cpu_now
                eval_wall += time.perf_counter() - wall_now
                self.eval_history.append({"iteration": float(self._n_updates), **spent, **metrics})
                for key, value in metrics.items():
                    prefix = "reference" if key.startswith(("value_r", "policy_r", "reference")) else "eval"
                    self.logger.record(f"{prefix}/{key}", value)
            if log_interval > 0 and self._n_updates % log_interval == 0:
                self._log(sums / n_sum)
                sums.zero_()
                n_sum = 0
        if n_sum:
            self._log(sums / n_sum)
        cb.on_training_end()
        return self

    def _log(self, mean_losses: th.Tensor) -> None:
        """Dump the means since the last dump: losses and the ESS fractions of the exponential weights."""
        c_loss, a_loss, critic_ess, actor_ess = mean_losses.tolist()
        elapsed = max((time.time_ns() - self.start_time) / 1e9, 1e-9)
        self.logger.record("train/critic_loss", c_loss)
        self.logger.record("train/actor_loss", a_loss)
        self.logger.record("train/critic_ess_fraction", critic_ess)
        self.logger.record("train/actor_ess_fraction", actor_ess)
        self.logger.record("train/n_updates", self._n_updates)
        self.logger.record("train/risk_aversion", self.risk_aversion)
        self.logger.record("time/iterations_per_s", (self.num_timesteps - self._num_timesteps_at_start) / elapsed)
        self.logger.record("time/total_timesteps", self.num_timesteps, exclude="tensorboard")
        self.logger.dump(step=self.num_timesteps)

    @th.no_grad()
    def evaluation_returns(self) -> th.Tensor:
        """Returns Σ_t r_t of the current policy on the common evaluation paths, float64, shape ``(n_eval_paths,)``."""
        policy, sim = self.policy, self.simulator

        def act(t: th.Tensor, s: th.Tensor) -> th.Tensor:
            return policy.action(sim.observe(t, s)).squeeze(-1)

        return rollout_returns(sim, act, self._eval_paths).double()

    def predict_value(self, observation: np.ndarray, risk_aversion: float | None = None) -> np.ndarray:
        """V_θ of observations ``(n, d)`` (or one ``(d,)``) as numpy, shape ``(n,)`` (or ``(1,)``); d = the
        observation size (2 for the finance tasks: [t/T, normalised price]; 3 with transaction costs).
        ``risk_aversion``: for an agent trained over ``risk_aversion_range``, the α of the value (default: the
        model's ``risk_aversion``)."""
        array = np.asarray(observation, dtype=np.float32)
        shape = self.observation_space.shape
        assert shape is not None
        if array.shape[-1:] != shape or array.ndim > 2:
            raise ValueError(f"observation must have shape {shape} or (n, {shape[0]}), got {array.shape}")
        obs = th.as_tensor(array, device=self.device).reshape(-1, shape[0])
        with th.no_grad():
            return self.policy.value(obs, risk_aversion).cpu().numpy()
