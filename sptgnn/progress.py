"""Progress of long jobs: a live rich bar on a terminal, plain lines in logs, pipes and CI."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class LineProgress:
    """Progress as plain lines on stderr, for logs and pipes where a live bar shows nothing until the end: a line when
    another tenth of the total is done, or when the description changes at least ``min_interval`` seconds after the
    last line (a rate in the description does not print a line per update), with the elapsed time. The subset of
    :class:`rich.progress.Progress` the commands use (``add_task``, ``update``, context manager)."""

    def __init__(self, stream=None, min_interval: float = 5.0):
        self.stream = stream or sys.stderr
        self.min_interval = min_interval
        self.tasks: dict[int, dict] = {}

    def __enter__(self) -> "LineProgress":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> int:
        tid = len(self.tasks)
        self.tasks[tid] = {"description": description, "total": total, "completed": 0, "tenth": -1, "last": 0.0}
        self._line(tid)
        return tid

    def update(self, task: int, advance: float = 0, description: str | None = None, completed: float | None = None,
               total: float | None = None) -> None:
        t = self.tasks[task]
        if total is not None:
            t["total"] = total
        t["completed"] = completed if completed is not None else t["completed"] + advance
        tenth = int(10 * t["completed"] / t["total"]) if t["total"] else -1
        changed = description is not None and description != t["description"]
        if (changed and time.perf_counter() - t["last"] >= self.min_interval) or tenth > t["tenth"]:
            t["description"] = description if description is not None else t["description"]
            t["tenth"] = max(tenth, t["tenth"])
            self._line(task)

    def _line(self, task: int) -> None:
        t = self.tasks[task]
        done = f" {t['completed']:g}/{t['total']:g}" if t["total"] else ""
        t["last"] = time.perf_counter()
        elapsed = t["last"] - self.start
        print(f"[{int(elapsed // 60):d}:{int(elapsed % 60):02d}]{done} {t['description']}", file=self.stream, flush=True)


def progress_display(console: Console) -> Progress | LineProgress:
    """A live progress bar when ``console`` is a terminal, plain progress lines otherwise (nohup, CI, a pipe)."""
    if not console.is_terminal:
        return LineProgress()
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False)


def counter(bar, description: str):
    """A ``(done, total[, pixels])`` callback that adds its task to ``bar`` on the first call, so nothing is shown before
    the work starts (an input error stays one line on stderr). With ``pixels`` (predicted so far) the description
    also gives the pixel rate of this session and the estimated time left."""
    tasks: list = []
    first: list = []  # (time, done, pixels) of the first call: a resumed map's earlier tiles are not this run's rate

    def tick(done: int, total: int, pixels: int | None = None) -> None:
        now = time.perf_counter()
        if not first:
            first.append((now, done, pixels or 0))
        text = description
        if pixels is not None and done > first[0][1]:
            t0, d0, p0 = first[0]
            rate = (pixels - p0) / max(now - t0, 1e-9)
            left = (now - t0) / (done - d0) * (total - done)
            text = f"{description}: {rate:,.0f} px/s, about {int(left // 60)}:{int(left % 60):02d} left"
        if not tasks:
            tasks.append(bar.add_task(text, total=total))
            if done == 0:
                return
        bar.update(tasks[0], completed=done, total=total, description=text)

    return tick


def starter(bar, description: str, total: int):
    """A function that, once called (when the work starts, after the inputs were checked), shows a task of ``total``
    steps at 0 and returns the callback that marks step ``i`` (0-based) done."""

    def start():
        tick = counter(bar, description)
        tick(0, total)
        return lambda i: tick(i + 1, total)

    return start


class TaskTicks:
    """A progress callback that task code may call (``tick("member 1/5")``): it reaches the display only while the
    task runs in this process (the local executor). Sent to a worker it arrives silent — a display cannot travel — and
    :attr:`count` stays 0, so the caller adds the task's remaining steps when the task comes back."""

    def __init__(self, callback=None):
        self.callback, self.count = callback, 0

    def __call__(self, message: str) -> None:
        if self.callback is not None:
            self.count += 1
            self.callback(message)

    def __getstate__(self) -> dict:
        return {"callback": None, "count": 0}


def warnings_to(console: Console) -> None:
    """Show Python warnings as one ``warning: …`` line on ``console`` (not the file and line of the code that warned)."""
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):
        console.print(f"[yellow]warning:[/] {message}", soft_wrap=True, highlight=False)

    warnings.showwarning = show


__all__ = ["LineProgress", "TaskTicks", "counter", "progress_display", "starter", "warnings_to"]
