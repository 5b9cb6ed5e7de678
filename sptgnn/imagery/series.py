"""Temporal encoder of multi-date chips: per-date features, then pooling over the dates with date embeddings.

Each date's ``C × H × W`` chip goes through a single-date chip encoder (random convolutional features by default) fitted
on the labelled samples' dates; dates where too few pixels are valid (clouds, gaps) are dropped per sample. Pooling:

- ``mean``: the mean of the per-date features over the valid dates;
- ``harmonic``: the coefficients of a ridge-regularised least-squares fit of each feature over the valid dates on the
  date embedding ``e(t) = [1, cos(2π k d/365.25), sin(2π k d/365.25)]_{k=1..H}`` (``d`` = day of year) — harmonic
  regression as used for phenology and land-cover change (Jakubauskas et al. 2001; Zhu & Woodcock 2014, CCDC). The
  constant is the seasonal mean, the other terms the amplitude and phase of the annual (and sub-annual) cycle. It copes
  with irregular, cloud-gapped acquisitions because it is a fit, not a mean over fixed dates.
"""

from __future__ import annotations

import numpy as np

from sptgnn.data.chips import ChipError, Chips
from sptgnn.imagery.encoders import ChipEncoder

DAYS_PER_YEAR = 365.25


def date_embedding(dates: np.ndarray, harmonics: int) -> np.ndarray:
    """``(T, 1 + 2H)`` harmonic embedding of acquisition dates: ``[1, cos(2πk·doy/365.25), sin(...)]``, k = 1..H."""
    doy = (np.asarray(dates, dtype="datetime64[D]") - np.asarray(dates, dtype="datetime64[Y]")).astype(float)
    cols = [np.ones(len(doy))]
    for k in range(1, harmonics + 1):
        angle = 2 * np.pi * k * doy / DAYS_PER_YEAR
        cols += [np.cos(angle), np.sin(angle)]
    return np.stack(cols, axis=1)


class SeriesEncoder(ChipEncoder):
    """Multi-date chips ``(N, T, C, H, W)`` → ``(N, D)`` or ``(N, D (1 + 2H))`` features.

    Args:
        per_date: Single-date chip encoder applied to every date (fitted on the labelled samples' valid dates).
        pooling: ``"mean"`` or ``"harmonic"`` (see the module docstring).
        harmonics: ``H``, harmonics of the annual cycle in the date embedding.
        min_valid: A date counts for a sample when at least this share of its chip's pixels is valid in every
            multi-date channel (static channels such as a DEM are always valid).
        ridge: Ridge penalty of the harmonic fit (on the non-constant terms), in units of one date's weight.

    Raises:
        ChipError: Single-date chips, or chips without dates.
    """

    name = "series"

    def __init__(self, per_date: ChipEncoder, pooling: str = "harmonic", harmonics: int = 1, min_valid: float = 0.5,
                 ridge: float = 1.0):
        if pooling not in ("mean", "harmonic"):
            raise ValueError(f"series pooling must be 'mean' or 'harmonic', got '{pooling}'")
        self.per_date, self.pooling, self.harmonics = per_date, pooling, harmonics
        self.min_valid, self.ridge = min_valid, ridge

    @staticmethod
    def _check(chips: Chips) -> None:
        if not chips.is_series:
            raise ChipError("the series encoder needs multi-date chips (a source with dates); these have no dates")

    def _date_valid(self, chips: Chips) -> np.ndarray:
        """``(N, T)`` whether each date has at least ``min_valid`` valid pixels in each channel."""
        return (chips.mask.mean((3, 4)) >= self.min_valid).all(2)

    @staticmethod
    def _flat(chips: Chips, keep: np.ndarray | None = None) -> Chips:
        n, t = chips.values.shape[:2]
        v = chips.values.reshape((n * t,) + chips.values.shape[2:])
        m = chips.mask.reshape((n * t,) + chips.mask.shape[2:])
        ids = np.repeat(chips.sample_ids, t)
        flat = Chips(v, m, list(chips.channels), None, ids, chips.resolution)
        return flat if keep is None else flat.subset(np.flatnonzero(keep.reshape(-1)))

    def fit(self, chips: Chips) -> "SeriesEncoder":
        self._check(chips)
        valid = self._date_valid(chips)
        if not valid.any():
            raise ChipError("no labelled sample has a valid date (every date masked); lower series.min_valid")
        self.per_date.fit(self._flat(chips, valid))
        return self

    def encode(self, chips: Chips) -> np.ndarray:
        self._check(chips)
        n, t = chips.values.shape[:2]
        feats = self.per_date.encode(self._flat(chips)).reshape(n, t, -1)        # (N, T, D)
        w = self._date_valid(chips).astype(float)                                 # (N, T)
        if self.pooling == "mean":
            return (feats * w[..., None]).sum(1) / np.maximum(w.sum(1), 1.0)[:, None]
        e = date_embedding(chips.dates, self.harmonics)                           # (T, P)
        penalty = np.diag([0.0] + [self.ridge] * (e.shape[1] - 1))
        out = np.zeros((n, e.shape[1], feats.shape[2]))
        for i in range(n):
            if w[i].sum() == 0:
                continue
            ew = e * w[i][:, None]
            gram = ew.T @ e + penalty + 1e-9 * np.eye(e.shape[1])
            out[i] = np.linalg.solve(gram, ew.T @ feats[i])                        # (P, D) coefficients
        return out.transpose(0, 2, 1).reshape(n, -1)                               # feature-major: D × P

    @property
    def dim(self) -> int:
        return self.per_date.dim * (1 if self.pooling == "mean" else 1 + 2 * self.harmonics)

    @property
    def feature_names(self) -> list[str]:
        if self.pooling == "mean":
            return [f"{f}_mean" for f in self.per_date.feature_names]
        terms = ["c0"] + [f"{kind}{k}" for k in range(1, self.harmonics + 1) for kind in ("cos", "sin")]
        return [f"{f}_{term}" for f in self.per_date.feature_names for term in terms]

    def state(self) -> dict:
        return {"per_date": self.per_date.state()}

    def load_state(self, state: dict) -> "SeriesEncoder":
        self.per_date.load_state(state["per_date"])
        return self
