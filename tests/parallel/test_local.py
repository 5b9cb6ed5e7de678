"""The executor seam without Ray: the local executor's order and stages, the tile store's rules, the map as a COG, and
a map killed with SIGKILL and resumed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from sptgnn.estimator.run import load_run
from sptgnn.parallel import ExecutorError, LocalExecutor, current_executor, make_executor, use_executor
from sptgnn.predict.raster import predict_raster
from sptgnn.predict.tiles import TileStore, TileStoreError


def _square(shared, item):
    return shared * item * item


def _first(shared, item):
    return item + shared


def _second(shared, item):
    return item * 10


def test_local_map_and_stages_keep_item_order():
    ex, seen = LocalExecutor(), []
    assert ex.map(_square, [3, 1, 2], 2, on_done=seen.append) == [18, 2, 8]
    assert seen == [0, 1, 2]
    out = ex.stages(_first, lambda item, r: [r, r + 1][: item], _second, [0, 1, 2], 100)
    assert out == [(100, []), (101, [1010]), (102, [1020, 1030])]


def test_use_executor_nests_and_restores():
    assert isinstance(current_executor(), LocalExecutor)
    a, b = LocalExecutor(), LocalExecutor()
    with use_executor(a):
        with use_executor(b):
            assert current_executor() is b
        assert current_executor() is a
    assert current_executor() is not a


def test_unknown_backend_is_refused():
    with pytest.raises(ExecutorError, match="unknown backend 'dask'; choose one of local, ray"):
        make_executor("dask")


def test_tile_store_refuses_what_it_cannot_resume(tmp_path):
    store = TileStore(tmp_path / "s", {"window": 16, "bands": ["mean"]})
    store.add(0, np.ones((1, 2, 2), np.float32), 4, {"mean": [1.0, 1.0]})
    with pytest.raises(TileStoreError, match="another sptgnn predict is writing this map now"):  # store still open
        TileStore(tmp_path / "s", {"window": 16, "bands": ["mean"]}, resume=True)
    store.close()  # as when the process that wrote it ended (or was killed)
    with pytest.raises(TileStoreError, match="rerun with --resume"):
        TileStore(tmp_path / "s", {"window": 16, "bands": ["mean"]})
    with pytest.raises(TileStoreError, match="made with other window"):
        TileStore(tmp_path / "s", {"window": 32, "bands": ["mean"]}, resume=True)
    with open(tmp_path / "s" / "tiles.jsonl", "a") as log:  # a line cut by a kill, and a tile whose file is gone
        log.write(json.dumps({"tile": 1, "valid": 4, "ranges": {}}) + "\n" + '{"tile": 2, "va')
    again = TileStore(tmp_path / "s", {"window": 16, "bands": ["mean"]}, resume=True)
    assert list(again.done) == [0]
    assert again.done[0] == (4, {"mean": [1.0, 1.0]})
    np.testing.assert_array_equal(again.read(0), np.ones((1, 2, 2)))


def _read(path):
    with rasterio.open(path) as src:
        return src.read(), src.descriptions, src.tags(), src.units


def test_map_is_a_valid_cog_with_its_band_names(mapping, tmp_path):
    _, run, rasters = mapping
    s = predict_raster(load_run(run), rasters, tmp_path / "m.tif", window=16)
    valid, errors, _ = cog_validate(tmp_path / "m.tif", quiet=True)
    assert valid, errors
    data, names, tags, units = _read(tmp_path / "m.tif")
    assert names == ("mean", "sd", "aleatoric_sd", "epistemic_sd", "q05", "q95", "aoa", "di")
    assert tags["target"] == "soc_g_kg"
    assert units[0] == "g/kg"
    assert s["tiles"] == 9
    assert s["resumed_tiles"] == 0
    assert s["valid_pixels"] == 48 * 40 - 5 * 7
    assert (data[0] == -9999).sum() == 5 * 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.png", "m.tif"]  # the tile store is gone


def test_map_killed_midway_resumes_to_the_same_map(mapping, killer, tmp_path):
    _, run, rasters = mapping
    whole = predict_raster(load_run(run), rasters, tmp_path / "whole.tif", window=16, quicklook=False)
    out = tmp_path / "m.tif"
    proc = subprocess.run([sys.executable, killer, run, rasters[0], "4", out], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert not out.exists()
    assert (tmp_path / ".m.tif.tiles" / "tiles.jsonl").exists()
    with pytest.raises(TileStoreError, match="--resume"):  # a rerun without --resume does not overwrite it
        predict_raster(load_run(run), rasters, out, window=16)
    with pytest.raises(TileStoreError, match="other window"):
        predict_raster(load_run(run), rasters, out, window=32, resume=True)
    s = predict_raster(load_run(run), rasters, out, window=16, resume=True)
    assert s["resumed_tiles"] == 4
    assert s["valid_pixels"] == whole["valid_pixels"]
    assert s["ranges"] == whole["ranges"]
    np.testing.assert_array_equal(_read(out)[0], _read(tmp_path / "whole.tif")[0])
    assert not (tmp_path / ".m.tif.tiles").exists()


def test_a_raster_edited_in_place_is_another_input_and_a_damaged_tile_is_named(mapping, tmp_path):
    import os
    import shutil

    from sptgnn.geo.sources import match_sources
    from sptgnn.predict.raster import raster_sources
    from sptgnn.predict.tiles import map_fingerprint

    _, run_folder, rasters = mapping
    run = load_run(run_folder)
    raster = Path(shutil.copy(rasters[0], tmp_path / "stack.tif"))
    sources = match_sources([str(raster)], raster_sources(run))
    store = TileStore(tmp_path / "s", map_fingerprint(run, sources, 16, None, False, run.map_bands))
    store.add(0, np.ones((1, 2, 2), np.float32), 4, {"mean": [1.0, 1.0]})
    store.close()
    stat = raster.stat()
    with rasterio.open(raster, "r+") as dst:  # edited in place: one value, same size, same modification time
        band = dst.read(1)
        band[10, 10] += 1.0
        dst.write(band, 1)
    os.utime(raster, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert raster.stat().st_size == stat.st_size
    assert raster.stat().st_mtime_ns == stat.st_mtime_ns
    with pytest.raises(TileStoreError, match=f"other rasters .*changed since: {raster.resolve()}"):
        TileStore(tmp_path / "s", map_fingerprint(run, sources, 16, None, False, run.map_bands), resume=True)
    (tmp_path / "s" / "tile_0.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(TileStoreError, match=r"tile_0.npz is damaged .*without --resume"):
        store.read(0)
    fingerprint = json.loads((tmp_path / "s" / "manifest.json").read_text())
    with pytest.raises(TileStoreError, match=r"tile_0.npz is damaged"):  # found when resuming, before any work
        TileStore(tmp_path / "s", fingerprint, resume=True)
