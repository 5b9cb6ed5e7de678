"""Evaluation: metrics, baselines and the cross-validation runner."""

from sptgnn.evaluate.crossval import CrossValidationResult, cross_validate
from sptgnn.evaluate.metrics import score

__all__ = ["cross_validate", "CrossValidationResult", "score"]
