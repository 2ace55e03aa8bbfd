"""One validation of the agents' constructor arguments: each check raises ``ValueError`` naming the parameter, the
allowed range and the value given (SB3 itself accepts many of these silently, rounds them, or fails later inside
torch with a message that names neither)."""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable
from typing import Any

__all__ = [
    "MAX_RISK_AVERSION",
    "check_device",
    "check_ent_coef",
    "check_integer",
    "check_learning_rate",
    "check_net_arch",
    "check_off_policy",
    "check_real",
    "check_train_freq",
]

#: |α| above this is refused: e^{αδ} overflows float32 for |δ| > 88/α, i.e. for every TD error above 1e-4
MAX_RISK_AVERSION = 1e6


def check_integer(name: str, value: Any, low: int, high: int | None = None) -> int:
    """``value`` as an int in [low, high]; refuses booleans, non-integral numbers and strings."""
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    ok = ok or (isinstance(value, float) and value.is_integer())
    if not ok or value < low or (high is not None and value > high):
        allowed = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer {allowed}, got {value!r}")
    return int(value)


def check_real(
    name: str, value: Any, low: float = -math.inf, high: float = math.inf, low_open: bool = False,
    high_open: bool = False,
) -> float:  # fmt: skip
    """``value`` as a finite float in the interval (open ends as flagged); refuses booleans, NaN and strings."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return float(value)


def check_learning_rate(value: Any) -> Any:
    """A finite rate > 0 or a schedule (a callable of the remaining progress)."""
    if callable(value):
        return value
    return check_real("learning_rate", value, 0.0, low_open=True)


def check_ent_coef(value: Any) -> Any:
    """SAC's entropy coefficient: a finite number >= 0, "auto", or "auto_<initial value > 0>"."""
    if isinstance(value, str):
        match = re.fullmatch(r"auto(?:_(.+))?", value)
        if match is None:
            raise ValueError(f"ent_coef must be a number >= 0, 'auto' or 'auto_<initial value>', got {value!r}")
        if match.group(1) is not None:
            try:
                initial = float(match.group(1))
            except ValueError:
                initial = math.nan
            if not (math.isfinite(initial) and initial > 0):
                raise ValueError(f"ent_coef 'auto_<x>' needs an initial value x > 0, got {value!r}")
        return value
    return check_real("ent_coef", value, 0.0)


def check_train_freq(value: Any) -> Any:
    """An integer >= 1 (env steps) or a pair (integer >= 1, "step" or "episode")."""
    if isinstance(value, tuple | list):
        if len(value) != 2 or value[1] not in ("step", "episode"):
            raise ValueError(f"train_freq must be an integer >= 1 or (n, 'step' | 'episode'), got {value!r}")
        return (check_integer("train_freq", value[0], 1), value[1])
    return check_integer("train_freq", value, 1)


def check_net_arch(value: Any, keys: tuple[str, ...] = ("pi", "qf")) -> None:
    """``policy_kwargs["net_arch"]``: a list of layer sizes (integers >= 1) or a mapping of ``keys`` to such lists."""
    lists = value.items() if isinstance(value, dict) else [("", value)]
    if isinstance(value, dict) and not set(value) <= set(keys):
        raise ValueError(f"net_arch keys must be among {keys}, got {sorted(value)}")
    for key, sizes in lists:
        name = f"net_arch[{key!r}]" if key else "net_arch"
        if not isinstance(sizes, list | tuple):
            raise ValueError(f"{name} must be a list of layer sizes (integers >= 1), got {sizes!r}")
        for size in sizes:
            check_integer(f"{name} layer size", size, 1)


def check_device(value: Any) -> None:
    """ "auto", "cpu", "cuda", "cuda:<index of an existing GPU>", "mps" where available, or such a torch.device;
    a device this machine lacks is an error, never a silent fallback to the CPU."""
    import torch as th

    try:
        device = th.device(value) if value != "auto" else None
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {value!r}") from None
    if device is None or device.type == "cpu":
        return
    if device.type == "cuda":
        count = th.cuda.device_count() if th.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {value!r}: CUDA is not available on this machine (use 'auto' or 'cpu')")
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {value!r}: this machine has {count} CUDA device(s), indices 0 to {count - 1}")
        return
    if device.type == "mps":
        if not th.backends.mps.is_available():
            raise ValueError(f"device {value!r}: MPS is not available on this machine (use 'auto' or 'cpu')")
        return
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {value!r}")


def check_off_policy(kwargs: dict[str, Any], defaults: dict[str, Any], net_arch_keys: tuple[str, ...]) -> None:
    """The arguments RiskSAC and DiscreteRiskSAC share with SB3's off-policy algorithms (``kwargs`` as given,
    ``defaults`` for the ones not given)."""
    get: Callable[[str], Any] = lambda key: kwargs.get(key, defaults.get(key))  # noqa: E731
    check_learning_rate(get("learning_rate"))
    batch = check_integer("batch_size", get("batch_size"), 1)
    buffer = check_integer("buffer_size", get("buffer_size"), 1)
    if buffer < batch:
        raise ValueError(f"buffer_size ({buffer}) must be >= batch_size ({batch})")
    check_integer("learning_starts", get("learning_starts"), 0)
    check_real("tau", get("tau"), 0.0, 1.0, low_open=True)
    check_real("gamma", get("gamma"), 0.0, 1.0, low_open=True)
    check_train_freq(get("train_freq"))
    steps = get("gradient_steps")
    if steps != -1:
        check_integer("gradient_steps (or -1: as many as env steps)", steps, 1)
    for key in ("target_update_interval",):
        if key in defaults or key in kwargs:
            check_integer(key, get(key), 1)
    if "ent_coef" in defaults or "ent_coef" in kwargs:
        check_ent_coef(get("ent_coef"))
    check_device(get("device"))
    policy_kwargs = get("policy_kwargs") or {}
    if "net_arch" in policy_kwargs and policy_kwargs["net_arch"] is not None:
        check_net_arch(policy_kwargs["net_arch"], net_arch_keys)
