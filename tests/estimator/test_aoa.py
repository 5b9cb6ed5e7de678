"""Area of applicability against a hand computation of CAST's trainDI/aoa steps."""

from __future__ import annotations


import numpy as np
import pytest

from sptgnn.estimator.aoa import AOAError, AreaOfApplicability, fit_aoa, importance_weights


def _hand(X, folds, w, Q):
    """Loops over points, as CAST's trainDI does: scale with the sample sd, weight, mean of each point's mean distance
    to the others, CV nearest distance, threshold Q3 + 1.5 IQR (R quantile type 7) capped at the maximum."""
    n, f = X.shape
    mu = X.mean(0)
    sd = np.array([np.sqrt(sum((X[i, j] - mu[j]) ** 2 for i in range(n)) / (n - 1)) for j in range(f)])
    T = (X - mu) / sd * w
    dist = lambda a, b: float(np.sqrt(((a - b) ** 2).sum()))  # noqa: E731
    avg = [np.mean([dist(T[i], T[j]) for j in range(n) if j != i]) for i in range(n)]
    dbar = float(np.mean(avg))
    dmin = [min(dist(T[i], T[j]) for j in range(n) if folds[j] != folds[i]) for i in range(n)]
    di = np.array(dmin) / dbar
    s = np.sort(di)

    def q7(p):
        h = (n - 1) * p
        lo = int(np.floor(h))
        return s[lo] + (h - lo) * (s[min(lo + 1, n - 1)] - s[lo])

    thr = min(q7(0.75) + 1.5 * (q7(0.75) - q7(0.25)), s[-1])
    TQ = (Q - mu) / sd * w
    qdi = np.array([min(dist(t, T[j]) for j in range(n)) for t in TQ]) / dbar
    return dbar, di, thr, qdi


def test_matches_hand_computation():
    rng = np.random.default_rng(3)
    X = np.c_[rng.normal(10, 2, 12), rng.uniform(0, 100, 12), rng.normal(0, 1, 12)]
    X[5] = [30, 400, 5]  # an outlier among the training points
    folds = np.array([0, 1, 2] * 4)
    w = np.array([1.0, 0.5, 0.0])
    Q = np.array([[10, 50, 0], [40, 900, 3], [11, 20, -9]])
    aoa = AreaOfApplicability.fit(X, ["a", "b", "c"], folds, w)
    dbar, di, thr, qdi = _hand(X, folds, w, Q)
    assert aoa.mean_distance == pytest.approx(dbar)
    np.testing.assert_allclose(aoa.train_di, di)
    assert aoa.threshold == pytest.approx(thr)
    np.testing.assert_allclose(aoa.di(Q), qdi)
    assert aoa.flag(Q).tolist() == (qdi <= thr).astype(int).tolist()
    assert aoa.flag(Q)[1] == 0  # far outside the training covariates
    assert aoa.flag(Q)[2] == 1  # only the zero-weight covariate is far: inside


def test_threshold_capped_at_max_and_negative_weights():
    X = np.array([[0.0], [1.0], [2.0], [3.0]])
    aoa = AreaOfApplicability.fit(X, ["a"], np.array([0, 1, 0, 1]), np.array([-1.0]) + 2)
    assert aoa.threshold <= aoa.train_di.max()
    with pytest.raises(AOAError, match="every AOA feature weight is 0"):
        AreaOfApplicability.fit(X, ["a"], np.array([0, 1, 0, 1]), np.array([-1.0]))
    with pytest.raises(AOAError, match="at least 2 folds"):
        AreaOfApplicability.fit(X, ["a"], np.zeros(4))
    assert AreaOfApplicability.fit(X, ["a"], np.array([0, 1, 0, 1])).flag(np.array([[np.nan]])).tolist() == [0]


def test_save_load_roundtrip_and_version(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    aoa = AreaOfApplicability.fit(X, ["a", "b", "c"], np.arange(20) % 4)
    aoa.save(tmp_path / "aoa.npz")
    back = AreaOfApplicability.load(tmp_path / "aoa.npz")
    Q = rng.normal(size=(5, 3)) * 3
    np.testing.assert_allclose(back.di(Q), aoa.di(Q))
    assert back.features == ["a", "b", "c"]
    assert back.threshold == aoa.threshold
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(AOAError, match="corrupt"):
        AreaOfApplicability.load(tmp_path / "bad.npz")


def test_importance_weights_find_the_informative_feature():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = 3 * X[:, 1] + rng.normal(0, 0.1, 200)
    w = importance_weights(X, y, np.arange(200) % 4)
    assert w.argmax() == 1
    assert w.max() == 1.0
    assert (w >= 0).all()
    assert w[0] < 0.1


def test_fit_aoa_on_samples(samples):
    aoa = fit_aoa(samples, "soc_g_kg", n_folds=4)
    assert aoa.features == samples.feature_columns
    X = samples.frame[aoa.features].to_numpy()
    # training points themselves are at DI 0: inside
    assert aoa.flag(X).all()
    assert not aoa.flag(X * 10).all()
