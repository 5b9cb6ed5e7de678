"""Prediction of points and rasters from a trained run: fast query attachment, point tables, raster maps."""

from sptgnn.predict.query import QueryInputs, QueryPredictor

__all__ = ["QueryInputs", "QueryPredictor"]
