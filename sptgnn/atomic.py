"""Atomic outputs: a result appears under its final name complete, or not at all.

Every writer of a user-visible output (run folders, evaluation folders, maps, point tables) writes into a temporary
sibling of the output and renames it when complete (``os.replace``, atomic on one file system), so an interrupted or
failed run leaves nothing half-written under the name the user asked for.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sptgnn.errors import UserError


class OutputError(UserError):
    """An output location that cannot be written (read-only, no permission, not a folder); the message names it."""


def check_writable(folder: str | Path) -> None:
    """Fail before any work when no file can be created in ``folder`` (a read-only folder or file system, missing
    permissions): a temporary file is created and removed there.

    Raises:
        OutputError: The folder cannot be written.
    """
    try:
        fd, name = tempfile.mkstemp(prefix=".sptgnn-write-check-", dir=folder)
    except OSError as exc:
        raise OutputError(f"cannot write into {folder} ({exc.strerror or exc}); choose another --out or fix the "
                          f"folder's permissions") from None
    os.close(fd)
    os.unlink(name)


def check_new_file(out: str | Path, overwrite: bool = False) -> None:
    """Fail before any work when the output file ``out`` cannot be written: it exists (without ``overwrite``), its
    folder is missing, or the folder cannot be written.

    Raises:
        OutputError: Which of these, in one line.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputError(f"{out} already exists; remove it, choose another --out or give --overwrite")
    if not out.parent.is_dir():
        raise OutputError(f"output folder {out.parent} does not exist; create it first")
    check_writable(out.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _share(path: Path) -> None:
    """Give a finished output the permissions the user's umask asks for (temporary files and folders are created
    owner-only); a folder's contents too."""
    mask = _umask()
    if path.is_dir():
        for p in [path, *path.rglob("*")]:
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~mask)
    else:
        os.chmod(path, 0o666 & ~mask)


@contextmanager
def atomic_dir(out: str | Path, overwrite: bool = False, make_parents: bool = True) -> Iterator[Path]:
    """A temporary folder beside ``out``, renamed to ``out`` when the block succeeds (with the permissions of the
    user's umask) and removed when it fails.

    Args:
        out: Final folder.
        overwrite: Replace an existing ``out`` (only once the new one is complete).
        make_parents: Create missing parent folders; otherwise a missing parent is an error.

    Raises:
        FileExistsError: ``out`` exists and ``overwrite`` is False.
        FileNotFoundError: The parent folder is missing and ``make_parents`` is False.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} already exists; choose another output folder or remove it")
    if make_parents:
        out.parent.mkdir(parents=True, exist_ok=True)
    elif not out.parent.is_dir():
        raise FileNotFoundError(f"folder {out.parent} does not exist; create it first")
    check_writable(out.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        _share(tmp)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_file(out: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary file path beside ``out`` (same ``suffix``, so drivers that pick a format by extension still
    work), renamed to ``out`` when the block succeeds and removed when it fails. The parent folder must exist."""
    out = Path(out)
    check_writable(out.parent)
    fd, name = tempfile.mkstemp(prefix=f".{out.name}.partial-", suffix=suffix or out.suffix, dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        _share(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_new_folder(out: Path) -> None:
    """Fail before any work when ``out`` cannot be created; missing parents are made only when the run succeeds.

    Raises:
        FileExistsError: ``out`` exists, or one of its parents is a file.
        OutputError: The nearest existing parent cannot be written.
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"output folder {out} already exists; pass another --out or remove it")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise FileExistsError(f"{parent} is a file, not a folder; pass another --out")
            check_writable(parent)
            break


__all__ = ["OutputError", "atomic_dir", "atomic_file", "check_new_file", "check_new_folder", "check_writable"]
