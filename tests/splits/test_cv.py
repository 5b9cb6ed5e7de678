"""BlockKFold: the folds of `evaluate.split: blocks`, behind scikit-learn's splitter interface."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import cross_val_score

from sptgnn.splits import BlockKFold, SplitError, block_ids, fold_ids


def test_same_folds_as_the_evaluate_blocks_split(samples_factory):
    s = samples_factory(n=80, seed=5)
    cv = BlockKFold(n_splits=4, block_size_km=0.5, seed=3)
    ids = fold_ids(s, "blocks", 4, 0.5, 3)
    tests = [test for _, test in cv.split(s)]
    assert len(tests) == cv.get_n_splits() == 4
    for k, test in enumerate(tests, start=1):
        np.testing.assert_array_equal(test, np.flatnonzero(ids == k))
    # the same folds from the GeoDataFrame and from plain x/y columns with a CRS
    gdf = s.frame
    plain = pd.DataFrame({"x": gdf.geometry.x, "y": gdf.geometry.y})
    for X, kw in ((gdf, {}), (plain, {"crs": gdf.crs})):
        got = [test for _, test in BlockKFold(4, 0.5, 3, **kw).split(X)]
        for a, b in zip(got, tests):
            np.testing.assert_array_equal(a, b)


def test_no_block_is_split_between_train_and_test(samples_factory):
    s = samples_factory(n=80, seed=6)
    blocks = block_ids(s.metric_coords(), 500.0)
    for train, test in BlockKFold(4, 0.5).split(s):
        assert set(blocks[train]).isdisjoint(blocks[test])
        assert len(train) + len(test) == len(s)


def test_scikit_learn_tools_accept_it():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 10_000, (120, 2))
    X = np.c_[xy, rng.normal(size=120)]
    y = 2 * X[:, 2] + rng.normal(0, 0.1, 120)
    scores = cross_val_score(LinearRegression(), X, y, cv=BlockKFold(n_splits=3, block_size_km=2.0))
    assert scores.shape == (3,)
    assert (scores > 0.9).all()


def test_too_few_blocks_and_missing_coordinates_are_clear_errors(samples_factory):
    s = samples_factory(n=40, seed=1)
    with pytest.raises((SplitError, ValueError), match="block"):
        list(BlockKFold(5, block_size_km=100.0).split(s))
    with pytest.raises(ValueError, match="coordinates"):
        list(BlockKFold(2).split(np.ones((5, 1))))
