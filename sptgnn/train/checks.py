"""Checks of training samples and settings made before any work, so that a user error comes first and whole."""

from __future__ import annotations

import warnings

import numpy as np

from sptgnn.config import Config
from sptgnn.data.samples import SamplesError, SoilSamples
from sptgnn.train.target import TargetTransform

MIN_TRAIN_SAMPLES = 5


def check_training_samples(samples: SoilSamples, config: Config) -> np.ndarray:
    """The target ``(n,)`` of samples fit to train on, before any work (so that a user error comes first).

    Raises:
        SamplesError: The target is missing or constant; SOC (a target named ``soc…``) is negative; fewer than
            :data:`MIN_TRAIN_SAMPLES` samples; the target transform cannot take the target (e.g. ``log1p`` of a negative).
    """
    target = config.data.target
    y = samples.target(target)
    if np.isnan(y).any():
        raise SamplesError(f"{samples.name}: target '{target}' is missing (NaN) at {int(np.isnan(y).sum())} samples; "
                           "drop those samples or make it an auxiliary target (data.targets after the first)")
    if target.lower().startswith("soc") and (y < 0).any():
        bad = np.flatnonzero(y < 0)
        ids = np.asarray(samples.sample_ids)[bad[:5]].tolist()
        raise SamplesError(f"{samples.name}: target '{target}' has {len(bad)} negative value(s) (SOC cannot be "
                           f"negative), e.g. samples {ids}; fix or drop those rows")
    if len(samples) < MIN_TRAIN_SAMPLES:
        raise SamplesError(f"{samples.name}: {len(samples)} training samples are too few; the ensemble needs at "
                           f"least {MIN_TRAIN_SAMPLES} (a graph and a hold-out for early stopping)")
    if len(y) and np.ptp(y) <= 1e-9 * max(1.0, float(np.abs(y).max())):
        raise SamplesError(f"{samples.name}: target '{target}' is constant ({y[0]:g}) over all {len(y)} samples: there is "
                           "nothing to learn; check the target column (data.target) and its units")
    try:
        TargetTransform(config.data.target_transform).fit(y)
    except ValueError as exc:
        raise SamplesError(f"{samples.name}: target '{target}': {exc}") from None
    aux_target_values(samples, config.data.aux_targets)
    return y


def aux_target_values(samples: SoilSamples, names: list[str]) -> np.ndarray:
    """The auxiliary targets of multi-task learning, ``(n, len(names))``, NaN where a sample lacks one.

    Raises:
        SamplesError: A target is missing from the samples, infinite, or present at fewer than
            :data:`MIN_TRAIN_SAMPLES` samples.
    """
    if not names:
        return np.empty((len(samples), 0))
    values = np.stack([samples.target(t) for t in names], axis=1)
    for t, v in zip(names, values.T):
        if np.isinf(v).any():
            raise SamplesError(f"{samples.name}: auxiliary target '{t}' has infinite values; fix or blank them (NaN)")
        if np.isfinite(v).sum() < MIN_TRAIN_SAMPLES:
            raise SamplesError(f"{samples.name}: auxiliary target '{t}' is present at {int(np.isfinite(v).sum())} "
                               f"training samples, fewer than {MIN_TRAIN_SAMPLES}; drop it from data.targets")
    return values


def clip_neighbours(config: Config, n: int, name: str) -> Config:
    """``config`` with every neighbour count of ``graph`` (``k_spatial``, ``k_spectral``, ``k_elevation``,
    ``elevation_candidates``) at most ``n − 1``, the labelled neighbours a node can have, with a warning; the clipped
    values are what the run stores and uses."""
    g = config.graph
    keys = ("k_spatial", "k_spectral", "k_elevation", "elevation_candidates")
    clipped = {k: n - 1 for k in keys if getattr(g, k) > n - 1}
    if not clipped:
        return config
    warnings.warn(f"{name}: graph {', '.join(f'{k} = {getattr(g, k)}' for k in clipped)} exceed(s) the {n - 1} "
                  f"labelled neighbours {n} samples have; using {n - 1}", stacklevel=3)
    return config.updated(graph=clipped)


__all__ = ["MIN_TRAIN_SAMPLES", "aux_target_values", "check_training_samples", "clip_neighbours"]
