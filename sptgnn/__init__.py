"""sptgnn: spatio-temporal heterogeneous graph neural networks for soil organic carbon mapping.

The public API (DESIGN.md, "The job, as a user sees it")::

    from sptgnn import SpTGNNRegressor, load_run
    est = SpTGNNRegressor(members=5, calibration="variance").fit(gdf, gdf["soc_g_kg"])
    forecast = est.predict_dist(new_points)      # .mean, .sd, .aleatoric_sd, .epistemic_sd, .quantiles([.05, .95])
    run = est.save("runs/field")                 # the folder `sptgnn train` writes; load_run("runs/field").predict(...)
"""

from sptgnn._version import __version__
from sptgnn.config import Config, ConfigError, load_config
from sptgnn.data.datasets import available_datasets, load_dataset
from sptgnn.data.samples import SamplesError, SoilSamples
from sptgnn.distributions import Forecast, Prediction, QuantileForecast
from sptgnn.estimator import Run, RunError, SpTGNNRegressor, fit_run, load_run
from sptgnn.evaluate.crossval import CrossValidationResult, cross_validate, cross_validate_config
from sptgnn.splits import BlockKFold

__all__ = ["BlockKFold", "Config", "ConfigError", "CrossValidationResult", "Forecast", "Prediction", "QuantileForecast", "Run", "RunError", "SamplesError",
           "SoilSamples", "SpTGNNRegressor", "__version__", "available_datasets", "cross_validate", "cross_validate_config", "fit_run", "load_config",
           "load_dataset", "load_run"]
