"""Run-folder integrity: ``manifest.json`` lists the SHA-256 of every file of a run folder, written last; loading
checks it, so a run edited by hand, copied incompletely or corrupted in transfer fails with the name of the file."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "manifest.json"


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path, header: dict) -> None:
    """Write ``manifest.json`` (``header`` plus ``files``: ``{relative path: sha256}`` of every other file)."""
    files = {p.relative_to(folder).as_posix(): sha256(p) for p in sorted(folder.rglob("*"))
             if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps(header | {"files": files}, indent=2))


def manifest_problems(folder: Path) -> list[str] | None:
    """What differs from ``manifest.json``: one line per missing or changed file (empty when all match), or ``None``
    when the folder has no manifest. A manifest that cannot be read is itself a problem."""
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        files = json.loads(path.read_text())["files"]
        if not isinstance(files, dict):
            raise TypeError("files is not a mapping")
        if not files:
            return [f"{MANIFEST} lists no file (a run folder's manifest lists every file of it)"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        return [f"{MANIFEST} is not a valid manifest ({type(exc).__name__})"]
    problems = []
    for name, digest in files.items():
        target = folder / name
        if not target.is_file() or Path(name).is_absolute() or ".." in Path(name).parts:
            problems.append(f"{name} is missing")
        elif sha256(target) != digest:
            problems.append(f"{name} differs from the manifest (SHA-256)")
    return problems


__all__ = ["MANIFEST", "manifest_problems", "sha256", "write_manifest"]
