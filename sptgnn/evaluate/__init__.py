"""Evaluation: metrics (pure), baselines, cross-validation on shared folds, reports and the area of applicability.

Import the modules themselves (``sptgnn.evaluate.crossval``, ``sptgnn.evaluate.metrics``, ...): this package file
imports nothing, so that a fitted run can use :mod:`sptgnn.evaluate.aoa` without pulling in cross-validation.
"""
