"""The fast student (``student.enabled``): one trunk with a head per member, fitted to the members' Gaussians."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from sptgnn import SpTGNNRegressor, load_run
from sptgnn.cli import app


def _fit(samples, config_factory, **student):
    cfg = config_factory(train={"members": 3, "epochs": 60, "patience": 60}, model={"label_inputs": False},
                         student={"enabled": True, "epochs": 300, **student})
    return SpTGNNRegressor.from_config(cfg, area_of_applicability=False).fit(samples)


@pytest.fixture(scope="module")
def fitted(samples_factory, config_factory):
    data = samples_factory(n=80, seed=3)
    train, test = data.subset(np.arange(80) % 4 != 0), data.subset(np.arange(80) % 4 == 0)
    return _fit(train, config_factory), train, test


def test_student_keeps_the_members_mixture(fitted):
    est, _, test = fitted
    ens, stu = est.predict_dist(test), est.predict_dist(test, student=True)
    assert stu.member_mean.shape == ens.member_mean.shape  # one head per member: the mixture keeps its shape
    assert np.corrcoef(ens.mean, stu.mean)[0, 1] > 0.95
    assert np.abs(stu.mean - ens.mean).mean() < 0.4 * ens.mean.std()
    # the split of uncertainty is the heads' own: aleatoric from their variances, epistemic from their spread
    np.testing.assert_allclose(stu.epistemic_sd, stu.member_mean.std(0), rtol=1e-10)
    assert 0.5 < stu.aleatoric_sd.mean() / ens.aleatoric_sd.mean() < 2.0
    y = test.target("soc_g_kg")
    assert stu.crps(y).mean() < 1.3 * ens.crps(y).mean()


def test_student_is_saved_and_reloaded(fitted, tmp_path):
    est, _, test = fitted
    run = load_run(est.save(tmp_path / "run").path)
    assert run.has_student
    np.testing.assert_allclose(run.predict(test, student=True).mean, est.predict_dist(test, student=True).mean,
                               rtol=1e-5)
    assert "student" in est.forecasts(test)  # cross-validation scores it as <model>_student


def test_a_run_without_student_says_so(samples_factory, config_factory, tmp_path):
    data = samples_factory(n=40, seed=4)
    est = SpTGNNRegressor.from_config(config_factory(), area_of_applicability=False).fit(data)
    with pytest.raises(ValueError, match="has no student"):
        est.predict_dist(data, student=True)
    run = est.save(tmp_path / "run")
    pts = tmp_path / "pts.gpkg"
    data.frame.drop(columns=["soc_g_kg"]).to_file(pts, driver="GPKG")
    out = tmp_path / "out.gpkg"
    res = CliRunner().invoke(app, ["predict", str(run.path), "--points", str(pts), "--out", str(out), "--student"])
    assert res.exit_code == 2
    assert "has no student" in res.output
    assert not out.exists()
    assert len(res.output.strip().splitlines()) == 1


def test_one_prediction_pass_gives_every_forecast_of_the_fit(fitted):
    est, _, test = fitted
    outs = est.forecasts(test)
    assert set(outs) == {"", "student"}  # no calibrator in this fit
    np.testing.assert_allclose(outs[""].mean, est.predict_dist(test).mean, rtol=1e-10)
    np.testing.assert_allclose(outs[""].sd, est.predict_dist(test).sd, rtol=1e-10)
    np.testing.assert_allclose(outs["student"].mean, est.predict_dist(test, student=True).mean, rtol=1e-10)


def test_calibrated_forecast_is_the_calibrator_on_the_one_raw_pass(samples_factory, config_factory):
    data = samples_factory(n=60, seed=5)
    cfg = config_factory(calibration={"method": "variance", "min_samples": 8, "fraction": 0.25})
    est = SpTGNNRegressor.from_config(cfg, area_of_applicability=False).fit(data.subset(np.arange(60) >= 12))
    test = data.subset(np.arange(60) < 12)
    outs = est.forecasts(test)
    assert set(outs) == {"", "uncalibrated"}
    ref, raw = est.predict_dist(test), est.run_.predict(test, calibrated=False)
    np.testing.assert_allclose(outs[""].sd, ref.sd, rtol=1e-10)
    np.testing.assert_allclose(outs["uncalibrated"].sd, raw.sd, rtol=1e-10)
    assert not np.allclose(outs[""].sd, outs["uncalibrated"].sd)  # the calibrator did act
