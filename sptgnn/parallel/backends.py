"""The executor of a ``--backend`` name: ``local`` (:class:`~sptgnn.parallel.executor.LocalExecutor`) or ``ray``
(:class:`~sptgnn.parallel.ray_executor.RayExecutor`, imported only when asked for)."""

from __future__ import annotations

from sptgnn.parallel.executor import Executor, ExecutorError, LocalExecutor

BACKENDS = ("local", "ray")


def make_executor(backend: str = "local", address: str | None = None, num_cpus: int | None = None) -> Executor:
    """The executor of ``--backend``.

    Args:
        backend: ``local`` (this process) or ``ray``.
        address: Ray only: the head of an existing cluster (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
            ``None`` starts a local Ray instance on this machine.
        num_cpus: Ray only, local instance: CPUs it may use (default: every available core).

    Raises:
        ExecutorError: An unknown backend, Ray not installed, or a cluster that cannot be reached.
    """
    if backend == "local":
        return LocalExecutor()
    if backend == "ray":
        from sptgnn.parallel.ray_executor import RayExecutor

        return RayExecutor(address=address, num_cpus=num_cpus)
    raise ExecutorError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "make_executor"]
