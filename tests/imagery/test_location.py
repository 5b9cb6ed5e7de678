"""The location foundation-model stream: GeoCLIP's own encoder reproduced, a label-free projection fitted on the
labelled nodes, one path for samples and raw points, saved runs, and the messages when the package is missing."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner
from sklearn.decomposition import PCA

from helpers import assert_same_prediction
from sptgnn.cli import app
from sptgnn.config import Config
from sptgnn.estimator.run import Run
from sptgnn.geo.coords import transform_xy
from sptgnn.graph.builder import GraphBuilder
from sptgnn.imagery import location
from sptgnn.imagery.location import LocationEncoderMissing, LocationFM, LocationWeightsChanged, geoclip_embeddings
from sptgnn.models.baselines import TreeBaseline
from sptgnn.train.ensemble import DeepEnsemble

needs_geoclip = pytest.mark.skipif(importlib.util.find_spec("geoclip") is None,
                                   reason="geoclip not installed (pip install --no-deps geoclip==1.3.0)")


def package_location_encoder():
    """The package's own LocationEncoder with its own weight loading (``from_pretrained=True``): ``import geoclip``
    where its image dependencies import, else its module files under a test-only package name."""
    try:
        from geoclip import LocationEncoder
    except Exception:  # noqa: BLE001 - transformers / torchvision absent or broken beside this torch
        root = Path(importlib.util.find_spec("geoclip").submodule_search_locations[0])
        for name, path in (("_test_geoclip", root), ("_test_geoclip.model", root / "model")):
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            sys.modules.setdefault(name, package)
        LocationEncoder = importlib.import_module("_test_geoclip.model.location_encoder").LocationEncoder
    return LocationEncoder().eval()


@needs_geoclip
def test_embeddings_equal_the_packages_own_encoder_at_fixed_coordinates():
    lonlat = np.array([[36.82, -1.29], [13.40, 52.52], [-58.38, -34.60], [151.21, -33.87]])
    with torch.no_grad():
        expected = package_location_encoder()(torch.tensor(lonlat[:, ::-1].copy(), dtype=torch.float32)).numpy()
    np.testing.assert_array_equal(geoclip_embeddings(lonlat), expected)
    assert expected.shape == (4, 512)


@needs_geoclip
def test_loading_the_encoder_leaves_the_callers_random_stream_alone():
    location.clear_cache()
    torch.manual_seed(3)
    geoclip_embeddings(np.array([[10.0, 50.0]]))
    after = torch.rand(3)
    torch.manual_seed(3)
    np.testing.assert_array_equal(after.numpy(), torch.rand(3).numpy())


@needs_geoclip
def test_invalid_coordinates_are_refused():
    with pytest.raises(ValueError, match="no valid longitude/latitude"):
        geoclip_embeddings(np.array([[10.0, 95.0]]))


@needs_geoclip
def test_pca_projection_is_sklearns_standardised_and_fitted_on_the_labelled_locations_only(samples):
    lonlat = samples.lonlat()
    fm = LocationFM(dims=4).fit(lonlat[:40])
    e = geoclip_embeddings(lonlat).astype(np.float64)
    pca = PCA(n_components=4, svd_solver="full").fit(e[:40])
    z = pca.transform(e)
    expected = (z - z[:40].mean(0)) / z[:40].std(0)
    # principal axes are defined up to sign: compare column by column
    got = fm.transform(lonlat)
    for j in range(4):
        sign = np.sign(got[:, j] @ expected[:, j])
        np.testing.assert_allclose(got[:, j], sign * expected[:, j], rtol=1e-5, atol=1e-6)
    assert fm.feature_names == ["geoclip_000", "geoclip_001", "geoclip_002", "geoclip_003"]


@needs_geoclip
def test_the_stream_in_the_graph_is_label_free_and_the_same_for_samples_and_raw_points(samples):
    config = Config().updated(model={"location_fm": {"dims": 6}})
    labelled, query = samples.subset(np.arange(45)), samples.subset(np.arange(45, 60))
    builder = GraphBuilder(config.graph, None, config.model.location_fm).fit(labelled)
    graph = builder.build(query, "soc_g_kg")
    permuted = labelled.frame.copy()
    permuted["soc_g_kg"] = permuted["soc_g_kg"].to_numpy()[::-1]
    other = GraphBuilder(config.graph, None, config.model.location_fm).fit(
        type(labelled)(**{**labelled.__dict__, "frame": permuted}))
    np.testing.assert_array_equal(graph["sample"].x_location_fm.numpy(),
                                  other.build(query, "soc_g_kg")["sample"].x_location_fm.numpy())
    assert graph["sample"].x_location_fm.shape == (60, 6)
    from_samples = builder.sample_inputs(query).location_fm
    raw = {c: query.frame[c].to_numpy() for c in query.feature_columns}
    from_points = builder.inputs(raw, query.xy()).location_fm
    np.testing.assert_allclose(from_points, from_samples, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(graph["sample"].x_location_fm.numpy()[45:], from_samples, rtol=1e-5, atol=1e-6)
    # the embedding is of the point's WGS 84 coordinates, whatever the samples' CRS
    np.testing.assert_allclose(query.lonlat(), transform_xy(query.xy(), query.crs, "EPSG:4326"), atol=1e-9)


@needs_geoclip
def test_fm_baseline_features_ignore_the_labels(samples):
    train, test = samples.subset(np.arange(45)), samples.subset(np.arange(45, 60))
    a = TreeBaseline("random_forest+fm", trees=10, fm_dims=5).fit(train)
    b = TreeBaseline("random_forest+fm", trees=10, fm_dims=5).fit(train, y=train.target("soc_g_kg")[::-1])
    np.testing.assert_array_equal(a.features(test), b.features(test))
    assert a.model_.n_features_in_ == len(samples.feature_columns) + 5


@needs_geoclip
def test_a_run_with_the_stream_saves_loads_and_checks_the_weights(samples, tmp_path, config_factory, monkeypatch):
    config = config_factory(model={"streams": ["imagery", "environment", "location_fm"], "location_fm": {"dims": 4}})
    train, test = samples.subset(np.arange(45)), samples.subset(np.arange(45, 60))
    fitted = DeepEnsemble(config).fit(train)
    assert all("location_fm" in m.encoders for m in fitted.members)
    path = Run(fitted).save(tmp_path / "run").path
    loaded = Run.load(path).ensemble
    assert_same_prediction(fitted.predict(test), loaded.predict(test))
    np.testing.assert_array_equal(fitted.gates(test), loaded.gates(test))
    monkeypatch.setattr(location, "geoclip_weights_sha256", lambda: "0" * 64)
    with pytest.raises(LocationWeightsChanged, match="refit the run"):
        Run.load(path)


@pytest.fixture
def without_geoclip(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "geoclip" else real(name, *a))
    location.clear_cache()
    yield
    monkeypatch.undo()
    location.clear_cache()


def test_missing_package_gives_one_line_with_the_install_command(samples, without_geoclip):
    with pytest.raises(LocationEncoderMissing, match=r"pip install --no-deps geoclip==1\.3\.0"):
        LocationFM().fit(samples.lonlat())


def test_cli_without_the_package_fails_in_one_line_and_writes_nothing(tmp_path, config_dict_factory, without_geoclip):
    raw = config_dict_factory(model={"streams": ["imagery", "environment", "location_fm"]},
                              train={"members": 1, "epochs": 2})
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["evaluate", str(tmp_path / "config.yaml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert "pip install --no-deps geoclip" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yaml"]


@needs_geoclip
def test_fine_tuning_trains_each_members_copy_of_the_encoder_and_round_trips(samples, tmp_path, config_factory):
    from sptgnn.imagery.location import geoclip_encoder

    config = config_factory(model={"streams": ["environment", "location_fm"],
                                   "location_fm": {"projection": "learned", "finetune_lr_scale": 0.5}},
                            train={"members": 1, "epochs": 2})
    train, test = samples.subset(np.arange(45)), samples.subset(np.arange(45, 60))
    fitted = DeepEnsemble(config).fit(train)
    tuned = fitted.members[0].encoders["location_fm"].backbone.state_dict()
    original = geoclip_encoder().state_dict()
    changed = {k for k in original if not torch.equal(tuned[k], original[k])}
    assert changed and all(not k.endswith(".b") for k in changed)  # MLP weights trained, Fourier frequencies fixed
    assert any(k.endswith(".b") for k in original)
    assert fitted.builder.transform.location.feature_names == ["latitude", "longitude"]
    np.testing.assert_allclose(fitted.builder.sample_inputs(test).location_fm, test.lonlat()[:, ::-1])
    path = Run(fitted).save(tmp_path / "run").path
    assert_same_prediction(fitted.predict(test), Run.load(path).ensemble.predict(test))


def test_fine_tuning_needs_the_learned_projection(config_factory):
    from sptgnn.config import ConfigError

    with pytest.raises((ConfigError, ValueError), match="projection: learned"):
        config_factory(model={"location_fm": {"finetune_lr_scale": 0.1}})
