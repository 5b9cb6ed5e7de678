"""Profiles stay whole: the layers of one site fall in one fold for every split (random, blocks, kNNDM, shipped)."""

from __future__ import annotations

from dataclasses import replace

import geopandas as gpd
import numpy as np
import pytest

from sptgnn.data.samples import SamplesError
from sptgnn.splits import make_folds
from sptgnn.splits.domain import knndm_folds
from sptgnn.splits.folds import folds_from_ids, site_folds

from helpers import X0, Y0, write_tif


def _profiles(samples_factory, sites: int = 30, layers: int = 3, jitter_m: float = 0.0):
    """``sites`` profiles of ``layers`` layers each (0-10, 10-30, 30-60 cm), the layers of a site at its location
    (plus ``jitter_m`` of noise, as when each layer's coordinates were typed apart)."""
    base = samples_factory(sites * layers, seed=4, folds=None)
    frame = base.frame.copy()
    frame["site"] = [f"p{i // layers}" for i in range(len(frame))]
    first = np.repeat(np.arange(sites) * layers, layers)  # each layer at its site's first layer
    rng = np.random.default_rng(0)
    x = frame.geometry.x.to_numpy()[first] + rng.uniform(-jitter_m, jitter_m, len(frame))
    y = frame.geometry.y.to_numpy()[first] + rng.uniform(-jitter_m, jitter_m, len(frame))
    frame = frame.set_geometry(gpd.points_from_xy(x, y), crs=frame.crs)
    frame["top"] = np.tile([0.0, 10.0, 30.0][:layers], sites)
    frame["bottom"] = np.tile([10.0, 30.0, 60.0][:layers], sites)
    return replace(base, frame=frame, site="site", depth=("top", "bottom"))


def _whole(samples, folds) -> bool:
    site = samples.sites()
    test_of = {}
    for f in folds:
        for s in np.unique(site[f.test]):
            test_of.setdefault(s, set()).add(f.fold)
    return all(len(v) == 1 for v in test_of.values()) and len(test_of) == len(np.unique(site))


@pytest.mark.parametrize(("split", "kwargs"), [("random", {}), ("blocks", {"block_size_km": 0.3})])
def test_random_and_block_folds_keep_a_site_whole(samples_factory, split, kwargs):
    samples = _profiles(samples_factory, jitter_m=40.0)  # jittered layers may straddle a block edge
    folds = make_folds(samples, split, n_folds=5, **kwargs)
    assert _whole(samples, folds)
    plain = replace(samples, site=None)  # without the site column, random folds split profiles
    assert not _whole(samples, make_folds(plain, "random", n_folds=5))


def test_random_folds_over_sites_stay_balanced(samples_factory):
    samples = _profiles(samples_factory, sites=30)
    sizes = [len(f.test) for f in make_folds(samples, "random", n_folds=5)]
    assert sizes == [18] * 5  # 6 sites of 3 layers in each fold


def test_knndm_folds_keep_a_site_whole(samples_factory, tmp_path):
    samples = _profiles(samples_factory, sites=27, jitter_m=100.0)
    write_tif(tmp_path / "d.tif", np.ones((200, 200), "float32"), 100.0, origin=(X0 - 9000, Y0 + 11000))
    res = knndm_folds(samples, tmp_path / "d.tif", k=3)
    assert _whole(samples, folds_from_ids(samples, res.folds))
    plain = replace(samples, site=None)  # kNNDM's clusters alone split the jittered profiles
    assert not _whole(samples, folds_from_ids(plain, knndm_folds(plain, tmp_path / "d.tif", k=3).folds))


def test_site_folds_takes_the_majority_and_the_smallest_on_a_tie(samples_factory):
    samples = _profiles(samples_factory, sites=2, layers=3)
    assert site_folds(np.array([1, 2, 2, 3, 1, 2]), samples).tolist() == [2, 2, 2, 1, 1, 1]


def test_a_site_without_an_id_or_an_inverted_layer_is_named(samples_factory):
    samples = _profiles(samples_factory, sites=4)
    frame = samples.frame.copy()
    frame.loc[2, "site"] = None
    with pytest.raises(SamplesError, match="site column 'site' is empty"):
        replace(samples, frame=frame)
    frame = samples.frame.copy()
    frame.loc[1, "bottom"] = 5.0
    with pytest.raises(SamplesError, match="layer depths 'top'-'bottom' are missing, negative or inverted"):
        replace(samples, frame=frame)


def test_inner_folds_are_kfold_without_sites_and_keep_sites_whole_with_them():
    from sklearn.model_selection import KFold

    from sptgnn.splits.holdouts import inner_folds

    plain = inner_folds(23, 5, 3)
    for (tr, te), (tr2, te2) in zip(plain, KFold(5, shuffle=True, random_state=3).split(np.zeros(23))):
        np.testing.assert_array_equal(te, te2)
    sites = np.repeat(np.arange(8), 3)
    grouped = inner_folds(len(sites), 5, 3, sites)
    assert len(grouped) == 5
    assert sorted(np.concatenate([te for _, te in grouped]).tolist()) == list(range(24))
    for tr, te in grouped:
        assert not set(sites[tr]) & set(sites[te])
