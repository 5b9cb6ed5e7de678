"""Deep tabular baselines: RealMLP and TabM with their tuned defaults, through ``pytabkit``, on the same protocol as
the trees (``fit(samples)``, ``predict_dist(samples)``), folds and features.

- **RealMLP** (Holzmüller, Grinsztajn & Steinwart 2024, "Better by Default: Strong Pre-Tuned MLPs and Boosted Trees on
  Tabular Data", NeurIPS): an MLP with robust scaling, smooth clipping, periodic (PBLD) numerical embeddings, a
  diagonal scaling layer and tuned schedules; ``pytabkit.RealMLP_TD_Regressor`` (tuned defaults).
- **TabM** (Gorishniy, Kotelnikov & Babenko 2025, "TabM: Advancing Tabular Deep Learning with Parameter-Efficient
  Ensembling", ICLR): an MLP that trains 32 weight-sharing members at once (BatchEnsemble-style adapters) and averages
  them; ``pytabkit.TabM_D_Regressor`` (defaults).

Both give point forecasts here (scored as XGBoost's: the CRPS of a point forecast is its absolute error). A fifth of the
training samples (a shuffled inner fold; whole sites for profile layers) is their early-stopping set, passed as
``val_idxs``; with ``transform="log1p"`` their log-scale residuals there, which no gradient step saw, give Duan's
smearing factor (:mod:`sptgnn.models.backtransform`). They were used to pick the stopping epoch, so the factor is a
little optimistic; cross-fitting it would cost five more fits.

The ``+fm`` variants add the location foundation model's features, as the trees' do
(:class:`~sptgnn.models.baselines.BaselineInputs`). Install with ``pip install 'sptgnn[tabular]'``.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
from sklearn.base import BaseEstimator

from sptgnn.data.samples import SoilSamples
from sptgnn.distributions import MomentForecast
from sptgnn.errors import UserError
from sptgnn.models.backtransform import duan_smearing, smeared_forecast
from sptgnn.models.baselines import LOCATION_FM_DIMS, BaselineInputs, base_name
from sptgnn.models.protocol import ModelHooks
from sptgnn.splits.holdouts import inner_folds
from sptgnn.threads import tree_threads

DEEP_BASELINES = ("realmlp", "tabm", "realmlp+fm", "tabm+fm")


class DeepTabularMissing(UserError):
    """A deep tabular baseline was asked for without the ``pytabkit`` package."""


def require_pytabkit(name: str) -> None:
    """Check, before any work starts, that ``pytabkit`` is installed for the baseline ``name``.

    Raises:
        DeepTabularMissing: It is not.
    """
    try:
        import pytabkit  # noqa: F401
    except ImportError:
        raise DeepTabularMissing(f"the '{name}' baseline needs pytabkit: pip install 'sptgnn[tabular]', or leave it "
                                 "out of evaluate.baselines") from None


def make_deep_regressor(name: str, seed: int = 0, params: dict | None = None):
    """A fresh ``pytabkit`` regressor for ``realmlp`` or ``tabm`` (``+fm`` is handled by the features), on the CPU
    unless a GPU is present, with the project's thread count; ``params`` override its defaults (``pytabkit``'s own
    names, e.g. ``{"tabm_k": 8, "d_block": 256}``).

    Raises:
        DeepTabularMissing: ``pytabkit`` is not installed.
        ValueError: An unknown name.
    """
    base = base_name(name)
    if base not in ("realmlp", "tabm"):
        raise ValueError(f"unknown deep tabular baseline '{name}'; valid: {', '.join(DEEP_BASELINES)}")
    require_pytabkit(name)
    from pytabkit import RealMLP_TD_Regressor, TabM_D_Regressor

    cls = RealMLP_TD_Regressor if base == "realmlp" else TabM_D_Regressor
    return cls(**({"random_state": seed, "n_threads": tree_threads(), "verbosity": 0} | (params or {})))


class DeepTabularBaseline(BaselineInputs, ModelHooks, BaseEstimator):
    """RealMLP or TabM on the samples' covariates (``+fm``: plus location foundation-model features).

    Args:
        name: One of :data:`DEEP_BASELINES`.
        target: Target column (SOC in g/kg for ``soc_g_kg``).
        transform: ``"none"`` or ``"log1p"`` (fitted on ``log1p(target)``, back-transformed by Duan's smearing).
        seed: Seed of the model and of its early-stopping part.
        fm_dims: Principal components of the ``+fm`` features.
        params: Settings that replace the learner's defaults, in ``pytabkit``'s names (``None``: its defaults).
    """

    def __init__(self, name: str = "realmlp", target: str = "soc_g_kg", transform: str = "none", seed: int = 0,
                 fm_dims: int = LOCATION_FM_DIMS, params: dict | None = None):
        self.name, self.target, self.transform, self.seed, self.fm_dims = name, target, transform, seed, fm_dims
        self.params = params

    def fit(self, samples: SoilSamples, y=None, progress: Callable[[str], None] | None = None) -> "DeepTabularBaseline":
        """Fit on the training samples (their ``target`` column, or ``y`` ``(n,)`` in target units).

        Raises:
            DeepTabularMissing: ``pytabkit`` is not installed.
        """
        self.model_ = make_deep_regressor(self.name, self.seed, self.params)
        y = samples.target(self.target) if y is None else np.asarray(y, dtype=float)
        x = self.features(samples, fitting=True)
        logged = self.transform == "log1p"
        yt = np.log1p(y) if logged else y
        _, val = inner_folds(len(yt), 5, self.seed, samples.sites())[0]
        with warnings.catch_warnings():  # pytabkit's and lightning's notes on their own internals, not the user's
            warnings.filterwarnings("ignore", message=".*(LeafSpec|non-writable).*")
            self.model_.fit(x, np.array(yt), val_idxs=val)
            self.smearing_ = duan_smearing(yt[val] - self.model_.predict(x[val])) if logged else None
        if progress is not None:
            progress("fitted")
        return self

    def predict_dist(self, samples: SoilSamples) -> MomentForecast:
        """Point forecast ``(n,)`` of each query sample in target units (smeared mean with ``log1p``)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            mean = np.asarray(self.model_.predict(self.features(samples)), dtype=float).reshape(-1)
        if self.transform == "log1p":
            return smeared_forecast(mean, self.smearing_)
        return MomentForecast(mean, None)


__all__ = ["DEEP_BASELINES", "DeepTabularBaseline", "DeepTabularMissing", "make_deep_regressor", "require_pytabkit"]
