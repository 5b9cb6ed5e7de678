"""A small covariate stack, a run trained on points of it, and a map script that kills itself midway."""

from __future__ import annotations

import pytest
from helpers import soc_stack_and_points, stack_sections

H, W, RES = 48, 40, 10.0


@pytest.fixture(scope="session")
def mapping(tmp_path_factory, config_factory):
    """``(folder, run folder, rasters)``: a 2-band stack with a nodata corner and a run of 2 members on 50 points."""
    from sptgnn.data.tables import load_samples
    from sptgnn.estimator.run import fit_run

    d = tmp_path_factory.mktemp("parallel")
    table = soc_stack_and_points(d, H, W, RES, corner=(5, 7), n=50, seed=1, first_row=6)
    cfg = config_factory(**stack_sections(d, table, target_transform="none"), train={"members": 2, "epochs": 4})
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
