"""The one protocol every model on the comparison follows (SpTGNN, the tree baselines, regression kriging, the
kriging-prior forest, and a user's own model given to :func:`~sptgnn.evaluate.crossval.cross_validate`).

A model needs :meth:`~ForecastModel.fit` and :meth:`~ForecastModel.predict_dist`. The hooks of :class:`FoldModel` say
what else one fit gives cross-validation; :class:`ModelHooks` is their default (one forecast, no auxiliary target, no
choice recorded, no diagnostics), inherited by the package's models, and :class:`PlainModel` lends them to a model that
has only the two methods. Cross-validation calls the hooks, never probes for them.
"""

from __future__ import annotations

from typing import Callable, Protocol, runtime_checkable

from sklearn.base import BaseEstimator

from sptgnn.data.samples import SoilSamples


@runtime_checkable
class ForecastModel(Protocol):
    """A model on the comparison: fitted on samples, it forecasts new samples.

    ``predict_dist`` returns a forecast with ``mean`` (the mean of the predictive distribution, target units) and
    optionally ``median``, ``sd``, ``mean_log`` (the model's own ``log1p``-scale point prediction) and distribution
    functions (``cdf``, ``quantiles``), all ``(n,)`` for ``n`` samples.
    """

    def fit(self, samples: SoilSamples, progress: Callable[[str], None] | None = None) -> "ForecastModel": ...

    def predict_dist(self, samples: SoilSamples): ...


@runtime_checkable
class FoldModel(ForecastModel, Protocol):
    """A model with the hooks cross-validation reads after each fold's fit."""

    #: Whether :meth:`diagnostics` gives anything (cross-validation keeps the first such model's).
    has_diagnostics: bool

    def forecasts(self, samples: SoilSamples) -> dict:
        """Every forecast of the fit from one prediction pass: ``""`` the model's own, other keys more rows of the
        same fit (scored as ``<model>_<key>``, e.g. SpTGNN's uncalibrated mixture and distilled student)."""

    def target_forecasts(self, samples: SoilSamples) -> dict:
        """Forecasts of auxiliary targets ``{target: forecast}`` (scored as ``<model>@<target>``)."""

    def fit_choices(self) -> dict | None:
        """What the fit chose from its training data alone (``choices_per_fold``), or ``None``."""

    def diagnostics(self, samples: SoilSamples) -> dict | None:
        """Model-internal diagnostics at the samples (SpTGNN: MoE gates, stream usage), or ``None``."""


class ModelHooks:
    """The default hooks of :class:`FoldModel` for a model with :meth:`predict_dist`: one forecast, no auxiliary
    target, no recorded choice, no diagnostics."""

    has_diagnostics = False

    def forecasts(self, samples: SoilSamples) -> dict:
        return {"": self.predict_dist(samples)}

    def target_forecasts(self, samples: SoilSamples) -> dict:
        return {}

    def fit_choices(self) -> dict | None:
        return None

    def diagnostics(self, samples: SoilSamples) -> dict | None:
        return None


class PlainModel(ModelHooks, BaseEstimator):
    """A model with only ``fit`` and ``predict_dist`` (e.g. a user's own) given the default hooks; cloned through
    scikit-learn like the wrapped model."""

    def __init__(self, model=None):
        self.model = model

    def fit(self, samples: SoilSamples, progress: Callable[[str], None] | None = None) -> "PlainModel":
        self.model.fit(samples, progress=progress)
        return self

    def predict_dist(self, samples: SoilSamples):
        return self.model.predict_dist(samples)


def fold_model(model, name: str = "model") -> FoldModel:
    """``model`` itself when it has the hooks, else wrapped in :class:`PlainModel`.

    Raises:
        TypeError: ``model`` lacks ``fit`` or ``predict_dist``.
    """
    if isinstance(model, FoldModel):
        return model
    if isinstance(model, ForecastModel):
        return PlainModel(model)
    raise TypeError(f"model '{name}' ({type(model).__name__}) needs fit(samples, progress=None) and "
                    "predict_dist(samples)")


__all__ = ["FoldModel", "ForecastModel", "ModelHooks", "PlainModel", "fold_model"]
