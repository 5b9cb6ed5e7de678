"""The residual field: normal scores of PIT values, a variogram fit that finds structure where there is some and none
where there is none, conditioning that honours the residuals, unit variance far from them, and the same structured
field in every window."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from sptgnn.accounting.residual_field import ResidualField, normal_scores


def test_normal_scores_invert_the_gaussian_cdf():
    z = np.array([-2.0, -0.3, 0.0, 1.2])
    np.testing.assert_allclose(normal_scores(norm.cdf(z)), z, atol=1e-12)
    assert np.isfinite(normal_scores(np.array([0.0, 1.0]))).all()  # PIT 0 and 1 are clipped, not infinite


def test_fit_tells_white_noise_from_a_correlated_field():
    import gstools as gs

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 10_000, (300, 2))
    white = ResidualField.fit(xy, rng.standard_normal(300))
    assert white.nugget > 0.8
    smooth = ResidualField.fit(xy, gs.SRF(gs.Exponential(dim=2, var=1.0, len_scale=2000.0), seed=5)(xy.T))
    assert smooth.nugget < 0.3
    assert 500 < smooth.len_scale_m < 20_000


def test_fit_finds_the_nugget_of_clustered_samples():
    import gstools as gs

    rng = np.random.default_rng(2)  # 60 sites of 8 samples within 200 m, sites spread over 200 km
    sites = rng.uniform(0, 200_000, (60, 2))
    xy = (sites[:, None, :] + rng.uniform(0, 200, (60, 8, 2))).reshape(-1, 2)
    structured = gs.SRF(gs.Exponential(dim=2, var=0.5, len_scale=30_000.0), seed=3)(xy.T)
    fit = ResidualField.fit(xy, structured + np.sqrt(0.5) * rng.standard_normal(len(xy)))
    assert 0.3 < fit.nugget < 0.7
    assert 5_000 < fit.len_scale_m < 150_000


def test_conditioning_honours_the_residuals_and_far_away_the_variance_is_one():
    rng = np.random.default_rng(1)
    cond, z = rng.uniform(0, 1000, (30, 2)), rng.standard_normal(30)
    field = ResidualField(cond, z, nugget=0.01, len_scale_m=300.0)
    at = field.realisations(cond, np.arange(200))
    np.testing.assert_allclose(at.mean(0), z, atol=0.15)
    assert at.std(0).max() < 0.2  # nearly pinned where a residual was observed
    far = field.realisations(rng.uniform(50_000, 60_000, (200, 2)), np.arange(200))
    assert abs(far.mean()) < 0.1
    assert far.std() == pytest.approx(1.0, abs=0.1)


def test_the_structured_field_is_the_same_in_every_window():
    rng = np.random.default_rng(2)
    field = ResidualField(rng.uniform(0, 1000, (30, 2)), rng.standard_normal(30), nugget=0.2, len_scale_m=300.0)
    a, b = rng.uniform(0, 1000, (100, 2)), rng.uniform(0, 1000, (100, 2))
    whole = field.realisations(np.r_[a, b], np.arange(50), window_seed=1)
    part = field.realisations(a, np.arange(50), window_seed=2)
    # only the nugget (white, drawn per window) differs: the differences have variance 2 × nugget
    assert (whole[:, :100] - part).var() == pytest.approx(2 * 0.2, rel=0.1)


def test_a_moving_neighbourhood_still_honours_the_nearby_residuals():
    rng = np.random.default_rng(3)
    cond, z = rng.uniform(0, 10_000, (400, 2)), rng.standard_normal(400)
    field = ResidualField(cond, z, nugget=0.01, len_scale_m=300.0)
    at = field.realisations(cond[:5], np.arange(100), max_conditioning=20)
    np.testing.assert_allclose(at.mean(0), z[:5], atol=0.2)


def test_kriging_weights_equal_gstools_simple_kriging():
    import gstools as gs

    from sptgnn.accounting.residual_field import kriging_weights

    rng = np.random.default_rng(4)
    cond, v, x = rng.uniform(0, 1e4, (60, 2)), rng.standard_normal(60), rng.uniform(0, 1e4, (300, 2))
    model = gs.Exponential(dim=2, var=0.6, len_scale=2000.0, nugget=0.4)
    reference = gs.krige.Simple(model, cond.T, v, mean=0.0, exact=False)(x.T, return_var=False)
    np.testing.assert_allclose(kriging_weights(model, cond, x) @ v, reference, atol=1e-10)
