"""A covariate trend under the graph: SpTGNN models what a random forest on the covariates leaves unexplained.

This is regression kriging's split of a soil property into a covariate trend and a spatially structured residual
(Hengl et al. 2004, Geoderma 120, 75–93; Odeh et al. 1995), with the graph ensemble in the place of ordinary kriging
of the residuals. The trend is a random forest (Breiman 2001) on the samples' tabular covariates (imagery and
environment columns) in the ensemble's standardised target space. The members are trained on the residual
``z − trend``, where the trend of every labelled node is its **out-of-fold** prediction (K-fold inside the training
samples, so a member never sees a trend that was fitted on the node's own label), and a query node's prediction is
``trend(query) + member mean`` with the member's variance unchanged.

The trend is the ensemble's one *teacher*: ``random_forest`` reads the covariates, as does ``xgboost`` (gradient-boosted
trees with the ``xgboost`` baseline's settings, saved in XGBoost's own JSON model format); ``kpr_random_forest`` also reads
ordinary-kriging predictions of the standardised target from the labelled samples and their kriging sd (kriging-prior
regression, :mod:`sptgnn.models.kriging_prior`), cross-fitted inside each of the K folds so that no labelled node's
trend depends on its own label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import cross_val_predict

from sptgnn.data.samples import SamplesError, SoilSamples
from sptgnn.models.baselines import make_regressor
from sptgnn.models.kriging_prior import OrdinaryKrigingFeatures, cross_fitted_kriging_features
from sptgnn.geo import transform_xy
from sptgnn.splits import planar_coords, planar_crs
from sptgnn.splits.holdouts import inner_folds, spatial_parts

KINDS = ("random_forest", "kpr_random_forest", "xgboost")

TREND_FILE = "trend.skops"
#: Types a trend file may hold beyond skops' defaults: the decision tree arrays of a scikit-learn forest. skops refuses
#: any other type, so loading a trend never runs code planted in the file (no pickle).
TRUSTED_TYPES = ["sklearn.tree._tree.Tree"]


def _covariates(samples: SoilSamples, columns: list[str]) -> np.ndarray:
    missing = [c for c in columns if c not in samples.frame.columns]
    if missing:
        raise SamplesError(f"{samples.name}: the trend needs covariate columns {missing}; add them to the query samples")
    return samples.frame[columns].to_numpy(dtype=np.float64)


class CovariateTrend:
    """Random-forest trend of the standardised target on the tabular covariates.

    Args:
        trees: Number of trees.
        folds: ``K`` of the K-fold that gives the labelled nodes their out-of-fold trend.
        seed: Seed of the forest and the fold assignment.
        kind: ``random_forest`` or ``xgboost`` (covariates), or ``kpr_random_forest`` (covariates plus kriging-prior
            features).
        neighbours: Kriging neighbours (``kpr_random_forest``).

    Attributes:
        columns: Covariate columns the forest reads, in order (fitted).
        oof: Out-of-fold trend of the training samples, ``(num_labelled,)``, standardised target units (fitted).
        oof_r2: Pooled out-of-fold R² of the trend on the training samples (``1 − SSE/SST``; fitted).
    """

    def __init__(self, trees: int = 300, folds: int = 5, seed: int = 0, kind: str = "random_forest",
                 neighbours: int = 64):
        if kind not in KINDS:
            raise ValueError(f"unknown trend kind {kind!r}; valid: {', '.join(KINDS)}")
        self.trees, self.folds, self.seed, self.kind, self.neighbours = trees, folds, seed, kind, neighbours
        self.kriging: OrdinaryKrigingFeatures | None = None
        self.crs: str | None = None  # the training samples' CRS (of query xy)
        self.planar_crs: str | None = None  # the plane kriging works in (None: the CRS is projected, in metres)
        self.columns: list[str] = []
        self.oof: np.ndarray | None = None
        self.kriging_oof: np.ndarray | None = None  # kpr: cross-fitted kriging prediction and sd of each sample
        self.forest: RandomForestRegressor | None = None
        self.oof_r2: float | None = None

    def _forest(self):
        if self.kind == "xgboost":
            return make_regressor("xgboost", self.seed)
        return RandomForestRegressor(self.trees, random_state=self.seed, n_jobs=1)

    def fit(self, samples: SoilSamples, z: np.ndarray, parts: np.ndarray | None = None) -> "CovariateTrend":
        """Fit the forest on all samples and the out-of-fold trend of each sample.

        Args:
            samples: Training samples (their imagery and environment columns are the covariates).
            z: Standardised target of the samples, ``(num_samples,)``.
            parts: Inner fold of each sample, ``(num_samples,)`` (e.g. spatially blocked, :func:`trend_parts`), so the
                out-of-fold trend errs as it will at unsampled places; ``None``: a random ``folds``-fold.

        Raises:
            SamplesError: The samples have no covariate columns, or fewer samples than folds.
        """
        self.columns = samples.feature_columns
        if not self.columns:
            raise SamplesError(f"{samples.name}: model.trend needs covariate columns (imagery or environment); "
                               "set model.trend: none")
        if len(samples) < self.folds:
            raise SamplesError(f"{samples.name}: {len(samples)} samples are too few for a {self.folds}-fold trend")
        x = _covariates(samples, self.columns)
        z = np.asarray(z, dtype=np.float64)
        sites = samples.sites()
        if parts is None:
            cv = inner_folds(len(x), self.folds, self.seed, sites)
        else:
            cv = [(np.flatnonzero(parts != k), np.flatnonzero(parts == k)) for k in np.unique(parts)]
        if self.kind != "kpr_random_forest":
            self.oof = cross_val_predict(self._forest(), x, z, cv=cv)
            self.forest = self._forest().fit(x, z)
        else:
            self.crs, self.planar_crs = samples.crs.to_string(), planar_crs(samples)
            xy = planar_coords(samples, self.planar_crs)
            self.oof = np.empty(len(z))
            for tr, te in cv:  # the kriging features of the held-out fold come from its training part only
                fold_kriging = OrdinaryKrigingFeatures(self.neighbours, seed=self.seed).fit(xy[tr], z[tr])
                inner = None if sites is None else sites[tr]
                forest = self._forest().fit(np.c_[x[tr], self._cross_fitted(xy[tr], z[tr], inner)], z[tr])
                self.oof[te] = forest.predict(np.c_[x[te], fold_kriging.predict(xy[te])])
            self.kriging = OrdinaryKrigingFeatures(self.neighbours, seed=self.seed).fit(xy, z)
            self.kriging_oof = self._cross_fitted(xy, z, sites)
            self.forest = self._forest().fit(np.c_[x, self.kriging_oof], z)
        self.oof_r2 = float(1.0 - np.sum((z - self.oof) ** 2) / np.sum((z - z.mean()) ** 2))
        return self

    def refit(self, samples: SoilSamples, z: np.ndarray, parts: np.ndarray | None = None) -> "CovariateTrend":
        """A new trend of the same kind and settings fitted on other samples (a calibration twin's: the trend it would
        have without the calibration part). Arguments as :meth:`fit`."""
        return CovariateTrend(self.trees, self.folds, self.seed, self.kind, self.neighbours).fit(samples, z, parts)

    def _cross_fitted(self, xy: np.ndarray, z: np.ndarray, sites: np.ndarray | None = None) -> np.ndarray:
        return cross_fitted_kriging_features(xy, z, neighbours=self.neighbours, seed=self.seed, sites=sites)

    def predict(self, samples: SoilSamples) -> np.ndarray:
        """Trend of query samples, ``(num_query,)``, standardised target units."""
        return self.predict_features(_covariates(samples, self.columns), samples.xy())

    def teacher(self, samples: SoilSamples) -> np.ndarray:
        """:meth:`teacher_features` of query samples, ``(num_query, F)``."""
        return self.teacher_features(_covariates(samples, self.columns), samples.xy())

    def predict_features(self, x: np.ndarray, xy: np.ndarray | None = None) -> np.ndarray:
        """Trend of raw covariate rows ``(n, len(columns))`` in :attr:`columns` order at coordinates ``xy`` ``(n, 2)``
        in the training samples' CRS (read by ``kpr_random_forest`` only), ``(n,)``.

        Raises:
            RuntimeError: Not fitted. ValueError: ``kpr_random_forest`` without ``xy``.
        """
        return self.teacher_features(x, xy)[:, 0]

    def teacher_features(self, x: np.ndarray, xy: np.ndarray | None = None) -> np.ndarray:
        """What the teacher knows of query rows, ``(n, F)`` standardised target units: the trend, then for
        ``kpr_random_forest`` the ordinary-kriging prediction and kriging sd (``model.teacher_input`` feeds them to
        the members). Arguments as :meth:`predict_features`.

        Raises:
            RuntimeError: Not fitted. ValueError: ``kpr_random_forest`` without ``xy``.
        """
        if self.forest is None:
            raise RuntimeError("CovariateTrend.predict called before fit")
        x = np.asarray(x, dtype=np.float64)
        if self.kind != "kpr_random_forest":
            return self.forest.predict(x)[:, None]
        if xy is None:
            raise ValueError("a kpr_random_forest trend needs the query coordinates")
        planar = np.asarray(xy, dtype=np.float64) if self.planar_crs is None else transform_xy(xy, self.crs,
                                                                                              self.planar_crs)
        kriging = self.kriging.predict(planar)
        return np.c_[self.forest.predict(np.c_[x, kriging]), kriging]

    @property
    def oof_features(self) -> np.ndarray:
        """:meth:`teacher_features` of the training samples, none depending on the sample's own label: the
        out-of-fold trend and, for ``kpr_random_forest``, the cross-fitted kriging features, ``(num_labelled, F)``."""
        return self.oof[:, None] if self.kriging_oof is None else np.c_[self.oof, self.kriging_oof]

    def save(self, folder: Path) -> None:
        """Write the fitted trend to ``folder / trend.skops`` (``skops.io``: no pickle)."""
        xgb = self.kind == "xgboost"  # XGBoost's own JSON model (no pickle), read back by XGBRegressor.load_model
        sio.dump({"columns": list(self.columns), "oof": self.oof, "oof_r2": self.oof_r2,
                  "forest": None if xgb else self.forest,
                  "xgboost_json": bytes(self.forest.get_booster().save_raw("json")) if xgb else None,
                  "trees": self.trees, "folds": self.folds, "seed": self.seed, "kind": self.kind,
                  "neighbours": self.neighbours, "crs": self.crs, "planar_crs": self.planar_crs,
                  "kriging": None if self.kriging is None else self.kriging.state(),
                  "kriging_oof": self.kriging_oof}, Path(folder) / TREND_FILE)

    @classmethod
    def load(cls, folder: Path) -> "CovariateTrend":
        """Read a trend written by :meth:`save`; only :data:`TRUSTED_TYPES` and skops' safe defaults are accepted.

        Raises:
            skops.io.exceptions.UntrustedTypesFoundException: The file holds another type (nothing is run).
        """
        state = sio.load(Path(folder) / TREND_FILE, trusted=TRUSTED_TYPES)
        trend = cls(state["trees"], state["folds"], state["seed"], state.get("kind", "random_forest"),
                    state.get("neighbours", 64))
        trend.columns, trend.oof, trend.oof_r2, trend.forest = state["columns"], state["oof"], state["oof_r2"], state["forest"]
        if state.get("xgboost_json") is not None:
            trend.forest = make_regressor("xgboost", trend.seed)
            trend.forest.load_model(bytearray(state["xgboost_json"]))
        trend.crs, trend.planar_crs = state.get("crs"), state.get("planar_crs")
        trend.kriging_oof = state.get("kriging_oof")
        if state.get("kriging") is not None:
            trend.kriging = OrdinaryKrigingFeatures.from_state(state["kriging"])
        return trend


def trend_parts(coords_m: np.ndarray, split: str, folds: int, num_blocks: int, seed: int) -> np.ndarray | None:
    """Inner folds of the trend's out-of-fold predictions (``model.trend_split``): ``None`` for a random K-fold, or
    ``folds`` spatially blocked parts of k-means blocks (:func:`sptgnn.splits.holdouts.spatial_parts`) for
    ``"blocks"``, ``(num_samples,)``; ``None`` too when there are fewer than ``2 · folds`` samples to cut."""
    if split != "blocks" or len(coords_m) < 2 * folds:
        return None
    return spatial_parts(coords_m, folds, num_blocks, seed)


def fit_trend(model, samples: SoilSamples, z: np.ndarray, seed: int, parts: np.ndarray | None) -> CovariateTrend | None:
    """The ensemble's teacher from the ``model`` config section: the ``trend`` kind, or for ``auto`` the candidate
    with the best out-of-fold R², kept only when that reaches ``trend_min_r2``; ``None`` for ``trend: none``."""
    if model.trend == "none":
        return None
    kinds = model.trend_candidates if model.trend == "auto" else [model.trend]
    fitted = [CovariateTrend(model.trend_trees, seed=seed, kind=k).fit(samples, z, parts) for k in kinds]
    best = max(fitted, key=lambda t: t.oof_r2)
    if model.trend == "auto" and best.oof_r2 < model.trend_min_r2:
        return None  # the covariates explain too little: the members model the target itself
    return best
