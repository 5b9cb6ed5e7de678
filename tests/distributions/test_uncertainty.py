"""Mixture distribution functions, uncertainty metrics (against uncertainty-toolbox, scoringrules, closed forms) and
post-hoc calibration (variance scaling, isotonic, conformal)."""

from __future__ import annotations

import numpy as np
import pytest
import scoringrules as sr
from scipy import stats

from sptgnn.distributions import Prediction, QuantileForecast, crps_from_quantiles
from sptgnn.distributions.calibration import CalibrationError, Calibrator, fit_conformal_map, fit_isotonic_map
from sptgnn.scores.metrics import (
    calibration_scores,
    distribution_columns,
    gaussian_columns,
    interval_calibration_curve,
    score,
)

uct = pytest.importorskip("uncertainty_toolbox")


def _mixture(seed=0, n=40, M=5, log1p=False):
    rng = np.random.default_rng(seed)
    loc = rng.normal(3.0 if log1p else 20.0, 0.4 if log1p else 4.0, (M, n))
    scale = rng.uniform(0.1, 0.4, (M, n)) if log1p else rng.uniform(0.5, 3.0, (M, n))
    return Prediction.from_gaussian_space(loc, scale, log1p)


def _mixture_cdf_by_hand(p: Prediction, y):
    g = np.log1p(y) if p.log1p else y
    return np.mean([stats.norm.cdf(g, p.member_loc[m], p.member_scale[m]) for m in range(p.member_loc.shape[0])], axis=0)


# -- mixture quantiles ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("log1p", [False, True])
def test_mixture_quantiles_invert_the_mixture_cdf(log1p):
    p = _mixture(log1p=log1p)
    levels = [0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99]
    q = p.quantiles(levels)
    assert q.shape == (40, 7)
    assert (np.diff(q, axis=1) > 0).all()
    for j, lv in enumerate(levels):
        np.testing.assert_allclose(_mixture_cdf_by_hand(p, q[:, j]), lv, atol=1e-9)
        np.testing.assert_allclose(p.cdf(q[:, j]), lv, atol=1e-9)


@pytest.mark.parametrize("sd", [1e-6, 1e-3, 1.0])
def test_mixture_quantiles_converge_for_narrow_and_separated_members(sd):
    # narrow members far apart make the mixture CDF nearly a staircase, where plain Newton steps oscillate
    rng = np.random.default_rng(3)
    loc = rng.normal(0, 5, (5, 2000))
    p = Prediction.from_gaussian_space(loc, np.full_like(loc, sd), False)
    levels = [0.05, 0.5, 0.95]
    q = p.quantiles(levels)
    for j, lv in enumerate(levels):
        cdf = _mixture_cdf_by_hand(p, q[:, j])
        # on a plateau the quantile is any point of it; at a step the CDF crosses the level within float resolution
        below = _mixture_cdf_by_hand(p, q[:, j] - 1e-9 * (1 + np.abs(q[:, j])))
        above = _mixture_cdf_by_hand(p, q[:, j] + 1e-9 * (1 + np.abs(q[:, j])))
        assert (np.isclose(cdf, lv, atol=1e-9) | ((below <= lv + 1e-9) & (above >= lv - 1e-9))).all()


def test_mixture_quantiles_are_not_the_gaussian_approximation():
    # two well separated members: the mixture median lies between them, its 5 % quantile far from mean - 1.645 sd
    p = Prediction.from_gaussian_space(np.array([[0.0], [10.0]]), np.array([[1.0], [1.0]]), False)
    q05 = p.quantiles([0.05])[0, 0]
    mc = np.quantile(np.r_[np.random.default_rng(0).normal(0, 1, 500_000), np.random.default_rng(1).normal(10, 1, 500_000)], 0.05)
    assert q05 == pytest.approx(mc, abs=0.01)
    assert abs(q05 - (p.mean[0] + stats.norm.ppf(0.05) * p.sd[0])) > 0.5


def test_log1p_quantiles_are_expm1_of_gaussian_quantiles_for_one_member():
    p = Prediction.from_gaussian_space(np.array([[2.0, 3.0]]), np.array([[0.3, 0.5]]), True)
    q = p.quantiles([0.1, 0.9])
    np.testing.assert_allclose(q, np.expm1(np.array([[2.0], [3.0]]) + np.array([[0.3], [0.5]]) * stats.norm.ppf([0.1, 0.9])), rtol=1e-9)
    # the mean is the lognormal moment, not expm1 of the location
    np.testing.assert_allclose(p.mean, np.exp(np.array([2.0, 3.0]) + np.array([0.3, 0.5]) ** 2 / 2) - 1, rtol=1e-12)


