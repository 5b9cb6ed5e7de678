"""sptgnn: spatio-temporal heterogeneous graph neural networks for soil organic carbon mapping.

The public API (DESIGN.md, "The job, as a user sees it")::

    from sptgnn import SpTGNNRegressor, load_run
    est = SpTGNNRegressor(members=5, calibration="variance").fit(gdf, gdf["soc_g_kg"])
    forecast = est.predict_dist(new_points)      # .mean, .sd, .aleatoric_sd, .epistemic_sd, .quantiles([.05, .95])
    run = est.save("runs/field")                 # the folder `sptgnn train` writes; load_run("runs/field").predict(...)
"""

from importlib import import_module

from sptgnn._version import __version__

#: Public name -> the module that defines it; imported on first use (PEP 562), so that ``import sptgnn`` and the
#: command line's ``--help`` do not pay for torch, PyG and the learners.
_PUBLIC = {
    "BlockKFold": "sptgnn.splits", "Config": "sptgnn.config", "ConfigError": "sptgnn.config",
    "CrossValidationResult": "sptgnn.evaluate.crossval", "Forecast": "sptgnn.distributions",
    "Prediction": "sptgnn.distributions", "QuantileForecast": "sptgnn.distributions", "Run": "sptgnn.estimator",
    "RunError": "sptgnn.estimator", "SamplesError": "sptgnn.data.samples", "SoilSamples": "sptgnn.data.samples",
    "SpTGNNRegressor": "sptgnn.estimator", "available_datasets": "sptgnn.data.datasets",
    "cross_validate": "sptgnn.evaluate.crossval", "cross_validate_config": "sptgnn.evaluate.crossval",
    "fit_run": "sptgnn.estimator", "load_config": "sptgnn.config", "load_dataset": "sptgnn.data.datasets",
    "load_run": "sptgnn.estimator",
}


def __getattr__(name: str):
    if name in _PUBLIC:
        value = getattr(import_module(_PUBLIC[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sptgnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = sorted([*_PUBLIC, "__version__"])
