"""Careless inputs end in one line on stderr, exit code 2 and nothing written; plausible-but-odd ones in a warning."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from sptgnn.cli import app
from sptgnn.evaluate.runfolder import finite_json

TINY = {"model": {"hidden": 16, "num_layers": 1, "num_experts": 2, "heads": 2}, "graph": {"relations": ["spatial"]},
        "train": {"members": 1, "epochs": 3, "patience": 2, "val_blocks": 4},
        "evaluate": {"baselines": ["xgboost"], "split": "random", "n_folds": 2, "moran_permutations": 0}}


def _table(tmp_path, n=40, seed=0, **columns) -> dict:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"east": 500_000 + rng.uniform(0, 2000, n), "north": 5_700_000 + rng.uniform(0, 2000, n),
                          "soc": rng.uniform(5, 30, n), "clay": rng.uniform(10, 40, n)})
    for k, v in columns.items():
        frame[k] = v(frame) if callable(v) else v
    frame.to_csv(tmp_path / "pts.csv", index=False)
    return {"path": str(tmp_path / "pts.csv"), "x": "east", "y": "north", "crs": "EPSG:32633", "environment": ["clay"]}


def _config(tmp_path, table: dict, target="soc", **sections) -> str:
    raw = {k: dict(v) for k, v in TINY.items()}
    raw["data"] = {"target": target, "table": table}
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def _run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _one_line_error(res, *words):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("error:"), res.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert "Traceback" not in res.output


def test_too_few_samples(tmp_path):
    res = _run("train", _config(tmp_path, _table(tmp_path, n=3)), "--out", tmp_path / "run")
    _one_line_error(res, "3 training samples are too few")
    assert not (tmp_path / "run").exists()


def test_an_infinite_target_names_the_row(tmp_path):
    table = _table(tmp_path, soc=lambda f: np.where(np.arange(len(f)) == 7, np.inf, f["soc"]))
    res = _run("train", _config(tmp_path, table), "--out", tmp_path / "run")
    _one_line_error(res, "infinite", "pts-8")
    assert not (tmp_path / "run").exists()


def test_a_negative_target_with_log1p(tmp_path):
    table = _table(tmp_path, ph=lambda f: f["soc"] - 10)
    res = _run("train", _config(tmp_path, table, target="ph", data={"target_transform": "log1p"}), "--out", tmp_path / "r")
    _one_line_error(res, "ph", "non-negative")


def test_an_empty_config_file(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    res = _run("train", tmp_path / "empty.yaml", "--out", tmp_path / "run")
    _one_line_error(res, "is empty")
    assert not (tmp_path / "run").exists()


def test_degrees_declared_as_a_metric_crs(tmp_path):
    table = _table(tmp_path, east=lambda f: 6.0 + np.arange(len(f)) * 1e-3, north=lambda f: 51.0 + np.arange(len(f)) * 1e-3)
    res = _run("train", _config(tmp_path, table), "--out", tmp_path / "run")
    _one_line_error(res, "lon/lat degrees", "EPSG:4326")


def test_a_constant_target_cannot_be_cross_validated(tmp_path):
    res = _run("evaluate", _config(tmp_path, _table(tmp_path, soc=12.0)), "--out", tmp_path / "ev")
    _one_line_error(res, "constant", "R²")
    assert not (tmp_path / "ev").exists()


def test_duplicate_locations_warn_and_k_is_clipped_to_what_the_samples_have(tmp_path):
    table = _table(tmp_path, n=12, east=lambda f: np.where(np.arange(len(f)) < 3, 500_000.0, f["east"]),
                   north=lambda f: np.where(np.arange(len(f)) < 3, 5_700_000.0, f["north"]))
    res = _run("train", _config(tmp_path, table, graph={"k_spatial": 100000}), "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()  # each warning one line, not Python's file:line form
    assert any(line.startswith("warning:") and "3 samples share their location" in line for line in lines), res.stderr
    assert any(line.startswith("warning:") and "k_spatial = 100000" in line for line in lines), res.stderr
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["graph"]["k_spatial"] == 11  # what was used, not what was asked


def test_outputs_honour_the_umask_and_point_tables_refuse_a_raster_name(tmp_path):
    old = os.umask(0o022)
    try:
        res = _run("train", _config(tmp_path, _table(tmp_path)), "--out", tmp_path / "run")
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "run").stat().st_mode & 0o777 == 0o755
    assert (tmp_path / "run" / "config.yaml").stat().st_mode & 0o777 == 0o644
    pd.read_csv(tmp_path / "pts.csv").head(5).to_csv(tmp_path / "new.csv", index=False)
    res = _run("predict", tmp_path / "run", "--points", tmp_path / "new.csv", "--x", "east", "--y", "north", "--crs",
               "EPSG:32633", "--out", tmp_path / "x.tif")
    _one_line_error(res, "x.tif", ".gpkg")
    assert not (tmp_path / "x.tif").exists()


def test_metrics_that_are_not_finite_are_written_as_null_with_a_reason():
    clean, why = finite_json({"models": {"rf": {"nll": float("-inf"), "r2": 0.5, "morans_i": float("nan")}}, "n": 3})
    assert clean == {"models": {"rf": {"nll": None, "r2": 0.5, "morans_i": None}}, "n": 3}
    assert set(why) == {"models.rf.nll", "models.rf.morans_i"}
    json.dumps(clean, allow_nan=False)  # strict JSON
    with pytest.raises(ValueError):
        json.dumps({"x": float("nan")}, allow_nan=False)


def test_swapped_x_and_y_columns(tmp_path):
    table = _table(tmp_path) | {"x": "north", "y": "east"}
    res = _run("train", _config(tmp_path, table), "--out", tmp_path / "run")
    _one_line_error(res, "swap data.table.x and data.table.y")


def _sys_is_read_only() -> bool:
    import tempfile

    try:
        fd, name = tempfile.mkstemp(dir="/sys")
    except OSError:
        return True
    os.close(fd)
    os.unlink(name)
    return False


@pytest.mark.skipif(not _sys_is_read_only(), reason="needs a folder no file can be created in: /sys")
@pytest.mark.parametrize("command", [["train", "{config}", "--out", "/sys/sptgnn-run"],
                                     ["evaluate", "{config}", "--out", "/sys/sptgnn-eval"],
                                     ["report", "{tmp}", "--out", "/sys/report.html"],
                                     ["check-blocks", "{tmp}", "--out", "/sys/blocks.json"],
                                     ["predict", "{tmp}", "--out", "/sys/map.tif"]])
def test_a_read_only_output_folder_fails_before_any_work(tmp_path, command):
    config = _config(tmp_path, _table(tmp_path))
    res = _run(*[c.format(config=config, tmp=tmp_path) for c in command])
    _one_line_error(res, "cannot write into /sys")
    assert "member" not in res.output  # nothing was trained first


def test_a_constant_target_is_refused_before_training(tmp_path):
    res = _run("train", _config(tmp_path, _table(tmp_path, soc=12.5)), "--out", tmp_path / "run")
    _one_line_error(res, "is constant (12.5)", "nothing to learn")
    assert not (tmp_path / "run").exists()
