"""Hand freed heap memory back to the system between training epochs.

Mini-batch training allocates and frees subgraphs of different sizes every step. glibc's allocator keeps freed memory
in its arenas for reuse, so a process's resident memory rose by 60 MB per epoch at 10k nodes and 910 MB in one epoch
at 50k, without a plateau, although the live tensors did not grow (issue 18: with ``MALLOC_MMAP_THRESHOLD_=65536``
the same run grew 5.5 MB per epoch). :func:`release_freed_memory` asks glibc to return the free pages at the end of
each epoch (``malloc_trim(0)``, the allocator's documented call for this), which bounds resident memory to one
epoch's peak; on other C libraries it does nothing. Measured in ``scripts/benchmark_scale.py`` (part ``memory``).
"""

from __future__ import annotations

import ctypes
import sys
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return None


def release_freed_memory() -> bool:
    """Return the heap's free pages to the system (glibc ``malloc_trim(0)``); ``False`` where that call is missing."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


__all__ = ["release_freed_memory"]
