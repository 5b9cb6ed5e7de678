"""Spatially correlated realisations of the SOC field: an ensemble member × the residual Gaussian random field.

Realisation ``r`` picks one member ``m_r`` (the same everywhere: the epistemic part is a whole-map alternative) and adds
the conditioned standardised residual field ``Z_r`` (:class:`~sptgnn.accounting.residual_field.ResidualField`) in the
member's Gaussian space: ``g_r(x) = loc_{m_r}(x) + scale_{m_r}(x) · Z_r(x)``, then back-transforms (``expm1`` for a
``log1p`` target). At a single pixel the draws follow the ensemble's (variance-calibrated) mixture; across pixels they
carry the residuals' spatial correlation, so sums and means of pixels get honest uncertainty (Goovaerts 2001,
Geoderma 103, 3–26; DESIGN.md, "Aggregation and carbon accounting"). Isotonic or conformal recalibration maps are not
applied to draws (they act on PIT values of one pixel); variance scaling is.
"""

from __future__ import annotations

import numpy as np

from sptgnn.accounting.residual_field import ResidualField


def realisation_members(num_members: int, seeds: np.ndarray) -> np.ndarray:
    """The member of each realisation ``(R,)``, a function of its seed alone (the same in every window)."""
    return np.array([np.random.default_rng([int(s), 2]).integers(num_members) for s in seeds])


def soc_realisations(run, query, xy_planar: np.ndarray, field: ResidualField, seeds: np.ndarray,
                     window_seed: int = 0):
    """Realisations ``(R, n)`` of the primary target (target units, e.g. g/kg) at ``n`` query locations, and the
    ensemble's :class:`~sptgnn.distributions.Prediction` there (its per-pixel moments).

    Args:
        run: The :class:`~sptgnn.estimator.run.Run`.
        query: The locations as :class:`~sptgnn.estimator.query.QueryInputs` (:func:`query_of_arrays`, or
            ``QueryInputs.from_samples`` for samples).
        xy_planar: The same locations on the residuals' plane (m), ``(n, 2)``.
        field: The fitted residual field.
        seeds: One seed per realisation ``(R,)``.
        window_seed: Seed of the nugget draws at these locations.
    """
    pred, members, z = _soc_field(run, query, xy_planar, field, seeds, window_seed)
    return _member_draws(pred, members, z), pred


def _soc_field(run, query, xy_planar, field, seeds, window_seed):
    """The ensemble's SOC prediction at the query, each realisation's member ``(R,)`` and its standardised residual
    field ``(R, n)``."""
    pred = run.predictor.predict_inputs(query)
    return pred, realisation_members(len(pred.member_loc), seeds), field.realisations(xy_planar, seeds, window_seed)


def _member_draws(pred, members: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Draws ``(R, n)`` in target units: member ``members[r]``'s Gaussian ``loc + scale · z[r]``, back-transformed."""
    g = np.asarray(pred.member_loc)[members] + np.asarray(pred.member_scale)[members] * z
    return np.expm1(g) if pred.log1p else g


def joint_realisations(run, query, xy_planar: np.ndarray, field: ResidualField, seeds: np.ndarray,
                       window_seed: int, target: str, correlation: float = 0.0, scale: float = 1.0):
    """Realisations of SOC ``(R, n)`` and of an auxiliary target of the same run ``(R, n)`` (e.g. bulk density from a
    multi-task head, times ``scale`` for its units), drawn jointly: realisation ``r`` takes the same member ``m_r``
    for both (their epistemic errors move together), and the auxiliary target's standardised residual is
    ``ρ Z_r(x) + √(1 − ρ²) ε`` with ``Z_r`` the SOC residual field and ``ε`` white noise, ``ρ = correlation``.
    Returns the SOC draws, the SOC :class:`~sptgnn.distributions.Prediction` and the auxiliary draws.

    Raises:
        ValueError: ``target`` is not an auxiliary target of the run, or ``correlation`` outside [-1, 1].
    """
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"the residual correlation of SOC and {target} must lie in [-1, 1], got {correlation}")
    aux = run.predictor.predict_inputs(query, target=target)
    pred, members, z = _soc_field(run, query, xy_planar, field, seeds, window_seed)
    white = np.random.default_rng([window_seed, 11]).standard_normal(z.shape)
    e = correlation * z + np.sqrt(1.0 - correlation**2) * white
    return _member_draws(pred, members, z), pred, scale * _member_draws(aux, members, e)


def query_of_arrays(run, values: dict[str, np.ndarray], xy: np.ndarray, dates=None):
    """Query inputs of raw covariates ``{name: (n,)}`` at ``xy`` ``(n, 2)`` in the training CRS (raster windows)."""
    from sptgnn.estimator.query import QueryInputs

    ens = run.ensemble
    return QueryInputs.from_arrays(ens.builder, values, xy, dates, run.elevation, ens.trend)


__all__ = ["joint_realisations", "query_of_arrays", "realisation_members", "soc_realisations"]
