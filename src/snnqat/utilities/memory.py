"""Keep freed CPU memory for reuse: no page faults for every fresh large tensor.

PyTorch's CPU allocator has no cache: each tensor is a ``malloc`` and each free a ``free``.
glibc serves allocations above its mmap threshold (dynamic, at most 32 MB) with a fresh
``mmap`` and gives the memory back to the OS on ``free``, and it trims the freed top of its heap
after every step, so every large activation or gradient of every training step is page-faulted
and zeroed by the kernel again. At the benchmark's size M a step page-faults about 17 000 times
(57 ms of system time in a 127 ms step); at size L (``(128, 500, 512)`` float32 tensors,
131 MB) about 480 000 times, up to a quarter of the step.
:func:`reuse_freed_memory` raises glibc's mmap and trim thresholds so that freed memory stays
in the process heap and is reused, as PyTorch's CUDA caching allocator does on the GPU (and
TensorFlow's and XLA's allocators on the CPU). The price: the process keeps its peak memory
(RSS does not shrink after a large step).

**When it is applied.** The first training call of a snnqat LIF layer on the CPU (gradients
enabled) calls :func:`reuse_freed_memory_for_training`, which applies it once for the process,
unless the environment variable ``SNNQAT_REUSE_FREED_MEMORY`` is ``0``. ``snnqat train`` and
``snnqat demo`` apply it at their start. Call :func:`reuse_freed_memory` yourself to apply it
earlier (e.g. before loading a large dataset).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["ENV_VAR", "reuse_freed_memory", "reuse_freed_memory_for_training"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP = 2**31 - 1  # the largest value mallopt takes (a C int)

ENV_VAR = "SNNQAT_REUSE_FREED_MEMORY"
"""Set to ``0`` to keep glibc's default (memory returned to the OS) in training processes."""

_TRAINING_DONE = False


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the OS.

    Sets ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` to 2 GiB - 1 with ``mallopt``
    (equivalent to the environment variables ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_``). Tensor values and results are unchanged; only where memory
    comes from changes.

    Returns:
        ``True`` if the setting was applied; ``False`` where there is no glibc (macOS,
        Windows, musl), in which case nothing changes.

    Example:
        >>> import sys
        >>> reuse_freed_memory() == sys.platform.startswith("linux")  # glibc Linux here
        True
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, _KEEP)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP))


def reuse_freed_memory_for_training() -> bool:
    """Apply :func:`reuse_freed_memory` once per process, unless ``SNNQAT_REUSE_FREED_MEMORY=0``.

    The LIF layers call this at their first training call on the CPU; later calls do nothing.

    Returns:
        Whether this call applied the setting.

    Example:
        >>> import os
        >>> os.environ[ENV_VAR] = "0"
        >>> reuse_freed_memory_for_training()  # opted out: glibc's default stays
        False
        >>> del os.environ[ENV_VAR]
    """
    global _TRAINING_DONE
    if _TRAINING_DONE or os.environ.get(ENV_VAR, "").strip() == "0":
        return False
    _TRAINING_DONE = True
    return reuse_freed_memory()
