"""Where files are read from: one rule for every path a user gives (configs, ``--raster``, chip sources, tables).

Real datasets live in the data directory: ``$SPTGNN_DATA_DIR``, defaulting to ``../shared/data`` beside the checkout.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path


def data_dir() -> Path:
    """The data directory: ``$SPTGNN_DATA_DIR`` if set, else ``shared/data`` next to the repository checkout."""
    env = os.environ.get("SPTGNN_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def resolve_data_path(path: str | Path) -> Path:
    """An absolute path as it is; a relative one in the working directory when it exists there (a file, a folder or a
    glob with matches), made absolute; otherwise under the data directory (:func:`data_dir`)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return p
    if p.exists() or glob.glob(str(p)):
        return Path.cwd() / p
    return data_dir() / p


__all__ = ["data_dir", "resolve_data_path"]
