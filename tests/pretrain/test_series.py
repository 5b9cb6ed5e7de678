"""Series pre-training: hidden entries never reach the encoder, embeddings are deterministic for a seed, harmonic
regression recovers an exact harmonic series, the joint mask hides patches over runs of dates, and a real GeoTIFF
series with a cloud mask is read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import write_tif

from sptgnn.pretrain.series import (PixelSeries, embeddings, harmonic_fill, neighbourhood_means, pretrain_series,
                                    reconstruct, spatiotemporal_mask)


def _series(n_side=8, t=20, seed=0) -> PixelSeries:
    rng = np.random.default_rng(seed)
    dates = np.datetime64("2016-01-05") + np.arange(t) * np.timedelta64(23, "D")
    doy = 2 * np.pi * (np.arange(t) * 23 + 4) / 365.25
    rows, cols = np.divmod(np.arange(n_side * n_side), n_side)
    base = 0.4 + 0.02 * cols[:, None] + 0.2 * np.cos(doy)[None] + 0.01 * rng.normal(size=(n_side * n_side, t))
    clear = rng.random(base.shape) > 0.2
    return PixelSeries(base, clear, dates.astype("datetime64[s]"), np.c_[cols * 10.0, rows * 10.0])


def test_hidden_entries_never_reach_the_encoder():
    s = _series()
    result = pretrain_series(s, epochs=1, batch=16, seed=0)
    hidden = np.random.default_rng(1).random(s.values.shape) < 0.3
    visible = s.clear & ~hidden
    changed = PixelSeries(np.where(visible, s.values, s.values + 50.0), s.clear, s.dates, s.xy)
    np.testing.assert_array_equal(reconstruct(result, s, visible), reconstruct(result, changed, visible))
    np.testing.assert_array_equal(embeddings(result, s, visible), embeddings(result, changed, visible))
    x = torch.randn(5, 4)
    vis = torch.tensor(np.random.default_rng(2).random((5, 4)) > 0.5)
    nb = np.array([[1, 2], [0, 2], [0, 1], [4, 0], [3, 2]])
    m1 = neighbourhood_means(x, vis, nb)[0]
    m2 = neighbourhood_means(torch.where(vis, x, x + 9.0), vis, nb)[0]
    assert torch.equal(m1, m2)
    i, t = 0, int(np.flatnonzero(vis[1] | vis[2])[0])
    ref = [float(x[j, t]) for j in (1, 2) if vis[j, t]]
    assert float(m1[i, t]) == pytest.approx(np.mean(ref))


def test_embeddings_are_deterministic_for_a_seed():
    s = _series()
    a, b = (pretrain_series(s, epochs=2, batch=16, seed=4) for _ in range(2))
    c = pretrain_series(s, epochs=2, batch=16, seed=5)
    assert np.array_equal(embeddings(a, s, s.clear), embeddings(b, s, s.clear))
    assert not np.array_equal(embeddings(a, s, s.clear), embeddings(c, s, s.clear))


def test_harmonic_regression_recovers_an_exact_harmonic_series():
    s = _series()
    doy = (s.dates - s.dates.astype("datetime64[Y]")).astype("timedelta64[D]").astype(float)
    years = (s.dates - s.dates[0]).astype(float) / (365.25 * 86400)
    exact = 0.3 + 0.05 * years + 0.1 * np.cos(2 * np.pi * doy / 365.25) - 0.07 * np.sin(4 * np.pi * doy / 365.25)
    s.values = np.tile(exact, (len(s.values), 1))
    visible = s.clear.copy()
    visible[:, ::3] = False  # every third date hidden
    np.testing.assert_allclose(harmonic_fill(s, visible, harmonics=2, ridge=1e-10), s.values, atol=1e-6)


def test_spatiotemporal_mask_hides_patches_over_runs_of_dates():
    nb = np.array([[1, 2], [0, 2], [0, 1], [4, 0], [3, 2]])
    rng = np.random.default_rng(0)
    hidden = spatiotemporal_mask(nb, 12, 0.0, 0.999 * 3 * 3, 3, rng)  # every (pixel, date) a centre
    assert hidden.all()
    big = spatiotemporal_mask(np.random.default_rng(1).integers(0, 3000, (3000, 4)), 30, 0.1, 0.2, 3,
                              np.random.default_rng(2))
    assert 0.2 < big.mean() < 0.35


def test_reads_a_dated_geotiff_series_with_cloud_mask(tmp_path):
    values = np.random.default_rng(0).uniform(0, 0.8, (3, 4, 5)).astype("float32")
    cloud = np.zeros((3, 4, 5), "uint8")
    cloud[1, :2] = 1
    write_tif(tmp_path / "ndvi.tif", values, 10.0, descriptions=["2016-05-01", "2016-06-01T10:00:00", "2016-07-01"])
    write_tif(tmp_path / "clm.tif", cloud, 10.0, dtype="uint8")
    s = PixelSeries.from_rasters(tmp_path / "ndvi.tif", tmp_path / "clm.tif")
    assert s.values.shape == (20, 3)
    assert s.clear.sum() == 60 - 10
    np.testing.assert_allclose(s.values[:, 2], values[2].ravel(), rtol=1e-6)
    write_tif(tmp_path / "nodates.tif", values, 10.0)
    with pytest.raises(ValueError, match="band descriptions must be acquisition dates"):
        PixelSeries.from_rasters(tmp_path / "nodates.tif")
