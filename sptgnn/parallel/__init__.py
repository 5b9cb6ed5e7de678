"""Where independent tasks run: :func:`current_executor`, :func:`use_executor`, :func:`make_executor`
(``--backend local|ray``)."""

from sptgnn.parallel.executor import (BACKENDS, Executor, ExecutorError, LocalExecutor, current_executor, make_executor,
                                      use_executor)

__all__ = ["BACKENDS", "Executor", "ExecutorError", "LocalExecutor", "current_executor", "make_executor", "use_executor"]
