"""Where independent tasks run: :func:`current_executor`, :func:`use_executor`, :func:`make_executor`
(``--backend local|ray``)."""

from sptgnn.parallel.backends import BACKENDS, make_executor
from sptgnn.parallel.executor import Executor, ExecutorError, LocalExecutor, current_executor, use_executor

__all__ = ["BACKENDS", "Executor", "ExecutorError", "LocalExecutor", "current_executor", "make_executor", "use_executor"]
