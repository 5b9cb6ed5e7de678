"""Progress of long jobs: a live rich bar on a terminal, plain lines in logs, pipes and CI."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class LineProgress:
    """Progress as plain lines on stderr, for logs and pipes where a live bar shows nothing until the end: a line when
    the description changes or another tenth of the total is done, with the elapsed time. The subset of
    :class:`rich.progress.Progress` the commands use (``add_task``, ``update``, context manager)."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> "LineProgress":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> int:
        tid = len(self.tasks)
        self.tasks[tid] = {"description": description, "total": total, "completed": 0, "tenth": -1}
        self._line(tid)
        return tid

    def update(self, task: int, advance: float = 0, description: str | None = None, completed: float | None = None,
               total: float | None = None) -> None:
        t = self.tasks[task]
        if total is not None:
            t["total"] = total
        t["completed"] = completed if completed is not None else t["completed"] + advance
        tenth = int(10 * t["completed"] / t["total"]) if t["total"] else -1
        if (description is not None and description != t["description"]) or tenth > t["tenth"]:
            t["description"] = description if description is not None else t["description"]
            t["tenth"] = max(tenth, t["tenth"])
            self._line(task)

    def _line(self, task: int) -> None:
        t = self.tasks[task]
        done = f" {t['completed']:g}/{t['total']:g}" if t["total"] else ""
        elapsed = time.perf_counter() - self.start
        print(f"[{int(elapsed // 60):d}:{int(elapsed % 60):02d}]{done} {t['description']}", file=self.stream, flush=True)


def progress_display(console: Console) -> Progress | LineProgress:
    """A live progress bar when ``console`` is a terminal, plain progress lines otherwise (nohup, CI, a pipe)."""
    if not console.is_terminal:
        return LineProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def counter(bar, description: str):
    """A ``(done, total)`` callback that adds its task to ``bar`` on the first call, so nothing is shown before the
    work starts (an input error stays one line on stderr)."""
    tasks: list = []

    def tick(done: int, total: int) -> None:
        if not tasks:
            tasks.append(bar.add_task(description, total=total))
            if done == 0:
                return
        bar.update(tasks[0], completed=done, total=total)

    return tick


def starter(bar, description: str, total: int):
    """A function that, once called (when the work starts, after the inputs were checked), shows a task of ``total``
    steps at 0 and returns the callback that marks step ``i`` (0-based) done."""

    def start():
        tick = counter(bar, description)
        tick(0, total)
        return lambda i: tick(i + 1, total)

    return start


def warnings_to(console: Console) -> None:
    """Show Python warnings as one ``warning: …`` line on ``console`` (not the file and line of the code that warned)."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        console.print(f"[yellow]warning:[/] {message}", soft_wrap=True, highlight=False)

    warnings.showwarning = show


__all__ = ["LineProgress", "counter", "progress_display", "starter", "warnings_to"]
