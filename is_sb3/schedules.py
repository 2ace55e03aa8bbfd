"""Learning-rate schedules in SB3's convention: functions of ``progress_remaining`` (1 at start, 0 at end)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["WarmupConstantCosine"]


@dataclass(frozen=True)
class WarmupConstantCosine:
    """The IS paper's schedule (App. B): linear warm-up from ``start_factor``·lr, constant, cosine to 0.

    With progress p = 1 − progress_remaining ∈ [0, 1]: lr·(f + (1 − f) p / warmup) for p < warmup;
    lr until ``constant_until``; then lr·½(1 + cos(π (p − constant_until)/(1 − constant_until))).
    Paper values: warm-up 1k of 100k iterations (0.01), constant to 50k (0.5), cosine over the
    remaining 50k; hedging: warm-up 1k of 300k (1/300), constant to 150k (0.5).

    :param lr: peak learning rate.
    :param warmup: fraction of training spent warming up.
    :param constant_until: fraction of training at which the cosine decay starts.
    :param start_factor: initial factor of the warm-up.
    """

    lr: float = 1e-4
    warmup: float = 0.01
    constant_until: float = 0.5
    start_factor: float = 0.01

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not 0 <= self.warmup <= self.constant_until <= 1:
            raise ValueError(
                "need 0 <= warmup <= constant_until <= 1, "
                f"got warmup={self.warmup}, constant_until={self.constant_until}"
            )
        if not 0 < self.start_factor <= 1:
            raise ValueError(f"start_factor must be in (0, 1], got {self.start_factor!r}")

    def __call__(self, progress_remaining: float) -> float:
        p = min(max(1.0 - progress_remaining, 0.0), 1.0)
        if p < self.warmup:
            return self.lr * (self.start_factor + (1 - self.start_factor) * p / self.warmup)
        if p <= self.constant_until or self.constant_until >= 1:
            return self.lr
        return self.lr * 0.5 * (1 + math.cos(math.pi * (p - self.constant_until) / (1 - self.constant_until)))
