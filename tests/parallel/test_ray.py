"""The Ray executor on a local instance of 2 CPUs gives what the local executor gives: the same members (bitwise),
the same cross-validation, the same map from 2 workers as from 1; a worker's error surfaces as it would locally and
leaves no map."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import rasterio
import torch

from sptgnn.estimator.run import RunError, fit_run, load_run
from sptgnn.evaluate.crossval import cross_validate_config
from sptgnn.parallel import LocalExecutor, use_executor
from sptgnn.predict.raster import predict_raster

ray = pytest.importorskip("ray")  # the extra sptgnn[ray]; CI installs it with dev


@pytest.fixture(scope="module")
def cluster():
    from sptgnn.parallel.ray_executor import RayExecutor

    with RayExecutor(num_cpus=2) as executor:
        yield executor


def test_map_order_and_a_task_error_as_raised(cluster):
    from sptgnn.parallel.ray_executor import RayExecutor

    assert cluster.workers == 2
    assert isinstance(cluster, RayExecutor)
    # builtins: a worker imports a task by name, and this test module is not importable there
    assert cluster.map(divmod, [5, 2, 7, 3, 4], 12) == [divmod(12, i) for i in (5, 2, 7, 3, 4)]
    with pytest.raises(ZeroDivisionError, match="^integer division or modulo by zero$"):
        cluster.map(divmod, [1, 0, 2, 3], 12)


def test_members_twins_and_refits_are_bitwise_those_of_the_local_executor(cluster, samples_factory, config_factory):
    samples = samples_factory(70)
    cfg = config_factory(train={"members": 3, "refit": True},
                         calibration={"method": "variance", "fraction": 0.3, "min_samples": 10})
    local = fit_run(cfg, samples, aoa=False)
    done = []
    with use_executor(cluster):
        remote = fit_run(cfg, samples, aoa=False, progress=done.append)
    assert sorted(done) == [0, 1, 2]
    assert local.ensemble.best_epochs == remote.ensemble.best_epochs
    for a, b in zip(local.ensemble.members, remote.ensemble.members):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert local.ensemble.calibrator.factor == remote.ensemble.calibrator.factor != 1.0  # fitted on the twins' outputs
    np.testing.assert_array_equal(local.predict(samples).sd, remote.predict(samples).sd)


def test_cross_validation_equals_the_local_one(cluster, samples_factory, config_factory):
    samples = samples_factory(60)
    cfg = config_factory(evaluate={"split": "random", "n_folds": 2, "baselines": ["xgboost"]})
    local, ticks = cross_validate_config(samples, cfg), []
    with use_executor(cluster):
        remote = cross_validate_config(samples, cfg, progress=ticks.append)
    pd.testing.assert_frame_equal(local.predictions, remote.predictions)
    assert len(ticks) == 2 * (2 + 1)  # every member and baseline fit counted, though they ran on workers


def _bands(path):
    with rasterio.open(path) as src:
        return src.read()


def test_map_from_two_workers_equals_one_and_resumes_after_a_kill(cluster, mapping, killer, tmp_path):
    _, run, rasters = mapping
    with use_executor(LocalExecutor()):
        one = predict_raster(load_run(run), rasters, tmp_path / "one.tif", window=16, quicklook=False)
    with use_executor(cluster):
        two = predict_raster(load_run(run), rasters, tmp_path / "two.tif", window=16, quicklook=False)
    np.testing.assert_array_equal(_bands(tmp_path / "one.tif"), _bands(tmp_path / "two.tif"))
    assert one["ranges"] == two["ranges"]
    assert one["valid_pixels"] == two["valid_pixels"]
    out = tmp_path / "resumed.tif"
    proc = subprocess.run([sys.executable, killer, run, rasters[0], "5", out], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    with use_executor(cluster):  # killed on one executor, finished on another
        s = predict_raster(load_run(run), rasters, out, window=16, quicklook=False, resume=True)
    assert s["resumed_tiles"] == 5
    np.testing.assert_array_equal(_bands(out), _bands(tmp_path / "one.tif"))


def test_cli_predict_on_ray_writes_the_local_map(cluster, mapping, tmp_path):
    from typer.testing import CliRunner

    from sptgnn.cli import app

    _, run, rasters = mapping
    args = ["predict", str(run), "--raster", str(rasters[0]), "--window", "16"]
    for backend in ("local", "ray"):  # ray joins the instance this process is connected to
        res = CliRunner().invoke(app, args + ["--out", str(tmp_path / f"{backend}.tif"), "--backend", backend])
        assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(_bands(tmp_path / "local.tif"), _bands(tmp_path / "ray.tif"))
    res = CliRunner().invoke(app, args + ["--out", str(tmp_path / "x.tif"), "--backend", "spark"])
    assert res.exit_code == 2
    assert "unknown backend 'spark'" in res.output
    assert not (tmp_path / "x.tif").exists()


def test_a_worker_error_surfaces_and_leaves_no_map(cluster, mapping, tmp_path):
    _, run, rasters = mapping
    moved = shutil.copytree(run, tmp_path / "run")
    model = load_run(moved)
    shutil.rmtree(moved)  # the workers load the run from its folder: gone, as on a node without the data
    with use_executor(cluster), pytest.raises(RunError, match="not found"):
        predict_raster(model, rasters, tmp_path / "m.tif", window=16)
    assert not (tmp_path / "m.tif").exists()
    assert not (tmp_path / "m.png").exists()


def test_install_advice_keeps_its_brackets_and_an_unreachable_head_is_one_line(tmp_path):
    from typer.testing import CliRunner

    from sptgnn.cli import app

    res = CliRunner().invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200"})
    assert "sptgnn[ray]" in res.output
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "run"), "--out", str(tmp_path / "m.tif"), "--backend", "ray",
                                   "--ray-address", "127.0.0.1:1"])
    assert res.exit_code == 2, res.output
    assert len(res.stderr.strip().splitlines()) == 1, res.output
    assert "cannot reach the Ray head at 127.0.0.1:1" in res.stderr
    assert not (tmp_path / "m.tif").exists()


def test_error_messages_keep_square_brackets():
    import typer
    from typer.testing import CliRunner

    from sptgnn.cli.common import fail

    app = typer.Typer()
    app.command()(lambda: fail("pip install 'sptgnn[ray]' [fix]"))
    res = CliRunner().invoke(app, [])
    assert res.exit_code == 2
    assert "'sptgnn[ray]' [fix]" in res.stderr
