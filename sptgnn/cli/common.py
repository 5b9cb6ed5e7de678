"""What every command of the command line shares: the consoles, the errors that end in one line, the common options
and the executor of ``--backend`` (:mod:`sptgnn.parallel`)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape

from sptgnn.errors import UserError

if TYPE_CHECKING:
    from sptgnn.config import Config
    from sptgnn.parallel import Executor

console = Console(width=None if sys.stdout.isatty() else 150)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 150)
CONFIG = typer.Argument(None, help="YAML config; default: the embedded LimeSoDa BB.250 config.")
MEMBERS = typer.Option(None, "--members", min=1, help="Override train.members (ensemble size M).")
DATASET = typer.Option(None, "--dataset", help="Override data.dataset, e.g. limesoda:G.150.")
BACKEND = typer.Option("local", "--backend", help="Where members, folds and map tiles run: 'local' (this process) or 'ray' (pip install 'sptgnn\\[ray]').")
RAY_ADDRESS = typer.Option(None, "--ray-address", help="With --backend ray: head of an existing cluster, e.g. auto or ray://host:10001 (overrides ray.address; default: a local Ray instance).")


def user_errors(*extra: type[BaseException]) -> tuple[type[BaseException], ...]:
    """The errors that mean a user mistake (a one-line message, exit 2): every :class:`~sptgnn.errors.UserError`, a
    missing or existing file, and ``extra``. Nothing heavy is imported to recognise them, so that ``sptgnn --help``
    and argument errors cost a fraction of a second."""
    return (UserError, FileExistsError, FileNotFoundError, *extra)


def parse_depths(text: str) -> list[tuple[float, float]]:
    """``"0-5,5-15,15-30"`` → ``[(0, 5), (5, 15), (15, 30)]`` (cm).

    Raises:
        typer.BadParameter: An interval that is not ``top-bottom`` with the bottom below the top.
    """
    out = []
    for part in text.split(","):
        try:
            top, bottom = (float(v) for v in part.strip().split("-"))
        except ValueError:
            raise typer.BadParameter(f"'{part}' is no depth interval; write top-bottom in cm, e.g. 0-30") from None
        if bottom <= top or top < 0:
            raise typer.BadParameter(f"'{part}': the bottom must lie below the top, both in cm from the surface")
        out.append((top, bottom))
    return out


def fail(message: str) -> None:
    """One line on stderr, exit code 2."""
    err_console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code=2)


@contextmanager
def backend(name: str, address: Optional[str], config: Config) -> Iterator[Executor]:
    """The executor of ``--backend`` (``ray.address`` and ``ray.num_cpus`` from ``config`` unless ``--ray-address``)
    for the block, closed after it."""
    from sptgnn.parallel import make_executor, use_executor

    with make_executor(name, address or config.ray.address, config.ray.num_cpus) as executor, use_executor(executor):
        yield executor


__all__ = ["BACKEND", "CONFIG", "DATASET", "MEMBERS", "RAY_ADDRESS", "backend", "console",
           "err_console", "fail", "parse_depths", "user_errors"]
