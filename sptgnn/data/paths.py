"""Where real datasets are read from: ``SPTGNN_DATA_DIR``, defaulting to ``../shared/data`` beside the checkout."""

from __future__ import annotations

import os
from pathlib import Path


def data_dir() -> Path:
    """The data directory: ``$SPTGNN_DATA_DIR`` if set, else ``shared/data`` next to the repository checkout."""
    env = os.environ.get("SPTGNN_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"
