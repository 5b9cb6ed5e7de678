"""The Ray executor (``--backend ray``, extra ``sptgnn[ray]``): each task a Ray task of one CPU.

Ray (Moritz et al. 2018, OSDI) schedules the tasks on a local instance it starts on this machine or on an existing
cluster (``ray.address``). Every task applies the driver's thread policy (:mod:`sptgnn.threads`) before it runs, so a
member trained on a worker is bitwise the member trained here; a task that itself has tasks (a cross-validation fold
training its members) hands them to the same cluster. Workers must import the same sptgnn and read the same data
paths (see ``docs/ray.md``); the driver's ``SPTGNN_*`` environment variables are passed on to them.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator

from sptgnn.parallel.executor import Executor, ExecutorError, use_executor
from sptgnn.threads import applied_threads, apply_threads


#: Tasks in flight per worker CPU in :meth:`RayExecutor.imap` (the rest wait on the driver).
IN_FLIGHT_PER_WORKER = 2


def _ray():
    try:
        import ray
    except ImportError:
        raise ExecutorError("the ray backend needs Ray: pip install 'sptgnn[ray]' (on every node of the cluster), or "
                            "use --backend local") from None
    return ray


def _check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """Fail in ``timeout_s`` with one line when the head of an explicit ``host:port`` or ``ray://host:port`` address
    does not accept a TCP connection (Ray itself retries for minutes, logging each try).

    Raises:
        ExecutorError: The address cannot be reached.
    """
    import socket

    if not address or address == "auto" or ":" not in address:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except ValueError:
        raise ExecutorError(f"Ray address '{address}' is not host:port or ray://host:port") from None
    except OSError as exc:
        raise ExecutorError(f"cannot reach the Ray head at {address} within {timeout_s:g} s ({exc.strerror or exc}); "
                            f"check ray.address / --ray-address and that the cluster is running") from None


def _task(fn, shared, item, threads: dict | None):
    """What a worker runs: the driver's thread policy, nested tasks on this cluster, then ``fn(shared, item)``."""
    if threads is not None:
        apply_threads(threads)
    with use_executor(RayExecutor()):
        return fn(shared, item)


class RayExecutor(Executor):
    """Tasks on Ray (see the module docstring).

    Args:
        address: Head of an existing cluster (``"auto"``, ``"ray://host:10001"``); ``None`` starts a local instance
            (or joins the one this process is already connected to, as inside a worker).
        num_cpus: CPUs of a local instance (default: every core).

    Raises:
        ExecutorError: Ray is not installed or the cluster cannot be reached.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        ray = self._ray = _ray()
        self._owns = False
        _check_reachable(address)  # an explicit head that cannot be reached is an error, whatever this process holds
        if not ray.is_initialized():
            env = {k: v for k, v in os.environ.items() if k.startswith("SPTGNN_")}
            try:
                ray.init(address=address, num_cpus=num_cpus if address is None else None, include_dashboard=False,
                         logging_level=logging.WARNING, runtime_env={"env_vars": env} if env else None)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ExecutorError(f"cannot start or reach Ray at {address or 'a local instance'}: "
                                    f"{str(exc).splitlines()[0]}; check ray.address / --ray-address") from None
            self._owns = True  # started a local instance or connected: close() shuts it down / disconnects
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._remote = ray.remote(num_cpus=1, max_retries=0)(_task)

    def _submit(self, fn, ref, item):
        return self._remote.remote(fn, ref, item, applied_threads())

    def _get(self, ref, pending: list) -> Any:
        ray = self._ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:  # a task raised: the task's own exception, as locally
            self._cancel(pending)
            cause = getattr(exc, "cause", None)
            if isinstance(cause, Exception):
                raise cause from None
            raise ExecutorError(f"a task failed on a Ray worker: {str(exc).splitlines()[0]}") from None
        except ray.exceptions.RayError as exc:  # a worker died, an object was lost
            self._cancel(pending)
            raise ExecutorError(f"a Ray worker failed ({type(exc).__name__}: {str(exc).splitlines()[0]}); see the "
                                "Ray logs (/tmp/ray/session_latest/logs) and rerun") from None

    def _cancel(self, pending: list) -> None:
        for ref in pending:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - a task that already ended cannot be cancelled; nothing to clean
                pass

    def imap(self, fn, items, shared=None) -> Iterator[tuple[int, Any]]:
        ray, items = self._ray, list(items)
        ref, limit = ray.put(shared), IN_FLIGHT_PER_WORKER * self.workers
        where, pending, nxt = {}, [], 0
        try:
            while pending or nxt < len(items):
                while nxt < len(items) and len(pending) < limit:  # keep the workers busy, the results bounded
                    r = self._submit(fn, ref, items[nxt])
                    where[r], nxt = nxt, nxt + 1
                    pending.append(r)
                done, pending = ray.wait(pending, num_returns=1)
                yield where.pop(done[0]), self._get(done[0], pending)
        finally:  # the caller stopped early (its own error, Ctrl-C): nothing keeps running for it
            self._cancel(pending)

    def stages(self, first, follow, second, items, shared=None, on_done=None) -> list[tuple[Any, list]]:
        ray, items = self._ray, list(items)
        ref = ray.put(shared)
        where = {self._submit(first, ref, item): (i, None) for i, item in enumerate(items)}  # ref -> (item, slot)
        firsts, seconds, left = [None] * len(items), [[] for _ in items], [None] * len(items)
        pending = list(where)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            i, slot = where[done[0]]
            value = self._get(done[0], pending)
            if slot is None:  # a first stage: submit its follow-ups now
                firsts[i] = value
                follow_ups = follow(items[i], value)
                seconds[i], left[i] = [None] * len(follow_ups), len(follow_ups)
                for j, f in enumerate(follow_ups):
                    r = self._submit(second, ref, f)
                    where[r] = (i, j)
                    pending.append(r)
            else:
                seconds[i][slot] = value
                left[i] -= 1
            if left[i] == 0 and on_done is not None:
                on_done(i)
        return list(zip(firsts, seconds))

    def close(self) -> None:
        if self._owns and self._ray.is_initialized():  # an existing cluster keeps running; this driver leaves it
            self._ray.shutdown()
        self._owns = False


__all__ = ["RayExecutor"]
