"""Post-hoc recalibration of the ensemble's predictive distribution, fitted on a spatially held-out calibration part
of the training fold (never on the test fold) and saved with the run.

Methods (``calibration.method`` in the config):

* ``variance``: one factor ``c`` that widens (``c > 1``) or narrows the mixture about its mean (every member's
  deviation from the ensemble mean and its sd are multiplied by ``c``, in the Gaussian space), chosen by minimising
  the mixture NLL of the calibration part (variance scaling; Kuleshov et al. 2018 §3.1, Levi et al. 2022).
* ``isotonic``: a monotone map ``R`` of PIT values, ``F'(y) = R(F(y))`` (Kuleshov, Fenner & Ermon 2018, "Accurate
  Uncertainties for Deep Learning Using Calibrated Regression", Algorithm 1), fitted with scikit-learn's
  ``IsotonicRegression`` on pairs ``(F(y_i), rank_i / (n + 1))``. ``R`` is made strictly increasing and continuous by
  joining the centres of the pool-adjacent-violators blocks linearly (with ``(0, 0)`` and ``(1, 1)``), so that the
  recalibrated distribution keeps a density (NLL stays defined) and quantiles ``F⁻¹(R⁻¹(p))`` are unique.
* ``isotonic_central``: the same on central intervals only, symmetric about the median
  (:func:`fit_central_isotonic_map`): fits the interval-based calibration curve directly and cannot shift the median.
* ``conformal``: split-conformal central intervals (Vovk et al. 2005; Lei et al. 2018) with the nonconformity score
  ``s = |F(y) − 0.5|`` (distance of the PIT value from the median, which works for any predictive distribution). For a
  level ``p`` the interval is ``[F⁻¹(0.5 − h), F⁻¹(0.5 + h)]`` with half-width ``h(p)`` taken from the sorted
  calibration scores; knots are placed so that ``h(p) ≥ s₍⌈p(n+1)⌉₎`` for every ``p``, which keeps the finite-sample
  coverage guarantee ``P(y ∈ interval) ≥ p`` for ``p ≤ n/(n + 1)``. Intervals, quantiles and PIT values are defined; a density is not
  (NLL is reported as undefined).
* ``auto`` (the default): the candidates :data:`AUTO_CANDIDATES` are each cross-fitted on the calibration part
  (:data:`AUTO_FOLDS` folds of it: fitted on the others, scored on the held-out one) and the one with the lowest
  held-out calibration error is kept, provided that error is lower than the uncalibrated forecast's and its held-out
  CRPS at most :data:`AUTO_CRPS_TOLERANCE` higher, and provided the uncalibrated forecast's own calibration error there
  exceeds what chance gives a calibrated forecast of the same number of samples (the :data:`AUTO_EVIDENCE` quantile,
  :func:`chance_calibration_error`): a calibration part of 50 samples shows a calibration error of about 0.045 even
  when nothing is wrong, and a calibrator fitted to that noise moves test-fold intervals the wrong way as often as the
  right one. Otherwise the forecast stays uncalibrated (method ``identity``).
  It is then refitted on the whole calibration part. The held-out scores of every candidate are kept in
  :attr:`Calibrator.selection` (and so in the run's and the evaluation's records). Calibration that does no harm.

Every method changes the spread, never the mean in target units (DESIGN.md rule 9): see
:meth:`~sptgnn.distributions.Prediction.scaled` and :meth:`~sptgnn.distributions.Prediction.recalibrated`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.isotonic import IsotonicRegression

from sptgnn.errors import UserError
from sptgnn.distributions.pit import calibration_scores

METHODS = ("none", "auto", "variance", "isotonic", "isotonic_central", "conformal")
AUTO_CANDIDATES = ("variance", "isotonic_central", "isotonic")  # those with a density (NLL stays defined)
AUTO_FOLDS = 5
AUTO_CRPS_TOLERANCE = 0.01  # a candidate may raise the held-out CRPS by at most 1 %
AUTO_EVIDENCE = 0.9  # calibrate only when the raw calibration error exceeds this quantile of chance's at the same n
NULL_DRAWS = 2000


def chance_calibration_error(n: int, quantile: float = AUTO_EVIDENCE, draws: int = NULL_DRAWS, seed: int = 0) -> float:
    """The ``quantile`` of the interval-based calibration error of ``n`` PIT values of a perfectly calibrated forecast
    (uniform on [0, 1]; Monte Carlo with ``draws`` seeded draws): how large the calibration error of a calibration
    part of ``n`` samples gets by chance alone."""
    u = np.random.default_rng(seed).uniform(size=(draws, n))
    return float(np.quantile([calibration_scores(row)[0] for row in u], quantile))


class CalibrationError(UserError):
    """A calibration that cannot be fitted (too few calibration samples, unknown method); the message says what to do."""


@dataclass
class PitMap:
    """Monotone piecewise-linear map of probabilities ``[0, 1] → [0, 1]`` through knots.

    ``symmetric=False``: ``forward(u) = interp(u, x, y)``. ``symmetric=True`` (conformal): the knots map the half-width
    ``|u − 0.5|`` to a central coverage ``c`` and ``forward(u) = 0.5 + sign(u − 0.5) · c / 2``.

    Attributes:
        x: Increasing knots of the input (probabilities, or half-widths in [0, 0.5] when symmetric).
        y: Non-decreasing knots of the output (probabilities, or coverages in [0, 1]).
        symmetric: See above.
        has_density: Whether the map is strictly increasing, so the recalibrated distribution has a density.
    """

    x: np.ndarray
    y: np.ndarray
    symmetric: bool = False
    has_density: bool = True

    def forward(self, u: np.ndarray) -> np.ndarray:
        """Recalibrated probability of each PIT value ``u`` (any shape)."""
        u = np.asarray(u, dtype=np.float64)
        if not self.symmetric:
            return np.interp(u, self.x, self.y)
        c = np.interp(np.abs(u - 0.5), self.x, self.y)
        return 0.5 + np.sign(u - 0.5) * c / 2

    def inverse(self, p: np.ndarray) -> np.ndarray:
        """The PIT value ``u`` whose recalibrated probability is ``p`` (any shape): ``F'⁻¹(p) = F⁻¹(inverse(p))``."""
        p = np.asarray(p, dtype=np.float64)
        if not self.symmetric:
            return np.interp(p, self.y, self.x)
        h = np.interp(np.abs(2 * p - 1), self.y, self.x)
        return 0.5 + np.sign(p - 0.5) * h

    def derivative(self, u: np.ndarray) -> np.ndarray:
        """``d forward / du`` (slope of the segment holding ``u``; for a symmetric map half the coverage slope)."""
        u = np.asarray(u, dtype=np.float64)
        t = np.abs(u - 0.5) if self.symmetric else u
        with np.errstate(divide="ignore", invalid="ignore"):
            slopes = np.where(np.diff(self.x) > 0, np.diff(self.y) / np.diff(self.x), 0.0)
        seg = np.clip(np.searchsorted(self.x, t, side="right") - 1, 0, slopes.size - 1)
        return slopes[seg] / 2 if self.symmetric else slopes[seg]


