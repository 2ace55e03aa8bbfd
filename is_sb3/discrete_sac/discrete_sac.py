"""DiscreteRiskSAC: discrete-action soft actor-critic with entropic critics (Enders et al.)."""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal, NamedTuple, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional

from is_sb3.common import check_risk_settings, check_total_timesteps, make_env
from is_sb3.discrete_sac.policies import CnnPolicy, DiscreteSACPolicy, MlpPolicy, sample_categorical
from is_sb3.losses import critic_loss
from is_sb3.numerics import resolve_precision
from is_sb3.resume import ResumableOffPolicy
from is_sb3.risk import certainty_equivalent
from is_sb3.validation import check_off_policy

__all__ = [
    "CRITIC_LOSSES",
    "ENDERS_ENT_COEF_ZERO_AT_STEP",
    "DiscreteRiskSAC",
    "UpdateTerms",
    "add_l2_gradient_",
    "discrete_sac_target",
    "l2_penalty",
    "sample_categorical",
]

#: critic losses of DiscreteRiskSAC: the four of :mod:`is_sb3.losses` and Enders et al.'s Huber loss
CRITIC_LOSSES = ("is", "sp", "emse", "mse", "huber")

#: Enders et al. set κ to 0 at this absolute env step (of their 2M-step runs)
ENDERS_ENT_COEF_ZERO_AT_STEP = 800_000


def l2_penalty(module: th.nn.Module, coef: float) -> th.Tensor:
    """Keras' ``kernel_regularizer=L2(coef)`` of Enders et al.: coef · Σ_W ‖W‖² over the weight tensors
    (conv and linear kernels, ``ndim ≥ 2``), biases excluded; its gradient is 2·coef·W.

    :param module: the network.
    :param coef: the coefficient (≥ 0).
    :return: a scalar tensor (0 when ``coef`` is 0).
    """
    weights = [p for p in module.parameters() if p.ndim >= 2 and p.requires_grad]
    if coef == 0 or not weights:
        return th.zeros((), device=next(module.parameters()).device)
    return coef * th.stack([w.square().sum() for w in weights]).sum()


def add_l2_gradient_(module: th.nn.Module, coef: float) -> None:
    """Add the gradient of :func:`l2_penalty` (2·coef·W) to the ``.grad`` of every weight tensor of ``module``, in
    place, with one fused ``_foreach_add_`` (no autograd graph for the penalty). Weights without a gradient are
    left alone.

    :param module: the network, after ``backward``.
    :param coef: the coefficient (≥ 0).
    """
    pairs = [(p, p.grad) for p in module.parameters() if p.ndim >= 2 and p.requires_grad and p.grad is not None]
    if coef == 0 or not pairs:
        return
    weights, grads = zip(*pairs, strict=True)
    th._foreach_add_(list(grads), list(weights), alpha=2.0 * coef)


class UpdateTerms(NamedTuple):
    """What one DiscreteRiskSAC update computes on a batch (:meth:`DiscreteRiskSAC.update_terms`)."""

    target: th.Tensor  #: y, shape (batch,), no gradient
    q: th.Tensor  #: Q_i(s, ·) of every critic, shape (n_critics, batch, n_actions), float32
    q_taken: th.Tensor  #: Q_i(s, a) of the batch's actions, shape (n_critics, batch)
    critic_loss: th.Tensor  #: Σ_i mean ℓ(Q_i(s, a), y), a scalar
    actor_loss: th.Tensor  #: E_s Σ_a π(a|s)(κ log π(a|s) − min_i Q_i(s, a)), a scalar
    log_pi: th.Tensor  #: log π(·|s), shape (batch, n_actions)


SelfDiscreteRiskSAC = TypeVar("SelfDiscreteRiskSAC", bound="DiscreteRiskSAC")


