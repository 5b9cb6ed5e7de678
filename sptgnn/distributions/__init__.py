"""Predictive distributions (a leaf package: it imports nothing else from sptgnn).

The forecast protocol (:class:`Forecast`: ``cdf``, ``quantiles``, ``crps``, ``logpdf``), SpTGNN's Gaussian mixture
(:class:`Prediction`), the quantile forecast of the quantile baselines (:class:`QuantileForecast`) and the post-hoc
calibrators (:class:`Calibrator`).
"""

from sptgnn.distributions.base import Forecast, check_levels, crps_from_quantiles, level_weights, pinball_loss
from sptgnn.distributions.calibration import METHODS, CalibrationError, Calibrator, PitMap
from sptgnn.distributions.lognormal import LognormalForecast
from sptgnn.distributions.mixture import Prediction
from sptgnn.distributions.moments import MomentForecast
from sptgnn.distributions.quantile import QuantileForecast

__all__ = ["METHODS", "CalibrationError", "Calibrator", "Forecast", "LognormalForecast", "MomentForecast", "PitMap", "Prediction", "QuantileForecast",
           "check_levels", "crps_from_quantiles", "level_weights", "pinball_loss"]
