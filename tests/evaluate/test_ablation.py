"""Ablation variants and the `ablate` / `benchmark` commands on a tiny config."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from typer.testing import CliRunner

from sptgnn.cli import app
from sptgnn.evaluate.ablation import LIMESODA_SUITE, ablation_variants
from sptgnn.graph.builder import GraphBuilder
from sptgnn.nn.model import SpTGNN
from sptgnn.train.trainer import stream_dims


def test_variants_change_one_thing_each(config_factory):
    cfg = config_factory()
    v = ablation_variants(cfg)
    assert list(v)[0] == "full"
    assert v["full"] == cfg
    assert set(v) == {"full", "no_graph", "only_spatial", "only_spectral", "only_elevation", "no_moe", "no_moran",
                      "no_position", "no_time", "no_label_inputs", "dirichlet_gating", "kpr_teacher"}
    assert v["no_graph"].model.num_layers == 0
    assert not v["no_graph"].model.label_inputs
    assert v["only_spectral"].graph.relations == ["spectral"]
    assert v["no_moe"].model.fusion == "concat"
    assert v["dirichlet_gating"].model.gating == "dirichlet"
    assert "topk_softmax_gating" in ablation_variants(cfg.updated(model={"gating": "dirichlet"}))
    assert v["kpr_teacher"].model.trend == "kpr_random_forest"
    taught = ablation_variants(cfg.updated(model={"trend": "kpr_random_forest"}, loss={"teacher_weight": 5.0}))
    assert "kpr_teacher" not in taught
    assert taught["no_teacher"].model.trend == "none"
    assert taught["no_teacher"].loss.teacher_weight == 0
    assert v["no_moran"].loss.moran_weight == 0
    assert "time" not in v["no_time"].model.streams
    assert "position" in v["no_time"].model.streams
    assert not v["no_label_inputs"].model.label_inputs
    assert "no_pretraining" not in v
    assert "no_location_fm" not in v
    located = ablation_variants(cfg.updated(model={"streams": ["imagery", "environment", "location_fm"]}))
    assert located["no_location_fm"].model.streams == ["imagery", "environment"]
    pre = ablation_variants(cfg.updated(model={"pretrained": "pt"}))["no_pretraining"]
    assert pre.model.pretrained is None
    assert pre.model.fusion == cfg.model.fusion
    for name, c in v.items():  # everything else is untouched
        if name != "full":
            assert c.train == cfg.train
            assert c.evaluate == cfg.evaluate
            assert c.data == cfg.data
    assert set(ablation_variants(cfg, ["no_moe"])) == {"full", "no_moe"}
    with pytest.raises(ValueError, match="valid here"):
        ablation_variants(cfg, ["no_everything"])


def test_concat_fusion_has_no_moe(split, config_factory):
    labelled, query = split
    cfg = config_factory(model={"fusion": "concat"})
    g = GraphBuilder(cfg.graph).fit(labelled).build(query, "soc_g_kg")
    model = SpTGNN(cfg.model, ["spatial"], stream_dims(g), 0)
    assert model.moe is None
    out = model(g)
    assert out.mean.shape == (60,)
    assert float(out.balance_loss) == 0.0
    assert out.gates.shape == (60, 1)
    assert torch.isfinite(out.var).all()


def _invoke(args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_ablate_and_benchmark_commands(tmp_path, config_dict_factory):
    raw = config_dict_factory(train={"members": 1, "epochs": 2}, evaluate={"baselines": ["xgboost"], "moran_permutations": 0})
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "ablate"
    res = _invoke(["ablate", config, "--out", out, "--only", "no_graph,no_moe"])
    assert res.exit_code == 0, res.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["models"]) == ["full", "no_graph", "no_moe"]  # no baselines unless asked
    assert "no_moe" in (out / "report.md").read_text()
    raw_cal = raw | {"calibration": {"method": "variance", "fraction": 0.3, "min_samples": 5}}
    config_cal = tmp_path / "cal.yaml"
    config_cal.write_text(yaml.safe_dump(raw_cal))
    for flag, calibrated in (("--calibration", True), ("--no-calibration", False)):
        res = _invoke(["ablate", config_cal, "--out", tmp_path / flag, "--only", "no_moe", flag])
        assert res.exit_code == 0, res.output
        m = json.loads((tmp_path / flag / "metrics.json").read_text())
        assert ("full_uncalibrated" in m["models"]) == calibrated, list(m["models"])  # the twin-calibrated ensemble
    bad = _invoke(["ablate", config, "--out", tmp_path / "x", "--only", "no_cake"])
    assert bad.exit_code == 2
    assert "no_cake" in bad.output
    assert not (tmp_path / "x").exists()

    out = tmp_path / "bench"
    res = _invoke(["benchmark", "limesoda", "--config", config, "--out", out, "--datasets", "BB.30_2"])
    assert res.exit_code == 0, res.output
    table = (out / "benchmark.md").read_text()
    assert "| BB.30_2 |" in table
    assert "sptgnn R²" in table
    assert "xgboost RMSE" in table
    assert json.loads((out / "benchmark.json").read_text())["datasets"]["BB.30_2"]["sptgnn"]["r2"] is not None
    # BB.30_2's training folds (27 samples) cannot spare a calibration part of 20: run without, say so, lose nothing
    config_big = tmp_path / "cal20.yaml"
    config_big.write_text(yaml.safe_dump(raw | {"calibration": {"method": "variance", "fraction": 0.2, "min_samples": 20}}))
    res = _invoke(["benchmark", "limesoda", "--config", config_big, "--out", tmp_path / "bench_cal", "--datasets", "BB.30_2"])
    assert res.exit_code == 0, res.output
    meta = json.loads((tmp_path / "bench_cal" / "benchmark.json").read_text())
    assert meta["calibration"]["BB.30_2"].startswith("none (")
    assert "min_samples" in meta["calibration"]["BB.30_2"]
    assert meta["datasets"]["BB.30_2"]["sptgnn"]["r2"] == json.loads((out / "benchmark.json").read_text())["datasets"]["BB.30_2"]["sptgnn"]["r2"]
    assert "Run without calibration" in (tmp_path / "bench_cal" / "benchmark.md").read_text()
    bad = _invoke(["benchmark", "limesoda", "--out", tmp_path / "y", "--datasets", "CV.98"])
    assert bad.exit_code == 2
    assert "not in the limesoda suite" in bad.output
    assert len(LIMESODA_SUITE) == 10


def test_the_whole_limesoda_suite_lists_every_dataset_with_coordinates_and_skips_other_targets(tmp_path, config_factory):
    from sptgnn.data.limesoda import limesoda_names
    from sptgnn.evaluate.suite import run_suite, suite_datasets

    names = suite_datasets("limesoda_all")
    assert names == limesoda_names()
    assert {"BB.250", "MWP.36", "SP.231"} <= set(names)
    assert len(names) > 10
    warned = []
    _, meta = run_suite(config_factory(train={"members": 1, "epochs": 1}, evaluate={"baselines": []}), "limesoda_all",
                        tmp_path / "b", ["SP.231"], warn=warned.append)
    assert meta["datasets"] == {}
    assert "no 'soc_g_kg'" in warned[0]  # SP.231 ships SOM, not SOC