def discrete_sac_target(
    rewards: th.Tensor,
    dones: th.Tensor,
    next_logits: th.Tensor,
    next_q: th.Tensor,
    gamma: float,
    ent_coef: float,
    risk_aversion: float,
    target: Literal["sampled", "enders"],
    next_actions: th.Tensor | None = None,
) -> th.Tensor:
    """Critic target of discrete SAC, shape ``(batch,)``.

    With π' = π(·|s'), H its entropy, Q̄' = min_i Q̄_i(s', ·) (``next_q``, shape ``(batch, n_actions)``):

    - ``"sampled"`` (IS paper): y = r + (1 − d) γ (κ H(π') + Q̄'(a')), a' ~ π' (``next_actions``);
    - ``"enders"``: y = r + (1 − d) [γ κ H(π') + (1/β) log Σ_a' π'(a') e^{β γ Q̄'(a')}], β = −α, i.e.
      the entropic certainty equivalent CE_α over a' ~ π' of γ Q̄' (log-sum-exp over log π'); α → 0
      gives the risk-neutral expectation Σ π' γ Q̄'.

    :param rewards: r, shape ``(batch,)``.
    :param dones: d ∈ {0, 1}, shape ``(batch,)``.
    :param next_logits: actor logits at s', shape ``(batch, n_actions)``.
    :param next_q: Q̄' (min over target critics), shape ``(batch, n_actions)``.
    :param gamma: discount γ.
    :param ent_coef: κ.
    :param risk_aversion: α.
    :param target: "sampled" or "enders".
    :param next_actions: a' for "sampled", shape ``(batch,)`` (int64).
    """
    log_pi = th.log_softmax(next_logits, dim=-1)
    entropy = -(log_pi.exp() * log_pi).sum(-1)
    if target == "sampled":
        if next_actions is None:
            raise ValueError("the 'sampled' target needs next_actions")
        future = gamma * (ent_coef * entropy + next_q.gather(1, next_actions.long().view(-1, 1)).squeeze(1))
    elif target == "enders":
        future = gamma * ent_coef * entropy + certainty_equivalent(
            gamma * next_q, risk_aversion, dim=-1, log_weights=log_pi
        )
    else:
        raise ValueError(f"target must be 'sampled' or 'enders', got {target!r}")
    return rewards + (1.0 - dones) * future


