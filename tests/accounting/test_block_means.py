"""`sptgnn check-blocks`: block-mean coverage of an evaluation's config, counted by hand from its own rows, and the
inputs it refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sptgnn.cli import app


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory, config_factory):
    from sptgnn.evaluate.runfolder import evaluate_dataset

    d = tmp_path_factory.mktemp("blocks")
    cfg = config_factory(calibration={"method": "none", "min_samples": 4}, evaluate={"baselines": []},
                         train={"members": 2, "epochs": 3})
    folder, _, _ = evaluate_dataset(cfg, d / "eval")
    return d, folder


def test_check_blocks_counts_coverage_from_its_blocks(evaluation):
    d, folder = evaluation
    res = CliRunner().invoke(app, ["check-blocks", str(folder), "--out", str(d / "blocks.json"), "--folds", "2",
                                   "--realisations", "20", "--block-samples", "4", "--min-samples", "2"])
    assert res.exit_code == 0, res.output
    out = json.loads((d / "blocks.json").read_text())
    rows = out["blocks"]
    assert out["blocks_scored"] == len(rows) > 0
    assert out["coverage_90_realisations"] == pytest.approx(np.mean([r["low"] <= r["observed"] <= r["high"] for r in rows]))
    assert out["coverage_90_naive"] == pytest.approx(
        np.mean([r["naive_low"] <= r["observed"] <= r["naive_high"] for r in rows]))
    assert all(r["low"] < r["high"] and r["n"] >= 2 for r in rows)
    assert out["command"].startswith("sptgnn check-blocks")
    assert out["evaluation_fingerprint"] == out["samples_fingerprint"]
    # the JSON feeds the validation report
    res = CliRunner().invoke(app, ["report", str(folder), "--block-means", str(d / "blocks.json"), "--out",
                                   str(d / "report.html")])
    assert res.exit_code == 0, res.output
    assert "sptgnn check-blocks" in (d / "report.html").read_text()


def test_check_blocks_refuses_a_folder_that_is_not_an_evaluation(evaluation, tmp_path):
    d, folder = evaluation
    res = CliRunner().invoke(app, ["check-blocks", str(tmp_path), "--out", str(tmp_path / "b.json")])
    assert res.exit_code == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "not an evaluation folder" in res.stderr
    assert not (tmp_path / "b.json").exists()