def fit_isotonic_map(pit: np.ndarray) -> PitMap:
    """Kuleshov et al. (2018) recalibration map from calibration PIT values ``(n,)`` (see the module docstring)."""
    u = np.sort(np.clip(np.asarray(pit, dtype=np.float64), 1e-9, 1 - 1e-9))
    n = u.size
    target = np.arange(1, n + 1) / (n + 1)  # empirical CDF of the PIT values (Weibull plotting position)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(u, target).predict(u)
    values, block = np.unique(fitted, return_inverse=True)
    centres = np.bincount(block, weights=u) / np.bincount(block)
    x, y = np.r_[0.0, centres, 1.0], np.r_[0.0, values, 1.0]
    keep = np.r_[True, np.diff(x) > 0] & np.r_[True, np.diff(y) > 0]
    return PitMap(x=x[keep], y=y[keep])


def fit_conformal_map(pit: np.ndarray) -> PitMap:
    """Split-conformal map from calibration PIT values ``(n,)``, scores ``|u − 0.5|`` (see the module docstring).

    Knots: half-width ``s₍k₎`` ↦ coverage ``(k − 1)/(n + 1)`` for ``k = 1 … n`` and ``0.5 ↦ 1``, so the interval of
    level ``p ≤ n/(n + 1)`` has half-width ``≥ s₍⌈p(n+1)⌉₎`` (the split-conformal quantile). Above ``n/(n + 1)`` the
    split-conformal interval would be the whole line; the map joins ``s₍n₎`` to the raw distribution's tails instead,
    so that the recalibrated distribution keeps finite tails and a finite mean (which calibration must not move,
    :meth:`~sptgnn.distributions.Prediction.recalibrated`); the guarantee holds for levels up to ``n/(n + 1)``.
    """
    s = np.sort(np.minimum(np.abs(np.asarray(pit, dtype=np.float64) - 0.5), 0.5 - 1e-12))
    n = s.size
    x = np.r_[s, 0.5]  # below s₁ the coverage is 0 (np.interp holds the first value)
    y = np.r_[np.arange(n) / (n + 1), 1.0]
    return PitMap(x=x, y=y, symmetric=True, has_density=False)