@pytest.mark.parametrize("levels", [[0.0, 0.5], [0.5, 1.0], [-0.1], [1.5], [np.nan], []])
def test_quantile_levels_outside_the_unit_interval_raise(levels):
    with pytest.raises(ValueError, match="quantile levels"):
        _mixture().quantiles(levels)


@pytest.mark.parametrize("log1p", [False, True])
def test_mixture_logpdf_and_crps_against_references(log1p):
    p = _mixture(log1p=log1p, n=30)
    rng = np.random.default_rng(3)
    y = p.quantiles([0.5])[:, 0] * rng.uniform(0.8, 1.2, 30)
    dens = np.mean([stats.norm.pdf(np.log1p(y) if log1p else y, p.member_loc[m], p.member_scale[m])
                    for m in range(5)], axis=0) / ((1 + y) if log1p else 1)
    np.testing.assert_allclose(p.logpdf(y), np.log(dens), rtol=1e-9)
    if log1p:  # CRPS = ∫ (F(z) - 1{z >= y})² dz by quadrature
        z = np.linspace(0, np.expm1(6.0), 200_001)
        ref = np.array([np.trapezoid((_mixture_cdf_by_hand(p.subset([i]), z[:, None]).ravel() - (z >= y[i])) ** 2, z)
                        for i in range(5)])
        np.testing.assert_allclose(p.crps(y)[:5], ref, rtol=5e-3)
    else:
        np.testing.assert_allclose(p.crps(y), sr.crps_mixnorm(y, p.member_loc.T, p.member_scale.T), rtol=1e-10)
        # the quantile-grid CRPS used after recalibration agrees with the closed form
        levels = (np.arange(199) + 0.5) / 199
        np.testing.assert_allclose(crps_from_quantiles(y, levels, p.quantiles(levels)), p.crps(y), rtol=1e-2)


def test_variance_scaling_scales_every_sd_and_keeps_the_mean():
    p = _mixture()
    s = p.scaled(1.7)
    np.testing.assert_allclose(s.mean, p.mean, rtol=1e-12)
    for attr in ("sd", "aleatoric_sd", "epistemic_sd"):
        np.testing.assert_allclose(getattr(s, attr), 1.7 * getattr(p, attr), rtol=1e-12)


# -- metrics -------------------------------------------------------------------------------------------------------------
@pytest.fixture
def gaussian_forecast():
    rng = np.random.default_rng(0)
    n = 300
    mean = rng.normal(20, 5, n)
    sd = rng.uniform(1, 4, n)
    y = mean + 1.3 * sd * rng.standard_t(5, n)  # miscalibrated on purpose
    return y, mean, sd


def test_calibration_error_and_area_equal_uncertainty_toolbox(gaussian_forecast):
    y, mean, sd = gaussian_forecast
    ce, area = calibration_scores(stats.norm.cdf((y - mean) / sd))
    assert ce == pytest.approx(uct.metrics_calibration.mean_absolute_calibration_error(mean, sd, y), abs=1e-12)
    assert area == pytest.approx(uct.metrics_calibration.miscalibration_area(mean, sd, y), abs=1e-12)
    s = score(y, mean, sd)
    assert s["calibration_error"] == pytest.approx(ce)
    assert s["miscalibration_area"] == pytest.approx(area)
    assert ce > 0.03  # the t noise with inflated scale is visibly miscalibrated


def test_calibrated_gaussian_has_small_calibration_error():
    rng = np.random.default_rng(1)
    mean, sd = rng.normal(0, 5, 50_000), rng.uniform(0.5, 3, 50_000)
    y = mean + sd * rng.normal(size=50_000)
    s = score(y, mean, sd)
    assert s["calibration_error"] < 0.005
    for tag in (50, 80, 90, 95):
        assert s[f"picp{tag}"] == pytest.approx(tag / 100, abs=0.01)
        assert s[f"mpiw{tag}"] == pytest.approx(np.mean(2 * stats.norm.ppf(0.5 + tag / 200) * sd), rel=1e-9)


