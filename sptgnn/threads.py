"""One thread policy for torch, the BLAS/OpenMP pools and the tree baselines (XGBoost, scikit-learn forests).

Torch and XGBoost each start one thread per core by default; on a shared machine, or beside a second job, spinning
threads slowed every run here ten-fold, and on small graphs (a 250-node epoch) even a lone process ran 9.7× slower in
wall time with 2 threads than with 1. So the default is **1 thread for graphs under** :data:`LARGE_GRAPH` **nodes** and
the cores this process may use otherwise. Precedence: ``train.threads`` (config, or the estimator's ``threads``), then
``$SPTGNN_THREADS``, then ``$OMP_NUM_THREADS``, then that default. The policy in force is stated in ``metrics.json``.
"""

from __future__ import annotations

import os

import torch
from threadpoolctl import threadpool_limits

from sptgnn.config import ConfigError

#: Labelled nodes from which the default uses every available core.
LARGE_GRAPH = 50_000

_applied: dict | None = None


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _env(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    try:
        n = int(value)
    except ValueError:
        raise ConfigError(f"${name} = {value!r} is not a whole number of threads; unset it or set e.g. {name}=1") from None
    if n < 1:
        raise ConfigError(f"${name} = {n}: give at least 1 thread")
    return n


def resolve_threads(requested: int | None = None, num_nodes: int | None = None) -> dict:
    """The thread count and where it came from: ``{"threads": n, "source": ...}`` (see the module docstring).

    Raises:
        ConfigError: ``$SPTGNN_THREADS`` or ``$OMP_NUM_THREADS`` is not a positive whole number.
    """
    if requested is not None:
        return {"threads": int(requested), "source": "train.threads"}
    for name in ("SPTGNN_THREADS", "OMP_NUM_THREADS"):
        n = _env(name)
        if n is not None:
            return {"threads": n, "source": f"${name}"}
    large = num_nodes is not None and num_nodes >= LARGE_GRAPH
    n = available_cores() if large else 1
    return {"threads": n, "source": f"default ({'≥' if large else '<'} {LARGE_GRAPH} nodes)"}


def apply_threads(policy: dict) -> dict:
    """Set torch's intra-op threads, the BLAS/OpenMP pools (threadpoolctl) and the trees' ``n_jobs`` to
    ``policy["threads"]``; returns ``policy``."""
    global _applied
    n = int(policy["threads"])
    torch.set_num_threads(n)
    threadpool_limits(limits=n)
    _applied = dict(policy)
    return policy


def tree_threads() -> int:
    """``n_jobs`` of the tree baselines: the applied policy's threads, else :func:`resolve_threads`'s without a graph
    size (``$SPTGNN_THREADS``, ``$OMP_NUM_THREADS`` or 1)."""
    return int((_applied or resolve_threads())["threads"])


def applied_threads() -> dict | None:
    """The last policy :func:`apply_threads` set, or ``None``."""
    return None if _applied is None else dict(_applied)


__all__ = ["LARGE_GRAPH", "applied_threads", "apply_threads", "available_cores", "resolve_threads", "tree_threads"]
