"""A covariate trend under the graph: SpTGNN models what a random forest on the covariates leaves unexplained.

This is regression kriging's split of a soil property into a covariate trend and a spatially structured residual
(Hengl et al. 2004, Geoderma 120, 75–93; Odeh et al. 1995), with the graph ensemble in the place of ordinary kriging
of the residuals. The trend is a random forest (Breiman 2001) on the samples' tabular covariates (imagery and
environment columns) in the ensemble's standardised target space. The members are trained on the residual
``z − trend``, where the trend of every labelled node is its **out-of-fold** prediction (K-fold inside the training
samples, so a member never sees a trend that was fitted on the node's own label), and a query node's prediction is
``trend(query) + member mean`` with the member's variance unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import skops.io as sio
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold, cross_val_predict

from sptgnn.data.samples import SamplesError, SoilSamples

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

    Attributes:
        columns: Covariate columns the forest reads, in order (fitted).
        oof: Out-of-fold trend of the training samples, ``(num_labelled,)``, standardised target units (fitted).
        oof_r2: Pooled out-of-fold R² of the trend on the training samples (``1 − SSE/SST``; fitted).
    """

    def __init__(self, trees: int = 300, folds: int = 5, seed: int = 0):
        self.trees, self.folds, self.seed = trees, folds, seed
        self.columns: list[str] = []
        self.oof: np.ndarray | None = None
        self.forest: RandomForestRegressor | None = None
        self.oof_r2: float | None = None

    def _forest(self) -> RandomForestRegressor:
        return RandomForestRegressor(self.trees, random_state=self.seed, n_jobs=1)

    def fit(self, samples: SoilSamples, z: np.ndarray) -> "CovariateTrend":
        """Fit the forest on all samples and the out-of-fold trend of each sample.

        Args:
            samples: Training samples (their imagery and environment columns are the covariates).
            z: Standardised target of the samples, ``(num_samples,)``.

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
        cv = KFold(self.folds, shuffle=True, random_state=self.seed)
        self.oof = cross_val_predict(self._forest(), x, z, cv=cv)
        z = np.asarray(z, dtype=np.float64)
        self.oof_r2 = float(1.0 - np.sum((z - self.oof) ** 2) / np.sum((z - z.mean()) ** 2))
        self.forest = self._forest().fit(x, z)
        return self

    def predict(self, samples: SoilSamples) -> np.ndarray:
        """Trend of query samples, ``(num_query,)``, standardised target units."""
        return self.predict_features(_covariates(samples, self.columns))

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        """Trend of raw covariate rows ``(n, len(columns))`` in :attr:`columns` order, ``(n,)``."""
        if self.forest is None:
            raise RuntimeError("CovariateTrend.predict called before fit")
        return self.forest.predict(np.asarray(x, dtype=np.float64))

    def save(self, folder: Path) -> None:
        """Write the fitted trend to ``folder / trend.skops`` (``skops.io``: no pickle)."""
        sio.dump({"columns": list(self.columns), "oof": self.oof, "oof_r2": self.oof_r2, "forest": self.forest,
                  "trees": self.trees, "folds": self.folds, "seed": self.seed}, Path(folder) / TREND_FILE)

    @classmethod
    def load(cls, folder: Path) -> "CovariateTrend":
        """Read a trend written by :meth:`save`; only :data:`TRUSTED_TYPES` and skops' safe defaults are accepted.

        Raises:
            skops.io.exceptions.UntrustedTypesFoundException: The file holds another type (nothing is run).
        """
        state = sio.load(Path(folder) / TREND_FILE, trusted=TRUSTED_TYPES)
        trend = cls(state["trees"], state["folds"], state["seed"])
        trend.columns, trend.oof, trend.oof_r2, trend.forest = state["columns"], state["oof"], state["oof_r2"], state["forest"]
        return trend