def test_interval_curve_hand_count():
    expected, observed = interval_calibration_curve(np.array([0.5, 0.3, 0.95, 0.0]), num_bins=3)  # p = 0, 0.5, 1
    np.testing.assert_array_equal(expected, [0, 0.5, 1])
    np.testing.assert_array_equal(observed, [0.25, 0.5, 1.0])  # |u-.5| = 0, .2, .45, .5


def test_score_uses_the_mixture_columns(gaussian_forecast):
    p = _mixture(n=60)
    y = p.mean + p.sd * np.random.default_rng(2).normal(size=60)
    s = score(y, p.mean, p.sd, columns=distribution_columns(y, p))
    assert s["crps"] == pytest.approx(float(np.mean(sr.crps_mixnorm(y, p.member_loc.T, p.member_scale.T))), rel=1e-10)
    assert s["nll"] == pytest.approx(-float(np.mean(p.logpdf(y))), rel=1e-12)
    lo, hi = p.interval(0.9)
    assert s["picp90"] == pytest.approx(np.mean((y >= lo) & (y <= hi)))
    assert s["mpiw90"] == pytest.approx(np.mean(hi - lo))
    assert s["calibration_error"] == pytest.approx(calibration_scores(p.cdf(y))[0])


def test_gaussian_columns_match_a_one_member_mixture(gaussian_forecast):
    y, mean, sd = gaussian_forecast
    g = gaussian_columns(y, mean, sd)
    d = distribution_columns(y, Prediction.from_members(mean[None], sd[None] ** 2))
    for k in g:
        np.testing.assert_allclose(d[k], g[k], rtol=1e-8, atol=1e-10, err_msg=k)


def test_quantile_forecast_of_gaussian_quantiles(gaussian_forecast):
    y, mean, sd = gaussian_forecast
    levels = np.round(np.arange(1, 40) * 0.025, 3)
    f = QuantileForecast(levels, mean[:, None] + sd[:, None] * stats.norm.ppf(levels)[None])
    assert np.mean(f.crps(y)) == pytest.approx(np.mean(sr.crps_normal(y, mean, sd)), rel=0.03)
    # the pinball form equals the hand sum for one sample
    r = y[0] - f.values[0]
    w = np.diff(np.r_[0, (levels[1:] + levels[:-1]) / 2, 1])
    assert f.crps(y[:1])[0] == pytest.approx(2 * np.sum(w * r * (levels - (r < 0))), rel=1e-12)
    inside = (y > f.values[:, 0]) & (y < f.values[:, -1])
    np.testing.assert_allclose(f.cdf(y)[inside], stats.norm.cdf((y - mean) / sd)[inside], atol=0.01)
    assert f.logpdf(y) is None
    # crossing quantiles are sorted
    assert (np.diff(QuantileForecast([0.1, 0.5, 0.9], np.array([[3.0, 1.0, 2.0]])).values, axis=1) >= 0).all()
    cols = distribution_columns(y, f)
    np.testing.assert_allclose(cols["lower90"], f.values[:, 1])
    np.testing.assert_allclose(cols["upper90"], f.values[:, -2])
    assert np.isnan(cols["nll"]).all()
    assert score(y, mean, None, columns=cols)["nll"] is None


# -- calibration ---------------------------------------------------------------------------------------------------------
def _overconfident(seed, n, factor=2.0):
    rng = np.random.default_rng(seed)
    p = _mixture(seed, n=n)
    truth = p.scaled(factor)  # the observations come from the mixture widened by `factor`
    m = rng.integers(0, truth.member_loc.shape[0], n)
    cols = np.arange(n)
    y = truth.member_loc[m, cols] + truth.member_scale[m, cols] * rng.normal(size=n)
    return p, y


def test_variance_scaling_recovers_the_missing_factor():
    p, y = _overconfident(0, 4000)
    c = Calibrator.fit("variance", p, y)
    assert c.factor == pytest.approx(2.0, rel=0.06)
    grid = np.linspace(0.5, 4, 200)
    nll = [-np.mean(p.scaled(g).logpdf(y)) for g in grid]
    assert c.factor == pytest.approx(grid[int(np.argmin(nll))], abs=0.03)  # it minimises the NLL


