"""Kriging-prior features (KpR): a labelled sample's kriging input never depends on its own label."""

import numpy as np
import pytest

from sptgnn.models.kriging_prior import KrigingPriorForest, OrdinaryKrigingFeatures, cross_fitted_kriging_features


def field(n=150, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 5000, (n, 2))
    values = 10 + np.sin(xy[:, 0] / 800) * 3 + np.cos(xy[:, 1] / 900) * 2 + rng.normal(0, 0.3, n)
    return xy, values


def test_a_labelled_samples_kriging_input_does_not_move_with_its_own_label():
    xy, values = field()
    before = cross_fitted_kriging_features(xy, values, folds=5, neighbours=16)
    for i in (0, 37, 149):
        moved = values.copy()
        moved[i] += 50.0
        after = cross_fitted_kriging_features(xy, moved, folds=5, neighbours=16)
        np.testing.assert_array_equal(after[i], before[i])
        assert np.abs(after - before).max() > 1e-3  # the label does reach other samples' inputs


def test_query_features_are_pykrige_ordinary_kriging():
    from pykrige.ok import OrdinaryKriging

    xy, values = field(seed=1)
    query = np.array([[100.0, 200.0], [2500.0, 2500.0]])
    f = OrdinaryKrigingFeatures(neighbours=200).fit(xy, values)
    ok = OrdinaryKriging(xy[:, 0], xy[:, 1], values, variogram_model="exponential", variogram_parameters=f.variogram_,
                         exact_values=False)
    z, ss = ok.execute("points", query[:, 0], query[:, 1])
    np.testing.assert_allclose(f.predict(query), np.c_[z, np.sqrt(ss)], rtol=1e-8)
    # kriging follows the field: better than the mean at held-out points
    xt, vt = field(n=40, seed=9)
    pred = OrdinaryKrigingFeatures(neighbours=32).fit(xy, values).predict(xt)[:, 0]
    assert np.mean((pred - vt) ** 2) < 0.3 * np.var(vt)


def test_constant_values_give_their_mean_and_zero_sd():
    xy, _ = field(n=20)
    out = OrdinaryKrigingFeatures().fit(xy, np.full(20, 4.0)).predict(xy[:3])
    np.testing.assert_array_equal(out, [[4.0, 0.0]] * 3)


def test_kpr_forest_uses_the_kriging_inputs(samples_factory):
    s = samples_factory(n=200, seed=5)
    xy = s.metric_coords()
    s.frame["soc_g_kg"] = 12 + 4 * np.sin((xy[:, 0] - xy[:, 0].min()) / 300)  # a spatial field the covariates miss
    test = np.zeros(len(s), bool)
    test[::4] = True
    train, query = s.subset(~test), s.subset(test)
    model = KrigingPriorForest(trees=60, neighbours=24).fit(train)
    assert model.model_.n_features_in_ == len(train.feature_columns) + 2
    y = query.target()
    kpr = model.predict_dist(query).mean
    from sptgnn.models.baselines import TreeBaseline

    rf = TreeBaseline("random_forest", trees=60).fit(train).predict_dist(query).mean
    assert np.mean((kpr - y) ** 2) < 0.5 * np.mean((rf - y) ** 2)
    # a clone of the estimator refits from scratch (scikit-learn contract)
    from sklearn.base import clone

    assert clone(model).get_params() == model.get_params()
    with pytest.raises(AttributeError):
        clone(model).kriging_


def test_duplicate_locations_are_kriged_as_their_mean():
    from sptgnn.models.kriging import merge_duplicates

    xy, values = field(n=60, seed=4)
    xy2, v2 = np.r_[xy, xy[:20]], np.r_[values, values[:20] + 2.0]
    u, m = merge_duplicates(xy2, v2)
    np.testing.assert_array_equal(u, xy)
    np.testing.assert_allclose(m, np.r_[values[:20] + 1.0, values[20:]])
    f = OrdinaryKrigingFeatures(neighbours=16).fit(xy2, v2)
    ref = OrdinaryKrigingFeatures(neighbours=16).fit(xy, m)
    query = np.array([[1000.0, 1000.0], [4000.0, 300.0]])
    np.testing.assert_allclose(f.predict(query), ref.predict(query))
    assert (f.predict(xy[:5])[:, 1] >= 0).all()
