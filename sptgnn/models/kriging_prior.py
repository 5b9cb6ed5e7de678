"""Kriging-prior features and the ``kpr_random_forest`` baseline (KpR: Schmidinger et al. 2026, "Kriging prior
regression", Computers and Electronics in Agriculture 243; arXiv 2509.09408).

Each sample gets the ordinary-kriging prediction of the target from the *labelled* samples around it and its kriging
sd, and a learner uses both beside its covariates. A labelled sample's features come from a kriging system that never
saw its own label: the training samples are split into ``folds`` shuffled folds and each fold is kriged from the
others (cross-fitting); a query sample's features come from all the training samples. The variogram is PyKrige's own
weighted least-squares fit (exponential model) on at most ``max_variogram_points`` samples; kriging uses a moving
window of the ``neighbours`` nearest samples and treats the nugget as measurement error (``exact_values=False``), so
that a query at a labelled location is not handed that label; samples sharing a location are kriged as one point with
their mean.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from sptgnn.data.samples import SoilSamples
from sptgnn.models.baselines import TreeBaseline, baseline_features
from sptgnn.models.kriging import merge_duplicates
from sptgnn.splits import planar_coords, planar_crs
from sptgnn.splits.holdouts import inner_folds

KRIGING_FEATURES = ("kriging_mean", "kriging_sd")


class OrdinaryKrigingFeatures:
    """Ordinary kriging (PyKrige) of values at planar coordinates, giving the prediction and sd at query points.

    Args:
        neighbours: Labelled points in each query's moving window.
        max_variogram_points: Points the variogram is fitted on (a seeded random draw beyond that; PyKrige fits on all
            point pairs, ``O(n²)`` memory).
        seed: Seed of that draw.
    """

    def __init__(self, neighbours: int = 64, max_variogram_points: int = 1500, seed: int = 0):
        self.neighbours, self.max_variogram_points, self.seed = neighbours, max_variogram_points, seed

    def fit(self, xy: np.ndarray, values: np.ndarray) -> "OrdinaryKrigingFeatures":
        """Fit the exponential variogram and the kriging system on ``xy`` ``(n, 2)`` (m) and ``values`` ``(n,)``."""
        from pykrige.ok import OrdinaryKriging

        xy, values = merge_duplicates(xy, values)  # repeated locations: one kriging point with their mean
        self.n_, self.constant_, self.xy_, self.values_ = len(values), None, xy, values
        if np.ptp(values) == 0 or len(values) < 3:  # no variogram to fit: every prediction is the mean
            self.constant_ = float(values.mean())
            return self
        rng = np.random.default_rng(self.seed)
        pick = rng.choice(len(values), min(self.max_variogram_points, len(values)), replace=False)
        fitted = OrdinaryKriging(xy[pick, 0], xy[pick, 1], values[pick], variogram_model="exponential", nlags=12,
                                 weight=True, exact_values=False)
        self.variogram_ = [float(p) for p in fitted.variogram_model_parameters]  # psill, range, nugget
        self._system()
        return self

    def _system(self) -> None:
        from pykrige.ok import OrdinaryKriging

        xy, values = self.xy_, self.values_
        # nlags=1: PyKrige still bins all O(n²) pairs into an experimental variogram it does not use once the
        # parameters are given, one full pass per lag (about a minute at 15,000 points with its default 6)
        self.kriging_ = OrdinaryKriging(xy[:, 0], xy[:, 1], values, variogram_model="exponential",
                                        variogram_parameters=self.variogram_, exact_values=False, nlags=1)

    def state(self) -> dict:
        """The fitted kriging as plain arrays and numbers (points, values, variogram), for a run folder."""
        return {"neighbours": self.neighbours, "xy": self.xy_, "values": self.values_, "constant": self.constant_,
                "variogram": getattr(self, "variogram_", None)}

    @classmethod
    def from_state(cls, state: dict) -> "OrdinaryKrigingFeatures":
        """Rebuild the kriging system of :meth:`state` (no fitting)."""
        f = cls(int(state["neighbours"]))
        f.xy_, f.values_ = np.asarray(state["xy"], dtype=float), np.asarray(state["values"], dtype=float)
        f.n_, f.constant_ = len(f.values_), state["constant"]
        if f.constant_ is None:
            f.variogram_ = [float(v) for v in state["variogram"]]
            f._system()
        return f

    def predict(self, xy: np.ndarray) -> np.ndarray:
        """Kriging prediction and sd (the values' units) at ``xy`` ``(m, 2)``, shape ``(m, 2)``."""
        xy = np.asarray(xy, dtype=float)
        if self.constant_ is not None:
            return np.c_[np.full(len(xy), self.constant_), np.zeros(len(xy))]
        z, ss = self.kriging_.execute("points", xy[:, 0], xy[:, 1], n_closest_points=min(self.neighbours, self.n_),
                                      backend="C")
        return np.c_[np.asarray(z, dtype=float), np.sqrt(np.maximum(np.asarray(ss, dtype=float), 0.0))]


def cross_fitted_kriging_features(xy: np.ndarray, values: np.ndarray, folds: int = 10, neighbours: int = 64,
                                  seed: int = 0, sites: np.ndarray | None = None) -> np.ndarray:
    """Kriging features of labelled points, each from a system fitted without its own fold (so without its label;
    with ``sites`` ``(n,)``, without any layer of its profile: :func:`sptgnn.splits.holdouts.inner_folds`).

    Shapes:
        ``xy`` ``(n, 2)`` (m), ``values`` ``(n,)`` → ``(n, 2)``: prediction and sd.
    """
    xy, values = np.asarray(xy, dtype=float), np.asarray(values, dtype=float)
    out = np.empty((len(values), 2))
    for train, test in inner_folds(len(values), folds, seed, sites):
        out[test] = OrdinaryKrigingFeatures(neighbours, seed=seed).fit(xy[train], values[train]).predict(xy[test])
    return out


class KrigingPriorForest(TreeBaseline):
    """``kpr_random_forest``: a random forest on the covariates plus the kriging-prior features
    (:data:`KRIGING_FEATURES`, cross-fitted on the training samples), kriging the (transformed) target.

    Forecast and back-transform as :class:`~sptgnn.models.baselines.TreeBaseline` (tree-spread sd; Duan's smearing
    from out-of-bag residuals with ``log1p``).

    Args:
        target, transform, seed, trees, max_features: As for :class:`~sptgnn.models.baselines.TreeBaseline`.
        neighbours: Kriging neighbours of each point.
        folds: Cross-fitting folds of the training samples' kriging features.
    """

    def __init__(self, target: str = "soc_g_kg", transform: str = "none", seed: int = 0, trees: int | None = None,
                 max_features: float | None = None, neighbours: int = 64, folds: int = 10):
        self.target, self.transform, self.seed, self.trees, self.max_features = target, transform, seed, trees, max_features
        self.neighbours, self.folds = neighbours, folds

    name = "random_forest"  # the learner, for make_regressor

    def fit(self, samples: SoilSamples, y=None, progress: Callable[[str], None] | None = None) -> "KrigingPriorForest":
        """Krige the training targets (cross-fitted for the training samples), then fit the forest."""
        y = samples.target(self.target) if y is None else np.asarray(y, dtype=float)
        yt = np.log1p(y) if self.transform == "log1p" else y
        self.crs_ = planar_crs(samples)
        xy = planar_coords(samples, self.crs_)
        sites = samples.sites()
        self.train_features_ = cross_fitted_kriging_features(xy, yt, self.folds, self.neighbours, self.seed, sites)
        self.kriging_ = OrdinaryKrigingFeatures(self.neighbours, seed=self.seed).fit(xy, yt)
        return super().fit(samples, y, progress)

    def features(self, samples: SoilSamples, fitting: bool = False) -> np.ndarray:
        """Covariates plus kriging features, ``(n, num_features + 2)``: cross-fitted ones while fitting."""
        kriged = self.train_features_ if fitting else self.kriging_.predict(planar_coords(samples, self.crs_))
        return np.c_[baseline_features(samples, False), kriged]


__all__ = ["KRIGING_FEATURES", "KrigingPriorForest", "OrdinaryKrigingFeatures", "cross_fitted_kriging_features"]