@pytest.mark.parametrize("method", ["variance", "isotonic", "isotonic_central", "conformal"])
def test_calibration_fitted_on_one_part_fixes_another(method):
    p_cal, y_cal = _overconfident(0, 400)
    p_test, y_test = _overconfident(1, 2000)
    before = score(y_test, p_test.mean, p_test.sd, columns=distribution_columns(y_test, p_test))
    cal = Calibrator.fit(method, p_cal, y_cal)
    q = cal.apply(p_test)
    after = score(y_test, q.mean, q.sd, columns=distribution_columns(y_test, q))
    assert before["calibration_error"] > 0.1
    assert before["picp90"] < 0.75
    assert after["calibration_error"] < 0.04
    assert after["picp90"] == pytest.approx(0.9, abs=0.04)
    assert after["crps"] < before["crps"]
    assert (after["nll"] is None) == (method == "conformal")
    # quantiles and CDF of the recalibrated distribution are consistent
    qq = q.quantiles([0.1, 0.5, 0.9])
    np.testing.assert_allclose(q.cdf(qq[:, 1]), 0.5, atol=1e-6)
    assert (np.diff(qq, axis=1) > 0).all()


def test_isotonic_map_is_strictly_increasing_and_has_a_density():
    u = np.random.default_rng(0).beta(0.5, 0.5, 300)
    m = fit_isotonic_map(u)
    assert m.x[0] == 0
    assert m.x[-1] == 1
    assert m.y[0] == 0
    assert m.y[-1] == 1
    assert (np.diff(m.x) > 0).all()
    assert (np.diff(m.y) > 0).all()
    grid = np.linspace(0, 1, 101)
    np.testing.assert_allclose(m.inverse(m.forward(grid)), grid, atol=1e-12)
    # the recalibrated PIT values are about uniform
    assert calibration_scores(m.forward(u))[0] < 0.02


def test_conformal_map_keeps_the_split_conformal_quantile():
    u = np.random.default_rng(0).uniform(0, 1, 49)
    m = fit_conformal_map(u)
    s = np.sort(np.abs(u - 0.5))
    for p in (0.5, 0.8, 0.9, 0.95):
        k = int(np.ceil(p * 50))  # (n + 1) p
        half = m.inverse(np.array([0.5 + p / 2]))[0] - 0.5
        assert half >= s[k - 1] - 1e-12
        assert half <= s[k] + 1e-12


def test_calibrator_state_round_trip():
    p, y = _overconfident(0, 200)
    for method in ("variance", "isotonic", "isotonic_central", "conformal"):
        c = Calibrator.fit(method, p, y)
        d = Calibrator.from_state(c.state())
        np.testing.assert_allclose(d.apply(p).quantiles([0.05, 0.95]), c.apply(p).quantiles([0.05, 0.95]), rtol=1e-12)


def test_too_few_calibration_samples_and_unknown_method_raise():
    p, y = _overconfident(0, 10)
    with pytest.raises(CalibrationError, match="calibration.fraction"):
        Calibrator.fit("isotonic", p, y, min_samples=20)
    with pytest.raises(CalibrationError, match="valid"):
        Calibrator.fit("platt", p, y, min_samples=2)


# -- quantile baselines --------------------------------------------------------------------------------------------------
@pytest.fixture
def small_quantile_models(monkeypatch):
    import sptgnn.models.baselines as baselines

    original = baselines.make_quantile_regressor

    def small(name, levels=baselines.QUANTILE_LEVELS, seed=0, trees=None, max_features=None):
        return original(name, levels, seed, trees, max_features).set_params(n_estimators=30)

    monkeypatch.setattr(baselines, "make_quantile_regressor", small)


@pytest.mark.parametrize("name", ["qrf", "xgboost_quantile", "qrf+xy"])
def test_quantile_baselines_predict_sorted_quantiles(name, samples, small_quantile_models):
    from sptgnn.models.baselines import QUANTILE_LEVELS, QuantileBaseline

    test = samples.folds == 1
    f = QuantileBaseline(name).fit(samples.subset(~test)).predict_dist(samples.subset(test))
    assert isinstance(f, QuantileForecast)
    assert f.values.shape == (int(test.sum()), len(QUANTILE_LEVELS))
    assert (np.diff(f.values, axis=1) >= 0).all()
    assert f.sd is None
    assert np.isfinite(f.mean).all()
    y = samples.subset(test).target("soc_g_kg")
    s = score(y, f.mean, None, columns=distribution_columns(y, f))
    assert s["nll"] is None
    assert 0 <= s["picp90"] <= 1
    assert s["crps"] > 0
    assert s["calibration_error"] is not None


