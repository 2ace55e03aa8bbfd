"""Floating-point settings of training: subnormal numbers flushed to zero on every thread that trains.

Why: with an L2 penalty under Adam (Enders et al.'s Keras ``kernel_regularizer``) the weights of dead ReLU
units shrink geometrically and become subnormal (below ~1.2e-38 in float32) after a few thousand updates. On
Intel CPUs every arithmetic operation on a subnormal number takes a microcode assist: a DiscreteRiskSAC update
with a third of its weights subnormal was measured 6.5× slower, and a float32 ``learn()`` went from 0.38 s to
~2 s per update by 50k env steps. Flushing them to zero (the x86 FTZ and DAZ bits, ``torch.set_flush_denormal``)
changes values only below 1.2e-38, which no loss, gradient or weight here depends on.

The FTZ/DAZ bits are per thread, and ``torch.set_flush_denormal`` sets them on the calling thread only, so torch's
intra-op worker threads (OpenMP) would keep computing with subnormals. :func:`flush_denormals` sets them on the
OpenMP team too, by running one parallel region of torch's own OpenMP runtime (its ``GOMP_parallel`` entry point,
which libgomp and LLVM's libomp both provide) whose body sets the bits on each thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import warnings
from collections.abc import Iterator

import torch as th

__all__ = ["denormals_flushed", "flush_denormals", "set_flush_denormals"]

_lock = threading.Lock()
_runtime: ctypes.CDLL | bool | None = False  # False: not looked up yet; None: none found


def _openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime loaded into this process (torch's), or None."""
    global _runtime
    if _runtime is False:
        _runtime = None
        try:
            with open("/proc/self/maps") as maps:  # Linux; elsewhere the fallback below warns
                paths = sorted({line.split()[-1] for line in maps if line.rstrip().endswith((".so.1", ".so", ".so.5"))})
        except OSError:
            paths = []
        for path in paths:
            name = path.rsplit("/", 1)[-1]
            if name.startswith(("libgomp", "libomp", "libiomp5")):
                try:
                    lib = ctypes.CDLL(path)
                    fn = lib.GOMP_parallel
                except (OSError, AttributeError):
                    continue
                fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
                fn.restype = None
                _runtime = lib
                break
    return _runtime or None


def denormals_flushed() -> bool:
    """Whether the calling thread flushes subnormal float32 numbers to zero (its DAZ bit is set)."""
    tiny = th.tensor(1e-39, dtype=th.float32)  # a subnormal float32; a 0-d product runs on this thread
    return bool((tiny * 1.0).item() == 0.0)


def set_flush_denormals(mode: bool) -> None:
    """Set (``True``) or clear the flush-to-zero of subnormal numbers on this thread and on torch's intra-op
    worker threads. Warns once if worker threads exist but torch's OpenMP runtime was not found."""
    th.set_flush_denormal(mode)
    n = th.get_num_threads()
    if n <= 1:
        return
    runtime = _openmp_runtime()
    if runtime is None:
        warnings.warn(
            "is_sb3.numerics: torch's OpenMP runtime was not found, so only the calling thread flushes subnormal "
            "numbers to zero; with torch.set_num_threads(1) every training computation runs on that thread",
            RuntimeWarning,
            stacklevel=2,
        )
        return

    @ctypes.CFUNCTYPE(None, ctypes.c_void_p)
    def body(_: int | None) -> None:
        th.set_flush_denormal(mode)

    with _lock:
        runtime.GOMP_parallel(ctypes.cast(body, ctypes.c_void_p), None, n, 0)


@contextlib.contextmanager
def flush_denormals(enabled: bool = True) -> Iterator[None]:
    """Within the block, subnormal numbers are flushed to zero on every thread that computes (see the module
    doc); afterwards the calling thread's previous setting is restored on all of them.

    :param enabled: ``False`` makes the block a no-op.
    """
    if not enabled:
        yield
        return
    before = denormals_flushed()
    set_flush_denormals(True)
    try:
        yield
    finally:
        set_flush_denormals(before)
