"""RiskAC's iteration as one pure tensor function, for ``torch.compile`` (the fast path).

:meth:`RiskAC._eager_step` is the reference: SB3-style ``backward()``, ``clip_grad_*`` and
``optimizer.step()``. Those calls split a compiled graph into many small ones, so the fast path
computes the same update functionally: gradients with :func:`torch.func.grad_and_value` (actor and
critic networks called through :func:`torch.func.functional_call`), clipping on the gradient lists,
and PyTorch's own functional Adam (:func:`torch.optim.adam.adam`, the function ``Adam.step`` calls)
updating the parameters and the optimizers' own state tensors in place. Nothing is copied out of the
optimizers, so ``save``/``load`` and the eager path see exactly the same state.

Order: the actor's gradient comes first, because its forward pass also gives π(s) for the critic
target (the eager path computes the critic step first; the actor's gradient does not depend on the
critic's parameters, only on the target critic, so the update is the same).

Beyond compiling, four measured details (one CPU thread, the paper's settings; together ~15 % of the
compiled iteration, ``python -m benchmarks.analytic --speed``):

- *Guards.* Dynamo checks ~500 guards before every call (~0.1 ms of a ~1.7 ms iteration): the modules,
  the optimizers' state dicts, the Python numbers the graph bakes in. The graph keeps only its tensor
  guards (shapes, dtypes, devices of inputs and parameters) and those on the simulator (what it reads of
  a task), and :meth:`CompiledIteration.settings` checks the rest in Python, more cheaply: the numbers
  (α, loss, τ, clipping, scales, Adam's hyperparameters) and the identity of every module and parameter.
  A change compiles a new graph.
- *Gradient norm.* Summed in the graph rather than by ``get_total_norm``, whose ``_foreach_norm`` inductor
  runs as an external call (~5 %).
- *Bias.* On the CPU inductor keeps ``addmm(bias, x, Wᵀ)``, which first copies the broadcast bias into the
  output; the custom pass :class:`UnfuseBias` computes ``mm(x, Wᵀ) + bias``, the addition fused into the
  activation's kernel.
- *Mish.* Its slope comes from the forward pass (:mod:`is_sb3.activations`): no second exponential.
"""

from __future__ import annotations

import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch as th
from stable_baselines3.common.utils import polyak_update
from torch.func import functional_call, grad_and_value
from torch.optim.adam import adam

from is_sb3.ac.task import action_dependent
from is_sb3.losses import critic_loss, exponential_utility_actor_loss
from is_sb3.risk import effective_sample_size

__all__ = [
    "CompiledIteration",
    "adam_hyperparameters",
    "clip_gradients",
    "functional_adam_step",
    "supports_functional_step",
]

#: (critic loss, actor loss, critic ESS fraction, actor ESS fraction), shape ``(4,)``, detached
StepOutput = th.Tensor

try:  # torch >= 2.5: inductor's hook for custom graph passes; without it the bias stays fused (slower, same maths)
    from torch._inductor.custom_graph_pass import CustomGraphPass
except ImportError:  # pragma: no cover
    CustomGraphPass = None  # type: ignore[assignment,misc]

if CustomGraphPass is not None:

    class UnfuseBias(CustomGraphPass):
        """Post-grad inductor pass: ``addmm(bias, x, W)`` with a 1-d bias → ``mm(x, W) + bias``.

        On the CPU ``addmm`` with a broadcast bias first copies the bias into its output (a full write of the
        activations); as ``mm`` + ``add`` the addition fuses into the next pointwise kernel (the activation) for
        free. Same arithmetic up to float rounding order. (Inductor itself does this on GPUs only.)
        """

        def __call__(self, graph: th.fx.Graph) -> None:
            aten = th.ops.aten
            for node in list(graph.nodes):
                if node.op != "call_function" or node.target is not aten.addmm.default or node.kwargs:
                    continue
                bias, mat1, mat2 = node.args
                if not isinstance(bias, th.fx.Node) or bias.meta["val"].dim() != 1:
                    continue
                with graph.inserting_before(node):
                    product = graph.call_function(aten.mm.default, (mat1, mat2))
                    product.meta = dict(node.meta)
                    total = graph.call_function(aten.add.Tensor, (product, bias))
                    total.meta = dict(node.meta)
                node.replace_all_uses_with(total)
                graph.erase_node(node)

        def uuid(self) -> str:
            return "is_sb3.UnfuseBias.v1"