class DiscreteRiskSAC(ResumableOffPolicy):
    """Soft actor-critic for discrete actions with entropic (risk-averse) critics.

    A categorical actor, ``n_critics`` critics giving Q(s, ·) for all actions and Polyak-averaged
    target critics. Two critic targets (see :func:`discrete_sac_target`):

    - ``target="sampled"`` (the IS paper's variant, default): one a' ~ π(·|s'), regressed with
      ``critic_loss`` ∈ {"is", "sp", "emse", "mse"} (default "is") at ``risk_aversion`` α, so the risk is
      taken jointly over s' and a';
    - ``target="enders"``: Enders et al.'s expectation over a' with the entropic risk over actions
      (log-sum-exp), regressed by default with their Huber loss (``critic_loss="huber"``, δ = ``huber_delta``).
      With ``risk_aversion=0`` this is Enders' risk-neutral discrete SAC exactly.

    Every critic loss works with either target ("huber" too with "sampled"); the one given is the one used.

    The actor minimises E_s Σ_a π(a|s)(κ log π(a|s) − min_i Q_i(s, a)) with the critics' values from
    before the critic step of the same update (as Enders et al.). Enders' options, as in their code: a
    fixed entropy coefficient κ = ``ent_coef`` set to 0 at env step ``ent_coef_zero_at_step`` (800k of
    their 2M; so never within the IS paper's 500k) or after the fraction ``ent_coef_zero_at`` of the
    run, whichever comes first; rewards divided by the standard deviation of the rewards in the buffer
    (``reward_scaling``); an L2 penalty ``l2``·Σ‖W‖² on the weights of every network, biases excluded
    (:func:`l2_penalty`; gradient 2·l2·W, not Adam's weight decay); gradient-norm clipping of each
    network, each critic on its own (``max_grad_norm``); one update per ``train_freq`` env steps.
    (Each critic having its own Adam, as Enders', is the same as one Adam over both: Adam is
    elementwise.)

    Precision: Enders train in float16 mixed precision (Keras ``LossScaleOptimizer``). Here ``precision="bf16"``
    runs the networks' forward passes of the update under bf16 autocast (float32 master weights, optimizer
    states, targets, losses, reward scaling and log-sum-exp; bf16 needs no loss scaling), ``"float32"`` everything
    in float32, and ``"auto"`` (default) picks bf16 only where it is faster (AMX on Intel CPUs, AVX512-BF16 on AMD
    CPUs, bf16 tensor cores on CUDA; :func:`is_sb3.numerics.has_fast_bf16`), float32 elsewhere, where bf16 would
    be slower. ``predict`` always runs in float32. ``learn`` flushes subnormal numbers to zero on every training
    thread (:mod:`is_sb3.numerics`): Enders' L2 under Adam drives dead units' weights below 1e-38, where Intel
    CPUs compute many times slower.

    :param policy: "CnnPolicy" (Enders' CNN, for the grid), "MlpPolicy" (flat observations) or a class.
    :param env: the environment or its id.
    :param risk_aversion: α.
    :param critic_loss: "is", "sp", "emse", "mse" or "huber" (δ = ``huber_delta``); default (``None``): "is"
        with the "sampled" target, "huber" with the "enders" target.
    :param target: "sampled" or "enders".
    :param learning_rate: Adam learning rate (float or schedule).
    :param buffer_size: replay buffer size.
    :param learning_starts: uniformly random steps before learning.
    :param batch_size: minibatch size.
    :param tau: Polyak coefficient of the target critics.
    :param gamma: discount factor γ.
    :param train_freq: env steps between updates.
    :param gradient_steps: gradient steps per update.
    :param ent_coef: entropy coefficient κ (fixed).
    :param ent_coef_zero_at: fraction of the run after which κ = 0 (``None``: no fractional switch).
    :param ent_coef_zero_at_step: env step from which κ = 0 (default Enders' 800k; ``None``: none).
    :param reward_scaling: divide rewards by the std of the buffer's rewards.
    :param l2: coefficient of the L2 penalty on the weights of actor and critics (see :func:`l2_penalty`).
    :param max_grad_norm: gradient-norm clip of the actor and of each critic separately (``None``: none).
    :param huber_delta: δ of the Huber loss (``critic_loss="huber"``).
    :param precision: "auto", "float32" or "bf16": the compute precision of the networks in the update (above).
    :param policy_kwargs: policy arguments (``net_arch``, ``n_critics``, ...).
    :param tensorboard_log: TensorBoard log folder.
    :param verbose: verbosity.
    :param seed: seed.
    :param device: "auto", "cpu", "cuda", ...
    :param _init_setup_model: build the networks at construction (internal; used by ``load``).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"CnnPolicy": CnnPolicy, "MlpPolicy": MlpPolicy}
    policy: DiscreteSACPolicy

    def __init__(
        self,
        policy: str | type[DiscreteSACPolicy],
        env: GymEnv | str,
        risk_aversion: float = 0.1,
        critic_loss: str | None = None,
        target: Literal["sampled", "enders"] = "sampled",
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 200_000,
        learning_starts: int = 20_000,
        batch_size: int = 512,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int = 20,
        gradient_steps: int = 1,
        ent_coef: float = math.exp(-2.0),
        ent_coef_zero_at: float | None = None,
        ent_coef_zero_at_step: int | None = ENDERS_ENT_COEF_ZERO_AT_STEP,
        reward_scaling: bool = True,
        l2: float = 1e-4,
        max_grad_norm: float | None = 10.0,
        huber_delta: float = 2.0,
        precision: str = "auto",
        policy_kwargs: dict[str, Any] | None = None,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if target not in ("sampled", "enders"):
            raise ValueError(f"target must be 'sampled' or 'enders', got {target!r}")
        if critic_loss is None:
            critic_loss = "huber" if target == "enders" else "is"
        if critic_loss not in CRITIC_LOSSES:
            raise ValueError(f"critic_loss must be one of {CRITIC_LOSSES} (or None), got {critic_loss!r}")
        alpha = check_risk_settings(risk_aversion, "mse" if critic_loss == "huber" else critic_loss)
        if not (ent_coef >= 0 and math.isfinite(ent_coef)):
            raise ValueError(f"ent_coef must be a finite number >= 0, got {ent_coef!r}")
        if ent_coef_zero_at is not None and not 0 <= ent_coef_zero_at <= 1:
            raise ValueError(f"ent_coef_zero_at must be in [0, 1] or None, got {ent_coef_zero_at!r}")
        if ent_coef_zero_at_step is not None and not (
            int(ent_coef_zero_at_step) == ent_coef_zero_at_step and ent_coef_zero_at_step >= 0
        ):
            raise ValueError(f"ent_coef_zero_at_step must be an integer >= 0 or None, got {ent_coef_zero_at_step!r}")
        if not (l2 >= 0 and math.isfinite(l2)):
            raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
        if max_grad_norm is not None and not max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm!r}")
        if not huber_delta > 0:
            raise ValueError(f"huber_delta must be > 0, got {huber_delta!r}")
        resolve_precision(precision, "cpu")  # validates the name
        if not isinstance(reward_scaling, bool):
            raise ValueError(f"reward_scaling must be True or False, got {reward_scaling!r}")
        if _init_setup_model:  # (SB3's load builds with False and sets the saved attributes)
            given = {"learning_rate": learning_rate, "buffer_size": buffer_size, "learning_starts": learning_starts,
                     "batch_size": batch_size, "tau": tau, "gamma": gamma, "train_freq": train_freq,
                     "gradient_steps": gradient_steps, "device": device, "policy_kwargs": policy_kwargs}  # fmt: skip
            check_off_policy(given, {}, net_arch_keys=())
        policy_kwargs = dict(policy_kwargs or {})
        super().__init__(
            policy,
            make_env(env),
            learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
            gradient_steps=gradient_steps,
            policy_kwargs=policy_kwargs,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            supported_action_spaces=(spaces.Discrete,),
            sde_support=False,
            support_multi_env=True,
        )
        self.risk_aversion = alpha
        self.critic_loss = critic_loss
        self.target = target
        self.ent_coef = float(ent_coef)
        self.ent_coef_zero_at = ent_coef_zero_at
        self.ent_coef_zero_at_step = None if ent_coef_zero_at_step is None else int(ent_coef_zero_at_step)
        self.reward_scaling = reward_scaling
        self.l2 = l2
        self.max_grad_norm = max_grad_norm
        self.huber_delta = huber_delta
        self.precision = precision
        if _init_setup_model:
            self._setup_model()

    def current_ent_coef(self) -> float:
        """κ now: ``ent_coef`` until env step ``ent_coef_zero_at_step`` or the fraction ``ent_coef_zero_at``
        of the run (whichever comes first), then 0."""
        step = getattr(self, "ent_coef_zero_at_step", None)  # absent in models saved before it existed
        if step is not None and self.num_timesteps >= step:
            return 0.0
        if self.ent_coef_zero_at is not None and 1.0 - self._current_progress_remaining >= self.ent_coef_zero_at:
            return 0.0
        return self.ent_coef

    @property
    def compute_dtype(self) -> th.dtype:
        """The dtype the networks compute in during updates (``precision`` resolved on this model's device)."""
        return resolve_precision(getattr(self, "precision", "float32"), self.device)  # float32 in older files

    def _reward_scale(self) -> float:
        if not self.reward_scaling:
            return 1.0
        buf = self.replay_buffer
        assert buf is not None
        n = buf.buffer_size if buf.full else buf.pos
        std = float(np.std(buf.rewards[:n])) if n > 1 else 0.0
        return 1.0 / std if std > 1e-8 else 1.0

    def _clip_step(self, modules: list[th.nn.Module], optimizer: th.optim.Optimizer) -> th.Tensor:
        """Clip the gradient norm of each module on its own (if ``max_grad_norm``), then step the optimizer;
        returns the norm of all their gradients together before clipping."""
        max_norm = self.max_grad_norm if self.max_grad_norm is not None else math.inf
        norms = th.stack([th.nn.utils.clip_grad_norm_(m.parameters(), max_norm) for m in modules])
        optimizer.step()
        return th.linalg.vector_norm(norms)

    def update_terms(self, data: ReplayBufferSamples, ent_coef: float, reward_scale: float) -> UpdateTerms:
        """The quantities of one update on the batch ``data``, from the current networks: the critic target y
        (no gradient), the critics' Q(s, ·), the critic loss Σ_i mean ℓ(Q_i(s, a), y) and the actor loss
        E_s Σ_a π(a|s)(κ log π(a|s) − min_i Q_i(s, a)) (Q detached), the last two differentiable. The forward
        passes run in the model's compute precision, everything after them in float32. ``train`` steps on these;
        they are public so that precisions and targets can be compared on fixed batches.

        :param data: a replay-buffer batch.
        :param ent_coef: κ.
        :param reward_scale: the factor the rewards are multiplied by.
        """
        rewards, dones = data.rewards.view(-1) * reward_scale, data.dones.view(-1)
        actions = data.actions.long().view(-1, 1)
        bf16 = self.compute_dtype == th.bfloat16
        with th.no_grad():
            with th.autocast(self.device.type, dtype=th.bfloat16, enabled=bf16):
                next_logits = self.policy.logits(data.next_observations)
                next_q = self.policy.q_values(data.next_observations, target=True)
            next_logits, next_q = next_logits.float(), next_q.float().min(dim=0).values
            next_actions = sample_categorical(next_logits)
            y = discrete_sac_target(
                rewards, dones, next_logits, next_q, self.gamma, ent_coef, self.risk_aversion, self.target,
                next_actions,
            )  # fmt: skip
        with th.autocast(self.device.type, dtype=th.bfloat16, enabled=bf16):
            q_all_critics = self.policy.q_values(data.observations)
            logits = self.policy.logits(data.observations)
        q_all_critics = q_all_critics.float()  # (n_critics, batch, n_actions)
        q_taken = q_all_critics.gather(2, actions.expand(len(q_all_critics), -1, -1)).squeeze(2)  # Q_i(s, a)
        q = list(q_taken)
        if self.critic_loss == "huber":
            c_loss = sum(functional.huber_loss(qi, y, delta=self.huber_delta) for qi in q)
        else:
            c_loss = sum(critic_loss(self.critic_loss, qi, y, self.risk_aversion) for qi in q)
        assert isinstance(c_loss, th.Tensor)
        # actor: with the critics' values from before their step (Enders et al.'s order; saves two critic forwards)
        log_pi = th.log_softmax(logits.float(), dim=-1)
        q_all = q_all_critics.detach().min(dim=0).values
        a_loss = (log_pi.exp() * (ent_coef * log_pi - q_all)).sum(-1).mean()
        return UpdateTerms(y, q_all_critics, q_taken, c_loss, a_loss, log_pi)

    def update(self, data: ReplayBufferSamples, ent_coef: float, reward_scale: float) -> tuple[th.Tensor, ...]:
        """One gradient step of the critics, then the actor, then the Polyak step of the target critics, on the
        batch ``data``; no host synchronisation (tested on CUDA). Returns detached tensors for the logs: critic
        loss, actor loss, the actor's mean entropy, the critics' gradient norm before clipping and Q_1(s, a)
        on the batch.

        :param data: a replay-buffer batch.
        :param ent_coef: κ.
        :param reward_scale: the factor the rewards are multiplied by.
        """
        terms = self.update_terms(data, ent_coef, reward_scale)
        self.policy.critic_optimizer.zero_grad()
        terms.critic_loss.backward()
        add_l2_gradient_(self.policy.critics, self.l2)  # the gradient of l2_penalty, without its graph
        critic_norm = self._clip_step(list(self.policy.critics), self.policy.critic_optimizer).detach()
        self.policy.actor_optimizer.zero_grad()
        terms.actor_loss.backward()
        add_l2_gradient_(self.policy.actor, self.l2)
        self._clip_step([self.policy.actor], self.policy.actor_optimizer)
        polyak_update(self.policy.critics.parameters(), self.policy.critics_target.parameters(), self.tau)
        log_pi = terms.log_pi.detach()
        entropy = -(log_pi.exp() * log_pi).sum(-1).mean()
        return terms.critic_loss.detach(), terms.actor_loss.detach(), entropy, critic_norm, terms.q_taken[0].detach()

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.policy.actor_optimizer, self.policy.critic_optimizer])
        kappa = self.current_ent_coef()
        scale = self._reward_scale()
        steps = []
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
            steps.append(self.update(data, kappa, scale))
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        c_losses, a_losses, entropies, c_norms, q_taken = zip(*steps, strict=True)
        q_seen = th.cat(q_taken)  # Q_1(s, a) on this call's batches, in scaled-reward units
        stats = th.stack(
            [
                th.stack(c_losses).mean(),
                th.stack(a_losses).mean(),
                th.stack(entropies).mean(),
                th.stack(c_norms).mean(),  # critic gradient norm before clipping
                q_seen.mean(),
                q_seen.abs().max(),
            ]
        ).tolist()  # the one device sync of a train() call
        for key, value in zip(
            ("critic_loss", "actor_loss", "entropy", "critic_grad_norm", "q_mean", "q_abs_max"), stats, strict=True
        ):
            self.logger.record(f"train/{key}", value)
        self.logger.record("train/ent_coef", kappa)
        self.logger.record("train/reward_scale", scale)
        self.logger.record("train/risk_aversion", self.risk_aversion)
        self.logger.record("train/bf16", int(self.compute_dtype == th.bfloat16), exclude="stdout")

    def learn(
        self: SelfDiscreteRiskSAC,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DiscreteRiskSAC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDiscreteRiskSAC:
        """Train for ``total_timesteps`` environment steps (SB3's meaning)."""
        total_timesteps = check_total_timesteps(total_timesteps)
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.actor_optimizer", "policy.critic_optimizer"], ["resume_state"]
