"""A small covariate stack, a run trained on points of it, and a map script that kills itself midway."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import X0, Y0, write_tif

H, W, RES = 48, 40, 10.0


@pytest.fixture(scope="session")
def mapping(tmp_path_factory, config_factory):
    """``(folder, run folder, rasters)``: a 2-band stack with a nodata corner and a run of 2 members on 50 points."""
    from sptgnn.data.tables import load_samples
    from sptgnn.estimator.run import fit_run

    d = tmp_path_factory.mktemp("parallel")
    rows, cols = np.mgrid[0:H, 0:W]
    u, v = cols / W, rows / H
    elev = 50 + 20 * u + 5 * np.sin(4 * v)
    ndvi = 0.3 + 0.4 * np.sin(2 * u + v) ** 2
    elev[:5, :7] = -9999.0
    write_tif(d / "stack.tif", np.stack([elev, ndvi]), RES, origin=(X0, Y0), nodata=-9999.0,
              descriptions=["elev", "ndvi"])
    rng = np.random.default_rng(1)
    r, c = rng.integers(6, H, 50), rng.integers(0, W, 50)
    soc = 10 + 0.3 * (elev[r, c] - 50) + 20 * ndvi[r, c] + rng.normal(0, 0.5, 50)
    pd.DataFrame({"pid": np.arange(50), "x": X0 + (c + 0.5) * RES, "y": Y0 - (r + 0.5) * RES,
                  "soc_g_kg": soc}).to_csv(d / "pts.csv", index=False)
    cfg = config_factory(
        data={"target": "soc_g_kg", "target_transform": "none",
              "table": {"path": str(d / "pts.csv"), "x": "x", "y": "y", "crs": "EPSG:32633", "id": "pid",
                        "elevation": "elev", "units": "g/kg"},
              "rasters": [{"path": str(d / "stack.tif")}]},
        graph={"spectral_streams": ["environment"]}, train={"members": 2, "epochs": 4})
    fit_run(cfg, load_samples(cfg.data)).save(d / "run")
    return d, d / "run", [d / "stack.tif"]


KILLER = """
import os, signal, sys
from sptgnn.estimator.run import load_run
from sptgnn.predict.raster import predict_raster

def kill(done, total, pixels):
    if done == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)  # as a crash or `kill -9` would: no clean-up runs

predict_raster(load_run(sys.argv[1]), [sys.argv[2]], sys.argv[4], window=16, progress=kill)
"""


@pytest.fixture(scope="session")
def killer(tmp_path_factory):
    """A script ``run raster tiles out`` that maps and kills itself (SIGKILL) once ``tiles`` tiles are done."""
    path = tmp_path_factory.mktemp("killer") / "map_and_die.py"
    path.write_text(KILLER)
    return path
