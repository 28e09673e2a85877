"""Keep freed stream memory in the process for the next stream instead of faulting it in again.

A receiving end holds one whole stream's plaintext until the final frame authenticates (the
all-or-nothing rule) and frees it when its consumer is done. glibc's default policy hands such
memory straight back to the kernel: a chunk above the (dynamic) mmap threshold is unmapped on
``free``, and the top of the heap is trimmed once more than twice that threshold is free. The
next stream then faults every page in again, one zeroed 4 KiB page at a time, which was a
fifth of the receiver's time in ``bench/channel.py`` (fresh memory is written at ~1.4 GB/s
here, reused memory at ~6.5 GB/s).

:func:`retain_freed_memory` sets two glibc ``mallopt`` parameters once per process, when the
first attested channel opens: allocations below :data:`MMAP_THRESHOLD` come from the heap
(frames are at most 16 MiB) and up to :data:`TRIM_THRESHOLD` of free heap top is kept for
reuse. What it costs: up to that much freed memory stays in the process's resident set.
Elsewhere than glibc (musl, macOS) it does nothing. ``CHRONOSEAL_MALLOC_TUNING=0`` turns it
off (e.g. for a process that sets its own ``MALLOC_*`` policy).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Final

#: Allocations up to this size come from the heap (the ceiling glibc's own dynamic threshold
#: rises to on 64-bit, DEFAULT_MMAP_THRESHOLD_MAX).
MMAP_THRESHOLD: Final = 32 * 1024 * 1024
#: Free memory at the top of the heap kept for reuse before any is returned to the kernel.
TRIM_THRESHOLD: Final = 64 * 1024 * 1024
_M_TRIM_THRESHOLD: Final = -1
_M_MMAP_THRESHOLD: Final = -3

_lock = threading.Lock()
_applied: bool | None = None


def retain_freed_memory() -> bool:
    """Apply the policy above once per process; ``True`` when glibc accepted it."""
    global _applied
    with _lock:
        if _applied is None:
            _applied = _tune()
        return _applied


def _tune() -> bool:
    if os.environ.get("CHRONOSEAL_MALLOC_TUNING", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: musl's mallopt is a stub
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