def test_qrf_quantiles_and_mean_equal_quantile_forest(samples):
    from quantile_forest import RandomForestQuantileRegressor

    from sptgnn.models.baselines import QUANTILE_LEVELS, QuantileBaseline, baseline_features

    test = samples.folds == 1
    train_s, test_s = samples.subset(~test), samples.subset(test)
    f = QuantileBaseline("qrf", seed=3).fit(train_s).predict_dist(test_s)
    ref = RandomForestQuantileRegressor(n_estimators=500, random_state=3).fit(
        baseline_features(train_s, False), train_s.target("soc_g_kg"))
    x = baseline_features(test_s, False)
    np.testing.assert_allclose(f.values, np.sort(ref.predict(x, quantiles=list(QUANTILE_LEVELS)), axis=1))
    np.testing.assert_allclose(f.mean, ref.predict(x, quantiles="mean"))


# -- the ensemble with calibration ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def calibrated(samples_factory, config_factory):
    samples = samples_factory(n=80, seed=5)
    query = np.zeros(80, dtype=bool)
    query[::5] = True
    lab, q = samples.subset(~query), samples.subset(query)
    cfg = config_factory(calibration={"method": "isotonic", "fraction": 0.25, "min_samples": 8}, train={"refit": True})
    from sptgnn.train.ensemble import DeepEnsemble

    return DeepEnsemble(cfg).fit(lab), lab, q


def test_ensemble_fits_a_calibrator_on_a_held_out_part(calibrated):
    ens, lab, _ = calibrated
    assert ens.calibrator is not None
    assert ens.calibrator.method == "isotonic"
    assert ens.calibrator.n_samples == len(ens.calibration_ids) >= 8
    assert set(ens.calibration_ids) <= set(lab.sample_ids)
    assert len(ens.members) == 2


def test_predict_returns_calibrated_quantiles(calibrated):
    ens, _, q = calibrated
    pred = ens.predict(q, quantiles=[0.05, 0.5, 0.95])
    raw = ens.predict(q, calibrated=False)
    assert pred.recalibration is ens.calibrator.pit_map
    assert raw.recalibration is None
    np.testing.assert_array_equal(pred.quantile_levels, [0.05, 0.5, 0.95])
    assert pred.quantile_values.shape == (len(q), 3)
    assert (np.diff(pred.quantile_values, axis=1) > 0).all()
    np.testing.assert_allclose(pred.quantile_values, pred.quantiles([0.05, 0.5, 0.95]))
    np.testing.assert_allclose(pred.mean, raw.mean)  # isotonic recalibration leaves the moments alone
    with pytest.raises(ValueError, match="quantile levels"):
        ens.predict(q, quantiles=[0.5, 1.0])


def test_calibrator_survives_save_and_load(calibrated, tmp_path):
    from sptgnn.estimator.run import Run

    ens, _, q = calibrated
    loaded = Run.load(Run(ens).save(tmp_path / "run").path).ensemble
    assert loaded.calibrator.state() == ens.calibrator.state()
    assert loaded.calibration_ids == [str(i) for i in ens.calibration_ids]
    np.testing.assert_allclose(loaded.predict(q, quantiles=[0.1, 0.9]).quantile_values,
                               ens.predict(q, quantiles=[0.1, 0.9]).quantile_values, rtol=1e-6)


def test_calibration_part_too_small_raises(samples_factory, config_factory):
    from sptgnn.train.ensemble import DeepEnsemble

    with pytest.raises(CalibrationError, match="calibration"):
        DeepEnsemble(config_factory(calibration={"method": "variance"})).fit(samples_factory(n=30, seed=1))


def test_negative_soc_is_an_error(samples_factory, config_factory):
    from sptgnn.data.samples import SamplesError
    from sptgnn.train.ensemble import DeepEnsemble

    s = samples_factory(n=30, seed=2)
    s.frame.loc[s.frame.index[3], "soc_g_kg"] = -0.5
    with pytest.raises(SamplesError, match="negative"):
        DeepEnsemble(config_factory(data={"target_transform": "none"})).fit(s)
    with pytest.raises(SamplesError, match="negative"):
        DeepEnsemble(config_factory()).fit(s)  # log1p
    s.frame.loc[s.frame.index[3], "soc_g_kg"] = 0.0  # zero SOC is valid with and without log1p
    assert DeepEnsemble(config_factory(train={"members": 1, "epochs": 1})).fit(s).members


