"""Map tiles: one window of the covariate grid predicted as one task, and the store of finished tiles a map resumes
from.

A tile needs no halo: every pixel is a query node that attaches to the labelled nodes only (DESIGN.md rule 1), so a
tile's pixels do not depend on its neighbours and a map is the same whatever the tiling's order or worker count. A
worker loads the :class:`~sptgnn.estimator.run.Run` from its folder once and keeps it for every later tile.

The store is a folder beside the map (``.<map name>.tiles``): ``manifest.json`` (what the map is made from, by content:
the SHA-256 of the run's manifest and of every raster file, window, date, bands) and one ``tile_<k>.npz`` (compressed) per finished tile, each renamed into place when complete and
then listed on a line of ``tiles.jsonl``. After a crash or ``kill -9``, ``--resume`` reads the listed tiles and
predicts only the others; the store is removed once the map is written.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import rasterio

from sptgnn.errors import UserError
from sptgnn.geo.sources import RasterError, expand_paths
from sptgnn.estimator.manifest import MANIFEST, sha256

GDAL_CACHE_MB = 64
NODATA = -9999.0


class TileStoreError(UserError):
    """A tile store that cannot be used for this map; the message says what to do."""


class RunRef:
    """The driver's Run, travelling by its folder: a worker loads it from there once (:func:`_run`)."""

    def __init__(self, run, options: dict):
        self.run, self.path, self.options = run, None if run.path is None else str(run.path), dict(options)

    def __getstate__(self) -> dict:  # an unsaved run travels whole
        return {"run": self.run if self.path is None else None, "path": self.path, "options": self.options}


_RUNS: dict = {}  # per worker process: (run folder, options) -> Run


def _run(ref: RunRef):
    if ref.run is not None:
        return ref.run
    key = (ref.path, tuple(sorted(ref.options.items())))
    if key not in _RUNS:
        from sptgnn.estimator.run import load_run

        _RUNS.clear()  # one run per worker at a time
        _RUNS[key] = load_run(ref.path, **ref.options)
    return _RUNS[key]


@dataclass
class TileJob:
    """What every tile task of one map reads: the run, the rasters (:class:`~sptgnn.geo.sources.RasterSource`),
    the bands, the date, ``student``, the CRS pair (rasters → training) when they differ, the windows of the tiles
    (:meth:`CovariateStack.windows <sptgnn.geo.stack.CovariateStack.windows>`) and the layers it maps
    (:meth:`Run.layers <sptgnn.estimator.run.Run.layers>`: ``[None]``, or a profile run's intervals, top and bottom in cm;
    ``names`` holds the run's band set once per layer)."""

    run: RunRef
    sources: list
    names: list[str]
    dates: object = None
    student: bool = False
    crs_pair: tuple | None = None
    windows: list = field(default_factory=list)
    layers: list = field(default_factory=lambda: [None])


def predict_tile(job: TileJob, k: int) -> tuple[np.ndarray, int, dict]:
    """Tile ``k`` of the map: its bands ``(B, h, w)`` float32 (``NODATA`` where a covariate is missing), its number of
    predicted pixels and the per-band ``[min, max]`` of those pixels (``None`` when none)."""
    from sptgnn.geo.context import open_covariates
    from sptgnn.geo.coords import transformer
    from sptgnn.geo.pixels import read_pixels

    model = _run(job.run)
    win = job.windows[k]
    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), open_covariates(job.sources, model.config.data.context) as stack:
        pixels = read_pixels(stack, win, model.needed, index=k)
    block = np.full((len(job.names),) + pixels.valid.shape, NODATA, dtype=np.float32)
    stats: dict = {b: None for b in job.names}
    if not len(pixels):
        return block, 0, stats
    x, y = pixels.xy[:, 0], pixels.xy[:, 1]
    if job.crs_pair is not None:
        x, y = transformer(*job.crs_pair, ("the rasters' CRS", "the training CRS")).transform(x, y, errcheck=False)
    xy = np.c_[x, y]
    ok = np.isfinite(xy).all(1)
    vals = {f: v[ok] for f, v in pixels.columns().items()}
    per_layer = [model.predict_arrays(vals, xy[ok], job.dates, student=job.student, depth=layer) for layer in job.layers]
    values = [v for bands in per_layer for v in (bands[b] for b in model.map_bands)]  # the band sets in layer order
    rows, cols = np.nonzero(pixels.valid)
    rows, cols = rows[ok], cols[ok]
    for bi, b in enumerate(job.names):
        v = values[bi].astype(np.float32)
        block[bi, rows, cols] = v
        if v.size:
            stats[b] = [float(np.nanmin(v)), float(np.nanmax(v))]
    return block, int(ok.sum()), stats


