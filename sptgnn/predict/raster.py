"""Raster maps: a covariate stack predicted tile by tile, every valid pixel a query node, a multi-band COG out.

Bands of the map (target units, e.g. g/kg for SOC, % for SOM; ``aoa`` is 0/1):

1. ``mean`` — mixture mean of the ensemble;
2. ``sd`` — total predictive sd, sqrt(aleatoric² + epistemic²);
3. ``aleatoric_sd``; 4. ``epistemic_sd``;
5. ``q05``; 6. ``q95`` — quantiles of the members' mixture (Gaussian members, or lognormal ones with ``log1p``);
7. ``aoa`` — area-of-applicability flag (Meyer & Pebesma 2021), 1 inside;
8. ``di`` — the dissimilarity index behind it (unitless; the AOA threshold is in the file's tags), so that a reader
   sees how far outside, not only whether.

The map is a Cloud-Optimized GeoTIFF (GDAL's COG driver: internal 256 × 256 tiles, overviews, DEFLATE) on the
reference grid of the covariate stack (CRS, transform, shape), float32, nodata ``-9999`` wherever an input covariate
is nodata. Each tile is a task of the current executor (:mod:`sptgnn.parallel`); finished tiles are kept in a store
beside the map (:mod:`sptgnn.predict.tiles`), so an interrupted map resumes where it stopped (``resume``). The map
is assembled into a temporary file beside the output and renamed when complete (with the PNG quicklook of mean and
sd), so an interrupted run leaves nothing under the final name. Memory is bounded by the tile size, not the raster
size; the disk holds the compressed tiles and an intermediate beside the map while it is assembled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.enums import Resampling

from sptgnn.errors import UserError
from sptgnn.geo.sources import RasterError, RasterSource, match_sources
from sptgnn.geo.context import open_covariates
from sptgnn.atomic import atomic_file, check_writable
from sptgnn.estimator.run import Run, RunError
from sptgnn.geo import CRSTransformError, transform_xy, transformer
from sptgnn.parallel import current_executor
from sptgnn.predict.tiles import (GDAL_CACHE_MB, NODATA, TileJob, TileStore, RunRef, map_fingerprint, predict_tile,
                                  store_folder)

BANDS = ("mean", "sd", "aleatoric_sd", "epistemic_sd", "q05", "q95", "aoa", "di")


class PredictError(UserError):
    """A prediction that cannot run with the given inputs; the message says what to change."""


def raster_sources(run) -> list[RasterSource]:
    """The band-naming rules of the run config's ``data.rasters`` (matched against the rasters given to predict)."""
    return [RasterSource.from_config(r) for r in run.config.data.rasters]


def _transformer(src_crs, dst_crs, probe: tuple[float, float]) -> Transformer | None:
    """A transformer from the rasters' CRS to the training CRS (None when equal); fails early when impossible."""
    names = ("the rasters' CRS", "the training CRS")
    try:
        tr = transformer(src_crs, dst_crs, names)
        if tr is not None:
            transform_xy(np.array([probe]), src_crs, dst_crs, names)
    except CRSTransformError as exc:
        raise RasterError(f"{exc} at the raster centre; reproject the rasters") from None
    return tr


def _check_out(out: Path) -> None:
    if not out.parent.is_dir():
        raise PredictError(f"output folder {out.parent} does not exist; create it first or choose another --out")
    if out.is_dir():
        raise PredictError(f"{out} is a folder; give a file name such as map.tif")
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise PredictError(f"--out {out.name}: a map is written as a GeoTIFF; name it .tif")
    check_writable(out.parent)


