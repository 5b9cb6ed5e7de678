"""Command line end to end: ``evaluate`` writes the documented files; user errors exit 2 with one line and no output."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import scoringrules as sr
import yaml
from sklearn.metrics import mean_absolute_error, r2_score
from typer.testing import CliRunner

from sptgnn.cli import app
from sptgnn.config import load_config
from sptgnn.data.limesoda import load_limesoda
from sptgnn.estimator.run import Run

METRICS = {"r2", "rmse", "mae", "mape", "nll", "crps", "picp90", "fit_seconds"}
COLUMNS = ["sample_id", "fold", "model", "y_true", "mean", "sd"]


def _tiny(config_dict_factory, **sections) -> dict:
    evaluate = {"baselines": ["xgboost"], "moran_k": 4, "moran_permutations": 19}
    evaluate.update(sections.pop("evaluate", {}))
    return config_dict_factory(
        data={"dataset": "limesoda:BB.30_2", "target": "soc_g_kg"},
        model={"hidden": 16, "num_layers": 1},
        train={"members": 2, "epochs": 5, "patience": 3},
        evaluate=evaluate,
        **sections,
    )


def _write(folder, raw: dict | str, name: str = "config.yaml"):
    path = folder / name
    path.write_text(raw if isinstance(raw, str) else yaml.safe_dump(raw))
    return path


def _invoke(args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, config_dict_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    config = _write(folder, _tiny(config_dict_factory))
    out = folder / "out"
    result = _invoke(["evaluate", config, "--out", out])
    return result, folder, out


def test_evaluate_succeeds_and_leaves_only_its_output(evaluated):
    result, folder, out = evaluated
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.iterdir()) == ["config.yaml", "out"]
    from sptgnn.scores.figures import FIGURES

    assert sorted(p.name for p in out.iterdir()) == sorted([
        "config.yaml", "gates.csv", "metrics.json", "per_fold_r2_log.png", "pred_vs_obs.png", "predictions.csv",
        "report.md", "residual_map.png", *FIGURES,
    ])
    for name in FIGURES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    assert "pooled out-of-fold scores" in result.stdout
    assert "metrics.json" in result.stdout


def test_evaluate_metrics_json_shape(evaluated):
    _, _, out = evaluated
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "limesoda:BB.30_2"
    assert metrics["target"] == "soc_g_kg"
    assert metrics["n_samples"] == 30
    assert metrics["folds"] == "shipped"
    assert set(metrics["models"]) == {"sptgnn", "xgboost"}
    for model in ("sptgnn", "xgboost"):
        assert METRICS <= set(metrics["models"][model])
    sp, xg = metrics["models"]["sptgnn"], metrics["models"]["xgboost"]
    for key in METRICS:
        assert isinstance(sp[key], float), key
        assert math.isfinite(sp[key]), key
    assert sp["rmse"] > 0
    assert sp["crps"] > 0
    assert 0 <= sp["picp90"] <= 1
    # XGBoost is a point forecast: no NLL or coverage, CRPS = MAE
    assert xg["nll"] is None
    assert xg["picp90"] is None
    assert xg["crps"] == pytest.approx(xg["mae"])


def test_evaluate_predictions_csv(evaluated):
    _, _, out = evaluated
    pred = pd.read_csv(out / "predictions.csv")
    assert list(pred.columns[:6]) == COLUMNS
    assert len(pred) == 30 * 2
    samples = load_limesoda("BB.30_2")
    truth = dict(zip(samples.sample_ids, samples.target("soc_g_kg")))
    folds = dict(zip(samples.sample_ids, samples.folds))
    for model, group in pred.groupby("model"):
        assert sorted(group["sample_id"]) == sorted(samples.sample_ids), model
        np.testing.assert_allclose(group["y_true"], [truth[s] for s in group["sample_id"]], rtol=1e-12)
        np.testing.assert_array_equal(group["fold"], [folds[s] for s in group["sample_id"]])
        assert np.isfinite(group["mean"]).all()
    sp, xg = pred[pred["model"] == "sptgnn"], pred[pred["model"] == "xgboost"]
    assert (sp["sd"] > 0).all()
    assert xg["sd"].isna().all()
    np.testing.assert_allclose(sp["sd"], np.sqrt(sp["aleatoric_sd"] ** 2 + sp["epistemic_sd"] ** 2), rtol=1e-9)


def test_evaluate_metrics_are_pooled_scores_of_the_predictions(evaluated):
    _, _, out = evaluated
    metrics = json.loads((out / "metrics.json").read_text())["models"]
    pred = pd.read_csv(out / "predictions.csv")
    for model, group in pred.groupby("model"):
        y, mean = group["y_true"].to_numpy(), group["mean"].to_numpy()
        assert metrics[model]["r2"] == pytest.approx(r2_score(y, mean), rel=1e-9)
        assert metrics[model]["mae"] == pytest.approx(mean_absolute_error(y, mean), rel=1e-9)
    sp = pred[pred["model"] == "sptgnn"]
    # the mixture CRPS of each sample (closed form of the Gaussian mixture) is at most the Gaussian CRPS of its moments
    gauss = sr.crps_normal(sp["y_true"].to_numpy(), sp["mean"].to_numpy(), sp["sd"].to_numpy())
    assert metrics["sptgnn"]["crps"] == pytest.approx(sp["crps"].mean(), rel=1e-9)
    assert metrics["sptgnn"]["crps"] == pytest.approx(np.mean(gauss), rel=0.05)
    assert metrics["sptgnn"]["nll"] == pytest.approx(sp["nll"].mean(), rel=1e-9)
    assert metrics["sptgnn"]["picp90"] == pytest.approx(
        np.mean((sp["y_true"] >= sp["lower90"]) & (sp["y_true"] <= sp["upper90"])), rel=1e-12)


def test_evaluate_writes_the_config_it_ran(evaluated):
    _, folder, out = evaluated
    assert load_config(out / "config.yaml") == load_config(folder / "config.yaml")


def test_datasets_lists_names():
    result = _invoke(["datasets"])
    assert result.exit_code == 0
    names = result.stdout.split()
    assert "limesoda:BB.250" in names
    assert "limesoda:BB.30_2" in names
    assert "limesoda:CV.98" not in names
    assert "limesoda:SL.125" not in names


def _assert_user_error(result, folder, fragment, before):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:")
    assert fragment in lines[0]
    assert "Traceback" not in result.output
    assert sorted(p.name for p in folder.iterdir()) == before


@pytest.mark.parametrize(
    ("sections", "extra_args", "fragment"),
    [
        ({"data": {"dataset": "limesoda:XX.1"}}, [], "unknown LimeSoDa dataset 'XX.1'"),
        ({}, ["--dataset", "nowhere:BB.250"], "unknown dataset 'nowhere:BB.250'"),
        ({"graph": {"k_spatail": 4}}, [], "did you mean 'k_spatial'"),
        ({"data": {"dataset": "limesoda:CV.98"}}, [], "no coordinates"),
        ({}, ["--dataset", "limesoda:SL.125"], "only dummy coordinates"),
        ({"data": {"target": "som_g_kg"}}, [], "som_g_kg"),
        ({"model": {"num_experts": 2, "top_k": 3}}, [], "top_k"),
    ],
)
def test_evaluate_user_errors_exit_2_with_one_line_and_no_output(tmp_path, config_dict_factory, sections, extra_args, fragment):
    raw = _tiny(config_dict_factory)
    for name, values in sections.items():
        raw[name].update(values)
    config = _write(tmp_path, raw)
    result = _invoke(["evaluate", config, "--out", tmp_path / "out", *extra_args])
    _assert_user_error(result, tmp_path, fragment, ["config.yaml"])
    if fragment.startswith("unknown LimeSoDa"):
        assert "BB.250" in result.stderr  # the valid names are listed


def test_unknown_dataset_with_the_default_output_folder_creates_nothing(tmp_path, config_dict_factory, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = _write(tmp_path, _tiny(config_dict_factory))
    result = _invoke(["evaluate", config, "--dataset", "limesoda:CV.98"])
    _assert_user_error(result, tmp_path, "CV.98", ["config.yaml"])
    assert not (tmp_path / "runs").exists()


def test_evaluate_into_an_existing_folder_fails(tmp_path, config_dict_factory):
    config = _write(tmp_path, _tiny(config_dict_factory))
    existing = tmp_path / "out"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    result = _invoke(["evaluate", config, "--out", existing])
    _assert_user_error(result, tmp_path, "already exists", ["config.yaml", "out"])
    assert [p.name for p in existing.iterdir()] == ["keep.txt"]
    assert (existing / "keep.txt").read_text() == "mine"


def test_evaluate_creates_missing_parents_only_on_success(tmp_path, config_dict_factory):
    config = _write(tmp_path, _tiny(config_dict_factory))
    bad = _invoke(["evaluate", config, "--dataset", "limesoda:CV.98", "--out", tmp_path / "a" / "b"])
    _assert_user_error(bad, tmp_path, "no coordinates", ["config.yaml"])
    good = _invoke(["evaluate", config, "--out", tmp_path / "a" / "b"])
    assert good.exit_code == 0, good.output
    assert {"config.yaml", "metrics.json", "predictions.csv", "report.md"} <= {p.name for p in (tmp_path / "a" / "b").iterdir()}


def test_evaluate_into_a_parent_that_is_a_file_fails(tmp_path, config_dict_factory):
    config = _write(tmp_path, _tiny(config_dict_factory))
    (tmp_path / "a").write_text("not a folder")
    result = _invoke(["evaluate", config, "--out", tmp_path / "a" / "b"])
    _assert_user_error(result, tmp_path, "is a file", ["a", "config.yaml"])


def test_missing_config_file(tmp_path):
    result = _invoke(["evaluate", tmp_path / "missing.yaml", "--out", tmp_path / "out"])
    _assert_user_error(result, tmp_path, "config file not found", [])


def test_train_writes_a_loadable_run(tmp_path, config_dict_factory):
    config = _write(tmp_path, _tiny(config_dict_factory))
    out = tmp_path / "run"
    result = _invoke(["train", config, "--out", out, "--members", "1"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml", "run"]
    ens = Run.load(out).ensemble
    assert len(ens.members) == 1
    assert ens.config.train.members == 1
    samples = load_limesoda("BB.30_2")
    pred = ens.predict(samples.subset(np.arange(5)))
    assert pred.mean.shape == (5,)
    assert (pred.sd > 0).all()


def test_train_with_calibration_saves_the_calibrator_and_figures(tmp_path, config_dict_factory):
    from sptgnn.scores.figures import FIGURES

    raw = _tiny(config_dict_factory)
    raw["calibration"] = {"method": "isotonic", "fraction": 0.3, "min_samples": 5, "blocks": 10}
    out = tmp_path / "run"
    result = _invoke(["train", _write(tmp_path, raw), "--out", out, "--members", "1"])
    assert result.exit_code == 0, result.output
    assert {*FIGURES, "ensemble.pt", "config.yaml", "labelled.gpkg", "aoa.npz", "run.json", "manifest.json"} == {p.name for p in out.iterdir()}
    ens = Run.load(out).ensemble
    assert ens.calibrator is not None
    assert ens.calibrator.method == "isotonic"
    assert ens.calibrator.n_samples >= 5


def test_python_fit_save_writes_the_folder_sptgnn_train_writes(tmp_path, config_dict_factory):
    from sptgnn import SpTGNNRegressor, load_config, load_dataset, load_run

    raw = _tiny(config_dict_factory)
    raw["calibration"] = {"method": "variance", "fraction": 0.3, "min_samples": 5, "blocks": 10}
    config = _write(tmp_path, raw)
    result = _invoke(["train", config, "--out", tmp_path / "cli", "--members", "1"])
    assert result.exit_code == 0, result.output
    cfg = load_config(config, {"train": {"members": 1}})
    samples = load_dataset(cfg.data.dataset)
    SpTGNNRegressor.from_config(cfg).fit(samples).save(tmp_path / "py")
    cli, py = tmp_path / "cli", tmp_path / "py"
    assert sorted(p.name for p in cli.iterdir()) == sorted(p.name for p in py.iterdir())
    assert (cli / "config.yaml").read_text() == (py / "config.yaml").read_text()
    a, b = load_run(cli), load_run(py)
    np.testing.assert_array_equal(a.predict(samples).mean, b.predict(samples).mean)
    assert a.ensemble.calibrator.state() == b.ensemble.calibrator.state()
    np.testing.assert_array_equal(a.aoa.flag(samples.frame[a.aoa.features].to_numpy()),
                                  b.aoa.flag(samples.frame[b.aoa.features].to_numpy()))


def test_train_with_too_small_a_calibration_part_fails_cleanly(tmp_path, config_dict_factory):
    raw = _tiny(config_dict_factory)
    raw["calibration"] = {"method": "variance"}
    result = _invoke(["train", _write(tmp_path, raw), "--out", tmp_path / "run", "--members", "1"])
    assert result.exit_code == 2
    assert "calibration" in result.stderr
    assert not (tmp_path / "run").exists()


def test_train_into_an_existing_folder_fails(tmp_path, config_dict_factory):
    config = _write(tmp_path, _tiny(config_dict_factory))
    (tmp_path / "run").mkdir()
    result = _invoke(["train", config, "--out", tmp_path / "run"])
    _assert_user_error(result, tmp_path, "already exists", ["config.yaml", "run"])
    assert list((tmp_path / "run").iterdir()) == []


def test_progress_lines_when_stderr_is_not_a_terminal():
    import io

    from sptgnn.progress import LineProgress as _LineProgress

    buf = io.StringIO()
    with _LineProgress(buf) as bar:
        task = bar.add_task("folds × models", total=20)
        for i in range(20):
            bar.update(task, advance=1, description="fold 1: sptgnn" if i < 10 else "fold 2: xgboost")
    lines = buf.getvalue().splitlines()
    assert lines[0].endswith("0/20 folds × models")
    assert any("fold 1: sptgnn" in line for line in lines)
    assert lines[-1].endswith("20/20 fold 2: xgboost")
    assert len(lines) <= 1 + 10 + 2  # a line per tenth and per new description, not one per update


def test_help_and_argument_errors_import_no_learner():
    """``sptgnn --help`` and a wrong argument answer without importing torch, PyG or the learners (issue 29: start-up
    in a fraction of a second; the CPU time is measured by scripts/benchmark_startup.py)."""
    import subprocess
    import sys

    code = ("import sys\nfrom typer.testing import CliRunner\nfrom sptgnn.cli import app\n"
            "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
            "assert CliRunner().invoke(app, ['evaluate', '--members', '0']).exit_code == 2\n"
            "assert CliRunner().invoke(app, ['evaluate', 'missing.yaml']).exit_code == 2\n"
            "heavy = ('torch', 'torch_geometric', 'sklearn', 'xgboost', 'scipy', 'geopandas', 'rasterio', 'pandas')\n"
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
