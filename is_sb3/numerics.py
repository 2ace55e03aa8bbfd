"""Floating-point settings of training: the compute precision of the networks (float32 or bf16 mixed
precision, :func:`resolve_precision`) and subnormal numbers flushed to zero on every thread that trains.

Precision. ``"bf16"`` runs the networks' forward passes under ``torch.autocast`` with bfloat16 (matrix products
and convolutions in bf16, float32 master weights, float32 optimizer states, targets, losses, reward scaling and
log-sum-exp); ``"float32"`` runs everything in float32; ``"auto"`` picks bf16 only where the hardware makes it
faster (:func:`has_fast_bf16`): on CUDA a GPU with bf16 support (Ampere and later); on the CPU the AMX tiles of
Intel Sapphire Rapids and later, or AVX512-BF16 on an AMD CPU (Zen 4 and later). Measured (the DiscreteRiskSAC
update, batch 512, one thread, ``python -m benchmarks.item_pickup --speed``): 2.18× float32's speed with AMX, 1.6×
on an AMD EPYC with AVX512-BF16; elsewhere bf16 is slower than float32 (oneDNN converts and emulates): 0.86× on an
Intel CPU with AVX512-BF16 but no AMX, 0.36× on plain AVX-512, 0.14× on AVX2 (oneDNN's ISA capped on the AMX Xeon),
and a 512×1600·1600×256 bf16 matrix product 60× slower than float32 on an AVX2-only AMD EPYC.

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
import platform
import threading
import warnings
from collections.abc import Iterator

import torch as th

__all__ = [
    "PRECISIONS",
    "denormals_flushed",
    "flush_denormals",
    "has_fast_bf16",
    "resolve_precision",
    "set_flush_denormals",
]

#: the values of the agents' ``precision`` argument
PRECISIONS = ("float32", "bf16", "auto")


def _cpu_vendor() -> str:
    """The CPU's vendor string (``GenuineIntel``, ``AuthenticAMD``, ...), or "" where it cannot be read."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:  # Linux
            for line in cpuinfo:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    processor = platform.processor()  # Windows: "AMD64 Family 25 Model 17 Stepping 1, AuthenticAMD"
    return processor.rsplit(",", 1)[-1].strip() if "," in processor else ""


def has_fast_bf16(device: th.device | str) -> bool:
    """Whether bf16 mixed precision trains faster than float32 on ``device``: a CUDA GPU with bf16 support (tensor
    cores, compute capability ≥ 8.0); a CPU with AMX tiles (``torch.cpu._is_amx_tile_supported``); an AMD CPU with
    AVX512-BF16 (Zen 4 and later; measured 1.6× float32's update speed, where an Intel CPU with AVX512-BF16 but no
    AMX was measured at 0.86×)."""
    device = th.device(device)
    if device.type == "cuda":
        return bool(th.cuda.is_available() and th.cuda.is_bf16_supported(including_emulation=False))
    if device.type == "cpu":
        amx = getattr(th.cpu, "_is_amx_tile_supported", None)  # torch >= 2.3
        if amx is not None and amx():
            return True
        avx512_bf16 = getattr(th.cpu, "_is_avx512_bf16_supported", None)
        return bool(avx512_bf16 is not None and avx512_bf16() and _cpu_vendor() == "AuthenticAMD")
    return False


def resolve_precision(precision: str, device: th.device | str) -> th.dtype:
    """The compute dtype of the networks' forward passes for ``precision`` on ``device``: ``th.float32`` or
    ``th.bfloat16`` ("auto": bf16 where :func:`has_fast_bf16`, else float32).

    :param precision: "float32", "bf16" or "auto".
    :param device: the device the networks train on.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return th.bfloat16 if has_fast_bf16(device) else th.float32
    return th.bfloat16 if precision == "bf16" else th.float32


_lock = threading.Lock()
_runtime: ctypes.CDLL | bool | None = False  # False: not looked up yet; None: none found


def _openmp_runtime() -> ctypes.CDLL | None:
    """The OpenMP runtime loaded into this process (torch's), or None."""
    global _runtime
    if _runtime is False:
        _runtime = None
        try:
            with open("/proc/self/maps") as maps:  # Linux; elsewhere the fallback below warns
                paths = sorted({line.split()[-1] for line in maps if "/lib" in line})
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
    return _runtime if isinstance(_runtime, ctypes.CDLL) else None


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
