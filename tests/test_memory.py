"""Freed heap memory goes back to the system on glibc (sptgnn.memory)."""

from __future__ import annotations

import platform
import sys

import numpy as np
import pytest

from sptgnn.memory import release_freed_memory


def _rss_mb() -> float:
    import os

    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_release_freed_memory_returns_freed_small_blocks():
    # many small blocks (below the mmap threshold) stay in the heap after free until trimmed
    blocks = [np.ones(2000) for _ in range(20_000)]  # ~16 kB each, ~320 MB
    keep = blocks[-1]
    del blocks
    before = _rss_mb()
    assert release_freed_memory() is True
    assert _rss_mb() < before - 100  # at least 100 MB handed back
    assert keep.sum() == 2000
