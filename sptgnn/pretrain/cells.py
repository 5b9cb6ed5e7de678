"""Unlabelled cells for pre-training: every valid cell of the prediction domain's covariates, no target.

Pre-training reads no label (issue 14; DESIGN.md rule 1 holds because nothing here depends on a target), so it may use
every cell the map will be predicted on, in any cross-validation. Two sources:

* a config with ``data.rasters``: every pixel of the :class:`~sptgnn.geo.stack.CovariateStack` valid in all bands,
  read window by window; with ``pretrain.max_cells`` a seeded uniform sample of that many is kept as the windows are
  read (bottom-k sampling), so memory is bounded by ``max_cells`` and one window, not by the raster's size;
* the named dataset ``afsp-africa``: every valid cell of its 20 km grid ``afgrid20`` with the dataset's own feature
  columns (categorical bands one-hot encoded as for the points, :func:`sptgnn.data.africa.afgrid_columns`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from sptgnn.errors import UserError
from sptgnn.data.africa import afgrid_cells
from sptgnn.geo.context import open_covariates
from sptgnn.geo.coords import metric_coords
from sptgnn.geo.pixels import pixel_blocks
from sptgnn.geo.sources import RasterSource


class PretrainError(UserError):
    """Pre-training input or a pre-trained checkpoint that cannot be used; the message says what to change."""


@dataclass
class Cells:
    """Unlabelled cells: raw covariate values per stream and metric coordinates.

    Attributes:
        streams: Raw feature values per stream, ``{stream: (num_cells, num_stream_features)}`` float64.
        columns: Feature names per stream, in the order of ``streams``.
        xy_m: Metric coordinates for neighbour search, ``(num_cells, d)`` (m; ``d = 3`` on the sphere for lon/lat).
        source: What the cells were read from (shown in the checkpoint).
    """

    streams: dict[str, np.ndarray]
    columns: dict[str, list[str]]
    xy_m: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return len(self.xy_m)

    def fingerprint(self) -> str:
        """SHA-256 of the cells' values, columns and coordinates: the data identity stored with a checkpoint."""
        h = hashlib.sha256()
        for stream in sorted(self.streams):
            h.update(repr((stream, self.columns[stream])).encode())
            h.update(np.ascontiguousarray(self.streams[stream]).tobytes())
        h.update(np.ascontiguousarray(self.xy_m).tobytes())
        return h.hexdigest()

    def subset(self, keep: np.ndarray) -> "Cells":
        """The cells at ``keep`` (indices or a boolean mask)."""
        return Cells({s: v[keep] for s, v in self.streams.items()}, dict(self.columns), self.xy_m[keep], self.source)


def _sample(cells: Cells, max_cells: int | None, seed: int) -> Cells:
    if max_cells is None or len(cells) <= max_cells:
        return cells
    keep = np.sort(np.random.default_rng([seed, 14]).choice(len(cells), max_cells, replace=False))
    return cells.subset(keep)


def raster_cells(sources, max_cells: int | None = None, seed: int = 0, window: int = 512, progress=None,
                 context=None) -> Cells:
    """Every pixel of the covariate rasters valid in all bands (a seeded ``max_cells`` of them), streams as the
    rasters' ``stream:`` settings give them, with the context features of ``context`` (``data.context``).

    Raises:
        PretrainError: No valid pixel.
    """
    sources = [s if isinstance(s, RasterSource) else RasterSource.from_config(s) for s in sources]
    kept = _BottomK(max_cells)
    with open_covariates(sources, context) as stack:
        features, groups = stack.features, stack.streams()
        total = stack.num_windows(window)
        for block in pixel_blocks(stack, features, window):
            i = block.index
            keys = np.random.default_rng([seed, 14, i]).random(len(block))
            kept.add(keys, block.values.T.astype(np.float64), block.xy, i)
            if progress is not None:
                progress(i + 1, total)
        values, xy = kept.result()
        if not len(values):
            raise PretrainError(f"the covariate rasters ({stack.files[0].name} ...) have no pixel valid in every band")
        xy = metric_coords(xy, stack.crs)
        name = ", ".join(p.name for p in stack.files)
    streams = {s: values[:, [features.index(f) for f in cols]] for s, cols in groups.items()}
    return Cells(streams, groups, xy, name)


class _BottomK:
    """A seeded uniform sample without replacement of at most ``k`` rows from a stream of windows: each row carries a
    uniform random key and the ``k`` smallest keys are kept (bottom-k sampling, Cohen & Kaplan 2007), so memory is
    bounded by ``k`` plus one window; ``k = None`` keeps every row. Rows come back in reading order."""

    def __init__(self, k: int | None):
        self.k, self.parts = k, []

    def add(self, keys: np.ndarray, values: np.ndarray, xy: np.ndarray, window: int) -> None:
        order = np.c_[np.full(len(keys), window), np.arange(len(keys))]
        self.parts.append((keys, values, xy, order))
        if self.k is not None and sum(len(p[0]) for p in self.parts) > 2 * self.k:
            self._shrink()

    def _shrink(self) -> None:
        keys, values, xy, order = (np.concatenate(a) for a in zip(*self.parts))
        if self.k is not None and len(keys) > self.k:
            top = np.argpartition(keys, self.k - 1)[:self.k]
            keys, values, xy, order = keys[top], values[top], xy[top], order[top]
        self.parts = [(keys, values, xy, order)]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """Kept values ``(n, F)`` and coordinates ``(n, 2)``, in reading order."""
        if not self.parts:
            return np.zeros((0, 0)), np.zeros((0, 2))
        self._shrink()
        _, values, xy, order = self.parts[0]
        rank = np.lexsort((order[:, 1], order[:, 0]))
        return values[rank], xy[rank]


def afsp_grid_cells(max_cells: int | None = None, seed: int = 0, context=None) -> Cells:
    """Every valid cell of ``afsp-africa``'s 20 km grid (:func:`sptgnn.data.africa.afgrid_cells`: the dataset's feature
    columns and streams, and the context features of ``context``), a seeded ``max_cells`` of them."""
    streams, groups, xy, crs, name = afgrid_cells(context)
    return _sample(Cells(streams, groups, metric_coords(xy, crs), name), max_cells, seed)


def config_cells(config, progress=None) -> Cells:
    """The unlabelled cells of a run config: its ``data.rasters``, else the grid of a named dataset that has one.

    Raises:
        PretrainError: The config has neither (the message says what to add).
    """
    pc = config.pretrain
    if config.data.rasters:
        return raster_cells(config.data.rasters, pc.max_cells, pc.seed, progress=progress, context=config.data.context)
    if config.data.dataset == "afsp-africa":
        return afsp_grid_cells(pc.max_cells, pc.seed, config.data.context)
    raise PretrainError(f"pre-training needs the covariates of the prediction domain: add `data.rasters` to the config "
                        f"(dataset {config.data.dataset!r} ships no grid of unlabelled cells)")


__all__ = ["Cells", "PretrainError", "afsp_grid_cells", "config_cells", "raster_cells"]
