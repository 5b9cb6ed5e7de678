"""Named real datasets: ``"limesoda:NAME"``. One entry point, :func:`load_dataset`, and a listing for the CLI."""

from __future__ import annotations

from sptgnn.data.limesoda import DatasetError, limesoda_names, load_limesoda
from sptgnn.data.samples import SoilSamples

SOURCES = {"limesoda": "LimeSoDa field datasets (Schmidinger et al. 2025), 10 shipped folds, CC BY-SA 4.0"}


def available_datasets() -> list[str]:
    """Every dataset name :func:`load_dataset` accepts, e.g. ``["limesoda:B.204", ...]``."""
    return [f"limesoda:{n}" for n in limesoda_names()]


def load_dataset(name: str) -> SoilSamples:
    """Load a named dataset.

    Args:
        name: ``"SOURCE:NAME"``, e.g. ``"limesoda:BB.250"``.

    Raises:
        DatasetError: Unknown source or dataset; the message lists the valid names.
    """
    source, sep, rest = name.partition(":")
    if not sep or source not in SOURCES:
        raise DatasetError(
            f"unknown dataset '{name}': use SOURCE:NAME with SOURCE one of {sorted(SOURCES)}, e.g. limesoda:BB.250; "
            "run `sptgnn datasets` for the list"
        )
    return load_limesoda(rest)
