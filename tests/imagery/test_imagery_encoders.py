"""Chip encoders (point values, chip statistics, random convolutional features, series) and the imagery stream in
the graph and the ensemble."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sptgnn.config import Config, ConfigError, ImageryConfig, load_config
from sptgnn.data.chips import ChipError, Chips
from sptgnn.imagery.encoders import ChipStatsEncoder, PointValueEncoder, RandomConvEncoder
from sptgnn.imagery.series import SeriesEncoder, date_embedding
from sptgnn.graph.builder import NODE, GraphBuilder
from sptgnn.estimator.run import Run
from sptgnn.train.ensemble import DeepEnsemble

DATA = Path(__file__).resolve().parents[1] / "data" / "chips"


def _chips(n=6, c=2, size=5, seed=0, series_dates=None) -> Chips:
    rng = np.random.default_rng(seed)
    shape = (n, c, size, size) if series_dates is None else (n, len(series_dates), c, size, size)
    values = rng.normal(size=shape).astype(np.float32)
    dates = None if series_dates is None else np.array(series_dates, dtype="datetime64[s]")
    return Chips(values, np.ones(shape, bool), [f"s:b{i}" for i in range(c)], dates, np.array([f"x{i}" for i in range(n)]))


def test_point_values_are_the_centre_pixel_and_masked_centres_get_the_labelled_mean():
    chips = _chips()
    enc = PointValueEncoder().fit(chips)
    np.testing.assert_array_equal(enc.encode(chips), chips.values[:, :, 2, 2])
    q = _chips(n=2, seed=1)
    q.mask[0, 1, 2, 2] = False
    out = enc.encode(q)
    assert out[0, 1] == pytest.approx(chips.values[:, 1, 2, 2].mean())
    assert enc.feature_names == ["s:b0", "s:b1"]


def test_chip_stats_match_numpy():
    chips = _chips()
    enc = ChipStatsEncoder().fit(chips)
    mu = chips.values.mean((0, 2, 3))
    sd = chips.values.std((0, 2, 3))
    z = (chips.values - mu[None, :, None, None]) / sd[None, :, None, None]
    out = enc.encode(chips)
    np.testing.assert_allclose(out[:, :2], z.mean((2, 3)), atol=1e-5)
    np.testing.assert_allclose(out[:, 2:4], z.std((2, 3)), atol=1e-5)
    np.testing.assert_allclose(out[:, 4:], z[:, :, 2, 2], atol=1e-5)


def test_random_conv_matches_a_hand_computation_without_whitening():
    chips = _chips(n=5, c=2, size=3)
    enc = RandomConvEncoder(num_filters=2, patch_size=3, bias=0.5, whiten=False, seed=3).fit(chips)
    # one 3x3 position per chip: the feature is relu(±(z - mean_patch)·(f - mean_patch) - b)
    mu = chips.values.mean((0, 2, 3))
    sd = chips.values.std((0, 2, 3))
    z = ((chips.values - mu[None, :, None, None]) / sd[None, :, None, None]).reshape(5, -1)
    centred = z - z.mean(0)
    filt = enc.filters.numpy()
    # each filter is one of the labelled patches, centred
    assert all(np.isclose(centred, f, atol=1e-5).all(1).any() for f in filt)
    r = centred @ filt.T
    expected = np.concatenate([np.maximum(r - 0.5, 0), np.maximum(-r - 0.5, 0)], axis=1)
    np.testing.assert_allclose(enc.encode(chips), expected, atol=1e-4)


def test_random_conv_is_seeded_fitted_on_labelled_only_and_per_sample():
    lab, query = _chips(n=8, seed=0), _chips(n=4, seed=1)
    a = RandomConvEncoder(num_filters=6, seed=0).fit(lab)
    b = RandomConvEncoder(num_filters=6, seed=0).fit(lab)
    c = RandomConvEncoder(num_filters=6, seed=1).fit(lab)
    qa = a.encode(query)
    assert qa.shape == (4, 12)
    assert a.dim == 12
    np.testing.assert_array_equal(qa, b.encode(query))
    assert not np.allclose(qa, c.encode(query))
    # a query's features do not depend on the other queries encoded with it
    np.testing.assert_allclose(a.encode(query.subset(np.array([2]))), qa[2:3], atol=1e-6)
    # and the fitted state comes from the labelled chips: fitting on other chips changes it
    assert not np.allclose(RandomConvEncoder(num_filters=6, seed=0).fit(query).encode(query), qa)


def test_random_conv_ignores_values_under_the_mask():
    lab = _chips(n=8, size=7)
    enc = RandomConvEncoder(num_filters=4, seed=0).fit(lab)
    q = _chips(n=1, size=7, seed=5)
    q.mask[0, :, 0, :] = False
    q.values[0, :, 0, :] = 0
    other = Chips(q.values.copy(), q.mask.copy(), q.channels, None, q.sample_ids)
    other.values[0, :, 0, :] = 1e6
    np.testing.assert_allclose(enc.encode(q), enc.encode(other), atol=1e-5)


def test_random_conv_rejects_patch_larger_than_chip_and_series():
    with pytest.raises(ChipError, match="larger than the chips"):
        RandomConvEncoder(patch_size=7).fit(_chips(size=5))
    with pytest.raises(ChipError, match="series"):
        RandomConvEncoder().fit(_chips(series_dates=["2020-01-01", "2020-02-01"]))


def test_date_embedding():
    e = date_embedding(np.array(["2021-01-01", "2021-04-02"], dtype="datetime64[s]"), harmonics=1)
    doy = np.array([0.0, 91.0])
    np.testing.assert_allclose(e, np.c_[np.ones(2), np.cos(2 * np.pi * doy / 365.25), np.sin(2 * np.pi * doy / 365.25)])


def test_series_harmonic_pooling_recovers_the_seasonal_cycle_and_skips_cloudy_dates():
    dates = np.array(["2020-01-10", "2020-03-01", "2020-04-20", "2020-06-15", "2020-08-01", "2020-10-05", "2020-12-01"],
                     dtype="datetime64[s]")
    e = date_embedding(dates, 1)
    coef = np.array([[0.4, 0.2, -0.1], [1.0, 0.0, 0.3]])          # per sample: c0, cos1, sin1
    chips = _chips(n=2, c=1, size=3, series_dates=dates)
    chips.values[:] = (coef @ e.T)[:, :, None, None, None]
    chips.mask[0, 3] = False                                        # a cloudy date for sample 0
    chips.values[0, 3] = 99.0
    enc = SeriesEncoder(PointValueEncoder(), pooling="harmonic", harmonics=1, ridge=0.0).fit(chips)
    out = enc.encode(chips)
    np.testing.assert_allclose(out, coef, atol=1e-5)
    assert enc.feature_names == ["s:b0_c0", "s:b0_cos1", "s:b0_sin1"]
    mean = SeriesEncoder(PointValueEncoder(), pooling="mean").fit(chips).encode(chips)
    valid = np.ones(7, bool)
    valid[3] = False
    assert mean[0, 0] == pytest.approx((coef[0] @ e[valid].T).mean(), abs=1e-5)


def test_series_needs_dates():
    with pytest.raises(ChipError, match="multi-date"):
        SeriesEncoder(ChipStatsEncoder()).fit(_chips())


# -- in the graph and the ensemble ---------------------------------------------------------------------------------
def _chip_samples(samples_factory, n=30, seed=0):
    # points inside tests/data/chips/s2.tif (x 500000-500200, y 5000000-5000160, EPSG:32633)
    return samples_factory(n=n, seed=seed, origin=(500_015.0, 5_000_015.0), extent=170.0 - 40.0)


def _imagery(**kw) -> ImageryConfig:
    base = {"encoder": "random_conv", "sources": [{"path": str(DATA / "s2.tif")}], "chip_size": 5,
            "random_conv": {"num_filters": 4, "seed": 0}}
    base.update(kw)
    return ImageryConfig.model_validate(base)


def test_default_config_keeps_the_samples_columns(samples_factory):
    assert Config().imagery.encoder == "columns"
    s = _chip_samples(samples_factory)
    g = GraphBuilder(Config().graph, Config().imagery).fit(s).build(None, "soc_g_kg")
    assert g[NODE].x_imagery.shape == (len(s), 3)


def test_chip_features_become_the_imagery_stream_fitted_on_labelled_only(samples_factory, config_factory):
    s = _chip_samples(samples_factory)
    lab, query = s.subset(np.arange(20)), s.subset(np.arange(20, 30))
    builder = GraphBuilder(config_factory().graph, _imagery()).fit(lab)
    g = builder.build(query, "soc_g_kg")
    assert g[NODE].x_imagery.shape == (30, 8)
    labelled_part = g[NODE].x_imagery[:20]
    np.testing.assert_allclose(labelled_part.mean(0).numpy(), 0, atol=1e-5)     # standardised on labelled nodes
    # the labelled nodes' inputs do not depend on which queries are attached
    g2 = builder.build(query.subset(np.arange(3)), "soc_g_kg")
    np.testing.assert_allclose(g2[NODE].x_imagery[:20].numpy(), labelled_part.numpy())
    both = GraphBuilder(config_factory().graph, _imagery(keep_columns=True)).fit(lab).build(query, "soc_g_kg")
    assert both[NODE].x_imagery.shape == (30, 3 + 8)
    assert both.metadata() == g.metadata()


def test_spectral_relation_over_named_features(samples_factory, config_factory):
    s = _chip_samples(samples_factory)
    graph_cfg = config_factory(graph={"spectral_features": ["rcf_001", "Slope"]}).graph
    builder = GraphBuilder(graph_cfg, _imagery()).fit(s)
    space = builder.spectral_space(s)
    assert space.shape == (len(s), 2)
    np.testing.assert_allclose(space[:, 0], builder.transform.stream(s, "imagery")[:, 1])
    np.testing.assert_allclose(space[:, 1], builder.transform.stream(s, "environment")[:, 0])
    bad = GraphBuilder(config_factory(graph={"spectral_features": ["rcf_999"]}).graph, _imagery()).fit
    with pytest.raises(ValueError, match=r"\['rcf_999'\] are not features"):
        bad(s)


def test_ensemble_with_chip_features_saves_and_loads(samples_factory, config_factory, tmp_path):
    s = _chip_samples(samples_factory, n=36)
    cfg = config_factory()
    cfg.imagery = _imagery(cache_dir=str(tmp_path / "cache"))
    cfg.train.members = 1
    lab, query = s.subset(np.arange(28)), s.subset(np.arange(28, 36))
    ens = DeepEnsemble(cfg).fit(lab)
    pred = ens.predict(query)
    assert np.isfinite(pred.mean).all()
    Run(ens).save(tmp_path / "run")
    again = Run.load(tmp_path / "run").ensemble.predict(query)
    np.testing.assert_allclose(again.mean, pred.mean, rtol=1e-5)
    np.testing.assert_allclose(again.sd, pred.sd, rtol=1e-5)


def test_imagery_config_errors(tmp_path):
    with pytest.raises(ValueError, match="give imagery.sources"):
        ImageryConfig(encoder="random_conv")
    with pytest.raises(ValueError, match="not implemented yet"):
        ImageryConfig.model_validate({"terramind": {"finetune": True}})
    path = tmp_path / "c.yaml"
    path.write_text("imagery:\n  encoder: random_conv\n  sources: [{path: x.tif}]\n  chip_sise: 5\n")
    with pytest.raises(ConfigError, match="did you mean 'chip_size'"):
        load_config(path)


def test_missing_source_file_is_a_clear_error(samples_factory, config_factory):
    imagery = _imagery(sources=[{"path": "nowhere/s2.tif"}])
    with pytest.raises(ChipError, match="nowhere/s2.tif not found"):
        GraphBuilder(config_factory().graph, imagery)


def test_series_encoder_from_config_with_cloud_mask(samples_factory, config_factory):
    s = _chip_samples(samples_factory)
    imagery = ImageryConfig.model_validate({
        "encoder": "series", "chip_size": 3,
        "sources": [{"path": str(DATA / "ndvi_series.tif"), "name": "ndvi", "dates": "descriptions"},
                    {"path": str(DATA / "s2.tif"), "bands": ["B04"]},
                    {"path": str(DATA / "clouds.tif"), "dates": "descriptions", "kind": "cloud_mask", "resampling": "nearest"}],
        "random_conv": {"num_filters": 3, "patch_size": 2},
        "series": {"pooling": "harmonic", "harmonics": 1},
    })
    builder = GraphBuilder(config_factory().graph, imagery).fit(s)
    x = builder.build(None, "soc_g_kg")[NODE].x_imagery
    assert x.shape == (len(s), 2 * 3 * 3)
    assert np.isfinite(x.numpy()).all()
    assert builder.transform.stream_names("imagery")[:3] == ["rcf_000_c0", "rcf_000_cos1", "rcf_000_sin1"]


def test_terramind_encoder_from_config_with_a_mocked_backbone(samples_factory, config_factory, monkeypatch, tmp_path):
    import torch
    from torch import nn

    import sptgnn.imagery.terramind as tm

    class Mock(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(256, 384)

        def forward(self, x):
            v = x["DEM"]
            return [self.proj(v.unfold(2, 16, 16).unfold(3, 16, 16).reshape(v.shape[0], -1, 256))]

    monkeypatch.setattr(tm, "_build_backbone", lambda name, mods: Mock())
    torch.save(Mock().state_dict(), tmp_path / "w.pt")
    imagery = ImageryConfig.model_validate({
        "encoder": "terramind", "chip_size": 16, "crs": "EPSG:32633", "resolution": 10.0,
        "sources": [{"path": str(DATA / "dem_lonlat.tif"), "name": "dem"}],
        "terramind": {"backbone": "terramind_v1_small", "ckpt_path": str(tmp_path / "w.pt"), "modalities": {"DEM": ["dem:DEM"]}},
    })
    s = _chip_samples(samples_factory)
    x = GraphBuilder(config_factory().graph, imagery).fit(s).build(None, "soc_g_kg")[NODE].x_imagery
    assert x.shape == (len(s), 384)
    assert np.isfinite(x.numpy()).all()
