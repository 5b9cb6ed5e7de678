"""Training: one member, the deep ensemble, target transforms and the spatial hold-out."""

from sptgnn.train.ensemble import DeepEnsemble
from sptgnn.train.trainer import TrainResult, train_member

__all__ = ["DeepEnsemble", "train_member", "TrainResult"]