def fit_central_isotonic_map(pit: np.ndarray) -> PitMap:
    """Symmetric isotonic recalibration of central intervals: the isotonic regression of the empirical coverage
    ``rank_i / (n + 1)`` on the half-width ``h_i = |F(y_i) − 0.5|`` (the interval-based variant of Kuleshov et al.
    2018: it changes interval widths but never moves the median), joined linearly through its block centres from
    ``(0, 0)`` to ``(0.5, 1)``; strictly increasing, so the recalibrated distribution has a density."""
    h = np.sort(np.clip(np.abs(np.asarray(pit, dtype=np.float64) - 0.5), 1e-9, 0.5 - 1e-9))
    n = h.size
    target = np.arange(1, n + 1) / (n + 1)
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(h, target).predict(h)
    values, block = np.unique(fitted, return_inverse=True)
    centres = np.bincount(block, weights=h) / np.bincount(block)
    x, y = np.r_[0.0, centres, 0.5], np.r_[0.0, values, 1.0]
    keep = np.r_[True, np.diff(x) > 0] & np.r_[True, np.diff(y) > 0]
    return PitMap(x=x[keep], y=y[keep], symmetric=True)


@dataclass
class Calibrator:
    """A fitted recalibration, applied to every prediction of the ensemble it was fitted for.

    Attributes:
        method: ``variance``, ``isotonic``, ``isotonic_central``, ``conformal``, or ``identity`` (``auto`` kept the
            uncalibrated forecast).
        factor: Variance-scaling factor ``c`` on the sd (1 for the other methods).
        pit_map: The PIT map of ``isotonic`` / ``conformal``, else ``None``.
        n_samples: Size of the calibration part it was fitted on.
        selection: With ``auto``: ``{"chosen", "folds", "scores": {candidate: {"calibration_error", "crps"}}}``,
            the held-out scores on the calibration part (``identity`` is the uncalibrated forecast); else ``None``.
    """

    method: str
    factor: float = 1.0
    pit_map: PitMap | None = None
    n_samples: int = 0
    selection: dict | None = None

    @classmethod
    def fit(cls, method: str, prediction, y: np.ndarray, min_samples: int = 20) -> "Calibrator":
        """Fit on the calibration part's uncalibrated prediction and observed targets.

        Args:
            method: ``auto``, ``variance``, ``isotonic``, ``isotonic_central`` or ``conformal``.
            prediction: :class:`sptgnn.distributions.Prediction` of the calibration samples by members that did not
                train on them.
            y: Their observed targets, ``(n,)``, target units.
            min_samples: Fewest calibration samples accepted.

        Raises:
            CalibrationError: Unknown method, or fewer than ``min_samples`` calibration samples.
        """
        if method not in METHODS or method == "none":
            raise CalibrationError(f"unknown calibration method '{method}'; valid: {', '.join(METHODS[1:])}")
        y = np.asarray(y, dtype=np.float64)
        n = y.size
        if n < min_samples:
            raise CalibrationError(
                f"the calibration part holds {n} samples, fewer than calibration.min_samples = {min_samples}: raise "
                f"calibration.fraction, use more samples, or set calibration.method: none"
            )
        if method == "auto":
            return cls.select(prediction, y)
        if method == "variance":
            def nll(log_c: float) -> float:
                return -float(np.mean(prediction.scaled(float(np.exp(log_c))).logpdf(y)))

            res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-6})
            return cls(method=method, factor=float(np.exp(res.x)), n_samples=n)
        pit = prediction.raw_cdf(y)
        fitter = {"isotonic": fit_isotonic_map, "isotonic_central": fit_central_isotonic_map, "conformal": fit_conformal_map}
        pit_map = fitter[method](pit)
        return cls(method=method, pit_map=pit_map, n_samples=n)

    @classmethod
    def select(cls, prediction, y: np.ndarray, candidates=AUTO_CANDIDATES, folds: int = AUTO_FOLDS,
               crps_tolerance: float = AUTO_CRPS_TOLERANCE, evidence: float | None = AUTO_EVIDENCE,
               seed: int = 0) -> "Calibrator":
        """``auto``: the candidate that does best on held-out parts of the calibration part, or ``identity``.

        The calibration part is cut at random into ``folds`` folds (seeded); each candidate is fitted on the others and
        applied to the held-out fold, so every calibration sample gets an out-of-fold PIT value and CRPS per candidate.
        A candidate qualifies when its pooled calibration error (interval-based, :func:`calibration_scores`) is lower
        than the uncalibrated forecast's and its mean CRPS at most ``crps_tolerance`` (relative) higher; the qualifying
        one with the lowest calibration error is refitted on the whole part. None qualifying, or an uncalibrated
        calibration error within chance (below the ``evidence`` quantile of :func:`chance_calibration_error` at ``n``):
        ``identity``.

        Args:
            prediction: Uncalibrated :class:`~sptgnn.distributions.Prediction` of the calibration part.
            y: Observed targets ``(n,)``, target units.
            candidates: Methods tried.
            folds: Folds of the cross-fitting (at most ``n``).
            crps_tolerance: Largest relative rise of the held-out CRPS accepted.
            evidence: Quantile of chance's calibration error the uncalibrated one must exceed (``None``: no gate).
            seed: Seed of the fold assignment.
        """
        y = np.asarray(y, dtype=np.float64)
        n = y.size
        fold = np.random.default_rng(seed).permutation(np.arange(n) % max(2, min(folds, n)))
        raw = prediction.uncalibrated()
        scores = {"identity": {"calibration_error": calibration_scores(raw.cdf(y))[0],
                               "crps": float(np.mean(raw.crps(y)))}}
        for method in candidates:
            pit, crps = np.empty(n), np.empty(n)
            for k in np.unique(fold):
                held = fold == k
                cal = cls.fit(method, raw.subset(~held), y[~held], min_samples=2).apply(raw.subset(held))
                pit[held], crps[held] = cal.cdf(y[held]), cal.crps(y[held])
            scores[method] = {"calibration_error": calibration_scores(pit)[0], "crps": float(np.mean(crps))}
        base = scores["identity"]
        chance = None if evidence is None else chance_calibration_error(n, evidence)
        detectable = chance is None or base["calibration_error"] > chance
        ok = [m for m in candidates if scores[m]["calibration_error"] < base["calibration_error"]
              and scores[m]["crps"] <= (1 + crps_tolerance) * base["crps"]] if detectable else []
        chosen = min(ok, key=lambda m: scores[m]["calibration_error"]) if ok else "identity"
        selection = {"chosen": chosen, "folds": int(fold.max() + 1),
                     "chance_calibration_error": None if chance is None else round(chance, 6),
                     "scores": {m: {k: round(v, 6) for k, v in sc.items()} for m, sc in scores.items()}}
        if not detectable:
            selection["reason"] = (f"the uncalibrated calibration error {base['calibration_error']:.3f} of {n} samples is "
                                   f"within chance (the {evidence:g} quantile for a calibrated forecast is {chance:.3f})")
        out = cls(method="identity", n_samples=n) if chosen == "identity" else cls.fit(chosen, raw, y, min_samples=2)
        out.selection = selection
        return out

    def apply(self, prediction):
        """The recalibrated prediction (a :class:`~sptgnn.distributions.Prediction`; ``identity``: the prediction)."""
        if self.method == "identity":
            return prediction
        if self.method == "variance":
            return prediction.scaled(self.factor)
        return prediction.recalibrated(self.pit_map)

    def record(self, requested: str) -> dict:
        """What a fit's records say of it: ``method`` (``identity`` when ``auto`` kept the uncalibrated forecast),
        ``requested`` (the configured method), ``n_samples``, the variance ``factor`` and ``auto``'s ``selection``."""
        out = {"method": self.method, "requested": requested, "n_samples": self.n_samples}
        if self.method == "variance":
            out["factor"] = round(self.factor, 6)
        return out | ({"selection": self.selection} if self.selection else {})

    def state(self) -> dict:
        """Plain-dict state for the run checkpoint (lists and floats only)."""
        m = self.pit_map
        return {
            "method": self.method, "factor": self.factor, "n_samples": self.n_samples, "selection": self.selection,
            "pit_map": None if m is None else {"x": m.x.tolist(), "y": m.y.tolist(), "symmetric": m.symmetric,
                                               "has_density": m.has_density},
        }

    @classmethod
    def from_state(cls, state: dict) -> "Calibrator":
        """Inverse of :meth:`state`."""
        m = state.get("pit_map")
        pit_map = None if m is None else PitMap(x=np.asarray(m["x"]), y=np.asarray(m["y"]), symmetric=m["symmetric"],
                                                has_density=m["has_density"])
        return cls(method=state["method"], factor=float(state["factor"]), pit_map=pit_map, n_samples=int(state["n_samples"]),
                   selection=state.get("selection"))


__all__ = ["AUTO_CANDIDATES", "Calibrator", "chance_calibration_error", "CalibrationError", "PitMap", "fit_isotonic_map", "fit_conformal_map", "METHODS"]
