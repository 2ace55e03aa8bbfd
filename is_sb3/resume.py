"""Exact resume and safe loading for the off-policy agents (RiskSAC, DiscreteRiskSAC).

A resumed run equals the uninterrupted one bit for bit when everything it draws from continues where it
stopped. SB3's ``save`` keeps the networks, optimizers and counters; :class:`ResumableOffPolicy` adds, as
tensors in the same file (``torch.load(weights_only=True)``: no code runs on loading), the state of every
random generator SB3's off-policy loop uses (torch's and numpy's global generators, the action space's
generator of the warm-up actions) and the last observation of the env. The replay buffer is saved apart
(``save_replay_buffer``; the reward-scaling statistics are computed from it) and the env is the caller's: to
continue mid-episode, load with ``env`` in the state it had at saving and ``force_reset=False`` (the CLI
keeps both beside its checkpoints).

It also stops a run at a step boundary: :meth:`ResumableOffPolicy.request_stop` (the CLI's Ctrl-C) makes the
next ``collect_rollouts`` return before stepping the env, and :class:`BoundaryCallback` runs its hook where
the state is consistent (before a rollout: the previous step stored and trained on), unlike ``on_step``,
which SB3 calls between the env's step and storing its transition.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch as th
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.type_aliases import RolloutReturn, TrainFreq

from is_sb3.files import atomic_path, sb3_path
from is_sb3.numerics import flush_denormals as _flush_denormals
from is_sb3.safe_load import load_arguments

__all__ = ["BoundaryCallback", "ResumableOffPolicy"]

SelfResumable = TypeVar("SelfResumable", bound="ResumableOffPolicy")


def _json_tensor(value: Any) -> th.Tensor:
    """A JSON-serialisable value as a uint8 tensor of its JSON text (read back with ``json.loads``)."""
    return th.tensor(list(json.dumps(value).encode()), dtype=th.uint8)


def _from_json_tensor(tensor: th.Tensor) -> Any:
    return json.loads(bytes(tensor.cpu().tolist()).decode())


class ResumableOffPolicy(OffPolicyAlgorithm):
    """Mixin for SB3 off-policy algorithms: random-generator state and last observation saved with the model,
    a stop at the next step boundary, and loading that runs no code from the file.

    ``save`` refreshes ``resume_state``; ``load`` puts it back after SB3 has re-seeded everything from the
    model's seed (so the run continues its random streams instead of replaying them).
    """

    #: the JSON text of the generators' state and the last observation, as uint8 (empty until ``save``)
    resume_state: th.Tensor
    _stop_requested: bool = False
    #: ``learn`` flushes subnormal floats to zero on every training thread, restoring the setting afterwards
    #: (:mod:`is_sb3.numerics`; set to False on a model to train with IEEE subnormals)
    flush_denormals: bool = True

    def learn(self: SelfResumable, *args: Any, **kwargs: Any) -> SelfResumable:
        """SB3's ``learn``, with subnormal numbers flushed to zero while it runs (see ``flush_denormals``)."""
        with _flush_denormals(self.flush_denormals):
            return super().learn(*args, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self.resume_state = th.zeros(0, dtype=th.uint8)

    def request_stop(self) -> None:
        """Make ``learn`` stop before the next environment step (after the current step's update)."""
        self._stop_requested = True

    def collect_rollouts(self, *args: Any, **kwargs: Any) -> RolloutReturn:
        if self._stop_requested:
            self._stop_requested = False
            return RolloutReturn(0, 0, continue_training=False)
        return super().collect_rollouts(*args, **kwargs)

    def _capture_resume_state(self) -> th.Tensor:
        legacy: Any = np.random.get_state()  # noqa: NPY002  (SB3's replay buffers sample with numpy's global one)
        _, keys, pos, has_gauss, cached = legacy
        state: dict[str, Any] = {
            "torch": th.get_rng_state().tolist(),
            "numpy": [keys.tolist(), int(pos), int(has_gauss), float(cached)],
            "action_space": self.action_space.np_random.bit_generator.state,
        }
        if self.device.type == "cuda":
            state["cuda"] = th.cuda.get_rng_state(self.device).tolist()
        if isinstance(self._last_obs, np.ndarray) and isinstance(self._last_episode_starts, np.ndarray):
            obs = self._last_obs
            state["last_obs"] = {"dtype": str(obs.dtype), "shape": list(obs.shape), "data": obs.ravel().tolist()}
            state["last_episode_starts"] = self._last_episode_starts.tolist()
        return _json_tensor(state)

    def _restore_resume_state(self, tensor: th.Tensor, restore_obs: bool) -> None:
        if tensor.numel() == 0:  # saved before a save() refreshed it
            return
        state = _from_json_tensor(tensor)
        th.set_rng_state(th.tensor(state["torch"], dtype=th.uint8))
        keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state(("MT19937", np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002
        self.action_space.np_random.bit_generator.state = state["action_space"]
        if "cuda" in state and self.device.type == "cuda":
            th.cuda.set_rng_state(th.tensor(state["cuda"], dtype=th.uint8), self.device)
        if restore_obs and "last_obs" in state:
            obs = state["last_obs"]
            self._last_obs = np.asarray(obs["data"], dtype=obs["dtype"]).reshape(obs["shape"])
            self._last_episode_starts = np.asarray(state["last_episode_starts"], dtype=bool)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts, variables = super()._get_torch_save_params()
        return state_dicts, [*variables, "resume_state"]

    def save(self, path: Any, exclude: Any = None, include: Any = None) -> None:
        """SB3's ``save``, with the random generators' state and the last observation (see the module doc), written
        to a unique temporary file renamed into place (a crash or a full disk leaves any previous file whole)."""
        self.resume_state = self._capture_resume_state()
        freq = self.train_freq
        assert isinstance(freq, TrainFreq)  # converted by _setup_model
        self.train_freq_spec = [int(freq.frequency), str(freq.unit.value)]  # readable by the safe loader
        if isinstance(path, (str, os.PathLike)):  # a unique temporary file renamed into place (is_sb3.files)
            with atomic_path(sb3_path(path, "zip")) as tmp:
                super().save(tmp, exclude, include)
        else:
            super().save(path, exclude, include)

    def save_replay_buffer(self, path: Any) -> None:
        """SB3's ``save_replay_buffer``, written to a unique temporary file renamed into place (a crash or a full
        disk leaves any previous file whole)."""
        if isinstance(path, (str, os.PathLike)):
            with atomic_path(sb3_path(path, "pkl")) as tmp:
                super().save_replay_buffer(tmp)
        else:
            super().save_replay_buffer(path)

    @classmethod
    def load(
        cls: type[SelfResumable],
        path: Any,
        env: Any = None,
        device: th.device | str = "auto",
        custom_objects: dict[str, Any] | None = None,
        print_system_info: bool = False,
        force_reset: bool = True,
        allow_pickle: bool = False,
        **kwargs: Any,
    ) -> SelfResumable:
        """SB3's ``load``, running no code from the file, the random generators continuing where they were saved.

        By default the file's pickled entries are rebuilt from their readable fields (:mod:`is_sb3.safe_load`)
        and a file holding any other pickle is refused (``UnsafeModelFileError``); ``allow_pickle=True``
        unpickles them as SB3 does: only for files you trust. ``force_reset=False`` with ``env`` in the state
        it had at saving continues the episode in progress (exact resume); other arguments as in SB3.
        """
        source, env, custom_objects = load_arguments(path, cls, env, custom_objects, allow_pickle)
        model = super().load(source, env, device, custom_objects, print_system_info, force_reset, **kwargs)
        model._restore_resume_state(model.resume_state, restore_obs=env is not None and not force_reset)
        return model


class BoundaryCallback(BaseCallback):
    """Calls ``hook(model)`` at each step boundary (before a rollout) for off-policy agents, after each
    iteration for RiskAC (whose ``learn`` has no rollouts); returns ``keep_going()`` to SB3 for RiskAC."""

    def __init__(self, hook: Callable[[Any], None], keep_going: Callable[[], bool] = lambda: True) -> None:
        super().__init__()
        self.hook, self.keep_going = hook, keep_going

    def _on_rollout_start(self) -> None:
        self.hook(self.model)

    def _on_step(self) -> bool:
        if isinstance(self.model, OffPolicyAlgorithm):
            return True  # SB3 calls this between the env's step and storing the transition: not a boundary
        self.hook(self.model)
        return self.keep_going()
