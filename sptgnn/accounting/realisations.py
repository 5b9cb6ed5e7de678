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
from sptgnn.accounting.stocks import layer_weights


def realisation_members(num_members: int, seeds: np.ndarray) -> np.ndarray:
    """The member of each realisation ``(R,)``, a function of its seed alone (the same in every window)."""
    return np.array([np.random.default_rng([int(s), 2]).integers(num_members) for s in seeds])


def soc_realisations(pred, xy_planar: np.ndarray, field: ResidualField, seeds: np.ndarray,
                     window_seed: int = 0) -> np.ndarray:
    """Realisations ``(R, n)`` of the primary target (target units, e.g. g/kg) at ``n`` query locations.

    Args:
        pred: The ensemble's calibrated :class:`~sptgnn.distributions.Prediction` there (its ``(M, n)`` member moments;
            :meth:`Run.predict_distributions <sptgnn.estimator.run.Run.predict_distributions>` for raster pixels,
            :meth:`Run.predict <sptgnn.estimator.run.Run.predict>` for samples).
        xy_planar: The same locations on the residuals' plane (m), ``(n, 2)``.
        field: The fitted residual field.
        seeds: One seed per realisation ``(R,)``.
        window_seed: Seed of the nugget draws at these locations.
    """
    members = realisation_members(len(pred.member_loc), seeds)
    return member_draws(pred, members, field.realisations(xy_planar, seeds, window_seed))


def member_draws(pred, members: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Draws ``(R, n)`` in target units: member ``members[r]``'s Gaussian ``loc + scale · z[r]``, back-transformed."""
    g = np.asarray(pred.member_loc)[members] + np.asarray(pred.member_scale)[members] * z
    return np.expm1(g) if pred.log1p else g


def joint_realisations(pred, aux, xy_planar: np.ndarray, field: ResidualField, seeds: np.ndarray,
                       window_seed: int, correlation: float = 0.0, scale: float = 1.0):
    """Realisations of SOC ``(R, n)`` and of an auxiliary target of the same run ``(R, n)`` (e.g. bulk density from a
    multi-task head, times ``scale`` for its units), drawn jointly: realisation ``r`` takes the same member ``m_r``
    for both (their epistemic errors move together), and the auxiliary target's standardised residual is
    ``ρ Z_r(x) + √(1 − ρ²) ε`` with ``Z_r`` the SOC residual field and ``ε`` white noise, ``ρ = correlation``.

    Args:
        pred, aux: The run's :class:`~sptgnn.distributions.Prediction` of SOC and of the auxiliary target at the same
            ``n`` locations.
        xy_planar, field, seeds, window_seed: As for :func:`soc_realisations`.

    Returns:
        The SOC draws and the auxiliary draws, each ``(R, n)``.

    Raises:
        ValueError: ``correlation`` outside [-1, 1].
    """
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"the residual correlation of SOC and the auxiliary target must lie in [-1, 1], got {correlation}")
    members = realisation_members(len(pred.member_loc), seeds)
    z = field.realisations(xy_planar, seeds, window_seed)
    white = np.random.default_rng([window_seed, 11]).standard_normal(z.shape)
    e = correlation * z + np.sqrt(1.0 - correlation**2) * white
    return member_draws(pred, members, z), scale * member_draws(aux, members, e)


def profile_realisations(preds: list[dict], target: str, xy_planar: np.ndarray, layers, field: ResidualField,
                         seeds: np.ndarray, window_seed: int, aux: dict | None = None) -> dict[str, np.ndarray]:
    """Realisations of the layers of a pixel's profile, correlated along depth as well as in space: realisation ``r``
    takes one member ``m_r`` for every layer and target, and the residual field of profile layers
    (:class:`~sptgnn.accounting.residual_field.ResidualField` fitted with depths) is drawn at every layer's mid depth in
    one call (:meth:`~sptgnn.accounting.residual_field.ResidualField.profile_realisations`), so the layers of a pixel
    share one conditioned three-dimensional field and one site part.

    Args:
        preds: Per layer, the run's :class:`~sptgnn.distributions.Prediction` of each target at the ``n`` locations
            (``[{target: Prediction}]``, ``L`` entries).
        target: The primary target (SOC) among them.
        xy_planar: The locations on the residuals' plane (m), ``(n, 2)``.
        layers: The ``L`` layers ``(top_cm, bottom_cm)``.
        field: A residual field of profile layers.
        seeds, window_seed: As for :func:`soc_realisations`.
        aux: Auxiliary targets of the same run to draw jointly, ``{name: (correlation, scale)}``: standardised residual
            ``ρ Z_r + √(1 − ρ²) ε`` at each layer (``ε`` white noise, ``ρ`` the correlation), times ``scale`` for
            its units (as :func:`joint_realisations`).

    Returns:
        ``{name: draws (L, R, n)}`` for ``target`` and every auxiliary target, in target units.

    Raises:
        ValueError: A correlation outside [-1, 1], or a residual field fitted without depths.
    """
    aux = aux or {}
    for name, (rho, _) in aux.items():
        if not -1.0 <= rho <= 1.0:
            raise ValueError(f"the residual correlation of SOC and '{name}' must lie in [-1, 1], got {rho}")
    xy_planar = np.asarray(xy_planar, float)
    L = len(layers)
    members = realisation_members(len(preds[0][target].member_loc), seeds)
    z = field.profile_realisations(xy_planar, [(a + b) / 2 for a, b in layers], seeds, window_seed)  # (R, L, n)
    out = {target: np.stack([member_draws(preds[i][target], members, z[:, i]) for i in range(L)])}
    for j, (name, (rho, scale)) in enumerate(aux.items()):
        white = np.random.default_rng([window_seed, 11 + j]).standard_normal(z.shape)
        e = rho * z + np.sqrt(1.0 - rho**2) * white
        out[name] = scale * np.stack([member_draws(preds[i][name], members, e[:, i]) for i in range(L)])
    return out


def interval_mean(draws: np.ndarray, preds: list[dict], target: str, layers, scale: float = 1.0):
    """The thickness-weighted mean over an interval's ``layers`` of per-layer draws ``(L, R, n)`` (``(R, n)``), and
    the naive mean and variance of that mean per location (``(n,)`` each, layers independent) from the per-layer
    predictions ``preds`` of ``target``, times ``scale`` (and ``scale²``) for its units."""
    weights = layer_weights(layers)
    mean = scale * sum(w * np.asarray(p[target].mean) for w, p in zip(weights, preds))
    var = scale**2 * sum((w * np.asarray(p[target].sd)) ** 2 for w, p in zip(weights, preds))
    return np.tensordot(weights, draws, axes=1), mean, var


__all__ = ["interval_mean", "joint_realisations", "member_draws", "profile_realisations", "realisation_members",
           "soc_realisations"]
