"""Raster maps: a covariate stack read window by window, every valid pixel a query node, a multi-band GeoTIFF out.

Bands of the map (target units, e.g. g/kg for SOC, % for SOM; ``aoa`` is 0/1):

1. ``mean`` — mixture mean of the ensemble;
2. ``sd`` — total predictive sd, sqrt(aleatoric² + epistemic²);
3. ``aleatoric_sd``; 4. ``epistemic_sd``;
5. ``q05``; 6. ``q95`` — quantiles of the members' mixture (Gaussian members, or lognormal ones with ``log1p``);
7. ``aoa`` — area-of-applicability flag (Meyer & Pebesma 2021), 1 inside.

The GeoTIFF has the reference grid of the covariate stack (CRS, transform, shape), float32, tiled 256 × 256, DEFLATE
compressed, nodata ``-9999`` wherever an input covariate is nodata. It is written to a temporary file beside the
output and renamed when complete (with the PNG quicklook of mean and sd), so an interrupted run leaves nothing under
the final name. Memory is bounded by the window size, not the raster size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.enums import Resampling

from sptgnn.data.raster_sources import RasterError, RasterSource, match_sources
from sptgnn.data.rasters import CovariateStack
from sptgnn.atomic import atomic_file
from sptgnn.estimator.run import Run
from sptgnn.geo import CRSTransformError, transform_xy, transformer

BANDS = ("mean", "sd", "aleatoric_sd", "epistemic_sd", "q05", "q95", "aoa")
NODATA = -9999.0
GDAL_CACHE_MB = 64


class PredictError(ValueError):
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


def predict_raster(model: Run, rasters: Sequence[str | Path], out: str | Path, window: int = 512, dates=None,
                   progress: Callable[[int, int], None] | None = None, quicklook: bool = True,
                   overwrite: bool = False, compile: bool | None = None, student: bool = False) -> dict:
    """Predict a covariate stack window by window and write the multi-band map (see the module docstring).

    Args:
        model: The :class:`~sptgnn.estimator.run.Run` (see :func:`sptgnn.load_run`).
        rasters: Covariate GeoTIFFs; bands are named by the training config's ``data.rasters`` rules when a file name
            matches one of its patterns, else by description / file stem.
        out: Output GeoTIFF; its folder must exist. A PNG quicklook is written beside it (``.png``).
        window: Window size in pixels (memory ``O(window² · features)``).
        dates: Sampling date of the map (e.g. ``"2020-06-15"``) for the time stream; ``None`` takes the labelled
            nodes' mean year (time features 0).
        progress: Called with ``(windows done, windows total)`` after each window.
        quicklook: Write the PNG quicklook.
        overwrite: Replace an existing output.
        compile: Fuse the attention step with ``torch.compile`` (about 3× faster per pixel, tens of seconds to
            compile once); ``None`` compiles for grids of more than 4 million pixels.
        student: Map the primary target with the run's distilled fast student instead of the ensemble.

    Returns:
        Summary: ``path``, ``png``, ``shape``, ``valid_pixels``, ``seconds``, per band ``min``/``max`` of valid pixels.

    Raises:
        PredictError: Output folder missing or output exists.
        RasterError: Missing band, CRS without transformation, unreadable raster.
    """
    import time

    out = Path(out)
    _check_out(out)
    if student and not model.has_student:
        raise PredictError("this run has no student; train it with student.enabled: true, or drop --student")
    if out.exists() and not overwrite:
        raise PredictError(f"{out} already exists; remove it or choose another --out")
    png = out.with_suffix(".png")
    sources = match_sources([str(p) for p in rasters], raster_sources(model))
    start = time.perf_counter()
    # GDAL's block cache (default 5 % of RAM) would grow with the raster; a fixed cap keeps memory flat in its size
    names = model.map_bands  # BANDS, then four per auxiliary target (multi-task runs)
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), CovariateStack.open(sources) as stack:
        stack.check_features(model.needed)
        h, w = stack.shape
        if compile or (compile is None and h * w > 4_000_000):
            model.predictor.enable_compile()
        t = stack.transform
        cx, cy = t.c + t.a * w / 2 + t.b * h / 2, t.f + t.d * w / 2 + t.e * h / 2
        tr = _transformer(stack.crs, model.ensemble.builder.labelled.crs, (cx, cy))
        profile = {
            "driver": "GTiff", "dtype": "float32", "count": len(names), "nodata": NODATA, "crs": stack.crs,
            "transform": stack.transform, "width": w, "height": h, "tiled": True, "blockxsize": 256, "blockysize": 256,
            "compress": "deflate", "predictor": 3, "BIGTIFF": "IF_SAFER",
        }
        stats = {b: [np.inf, -np.inf] for b in names}
        n_valid = 0
        with atomic_file(out, ".tif") as tmp:
            total = stack.num_windows(window)
            with rasterio.open(tmp, "w", **profile) as dst:
                for i, b in enumerate(names, start=1):
                    dst.set_band_description(i, b)
                dst.units = tuple([model.units] * 6 + [""] * (len(names) - 6))
                dst.update_tags(target=model.ensemble.target, units=model.units, bands=",".join(names),
                                source="sptgnn", aoa="1 inside the area of applicability (Meyer & Pebesma 2021), 0 outside")
                for k, win in enumerate(stack.windows(window)):
                    data, valid = stack.read_window(win, model.needed)
                    block = np.full((len(names),) + valid.shape, NODATA, dtype=np.float32)
                    if valid.any():
                        x, y = stack.pixel_centres(win)
                        x, y = x[valid], y[valid]
                        if tr is not None:
                            x, y = tr.transform(x, y, errcheck=False)
                        xy = np.c_[x, y]
                        ok = np.isfinite(xy).all(1)
                        vals = {f: data[j][valid][ok] for j, f in enumerate(model.needed)}
                        bands = model.predict_arrays(vals, xy[ok], dates, student=student)
                        rows, cols = np.nonzero(valid)
                        rows, cols = rows[ok], cols[ok]
                        for bi, b in enumerate(names):
                            v = bands[b].astype(np.float32)
                            block[bi, rows, cols] = v
                            if v.size:
                                stats[b][0] = min(stats[b][0], float(np.nanmin(v)))
                                stats[b][1] = max(stats[b][1], float(np.nanmax(v)))
                        n_valid += int(ok.sum())
                    dst.write(block, window=win)
                    if progress is not None:
                        progress(k + 1, total)
            if n_valid == 0:
                raise RasterError(f"no pixel of the covariate rasters is valid in every needed band {model.needed}; "
                                  "check the rasters' nodata")
            if quicklook:
                with atomic_file(png, ".png") as tmp_png:
                    write_quicklook(tmp, tmp_png, model.ensemble.target, model.units)
    return {"path": str(out), "png": str(png) if quicklook else None, "shape": [h, w], "valid_pixels": n_valid,
            "seconds": time.perf_counter() - start,
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
