"""Prediction products of a trained run: point tables (:mod:`~sptgnn.predict.points`) and raster maps tiled over a
covariate stack (:mod:`~sptgnn.predict.raster`, :mod:`~sptgnn.predict.tiles`). The query path they call lives with the
fitted model, in :mod:`sptgnn.estimator.query`."""
