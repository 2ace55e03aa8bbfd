"""Loading RiskAC model files without running code stored in them.

An SB3 model zip keeps its tensors in ``.pth`` entries (read with ``torch.load(weights_only=True)``: no
code runs) and its other attributes in a JSON ``data`` entry, where whatever JSON cannot hold (classes,
spaces, dataclasses, schedules) is a base64 cloudpickle under ``":serialized:"``, which SB3 unpickles,
running any code a crafted file puts there. :func:`safe_custom_objects` rebuilds each such entry of a
RiskAC file from the readable fields SB3 stores beside it, for the classes is-rl itself writes (the
finance tasks, :class:`~is_sb3.schedules.WarmupConstantCosine`, the spaces and policy they imply), and
hands them to SB3 as ``custom_objects``, so nothing is unpickled. An entry it cannot rebuild is refused
with a clear error; ``RiskAC.load(..., allow_pickle=True)`` unpickles it, for files you trust.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["UnsafeModelFileError", "safe_custom_objects"]

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


def _read_data(path: str | Path | io.BufferedIOBase) -> dict[str, Any]:
    if isinstance(path, (str, Path)):
        path = Path(path)
        if not path.exists() and path.with_suffix(".zip").exists():
            path = path.with_suffix(".zip")
        with zipfile.ZipFile(path) as archive:
            data: dict[str, Any] = json.loads(archive.read("data").decode())
        return data
    position = path.tell()
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data").decode())
    path.seek(position)
    return data


def safe_custom_objects(path: str | Path | io.BufferedIOBase) -> dict[str, Any]:
    """SB3 ``custom_objects`` that replace every pickled entry of a RiskAC model file (see the module doc).

    :param path: the model zip (a path, with or without ``.zip``, or an open binary file).
    :raises UnsafeModelFileError: for a pickled entry is-rl does not rebuild.
    :raises ValueError: if the file is not a readable model zip.
    """
    from is_envs.finance import GaussianReturnTask, OptionHedgingTask, QuadraticPenaltyTask
    from is_envs.finance.envs import action_space, observation_space
    from is_sb3.ac.policies import RiskACPolicy
    from is_sb3.schedules import WarmupConstantCosine

    try:
        data = _read_data(path)
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"not a readable model file: {err}") from None
    pickled = {k: v for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v}
    tasks = {
        f"{c.__module__}.{c.__qualname__}": c for c in (GaussianReturnTask, QuadraticPenaltyTask, OptionHedgingTask)
    }
    out: dict[str, Any] = {}
    task = None
    if "task" in pickled:
        entry = pickled["task"]
        task_class = tasks.get(_type_name(entry))
        if task_class is None:
            raise UnsafeModelFileError(f"the file's task is a {_type_name(entry)!r}, not one of is-rl's finance tasks")
        fields = ("horizon", "mu", "sigma", "s0", "max_position") + (("strike",) if "strike" in entry else ())
        values = _numbers(entry, fields)
        values["horizon"] = int(values["horizon"])
        task = out["task"] = task_class(**values)
    for key, entry in pickled.items():
        kind = _type_name(entry)
        if key == "task":
            continue
        if key == "learning_rate" and kind == "is_sb3.schedules.WarmupConstantCosine":
            out[key] = WarmupConstantCosine(**_numbers(entry, ("lr", "warmup", "constant_until", "start_factor")))
        elif key == "lr_schedule":
            out[key] = None  # rebuilt from learning_rate when the model is set up
        elif key in _REBUILT_BY_LEARN:
            out[key] = None  # SB3's per-run state, made afresh by the next learn()
        elif key in ("observation_space", "action_space") and task is not None:
            out[key] = observation_space() if key == "observation_space" else action_space(task)
        elif key == "policy_class" and entry.get("__module__") == RiskACPolicy.__module__:
            out[key] = RiskACPolicy
        else:
            raise UnsafeModelFileError(
                f"the model file stores {key!r} ({kind or 'unknown type'}) as a pickle, which is-rl does not rebuild "
                "without running code from the file; if you trust the file, load it with allow_pickle=True"
            )
    return out
