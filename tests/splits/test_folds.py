"""Cross-validation splits: every scheme keeps test blocks out of training, buffers hold their distance."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from sptgnn.config import ConfigError, load_config
from sptgnn.data.samples import SamplesError
from sptgnn.splits import (
    assign_blocks,
    block_folds,
    block_ids,
    buffer_exclusion,
    fold_ids,
    make_folds,
    planar_coords,
    random_folds,
)


def test_block_ids_are_grid_cells():
    coords = np.array([[0.0, 0.0], [999.0, 999.0], [1000.0, 0.0], [-1.0, 5.0], [1500.0, 1999.0]])
    ids = block_ids(coords, 1000.0)
    assert ids[0] == ids[1]  # same 1 km cell
    assert len({ids[0], ids[2], ids[3], ids[4]}) == 4  # the others are distinct cells (floor, not truncation)
    with pytest.raises(ValueError, match="positive"):
        block_ids(coords, 0.0)
    with pytest.raises(ValueError, match=r"\(n, 2\)"):
        block_ids(np.zeros((3, 3)), 10.0)


def test_random_folds_are_balanced_and_seeded():
    a, b, c = random_folds(103, 5, seed=1), random_folds(103, 5, seed=1), random_folds(103, 5, seed=2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    counts = np.bincount(a)[1:]
    assert counts.max() - counts.min() <= 1
    assert counts.sum() == 103
    with pytest.raises(ValueError, match="cannot fill"):
        random_folds(3, 5)


def test_assign_blocks_greedy_balance_by_hand():
    # block sizes 5, 4, 3, 2, 2 into 2 folds, largest first to the lighter fold (ties: fold 1):
    # 5 -> f1 (5), 4 -> f2 (4), 3 -> f2 (7), 2 -> f1 (7), 2 -> f1 (9): loads 9 and 7
    blocks = np.repeat([0, 1, 2, 3, 4], [5, 4, 3, 2, 2])
    folds = assign_blocks(blocks, 2, seed=0)
    for b in range(5):  # every block whole
        assert len(set(folds[blocks == b])) == 1
    loads = np.bincount(folds)[1:]
    assert list(loads) == [9, 7]
    assert folds[0] == 1
    assert folds[5] == 2
    assert folds[9] == 2
    with pytest.raises(ValueError, match="block_size_km"):
        assign_blocks(np.zeros(10, int), 2)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_block_folds_never_share_a_block_between_train_and_test(seed):
    rng = np.random.default_rng(seed)
    coords = np.r_[rng.uniform(0, 50_000, (300, 2)), rng.normal(20_000, 500, (100, 2))]  # a dense cluster too
    size = 5_000.0
    folds = block_folds(coords, size, 5, seed)
    assert set(folds) == {1, 2, 3, 4, 5}
    cells = np.floor(coords / size)
    for f in range(1, 6):
        test_cells = {tuple(c) for c in cells[folds == f]}
        train_cells = {tuple(c) for c in cells[folds != f]}
        assert not test_cells & train_cells


def test_planar_coords_project_lonlat_to_metres(geo_samples_factory):
    s = geo_samples_factory()
    xy = planar_coords(s)
    assert xy.shape == (len(s), 2)
    # planar distances approximate great-circle ones (equal-area projection, a few % at most over ~7 degrees)
    from sptgnn.geo import chord_to_great_circle_m

    mc = s.metric_coords()
    d_plane = np.linalg.norm(xy[0] - xy[1])
    d_gc = chord_to_great_circle_m(np.linalg.norm(mc[0] - mc[1]))
    assert abs(d_plane - d_gc) / d_gc < 0.03


def test_fold_ids_blocks_on_lonlat_keep_blocks_whole(geo_samples_factory):
    s = geo_samples_factory(n=80)
    folds = fold_ids(s, "blocks", n_folds=4, block_size_km=100.0, seed=3)
    cells = block_ids(planar_coords(s), 100_000.0)
    for c in np.unique(cells):
        assert len(set(folds[cells == c])) == 1


def test_fold_ids_shipped_and_errors(samples_factory):
    s = samples_factory(folds=5)
    np.testing.assert_array_equal(fold_ids(s, "shipped"), s.folds)
    with pytest.raises(SamplesError, match="evaluate.split"):
        fold_ids(samples_factory(folds=None), "shipped")
    with pytest.raises(ValueError, match="unknown split"):
        fold_ids(s, "kmeans")


def test_buffer_exclusion_respects_the_distance():
    rng = np.random.default_rng(0)
    coords = rng.uniform(0, 10_000, (200, 2))
    test = coords[:, 0] < 3_000
    excl = buffer_exclusion(coords, test, 1_000.0)
    assert not excl[test].any()
    d = cdist(coords[~test], coords[test]).min(1)
    np.testing.assert_array_equal(excl[~test], d < 1_000.0)
    assert not buffer_exclusion(coords, test, 0.0).any()


@pytest.mark.parametrize("split", ["random", "blocks", "shipped"])
def test_make_folds_partition_and_buffer(samples_factory, split):
    s = samples_factory(n=120, folds=4)
    folds = make_folds(s, split, n_folds=4, block_size_km=0.5, buffer_km=0.2, seed=0)
    tests = np.concatenate([f.test for f in folds])
    assert sorted(tests) == list(range(len(s)))  # every sample is tested exactly once
    xy = s.metric_coords()
    for f in folds:
        assert not set(f.train) & set(f.test)
        assert not set(f.train) & set(f.excluded)
        assert cdist(xy[f.train], xy[f.test]).min() >= 200.0  # the buffer holds
        assert len(f.train) + len(f.test) + len(f.excluded) == len(s)


def test_make_folds_buffer_on_lonlat_is_great_circle(geo_samples_factory):
    from sptgnn.geo import chord_to_great_circle_m

    s = geo_samples_factory(n=80)
    folds = make_folds(s, "blocks", n_folds=4, block_size_km=150.0, buffer_km=60.0)
    mc = s.metric_coords()
    for f in folds:
        gc = chord_to_great_circle_m(cdist(mc[f.train], mc[f.test]))
        assert gc.min() >= 60_000.0


def test_config_split_keys_default_and_validate():
    cfg = load_config(None)
    assert cfg.evaluate.split == "shipped"
    assert cfg.evaluate.buffer_km == 0.0
    cfg = load_config(None, {"evaluate": {"split": "blocks", "block_size_km": 100, "n_folds": 5}})
    assert cfg.evaluate.block_size_km == 100.0
    with pytest.raises(ConfigError, match="split"):
        load_config(None, {"evaluate": {"split": "kmeans"}})
    with pytest.raises(ConfigError, match="did you mean 'block_size_km'"):
        load_config(None, {"evaluate": {"block_size": 100}})