def _keep_tensor_and_simulator_guards(entries: list[Any]) -> list[bool]:
    """Dynamo guard filter: keep the tensor guards (inputs, parameters, optimizer states: shapes, dtypes, devices)
    and every guard on the simulator (exactly what the graph reads of a user's task); drop the rest, which
    :meth:`CompiledIteration.settings` checks instead."""
    return [entry.guard_type == "TENSOR_MATCH" or ".simulator" in entry.name for entry in entries]


def compile_options() -> dict[str, Any]:
    """Inductor options of the compiled iteration: tensor and simulator guards only (where this torch can filter
    guards; the rest is :meth:`CompiledIteration.settings`) and the :class:`UnfuseBias` pass (where inductor takes
    one)."""
    options: dict[str, Any] = {}
    if hasattr(th.compiler, "keep_tensor_guards_unsafe"):  # torch >= 2.8: dynamo takes guard filters
        options["guard_filter_fn"] = _keep_tensor_and_simulator_guards
    if CustomGraphPass is not None:
        options["post_grad_custom_post_pass"] = UnfuseBias()
    return options


def clip_gradients(grads: list[th.Tensor], max_value: float | None, max_norm: float | None) -> list[th.Tensor]:
    """``clip_grad_value_`` then ``clip_grad_norm_`` of PyTorch, on a list of gradients (not in place).

    :param grads: the gradients of one network.
    :param max_value: clamp each entry to ±this (``None``: no value clipping).
    :param max_norm: then scale by min(1, max_norm/(‖g‖₂ + 1e−6)) (``None``: no norm clipping).
    :return: the clipped gradients, same shapes.
    """
    if max_value is not None:
        grads = [g.clamp(-max_value, max_value) for g in grads]
    if max_norm is not None:
        # ‖g‖₂ over all entries as PyTorch's clip_grad_norm_; squares summed in the graph (not
        # ``get_total_norm``'s ``_foreach_norm``, which inductor runs as an external call: ~5 % of an iteration)
        total = th.stack([g.square().sum() for g in grads]).sum().sqrt()
        coef = (max_norm / (total + 1e-6)).clamp(max=1.0)
        grads = [g * coef for g in grads]
    return grads


def supports_functional_step(optimizer: th.optim.Optimizer, module: th.nn.Module) -> bool:
    """Whether :func:`functional_adam_step` reproduces ``optimizer.step()`` of ``module``'s parameters
    (plain Adam, one param group holding exactly the module's parameters, in order)."""
    if type(optimizer) is not th.optim.Adam or len(optimizer.param_groups) != 1:
        return False
    if [id(p) for p in optimizer.param_groups[0]["params"]] != [id(p) for p in module.parameters()]:
        return False
    group = optimizer.param_groups[0]
    return not (
        group["amsgrad"]
        or group["maximize"]
        or group.get("decoupled_weight_decay", False)
        or group.get("differentiable", False)
        or group.get("capturable", False)
        or th.is_complex(group["params"][0])
    )


def adam_hyperparameters(optimizer: th.optim.Optimizer) -> tuple[float, float, float, float]:
    """(β₁, β₂, ε, weight decay) of a one-group Adam, read outside compiled code (no guards on the group)."""
    group = optimizer.param_groups[0]
    beta1, beta2 = group["betas"]
    return float(beta1), float(beta2), float(group["eps"]), float(group["weight_decay"])


def functional_adam_step(
    optimizer: th.optim.Optimizer,
    params: list[th.Tensor],
    grads: list[th.Tensor],
    lr: float | th.Tensor,
    hyperparameters: tuple[float, float, float, float],
) -> None:
    """``optimizer.step()`` with the given gradients, through PyTorch's functional Adam (in place).

    :param optimizer: a plain Adam (see :func:`supports_functional_step`) whose state exists (after a step).
    :param params: its parameters, in its order (passed in so that compiled code never reads the groups).
    :param grads: their gradients.
    :param lr: the learning rate of this step.
    :param hyperparameters: :func:`adam_hyperparameters` of the optimizer.
    """
    state = [optimizer.state[p] for p in params]
    beta1, beta2, eps, weight_decay = hyperparameters
    adam(
        params,
        grads,
        [s["exp_avg"] for s in state],
        [s["exp_avg_sq"] for s in state],
        [],
        [s["step"] for s in state],
        foreach=False,
        amsgrad=False,
        beta1=beta1,
        beta2=beta2,
        lr=lr,
        weight_decay=weight_decay,
        eps=eps,
        maximize=False,
    )


