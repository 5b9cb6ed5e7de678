"""Area of applicability (AOA): Meyer & Pebesma (2021), as implemented in CAST's ``trainDI()`` / ``aoa()``.

Meyer, H., Pebesma, E. (2021). Predicting into unknown space? Estimating the area of applicability of spatial
prediction models. Methods in Ecology and Evolution 12, 1620-1633. https://doi.org/10.1111/2041-210X.13650

1. Covariates are standardised with the training mean and sd and multiplied by per-feature weights ``w_f``.
2. ``d̄``: the mean over training points of their mean distance to every other training point.
3. Training DI: each training point's distance to the nearest training point *outside its own cross-validation fold*,
   divided by ``d̄`` (so the DI of a point is judged as the cross-validated model sees it).
4. Threshold: ``Q3 + 1.5 · IQR`` of the training DI (``stats::quantile`` type 7, as ``numpy.quantile``), capped at the
   largest training DI (CAST ≥ 0.7.1; older CAST took ``boxplot.stats(TrainDI)$stats[5]``).
5. A query's DI is its distance to the nearest training point divided by ``d̄``; AOA = 1 where ``DI ≤ threshold``.

Weights (our choice, documented): CAST takes the fitted model's variable importance. The SpTGNN ensemble has no cheap
built-in importance and a permutation importance of the ensemble on its own training nodes would see each node as its
own neighbour, so the weights are the **permutation importance of an XGBoost model on the same covariates**, each fold
scored on its held-out part (``sklearn.inspection.permutation_importance``, increase of MSE), averaged over folds;
negative importances are set to 0 as CAST does, and weights are scaled to a maximum of 1 (the DI is scale-free anyway).
Folds are k-means blocks of the coordinates (spatial, DESIGN.md rule 3). For more than ``max_pairs`` training points,
``d̄`` is estimated on a seeded random subset of points (exact below it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist

from sptgnn.errors import UserError
from sptgnn.splits.holdouts import kmeans_folds

AOA_FORMAT = 1


class AOAError(UserError):
    """An AOA reference that cannot be fitted or read; the message says why."""


def importance_weights(X: np.ndarray, y: np.ndarray, folds: np.ndarray, seed: int = 0, n_repeats: int = 3) -> np.ndarray:
    """Per-feature weights ``(F,)``: out-of-fold permutation importance of XGBoost (increase of MSE), ``≥ 0``, max 1.

    Falls back to equal weights when no feature is important (e.g. a target without signal).
    """
    from sklearn.inspection import permutation_importance
    from xgboost import XGBRegressor

    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    imps = []
    for f in np.unique(folds):
        test = folds == f
        if test.sum() < 2 or (~test).sum() < 2:
            continue
        model = XGBRegressor(n_estimators=200, max_depth=4, learning_rate=0.05, subsample=0.8, n_jobs=1, random_state=seed)
        model.fit(X[~test], y[~test])
        r = permutation_importance(model, X[test], y[test], scoring="neg_mean_squared_error", n_repeats=n_repeats,
                                   random_state=seed, n_jobs=1)
        imps.append(r.importances_mean)
    w = np.clip(np.mean(imps, axis=0), 0, None) if imps else np.ones(X.shape[1])
    return w / w.max() if w.max() > 0 else np.ones(X.shape[1])


@dataclass
class AreaOfApplicability:
    """Fitted AOA reference.

    Attributes:
        features: Covariate names, in column order.
        mean: Training means ``(F,)``.
        scale: Training sds ``(F,)`` (1 where constant).
        weights: Feature weights ``(F,)``.
        train: Weighted standardised training covariates ``(N, F)``.
        mean_distance: ``d̄``, mean pairwise distance of the training points in the weighted space.
        train_di: Cross-validated training DI ``(N,)``.
        threshold: DI threshold of the AOA.
    """

    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    train: np.ndarray
    mean_distance: float
    train_di: np.ndarray
    threshold: float

    @classmethod
    def fit(cls, X: np.ndarray, features: list[str], folds: np.ndarray, weights: np.ndarray | None = None,
            max_pairs: int = 3000, seed: int = 0) -> "AreaOfApplicability":
        """Fit the reference on training covariates.

        Args:
            X: Training covariates ``(N, F)`` in their units.
            features: Their names.
            folds: Cross-validation fold of each training point ``(N,)``.
            weights: Feature weights ``(F,)`` (negatives set to 0); ``None`` for equal weights.
            max_pairs: Above this many points, ``d̄`` is estimated on a random subset of this size.
            seed: Seed of that subset.

        Raises:
            AOAError: Fewer than 2 points, non-finite covariates, fewer than 2 folds, or all weights 0.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) < 2:
            raise AOAError(f"the AOA needs at least 2 training points, got {len(X)}")
        if not np.isfinite(X).all():
            raise AOAError("the AOA's training covariates contain NaN or infinite values")
        folds = np.asarray(folds)
        if len(np.unique(folds)) < 2:
            raise AOAError("the AOA's cross-validated training DI needs at least 2 folds")
        w = np.ones(X.shape[1]) if weights is None else np.clip(np.asarray(weights, dtype=np.float64), 0, None)
        if not w.any():
            raise AOAError("every AOA feature weight is 0")
        mean = X.mean(0)
        sd = X.std(0, ddof=1) if len(X) > 1 else np.ones(X.shape[1])  # R's scale() uses the sample sd
        scale = np.where(sd > 0, sd, 1.0)
        T = (X - mean) / scale * w
        if len(T) > max_pairs:
            sub = np.random.default_rng(seed).choice(len(T), max_pairs, replace=False)
            mean_distance = float(pdist(T[sub]).mean())
        else:
            mean_distance = float(pdist(T).mean())
        if mean_distance <= 0:
            raise AOAError("all training points are identical in the weighted covariate space; the DI is undefined")
        dmin = np.full(len(T), np.inf)
        for f in np.unique(folds):
            inside = folds == f
            dist, _ = cKDTree(T[~inside]).query(T[inside], k=1)
            dmin[inside] = dist
        train_di = dmin / mean_distance
        q1, q3 = np.quantile(train_di, [0.25, 0.75])
        threshold = float(min(q3 + 1.5 * (q3 - q1), train_di.max()))
        return cls(list(features), mean, scale, w, T, mean_distance, train_di, threshold)

    def _tree(self) -> cKDTree:
        if getattr(self, "_kdtree", None) is None:
            self._kdtree = cKDTree(self.train)
        return self._kdtree

    def di(self, X: np.ndarray) -> np.ndarray:
        """Dissimilarity index of query covariates ``(n, F)`` → ``(n,)`` (NaN where a covariate is missing)."""
        X = np.asarray(X, dtype=np.float64)
        if X.shape[1] != len(self.features):
            raise AOAError(f"the AOA expects {len(self.features)} covariates {self.features}, got {X.shape[1]}")
        T = (X - self.mean) / self.scale * self.weights
        ok = np.isfinite(T).all(1)
        out = np.full(len(T), np.nan)
        if ok.any():
            out[ok] = self._tree().query(T[ok], k=1)[0] / self.mean_distance
        return out

    def flag(self, X: np.ndarray) -> np.ndarray:
        """AOA flag ``(n,)`` uint8: 1 inside (``DI ≤ threshold``), 0 outside or with missing covariates."""
        return self.flag_of_di(self.di(X))

    def flag_of_di(self, di: np.ndarray) -> np.ndarray:
        """AOA flag ``(n,)`` uint8 of dissimilarity indices ``(n,)`` already computed (NaN: outside)."""
        return (np.nan_to_num(di, nan=np.inf) <= self.threshold).astype(np.uint8)

    # -- persistence ------------------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the reference as ``.npz`` with its format version."""
        np.savez_compressed(path, format=AOA_FORMAT, features=np.array(self.features, dtype=str), mean=self.mean,
                            scale=self.scale, weights=self.weights, train=self.train, mean_distance=self.mean_distance,
                            train_di=self.train_di, threshold=self.threshold)

    @classmethod
    def load(cls, path: str | Path) -> "AreaOfApplicability":
        """Read a reference written by :meth:`save`.

        Raises:
            AOAError: Unreadable file or another format version.
        """
        try:
            z = np.load(path, allow_pickle=False)
            fmt = int(z["format"])
        except Exception as exc:  # noqa: BLE001 - any read failure means a corrupt file
            raise AOAError(f"{path} is corrupt or not an AOA reference ({type(exc).__name__}); retrain the run") from None
        if fmt != AOA_FORMAT:
            raise AOAError(f"{path} has AOA format {fmt}, this sptgnn reads format {AOA_FORMAT}; retrain the run")
        return cls([str(f) for f in z["features"]], z["mean"], z["scale"], z["weights"], z["train"],
                   float(z["mean_distance"]), z["train_di"], float(z["threshold"]))


def fit_aoa(samples, target: str, n_folds: int = 5, seed: int = 0) -> AreaOfApplicability:
    """AOA reference of training samples: their imagery and environment covariates, XGBoost permutation-importance
    weights and k-means spatial folds (see the module docstring)."""
    features = samples.feature_columns
    if not features:
        raise AOAError(f"{samples.name}: no covariates, so no area of applicability can be computed")
    X = samples.frame[features].to_numpy(dtype=np.float64)
    folds = kmeans_folds(samples.metric_coords(), n_folds, seed)
    weights = importance_weights(X, samples.target(target), folds, seed)
    return AreaOfApplicability.fit(X, features, folds, weights, seed=seed)


__all__ = ["AOAError", "AreaOfApplicability", "fit_aoa", "importance_weights"]
