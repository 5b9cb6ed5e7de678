"""The comparison models, on the ``fit`` / ``predict_dist`` protocol: tree baselines (random forest, XGBoost,
quantile regression forest; :mod:`~sptgnn.models.baselines`), regression kriging (:mod:`~sptgnn.models.kriging`), the
kriging-prior forest (:mod:`~sptgnn.models.kriging_prior`) and the back-transforms of a log-scale fit
(:mod:`~sptgnn.models.backtransform`).

They serve as baselines in :mod:`sptgnn.evaluate` and as teachers in :mod:`sptgnn.train.trend`. Import the modules
themselves: this package file imports nothing.
"""
