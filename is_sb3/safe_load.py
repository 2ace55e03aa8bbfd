"""Loading is-rl model files (RiskAC, RiskSAC, DiscreteRiskSAC) without running code stored in them.

An SB3 model zip keeps its tensors in ``.pth`` entries (read with ``torch.load(weights_only=True)``: no
code runs) and its other attributes in a JSON ``data`` entry, where whatever JSON cannot hold (classes,
spaces, dataclasses, schedules) is a base64 cloudpickle under ``":serialized:"``, which SB3 unpickles,
running any code a crafted file puts there. :func:`safe_custom_objects` rebuilds each such entry of an
is-rl file from the readable fields SB3 stores beside it, for the classes is-rl itself writes (the
finance tasks, :class:`~is_sb3.schedules.WarmupConstantCosine`, Box and Discrete spaces, the algorithm's
own policies, SB3's replay buffer and train frequency), and
hands them to SB3 as ``custom_objects``, so nothing is unpickled. An entry it cannot rebuild is refused
with a clear error; ``RiskAC.load(..., allow_pickle=True)`` unpickles it, for files you trust.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["UnsafeModelFileError", "load_arguments", "read_model_file", "safe_custom_objects"]

#: SB3's bookkeeping of the last rollout, which ``learn`` recreates when it is None
_REBUILT_BY_LEARN = {"_last_obs", "_last_episode_starts", "_last_original_obs", "ep_info_buffer", "ep_success_buffer"}


class UnsafeModelFileError(ValueError):
    """The model file holds a pickled object that is-rl will not rebuild without running code from it."""


def _type_name(entry: dict[str, Any]) -> str:
    """``"<class 'a.b.C'>"`` → ``"a.b.C"``."""
    text = str(entry.get(":type:", ""))
    return text.removeprefix("<class '").removesuffix("'>")


def _numbers(entry: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for name in names:
        value = entry.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise UnsafeModelFileError(f"field {name!r} of {_type_name(entry)} is not a finite number: {value!r}")
        out[name] = value
    return out


def read_model_file(path: str | os.PathLike[str] | io.BufferedIOBase) -> io.BytesIO:
    """The bytes of the model file that SB3's ``load`` opens for ``path``, read once.

    SB3's rule (``stable_baselines3.common.save_util.open_path``): the path itself if it names a file, else
    ``f"{path}.zip"``: ``load("d/ckpt.best")`` opens ``d/ckpt.best`` or ``d/ckpt.best.zip``, never ``d/ckpt.zip``.
    The safety check and SB3's loader are both handed these bytes, so they read the same file whatever its name,
    even if the file is replaced in between. An open binary file is read from its current position.

    :param path: a path, with or without ``.zip``, or an open binary file.
    :raises FileNotFoundError: if neither ``path`` nor ``path.zip`` exists.
    """
    if isinstance(path, io.BufferedIOBase):
        return io.BytesIO(path.read())
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str, a path or an open binary file, got {type(path).__name__}")
    first = Path(path)
    try:
        return io.BytesIO(first.read_bytes())
    except FileNotFoundError:
        pass
    second = Path(f"{first}.zip")
    try:
        return io.BytesIO(second.read_bytes())
    except FileNotFoundError:
        raise FileNotFoundError(f"no model file {str(first)!r} (nor {str(second)!r})") from None


def _read_data(path: str | os.PathLike[str] | io.BufferedIOBase) -> dict[str, Any]:
    if not isinstance(path, io.BytesIO):
        path = read_model_file(path)
    position = path.tell()
    with zipfile.ZipFile(path) as archive:
        data: dict[str, Any] = json.loads(archive.read("data").decode())
    path.seek(position)
    return data


_NUMBER = re.compile(r"[-+]?(?:inf|nan|\d+\.?\d*(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)", re.IGNORECASE)


def _array(text: Any, shape: tuple[int, ...], dtype: str) -> Any:
    """A numpy array from its printed form (numbers only: nothing is evaluated); refused if numpy elided any."""
    import numpy as np

    if not isinstance(text, str) or "..." in text:
        raise UnsafeModelFileError(f"cannot read the bounds of a space from {str(text)[:60]!r}")
    values = [float(v) for v in _NUMBER.findall(text)]
    size = int(np.prod(shape)) if shape else 1
    if len(values) not in (1, size):
        raise UnsafeModelFileError(f"a space's bounds hold {len(values)} numbers, expected {size}")
    return np.broadcast_to(np.asarray(values, dtype=dtype).reshape(shape if len(values) == size else ()), shape).copy()


def _space(entry: dict[str, Any]) -> Any:
    """A ``Box`` or ``Discrete`` from the readable fields SB3 stores beside its pickle."""
    import numpy as np
    from gymnasium import spaces

    kind = _type_name(entry)
    try:
        if kind == "gymnasium.spaces.box.Box":
            shape = tuple(int(n) for n in entry["_shape"])
            dtype = str(entry["dtype"])
            low, high = _array(entry["low"], shape, dtype), _array(entry["high"], shape, dtype)
            return spaces.Box(low=low, high=high, shape=shape, dtype=np.dtype(dtype))
        if kind == "gymnasium.spaces.discrete.Discrete":
            return spaces.Discrete(int(entry["n"]), start=int(entry.get("start", 0)))
    except (KeyError, TypeError, ValueError) as err:
        raise UnsafeModelFileError(f"cannot rebuild a {kind} from the file's fields: {err}") from None
    raise UnsafeModelFileError(f"the file's space is a {kind!r}; is-rl rebuilds Box and Discrete spaces only")


def _known_class(entry: dict[str, Any], candidates: Any) -> Any:
    """The class among ``candidates`` that SB3's record of a class (module and ``__init__``'s name) names."""
    for cls in candidates:
        own = vars(cls)  # SB3 records the class's own attributes: its docstring, its own __init__ if any
        if entry.get("__module__") != cls.__module__ or entry.get("__doc__") != own.get("__doc__"):
            continue
        if ("__init__" in entry) != ("__init__" in own):
            continue
        if "__init__" in own and f"function {own['__init__'].__qualname__} " not in str(entry["__init__"]):
            continue
        return cls
    return None


def safe_custom_objects(path: str | Path | io.BufferedIOBase, algorithm: Any = None) -> dict[str, Any]:
    """SB3 ``custom_objects`` that replace every pickled entry of an is-rl model file (see the module doc).

    :param path: the model zip (a path, with or without ``.zip``, or an open binary file).
    :param algorithm: the class loading it (its ``policy_aliases`` are the policies accepted); default RiskAC.
    :raises UnsafeModelFileError: for a pickled entry is-rl does not rebuild.
    :raises ValueError: if the file is not a readable model zip.
    """
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit

    from is_envs.finance import GaussianReturnTask, HedgingWithCostsTask, OptionHedgingTask, QuadraticPenaltyTask
    from is_envs.finance.envs import action_space, observation_space
    from is_sb3.ac.policies import RiskACPolicy
    from is_sb3.schedules import WarmupConstantCosine

    policies = [RiskACPolicy] if algorithm is None else list(algorithm.policy_aliases.values())
    try:
        data = _read_data(path)
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not a readable model file: {err}") from None
    pickled = {k: v for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v}
    tasks = {
        f"{c.__module__}.{c.__qualname__}": c
        for c in (GaussianReturnTask, QuadraticPenaltyTask, OptionHedgingTask, HedgingWithCostsTask)
    }
    out: dict[str, Any] = {}
    task = None
    if "task" in pickled:
        entry = pickled["task"]
        task_class = tasks.get(_type_name(entry))
        if task_class is None:
            raise UnsafeModelFileError(f"the file's task is a {_type_name(entry)!r}, not one of is-rl's finance tasks")
        fields = ("horizon", "mu", "sigma", "s0", "max_position", *(f for f in ("strike", "cost") if f in entry))
        values = _numbers(entry, fields)
        values["horizon"] = int(values["horizon"])
        task = out["task"] = task_class(**values)
    for key, entry in pickled.items():
        kind = _type_name(entry)
        rebuilt: Any = None
        if key == "task":
            continue
        if key == "learning_rate" and kind == "is_sb3.schedules.WarmupConstantCosine":
            rebuilt = WarmupConstantCosine(**_numbers(entry, ("lr", "warmup", "constant_until", "start_factor")))
        elif key == "lr_schedule" or key in _REBUILT_BY_LEARN:
            pass  # rebuilt from learning_rate when the model is set up / SB3's per-run state, made afresh by learn()
        elif key in ("observation_space", "action_space"):
            if task is not None:
                rebuilt = observation_space(task) if key == "observation_space" else action_space(task)
            else:
                rebuilt = _space(entry)
        elif key == "policy_class" and (cls := _known_class(entry, policies)) is not None:
            rebuilt = cls
        elif key == "replay_buffer_class" and (cls := _known_class(entry, [ReplayBuffer])) is not None:
            rebuilt = cls
        elif key == "train_freq" and isinstance(spec := data.get("train_freq_spec"), list) and len(spec) == 2:
            try:
                rebuilt = TrainFreq(int(spec[0]), TrainFrequencyUnit(str(spec[1])))
            except ValueError as err:
                raise UnsafeModelFileError(f"unreadable train_freq_spec {spec!r}: {err}") from None
        else:
            raise UnsafeModelFileError(
                f"the model file stores {key!r} ({kind or 'unknown type'}) as a pickle, which is-rl does not rebuild "
                "without running code from the file; if you trust the file, load it with allow_pickle=True"
            )
        out[key] = rebuilt
    return out


def load_arguments(
    path: Any, algorithm: Any, env: Any, custom_objects: dict[str, Any] | None, allow_pickle: bool
) -> tuple[io.BytesIO, Any, dict[str, Any] | None]:
    """What SB3's ``load`` of an is-rl file is given: the file's bytes (:func:`read_model_file`: read once, checked
    and loaded alike), an env id made into an env (as the constructors accept), and ``custom_objects`` with every
    pickled entry rebuilt from readable fields unless ``allow_pickle``."""
    source = read_model_file(path)
    if not allow_pickle:
        custom_objects = {**safe_custom_objects(source, algorithm), **(custom_objects or {})}
    if isinstance(env, str):
        from is_sb3.common import make_env

        env = make_env(env)
    return source, env, custom_objects
