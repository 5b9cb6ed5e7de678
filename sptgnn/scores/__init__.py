"""Scores of every model, computed the same way (a leaf: it imports only :mod:`sptgnn.distributions`): point metrics
(RMSE, R², ME, Lin's CCC), CRPS, PICP, interval calibration (:mod:`~sptgnn.scores.metrics`) and the uncertainty
figures (:mod:`~sptgnn.scores.figures`). Import the modules themselves: this package file imports nothing.
"""