class TileStore:
    """Finished tiles of one map (see the module docstring).

    Args:
        folder: The store folder.
        fingerprint: What the map is made from (JSON-able); a store made from anything else is refused.
        resume: Continue an existing store; without it an existing store is an error (nothing is overwritten).

    Raises:
        TileStoreError: A store exists without ``resume``, it was made from other inputs, or another process is
            writing it now (the store is locked while a map is written).
    """

    def __init__(self, folder: str | Path, fingerprint: dict, resume: bool = False):
        self.folder = Path(folder)
        manifest = self.folder / "manifest.json"
        fingerprint = json.loads(json.dumps(fingerprint))
        self._lock = None
        try:
            self._open(manifest, fingerprint, resume)
        except BaseException:
            self.close()  # a refused store is not held
            raise

    def _open(self, manifest: Path, fingerprint: dict, resume: bool) -> None:
        if self.folder.exists():
            self._take_lock()
            if not resume:
                raise TileStoreError(f"an unfinished map is in {self.folder}; rerun with --resume to finish it, or remove "
                                     "that folder to start again")
            try:
                old = json.loads(manifest.read_text())
            except (OSError, ValueError):
                raise TileStoreError(f"{self.folder} has no readable manifest.json; remove that folder and rerun") from None
            changed = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            if changed:
                files = [f[0] for f in fingerprint.get("rasters", []) if f not in old.get("rasters", [])]
                raise TileStoreError(f"the unfinished map in {self.folder} was made with other {', '.join(changed)}"
                                     + (f" (changed since: {', '.join(files)})" if files else "")
                                     + "; rerun with the same inputs, or remove that folder to start again")
        else:
            self.folder.mkdir()
            self._take_lock()
            tmp = self.folder / ".manifest.json.partial"
            tmp.write_text(json.dumps(fingerprint, indent=1))
            os.replace(tmp, manifest)
        self.done: dict[int, tuple[int, dict]] = {}  # tile -> (predicted pixels, band ranges)
        log = self.folder / "tiles.jsonl"
        if log.exists():
            for line in log.read_text().splitlines():
                try:  # a line cut by a kill is not a finished tile
                    rec = json.loads(line)
                except ValueError:
                    continue
                if (self.folder / f"tile_{rec['tile']}.npz").exists():
                    self.done[int(rec["tile"])] = (int(rec["valid"]), rec["ranges"])
        for k in self.done:  # a damaged tile is found now, not after every other tile was predicted
            self.read(k)

    def _take_lock(self) -> None:
        """Hold an exclusive lock on the store while this process writes it (released by the OS when the process ends,
        so a killed map can be resumed); a store another process holds is refused."""
        import fcntl

        fh = open(self.folder / ".lock", "a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            raise TileStoreError(f"another sptgnn predict is writing this map now (its tile store {self.folder} is "
                                 "locked); wait for it to finish, or choose another --out") from None
        self._lock = fh

    def add(self, k: int, block: np.ndarray, valid: int, ranges: dict) -> None:
        """Keep tile ``k``: its file renamed into place, then its line in ``tiles.jsonl``."""
        tmp = self.folder / f".tile_{k}.partial.npz"
        np.savez_compressed(tmp, bands=block)  # deflate: the store of a continental map must fit on the disk
        os.replace(tmp, self.folder / f"tile_{k}.npz")
        with open(self.folder / "tiles.jsonl", "a") as log:
            log.write(json.dumps({"tile": int(k), "valid": int(valid), "ranges": ranges}) + "\n")
            log.flush()
            os.fsync(log.fileno())
        self.done[int(k)] = (int(valid), ranges)

    def read(self, k: int) -> np.ndarray:
        """Tile ``k``'s bands ``(B, h, w)``.

        Raises:
            TileStoreError: The tile file is damaged (the message names it and the fix).
        """
        path = self.folder / f"tile_{k}.npz"
        try:
            with np.load(path, allow_pickle=False) as f:
                return f["bands"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            raise TileStoreError(f"the finished tile {path} is damaged ({type(exc).__name__}); remove {self.folder} and "
                                 f"predict again without --resume") from None

    def write_cog(self, path: str | Path, windows: Sequence, grid: dict, names: Sequence[str],
                  units: Sequence[str], tags: dict) -> None:
        """Assemble every tile into the Cloud-Optimized GeoTIFF ``path`` (float32, nodata ``NODATA``, band
        descriptions ``names`` and ``units``, dataset ``tags``): tile by tile into a lightly compressed intermediate
        beside it, then GDAL's COG driver (256 px tiles, overviews, DEFLATE with the floating-point predictor) on
        every core of this machine, which is otherwise idle while it runs. Memory is bounded by one tile and GDAL's
        cache.

        Args:
            path: The COG to write (a temporary name; the caller renames it into place).
            windows: The window of tile ``k`` at position ``k``.
            grid: ``crs``, ``transform``, ``width``, ``height`` of the map.
        """
        import rasterio.shutil

        profile = {"driver": "GTiff", "dtype": "float32", "count": len(names), "nodata": NODATA, "tiled": True,
                   "blockxsize": 256, "blockysize": 256, "BIGTIFF": "IF_SAFER", "compress": "deflate", "zlevel": 1,
                   "predictor": 3} | grid
        plain = Path(str(path) + ".assembly.tif")
        try:
            with rasterio.open(plain, "w", **profile) as dst:
                for i, b in enumerate(names, start=1):
                    dst.set_band_description(i, b)
                dst.units = tuple(units)
                dst.update_tags(**tags)
                for k, win in enumerate(windows):
                    dst.write(self.read(k), window=win)
            rasterio.shutil.copy(plain, path, driver="COG", COMPRESS="DEFLATE", PREDICTOR="3", BLOCKSIZE="256",
                                 OVERVIEW_RESAMPLING="NEAREST", BIGTIFF="IF_SAFER", NUM_THREADS="ALL_CPUS")
        finally:
            plain.unlink(missing_ok=True)

    def close(self) -> None:
        """Release the store's lock, keeping its tiles (for a later ``--resume``)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def remove(self) -> None:
        """Delete the store (after the map is written) and release its lock."""
        shutil.rmtree(self.folder, ignore_errors=True)
        self.close()


def store_folder(out: Path) -> Path:
    """The tile store of map ``out``: ``.<name>.tiles`` beside it."""
    return out.parent / f".{out.name}.tiles"


def map_fingerprint(run, sources: Sequence, window: int, dates, student: bool, names: list[str],
                    layers: list | None = None) -> dict:
    """What a map is made from, for :class:`TileStore`, by content: the SHA-256 of the run folder's manifest (which
    holds the SHA-256 of every file of the run) and of every raster file each source names (a glob expanded), the
    window, the date, ``student``, the bands and a profile run's depth intervals. A raster edited in place, even with its size and time kept, is
    another input. Hashing reads each raster once (about a second per GB)."""
    def digest(p) -> list:
        try:
            return [str(Path(p).resolve()), sha256(Path(p))]
        except OSError:  # the workers read it, and say so when they cannot
            return [str(Path(p).resolve()), None]

    files = []
    for s in sources:
        try:
            files += [digest(f) for f in expand_paths(s.path)]
        except RasterError:
            files.append([str(s.path), None])
    run_id = None if run.path is None else digest(Path(run.path) / MANIFEST)
    out = {"run": run_id, "rasters": files, "window": int(window),
           "date": None if dates is None else str(dates), "student": bool(student), "bands": list(names)}
    layers = [layer for layer in (layers or []) if layer is not None]
    return out | {"depth_cm": [[float(a), float(b)] for a, b in layers]} if layers else out


__all__ = ["TileJob", "TileStore", "TileStoreError", "map_fingerprint", "predict_tile", "store_folder"]
