"""Multi-scale context features at sample locations: the window statistics of :mod:`sptgnn.geo.context` (the same
code maps and pre-training cells read) added to a sample set's ``environment`` stream, and the covariate grid a named
dataset was sampled from."""

from __future__ import annotations

from typing import Sequence

from sptgnn.geo.context import STREAM, open_covariates
from sptgnn.geo.sources import RasterError


def context_sources(samples) -> tuple[list[str], tuple[str, ...]]:
    """The covariate grid a named dataset was sampled from (``afsp-africa``: ``afgrid20``) and the bands without a
    meaningful window mean there (categorical, land mask); none for other datasets."""
    grid = samples.metadata.get("grid_file")
    if not grid:
        return [], ()
    from sptgnn.data.africa import AFGRID_CATEGORICAL, AFGRID_DROP

    return [grid], (*AFGRID_CATEGORICAL, *AFGRID_DROP)


def add_context(samples, sources, context, exclude: Sequence[str] = ()):
    """Samples with the context features of ``sources`` at their locations added to the ``environment`` stream.

    Raises:
        RasterError: No covariate raster, or a sample whose context is undefined (off the grid; the count is given).
    """
    from dataclasses import replace

    if not sources:
        raise RasterError(f"data.context needs covariate rasters: add data.table with data.rasters ({samples.name} "
                          "ships no covariate grid)")
    with open_covariates(sources, context, exclude) as stack:
        names = list(stack.derived)
        values, ok = stack.sample_points(samples.xy(), samples.crs, names)
    if not ok.all():
        raise RasterError(f"{samples.name}: {int((~ok).sum())} sample(s) have no context features (off the covariate "
                          "grid or on nodata); drop them or use rasters that cover every sample")
    clash = [n for n in names if n in samples.frame.columns]
    if clash:
        raise RasterError(f"{samples.name}: context feature(s) {clash[:3]} have the names of existing columns")
    import pandas as pd

    added = pd.DataFrame(values, columns=names, index=samples.frame.index)
    frame = type(samples.frame)(pd.concat([samples.frame, added], axis=1), crs=samples.frame.crs)
    groups = {k: list(v) for k, v in samples.feature_groups.items()}
    groups[STREAM] = groups.get(STREAM, []) + names
    return replace(samples, frame=frame, feature_groups=groups)


__all__ = ["add_context", "context_sources"]
