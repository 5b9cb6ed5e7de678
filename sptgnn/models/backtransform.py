"""Back-transforms of models fitted on ``log1p(target)`` to target units (g/kg for SOC), so that every model is scored
through the same one: the **mean of its predictive distribution** (rule 4 of DESIGN.md; the median is reported beside it
as a named second variant).

``expm1`` of a log-scale prediction is (close to) a *median* in target units, biased low against the mean by a factor
``E[exp(ε)]`` of the log-scale error ``ε``. SpTGNN's ensemble gives the mean of its lognormal mixture; a model with a
point prediction on the log scale gets Duan's (1983) smearing estimate
``E[Y | x] = exp(f(x)) · mean_i exp(r_i) − 1`` from residuals ``r_i`` that did not see their own label (out-of-bag for
a random forest, cross-fitted otherwise: in-sample residuals of a boosted or bagged model are shrunk towards zero and
would hide the bias); a model with a Gaussian predictive distribution on the log scale (regression kriging) the mean of
its lognormal, ``exp(μ + σ²/2) − 1`` (:class:`~sptgnn.distributions.LognormalForecast`).

Duan, N. (1983). Smearing estimate: a nonparametric retransformation method. JASA 78(383), 605–610.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import cross_val_predict

from sptgnn.distributions import MomentForecast
from sptgnn.splits.holdouts import inner_folds


def out_of_fold_residuals(model, x: np.ndarray, y: np.ndarray, seed: int = 0, folds: int = 5,
                          sites: np.ndarray | None = None) -> np.ndarray:
    """Residuals ``y − ŷ`` of a fitted regressor where no prediction saw its own label.

    A random forest fitted with ``oob_score=True`` gives its out-of-bag predictions; any other model, and any model
    of profile layers (``sites`` ``(n,)``: out-of-bag predictions saw the other layers of a profile), is refitted
    (a :func:`~sklearn.base.clone`) on ``folds`` shuffled folds (:func:`sklearn.model_selection.cross_val_predict`;
    with sites, :func:`sptgnn.splits.holdouts.inner_folds` over them).

    Shapes:
        ``x`` ``(n, num_features)``, ``y`` ``(n,)`` → ``(n,)``, in the units ``y`` is given in.
    """
    y = np.asarray(y, dtype=float)
    oob = getattr(model, "oob_prediction_", None)
    if sites is None and oob is not None and np.isfinite(oob).all():
        return y - np.asarray(oob, dtype=float).reshape(-1)
    return y - cross_val_predict(clone(model), x, y, cv=inner_folds(len(y), folds, seed, sites))


def duan_smearing(residuals_log: np.ndarray) -> float:
    """Duan's (1983) smearing factor ``mean_i exp(r_i)`` of log-scale residuals (≥ 1 for residuals centred on 0)."""
    r = np.asarray(residuals_log, dtype=float)
    if r.size == 0 or not np.isfinite(r).all():
        raise ValueError("smearing needs finite residuals")
    return float(np.mean(np.exp(r)))


def smeared_forecast(pred_log: np.ndarray, smearing: float, sd_log: np.ndarray | None = None) -> MomentForecast:
    """Forecast in target units of a model fitted on ``log1p(y)`` with point prediction ``pred_log`` ``(n,)``.

    Returns:
        :class:`~sptgnn.distributions.MomentForecast` with ``mean = exp(pred_log) · smearing − 1`` (Duan's estimate),
        ``median = expm1(pred_log)``, ``mean_log = pred_log`` and, when ``sd_log`` ``(n,)`` is given, the delta-method
        sd ``(1 + mean) · sd_log`` (floored at 1e-6).
    """
    pred_log = np.asarray(pred_log, dtype=float)
    mean = np.exp(pred_log) * smearing - 1.0
    sd = None if sd_log is None else np.maximum((1.0 + mean) * np.asarray(sd_log, dtype=float), 1e-6)
    return MomentForecast(mean, sd, mean_log=pred_log, median=np.expm1(pred_log))


__all__ = ["duan_smearing", "out_of_fold_residuals", "smeared_forecast"]