def test_cross_validation_reports_calibrated_and_uncalibrated_rows(samples_factory, config_factory, small_quantile_models):
    from sptgnn.evaluate.crossval import cross_validate_config

    samples = samples_factory(n=100, seed=4, folds=2)
    cfg = config_factory(calibration={"method": "variance", "min_samples": 8}, data={"target_transform": "none"},
                         evaluate={"baselines": ["qrf"], "moran_permutations": 0})
    res = cross_validate_config(samples, cfg)
    assert set(res.metrics) == {"sptgnn", "sptgnn_uncalibrated", "qrf"}
    for name in ("sptgnn", "sptgnn_uncalibrated"):
        m = res.metrics[name]
        for key in ("nll", "crps", "calibration_error", "miscalibration_area", "picp50", "picp80", "picp90", "picp95",
                    "mpiw90", "aleatoric_sd", "epistemic_sd"):
            assert isinstance(m[key], float), (name, key)
    cal, raw = res.metrics["sptgnn"], res.metrics["sptgnn_uncalibrated"]
    assert cal["r2"] == pytest.approx(raw["r2"], rel=1e-9)  # variance scaling keeps the mean (no log1p)
    assert cal["mpiw90"] != pytest.approx(raw["mpiw90"])
    assert res.metrics["qrf"]["nll"] is None
    assert isinstance(res.metrics["qrf"]["picp90"], float)


def test_calibration_does_not_change_the_members(calibrated, config_factory):
    from sptgnn.train.ensemble import DeepEnsemble

    ens, lab, q = calibrated
    plain = DeepEnsemble(config_factory(train={"refit": True})).fit(lab)
    assert plain.calibrator is None
    assert plain.best_epochs == ens.best_epochs
    np.testing.assert_allclose(plain.predict(q).member_loc, ens.predict(q, calibrated=False).member_loc, rtol=1e-6)


def test_cross_fitted_calibration_uses_every_training_sample_once(calibrated, config_factory):
    from sptgnn.train.ensemble import DeepEnsemble

    ens, lab, q = calibrated
    cfg = config_factory(calibration={"method": "isotonic", "folds": 3, "min_samples": 8}, train={"refit": True})
    cross = DeepEnsemble(cfg).fit(lab)
    assert sorted(cross.calibration_ids) == sorted(lab.sample_ids)  # each sample predicted by twins without it, once
    assert cross.calibrator.n_samples == len(lab)
    raw, y = cross.calibration_data
    order = {s: i for i, s in enumerate(lab.sample_ids)}
    np.testing.assert_array_equal(y, lab.target("soc_g_kg")[[order[s] for s in cross.calibration_ids]])
    # the kept members are those of the single-part calibration: only the calibrator differs
    np.testing.assert_allclose(cross.predict(q, calibrated=False).member_loc,
                               ens.predict(q, calibrated=False).member_loc, rtol=1e-6)


def test_spatial_parts_are_balanced_and_keep_blocks_whole():
    from sklearn.cluster import KMeans

    from sptgnn.splits import spatial_parts

    rng = np.random.default_rng(0)
    xy = np.r_[rng.normal(0, 50, (150, 2)), rng.normal(1000, 50, (90, 2)), rng.uniform(-2000, 2000, (60, 2))]
    part = spatial_parts(xy, 4, 30, seed=2)
    sizes = np.bincount(part, minlength=4)
    assert sizes.min() > 0
    assert sizes.sum() == len(xy)
    assert sizes.max() <= 1.6 * sizes.min()
    blocks = KMeans(n_clusters=30, n_init=3, random_state=2).fit_predict(xy)  # the blocks it cuts along
    for b in np.unique(blocks):
        assert len(np.unique(part[blocks == b])) == 1
    with pytest.raises(ValueError, match="cannot cut"):
        spatial_parts(xy[:5], 3, 30, seed=0)


@pytest.mark.parametrize("folds", [1, 3])
def test_random_calibration_part_has_the_asked_size(calibrated, config_factory, folds):
    from sptgnn.train.ensemble import DeepEnsemble

    _, lab, _ = calibrated
    cfg = config_factory(calibration={"method": "variance", "split": "random", "fraction": 0.25, "folds": folds,
                                      "min_samples": 8}, train={"members": 1})
    ens = DeepEnsemble(cfg).fit(lab)
    expected = len(lab) if folds > 1 else round(0.25 * len(lab))
    assert len(ens.calibration_ids) == len(set(ens.calibration_ids)) == expected
    again = DeepEnsemble(cfg).fit(lab)  # seeded: the same part
    assert again.calibration_ids == ens.calibration_ids
