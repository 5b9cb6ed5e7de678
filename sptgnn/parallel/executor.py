"""Executors: where sptgnn's independent tasks run — in this process (:class:`LocalExecutor`, the default) or on a Ray
cluster (:class:`~sptgnn.parallel.ray_executor.RayExecutor`).

Training members, their calibration twins and refits, cross-validation folds and map tiles are independent tasks. The
code that has such tasks hands them to :func:`current_executor` and never asks which executor it got; the command line
and the API choose one with :func:`use_executor` (``--backend local|ray``, :func:`~sptgnn.parallel.backends.make_executor`). A task is a module-level function
``fn(shared, item)``: ``shared`` is one read-only object every task of a call sees (sent to a cluster once), ``item``
what differs. Results come back in item order whatever the order tasks finish in, so the output of a call never
depends on the executor or the worker count; tasks are seeded by their items, never by the worker that runs them.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from sptgnn.errors import UserError


class ExecutorError(UserError, RuntimeError):
    """An executor that cannot start or a task that failed for a reason outside sptgnn; the message says what to do."""


class Executor:
    """What every executor offers: :meth:`map` of one task over items, :meth:`stages` of a task and its follow-ups.

    Attributes:
        name: ``local`` or ``ray``.
        workers: How many tasks can run at once (CPUs of the cluster; 1 for the local executor).
    """

    name = "local"
    workers = 1

    def imap(self, fn: Callable[[Any, Any], Any], items: Sequence, shared: Any = None) -> Iterator[tuple[int, Any]]:
        """``(index, fn(shared, item))`` for every item, as tasks finish (at most a few per worker in flight, so a
        caller that writes each result away holds memory bounded by the workers, not by the number of items).

        Args:
            fn: A module-level function (a cluster imports it by name).
            items: One per task.
            shared: Read-only object given to every task.

        Raises:
            Whatever a task raises, unchanged (a worker's user error reads as it would locally); the tasks still
            running are cancelled.
        """
        raise NotImplementedError

    def map(self, fn: Callable[[Any, Any], Any], items: Sequence, shared: Any = None,
            on_done: Callable[[int], None] | None = None) -> list:
        """``[fn(shared, item) for item in items]``, in item order (:meth:`imap`); ``on_done`` is called with an item's
        index when its task has finished (progress)."""
        items = list(items)
        out = [None] * len(items)
        for i, value in self.imap(fn, items, shared):
            out[i] = value
            if on_done is not None:
                on_done(i)
        return out

    def stages(self, first: Callable[[Any, Any], Any], follow: Callable[[Any, Any], list],
               second: Callable[[Any, Any], Any], items: Sequence, shared: Any = None,
               on_done: Callable[[int], None] | None = None) -> list[tuple[Any, list]]:
        """Two-stage tasks: ``r = first(shared, item)``, then ``second(shared, f)`` for each ``f`` of
        ``follow(item, r)`` (run here, cheap), as soon as ``r`` is known. Returns ``[(r, [second results])]`` in item
        order; ``on_done`` gets an item's index once its every task has finished."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor started (a local Ray instance); joining an existing cluster leaves it running."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """Every task in this process, one after another, in item order (today's behaviour and what CI tests against)."""

    def imap(self, fn, items, shared=None) -> Iterator[tuple[int, Any]]:
        for i, item in enumerate(items):
            yield i, fn(shared, item)

    def stages(self, first, follow, second, items, shared=None, on_done=None) -> list[tuple[Any, list]]:
        out = []
        for i, item in enumerate(items):  # an item's follow-ups right after it, so progress moves item by item
            r = first(shared, item)
            out.append((r, [second(shared, f) for f in follow(item, r)]))
            if on_done is not None:
                on_done(i)
        return out


_current: list[Executor] = []


def current_executor() -> Executor:
    """The executor set by the innermost :func:`use_executor`, else a :class:`LocalExecutor`."""
    return _current[-1] if _current else LocalExecutor()


@contextmanager
def use_executor(executor: Executor) -> Iterator[Executor]:
    """Run the block's tasks on ``executor`` (restored afterwards; the executor is not closed)."""
    _current.append(executor)
    try:
        yield executor
    finally:
        _current.pop()


__all__ = ["Executor", "ExecutorError", "LocalExecutor", "current_executor", "use_executor"]
