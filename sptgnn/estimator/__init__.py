"""The fitted-model owner: :class:`SpTGNNRegressor` (scikit-learn estimator) and :class:`Run` (the saved artefact)."""

from sptgnn.estimator.regressor import SpTGNNRegressor
from sptgnn.estimator.run import Run, RunError, fit_run, load_run

__all__ = ["Run", "RunError", "SpTGNNRegressor", "fit_run", "load_run"]
