"""Resident memory of mini-batch training over epochs.

Mini-batch training allocates and frees subgraph tensors of different sizes every step. glibc's allocator serves
blocks above its mmap threshold with their own mappings, but raises that threshold each time such a block is freed
(up to 32 MB), after which the subgraphs' tensors come from the heap arenas, where freed blocks of varying sizes
fragment them: resident memory grew by 60 MB per epoch at 10k nodes and 910 MB in one epoch at 50k (issue 18); at 20k
nodes it rose 61 % from epoch 2 to 20, levelling off near 2.1 GB. The live tensors do not grow: it is the allocator.

* :func:`release_freed_memory` returns the heap's free pages after every epoch (``malloc_trim``); cheap, and it took
  about a tenth off the peak, but fragmentation stays.
* :func:`bound_heap` (``train.bound_heap``) fixes the threshold at 64 KiB (``mallopt(M_MMAP_THRESHOLD)``, which also
  stops the dynamic raise), so every tensor above it is mapped on allocation and unmapped on free: resident memory
  stays flat (+1.9 % over 8 epochs at 20k nodes), but the page faults of mapping each tensor afresh made the steps
  about 2× slower, so it is an option for long runs on large graphs near the memory limit.

Both do nothing on other C libraries. Measured in ``scripts/benchmark_scale.py`` (part ``memory``).
"""

from __future__ import annotations

import ctypes
import sys
from functools import lru_cache

#: glibc's ``M_MMAP_THRESHOLD`` parameter number (malloc.h) and the threshold set by :func:`bound_heap` (bytes).
M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES = -3, 64 * 1024


@lru_cache(maxsize=1)
def _glibc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        lib = ctypes.CDLL("libc.so.6")
        lib.mallopt, lib.malloc_trim  # noqa: B018 - both must exist (glibc)
        return lib
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None


def bound_heap() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD_BYTES` for this process (idempotent); ``False`` where
    ``mallopt`` is missing or refuses."""
    lib = _glibc()
    return lib is not None and bool(lib.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system (glibc ``malloc_trim(0)``); ``False`` where that call is missing."""
    lib = _glibc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True


__all__ = ["M_MMAP_THRESHOLD", "MMAP_THRESHOLD_BYTES", "bound_heap", "release_freed_memory"]