def predict_raster(model: Run, rasters: Sequence[str | Path], out: str | Path, window: int = 512, dates=None,
                   progress: Callable[..., None] | None = None, quicklook: bool = True,
                   overwrite: bool = False, compile: bool | None = None, student: bool = False,
                   resume: bool = False, depth=None) -> dict:
    """Predict a covariate stack tile by tile and write the multi-band map (see the module docstring).

    Each window is a task of the current executor (:mod:`sptgnn.parallel`: this process, or Ray workers that load the
    run from its folder once); finished tiles go to a store beside the map (:mod:`sptgnn.predict.tiles`), from which
    ``resume`` continues an interrupted map. The map is then assembled into a Cloud-Optimized GeoTIFF (GDAL's COG
    driver) and renamed into place.

    Args:
        model: The :class:`~sptgnn.estimator.run.Run` (see :func:`sptgnn.load_run`).
        rasters: Covariate GeoTIFFs; bands are named by the training config's ``data.rasters`` rules when a file name
            matches one of its patterns, else by description / file stem.
        out: Output GeoTIFF; its folder must exist. A PNG quicklook is written beside it (``.png``).
        window: Tile size in pixels (memory per worker ``O(window² · features)``).
        dates: Sampling date of the map (e.g. ``"2020-06-15"``) for the time stream; ``None`` takes the labelled
            nodes' mean year (time features 0).
        progress: Called with ``(tiles done, tiles total, pixels predicted)`` after each tile.
        quicklook: Write the PNG quicklook.
        overwrite: Replace an existing output.
        compile: Fuse the attention step with ``torch.compile`` (about 3× faster per pixel, tens of seconds to
            compile once); ``None`` compiles for grids of more than 4 million pixels.
        student: Map the primary target with the run's distilled fast student instead of the ensemble.
        resume: Continue the unfinished map in the tile store (only the tiles it lacks are predicted).
        depth: The layer (top, bottom cm), or a sequence of layers, a run trained on profile layers maps (``None``: the
            six GlobalSoilMap intervals; :meth:`Run.layers <sptgnn.estimator.run.Run.layers>`): one band set per
            layer, named with the interval (``mean_0-5cm`` …) when there are several; recorded in the map's tags.

    Returns:
        Summary: ``path``, ``png``, ``shape``, ``valid_pixels``, ``seconds`` (of which ``tile_seconds`` up to the
        last tile and ``assembly_seconds`` for the COG and quicklook), ``tiles`` (total) and ``resumed_tiles``, per
        band ``min``/``max`` of valid pixels.

    Raises:
        PredictError: Output folder missing or output exists, or a depth interval given to a run of one layer or with
            its bottom above its top.
        TileStoreError: An unfinished map exists without ``resume``, or it was made from other inputs.
        RasterError: Missing band, CRS without transformation, unreadable raster.
    """
    import time

    out = Path(out)
    _check_out(out)
    if student and not model.has_student:
        raise PredictError("this run has no student; train it with student.enabled: true, or drop --student")
    if out.exists() and not overwrite:
        raise PredictError(f"{out} already exists; remove it or choose another --out")
    try:
        layers = model.layers(depth)
    except RunError as exc:
        raise PredictError(str(exc)) from None
    png = out.with_suffix(".png")
    sources = match_sources([str(p) for p in rasters], raster_sources(model))
    start = time.perf_counter()
    band_set = model.map_bands  # BANDS, then four per auxiliary target (multi-task runs), once per layer:
    names = band_set if len(layers) == 1 else [f"{b}_{model.layer_label(layer)}" for layer in layers for b in band_set]
    # GDAL's block cache (default 5 % of RAM) would grow with the raster; a fixed cap keeps memory flat in its size
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_covariates(sources, model.config.data.context) as stack:
        stack.check_features(model.needed)
        h, w = stack.shape
        t, crs, windows = stack.transform, stack.crs, list(stack.windows(window))
        stack_bands = list(stack.bands)
    if (compile or (compile is None and h * w > 4_000_000)) and not model.prediction_options["compile"]:
        model.set_prediction_options(**(model.prediction_options | {"compile": True}))
    cx, cy = t.c + t.a * w / 2 + t.b * h / 2, t.f + t.d * w / 2 + t.e * h / 2
    dst_crs = model.labelled.crs
    tr = _transformer(crs, dst_crs, (cx, cy))
    model.area_of_applicability()  # fitted once here when the run has none (a worker loads it from the run folder)
    job = TileJob(RunRef(model, model.prediction_options), sources, names, dates, student,
                  None if tr is None else (crs, dst_crs), windows, layers)
    store = TileStore(store_folder(out), map_fingerprint(model, sources, window, dates, student, names, layers),
                      resume)
    resumed, total = len(store.done), len(job.windows)
    todo = [k for k in range(total) if k not in store.done]
    pixels = sum(v for v, _ in store.done.values())
    if progress is not None:
        progress(len(store.done), total, pixels)
    for k, (block, n_valid, ranges) in current_executor().imap(predict_tile, todo, job):
        store.add(todo[k], block, n_valid, ranges)
        pixels += n_valid
        if progress is not None:
            progress(len(store.done), total, pixels)
    tiles_done = time.perf_counter()
    stats = {b: [np.inf, -np.inf] for b in names}
    for _, ranges in store.done.values():
        for b, r in ranges.items():
            if r is not None:
                stats[b] = [min(stats[b][0], r[0]), max(stats[b][1], r[1])]
    if pixels == 0:
        store.remove()
        raw = [f for f in model.needed if f in stack_bands]
        with open_covariates(sources) as plain:  # which band is empty everywhere (raw bands; context ones follow them)
            seen = sum(plain.read_window_bands(w, raw)[1].reshape(len(raw), -1).any(1) for w in plain.windows(1024))
        empty = [f for f, any_valid in zip(raw, np.atleast_1d(seen)) if not any_valid]
        raise RasterError(f"no pixel of the covariate rasters is valid in every needed band {model.needed}"
                          + (f"; band(s) {empty} hold no valid pixel at all" if empty else "")
                          + "; check the rasters' nodata")
    band_units = ([model.units] * 6 + [""] * (len(band_set) - 6)) * len(layers)
    tags = {"target": model.target, "units": model.units, "bands": ",".join(names), "source": "sptgnn",
            "aoa": "1 inside the area of applicability (Meyer & Pebesma 2021), 0 outside",
            "di": "dissimilarity index (Meyer & Pebesma 2021, CAST): distance to the nearest training sample in the "
                  "importance-weighted covariate space over the mean training distance; aoa = 1 where di <= di_threshold",
            "di_threshold": repr(float(model.area_of_applicability().threshold))}
    if layers != [None]:  # the layer(s) every pixel was predicted for, in band-set order
        tags["depth_cm"] = ",".join(f"{a:g}-{b:g}" for a, b in layers)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), atomic_file(out, ".tif") as tmp:
        store.write_cog(tmp, job.windows, {"crs": crs, "transform": t, "width": w, "height": h}, names, band_units,
                        tags)
        if quicklook:
            with atomic_file(png, ".png") as tmp_png:
                write_quicklook(tmp, tmp_png, model.target, model.units)
    store.remove()
    return {"path": str(out), "png": str(png) if quicklook else None, "shape": [h, w], "valid_pixels": pixels,
            "seconds": time.perf_counter() - start, "tile_seconds": tiles_done - start,
            "assembly_seconds": time.perf_counter() - tiles_done, "tiles": total, "resumed_tiles": resumed,
            "ranges": {b: (None if not np.isfinite(v[0]) else [v[0], v[1]]) for b, v in stats.items()}}