class CompiledIteration:
    """One RiskAC iteration on a given batch, compiled with ``torch.compile`` on first use.

    Call it with the transitions ``(t, s, s_next, done)`` (learning rates are read from the optimizers); it updates the
    policy's networks, optimizers and target critic in place and returns the tensor (critic loss, actor loss,
    ESS fractions of the critic and actor weights), detached. If compiling fails (no C++ compiler,
    unsupported platform), it warns once and reports ``failed``; the caller then uses its eager step.

    :param model: the :class:`~is_sb3.ac.RiskAC` whose policy, simulator and settings it uses.
    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self.failed = False
        # one compiled graph per model: dynamo's guards (on the model's settings, modules and tensors)
        # select it, so models with different losses or α in one process never share a graph
        # A private copy of the function's code per instance: dynamo keeps compiled graphs per code object
        # and checks the guards of every graph it holds before each call, so sharing one code object
        # between models (a sweep worker trains dozens in one process) would slow every call and hit
        # dynamo's recompile limit of 8. Same-configuration models still share the compiled kernels
        # through inductor's graph cache (a repeat compile takes ~1 s).
        self._settings = self.settings()
        self._fn = self._compile()

    def _compile(self) -> Callable[..., StepOutput]:
        plain = CompiledIteration._iteration
        private = types.FunctionType(plain.__code__.replace(), plain.__globals__, plain.__name__, plain.__defaults__)
        return th.compile(types.MethodType(private, self), dynamic=False, options=compile_options())

    def settings(self) -> tuple[Any, ...]:
        """What the graph bakes in beyond its tensor inputs: checked before every call, a change recompiles.

        The model's numbers and loss, the policy's scales, Adam's hyperparameters, grad mode, and the identity of
        the policy, the simulator and every module and parameter of the three networks (shapes, dtypes and devices
        of the tensors and what the graph reads of the simulator: the graph's own guards).
        """
        m = self.model
        policy, sim = m.policy, m.simulator
        nets = (policy.actor, policy.critic, policy.critic_target)
        return (
            m.risk_aversion, m.critic_loss, m.tau, m.max_grad_value, m.max_grad_norm, policy.value_scale,
            policy.action_scale, policy.risk_aversion_range, id(policy), id(sim),
            tuple(id(x) for net in nets for x in _modules_and_parameters(net)),
            adam_hyperparameters(policy.critic_optimizer), adam_hyperparameters(policy.actor_optimizer),
            th.is_grad_enabled(),
        )  # fmt: skip

    def _iteration(
        self,
        t: th.Tensor,
        s: th.Tensor,
        s_next: th.Tensor,
        done: th.Tensor,
        alphas: th.Tensor | None,
        lr_critic: th.Tensor,
        lr_actor: th.Tensor,
        critic_adam: tuple[float, float, float, float],
        actor_adam: tuple[float, float, float, float],
    ) -> StepOutput:
        m = self.model
        policy, sim = m.policy, m.simulator
        alpha: float | th.Tensor = m.risk_aversion if alphas is None else alphas  # one α, or one per sample
        actor_params = dict(policy.actor.named_parameters())
        critic_params = dict(policy.critic.named_parameters())
        obs = sim.observe(t, s)
        x = policy._inputs(obs, alphas)  # the networks' input (α appended for a range)
        dependent = action_dependent(sim)  # the next state depends on the action: differentiate through V_θ̄(s'(a))
        with th.no_grad():
            v_now = policy.target_value(obs, alphas)
            if not dependent:
                v_next = policy.target_value(sim.observe(t + 1, s_next), alphas).masked_fill(done, 0.0)

        def actor_objective(params: dict[str, th.Tensor]) -> tuple[th.Tensor, tuple[th.Tensor, th.Tensor, th.Tensor]]:
            action = functional_call(policy.actor, params, (x,)).squeeze(-1) * policy.action_scale
            if dependent:  # V̄(s'(a)), differentiated for the actor, returned for the critic's target
                reached = sim.next_state(t, s, action, s_next)
                v_after = policy.target_value(sim.observe(t + 1, reached), alphas).masked_fill(done, 0.0)
            else:
                v_after = v_next
            gain = sim.reward(t, s, action, s_next) + v_after - v_now
            return exponential_utility_actor_loss(gain, alpha).mean(), (action, gain, v_after)

        detached = {k: v.detach() for k, v in actor_params.items()}
        actor_grads, (a_loss, (action, gain, v_after)) = grad_and_value(actor_objective, has_aux=True)(detached)
        v_next = v_after.detach()  # V̄ of the state reached (computed once for both networks)
        target = sim.reward(t, s, action.detach(), s_next) + v_next

        def critic_objective(params: dict[str, th.Tensor]) -> tuple[th.Tensor, th.Tensor]:
            value = functional_call(policy.critic, params, (x,)).squeeze(-1) * policy.value_scale
            return critic_loss(m.critic_loss, value, target, alpha), value

        detached = {k: v.detach() for k, v in critic_params.items()}
        critic_grads, (c_loss, value) = grad_and_value(critic_objective, has_aux=True)(detached)
        with th.no_grad():
            for optimizer, params, grads, lr, hyper in (
                (policy.critic_optimizer, critic_params, critic_grads, lr_critic, critic_adam),
                (policy.actor_optimizer, actor_params, actor_grads, lr_actor, actor_adam),
            ):
                clipped = clip_gradients([grads[k] for k in params], m.max_grad_value, m.max_grad_norm)
                functional_adam_step(optimizer, list(params.values()), clipped, lr, hyper)
            polyak_update(policy.critic.parameters(), policy.critic_target.parameters(), m.tau)
            critic_ess = effective_sample_size(alpha * (value.detach() - target)) / t.shape[0]
            actor_ess = effective_sample_size(-alpha * gain.detach()) / t.shape[0]
            return th.stack([c_loss.detach(), a_loss.detach(), critic_ess, actor_ess])

    def __call__(
        self, t: th.Tensor, s: th.Tensor, s_next: th.Tensor, done: th.Tensor, alphas: th.Tensor | None = None
    ) -> StepOutput | None:
        """The iteration's outputs (see :data:`StepOutput`), or ``None`` (and ``failed`` set) where compiling is
        impossible."""
        if self.failed:
            return None
        settings = self.settings()
        if settings != self._settings:  # something the graph bakes in changed: a new graph
            self._settings, self._fn = settings, self._compile()
        policy = self.model.policy
        optimizers = (policy.critic_optimizer, policy.actor_optimizer)
        # learning rates as 0-dim tensors (they change every iteration: no recompiles)
        lrs = [th.tensor(float(opt.param_groups[0]["lr"])) for opt in optimizers]
        hypers = [adam_hyperparameters(opt) for opt in optimizers]
        try:
            return self._fn(t, s, s_next, done, alphas, *lrs, *hypers)
        except Exception as err:  # compiling failed before anything ran (the update is one graph)
            if not _is_compile_error(err):
                raise
            self.failed = True
            warnings.warn(
                f"RiskAC: torch.compile is not available here ({type(err).__name__}: {str(err).splitlines()[0]}); "
                "training continues with the eager iteration (same maths, about 4x slower on a CPU). "
                "Pass torch_compile=False to skip compiling.",
                RuntimeWarning,
                stacklevel=3,
            )
            return None


def _modules_and_parameters(net: th.nn.Module) -> Iterator[object]:
    yield from net.modules()
    yield from net.parameters()


def _is_compile_error(err: Exception) -> bool:
    """An error of the compiler stack (dynamo, inductor, a missing C++ compiler), not of the maths."""
    module = type(err).__module__
    return module.startswith(("torch._dynamo", "torch._inductor", "torch._subclasses")) or isinstance(
        err, (OSError, ImportError, NotImplementedError)
    )