def write_quicklook(tif: str | Path, png: str | Path, target: str, units: str, max_size: int = 1000) -> None:
    """PNG of the mean and total sd bands side by side, read decimated to at most ``max_size`` pixels a side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with rasterio.open(tif) as src:
        f = max(1.0, max(src.height, src.width) / max_size)
        shape = (max(1, int(src.height / f)), max(1, int(src.width / f)))
        arrs = [src.read(i, out_shape=shape, resampling=Resampling.nearest, masked=True) for i in (1, 2, 7)]
    fig, axes = plt.subplots(1, 2, figsize=(11, 5 * shape[0] / max(shape[1], 1) + 1), constrained_layout=True)
    for ax, arr, title, cmap in zip(axes, arrs[:2], ["mean", "total sd"], ["viridis", "magma"]):
        im = ax.imshow(arr, cmap=cmap)
        ax.set_title(f"{target} {title}" + (f" ({units})" if units else ""))
        ax.set_axis_off()
        fig.colorbar(im, ax=ax, shrink=0.8)
    outside = np.ma.filled(arrs[2], 1) == 0
    if outside.any():
        axes[0].contour(outside.astype(float), levels=[0.5], colors="white", linewidths=0.5)
        axes[0].set_title(axes[0].get_title() + "; white: outside AOA")
    fig.savefig(png, dpi=100)
    plt.close(fig)


__all__ = ["BANDS", "NODATA", "PredictError", "predict_raster", "raster_sources", "write_quicklook"]
