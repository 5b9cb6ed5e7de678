"""`SpTGNNRegressor`: the SpTGNN deep ensemble behind scikit-learn's estimator contract.

``__init__`` only stores flat keyword hyper-parameters (``get_params``/``set_params``/``clone``/``GridSearchCV`` work);
:meth:`~SpTGNNRegressor.to_config` turns them into the YAML :class:`~sptgnn.config.Config` the CLI reads, and
:meth:`~SpTGNNRegressor.from_config` goes back. Like verde's gridders it needs coordinates: ``X`` is a GeoDataFrame of
points, a DataFrame with coordinate columns and a CRS, or an array whose first two columns are x and y.
"""

from __future__ import annotations

import sys
import time
from typing import Sequence

import numpy as np
from pydantic import ValidationError
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from sptgnn.config import Config, ConfigError, format_config_error
from sptgnn.data.samples import SoilSamples
from sptgnn.distributions import Prediction
from sptgnn.estimator.inputs import to_samples
from sptgnn.estimator.run import Run, fit_run
from sptgnn.models.protocol import ModelHooks
from sptgnn.train.interpret import stream_usage

_D = Config()  # the schema's defaults: the estimator's defaults are the config's, written once
FLAT = {  # estimator parameter -> (config section, field)
    "target": ("data", "target"), "target_transform": ("data", "target_transform"), "targets": ("data", "targets"),
    "relations": ("graph", "relations"), "k_spatial": ("graph", "k_spatial"), "k_spectral": ("graph", "k_spectral"),
    "k_elevation": ("graph", "k_elevation"),
    "hidden": ("model", "hidden"), "num_layers": ("model", "num_layers"), "num_experts": ("model", "num_experts"),
    "top_k": ("model", "top_k"), "heads": ("model", "heads"), "dropout": ("model", "dropout"),
    "label_inputs": ("model", "label_inputs"), "trend": ("model", "trend"), "gating": ("model", "gating"),
    "loss": ("loss", "kind"), "moran_weight": ("loss", "moran_weight"),
    "members": ("train", "members"), "epochs": ("train", "epochs"), "lr": ("train", "lr"),
    "patience": ("train", "patience"), "batch_size": ("train", "batch_size"), "seed": ("train", "seed"),
    "threads": ("train", "threads"),
    "calibration": ("calibration", "method"),
}


def _default(name: str):
    section, field = FLAT[name]
    value = getattr(getattr(_D, section), field)
    return tuple(value) if isinstance(value, list) else value


class SpTGNNRegressor(ModelHooks, RegressorMixin, BaseEstimator):
    """Deep ensemble of spatio-temporal heterogeneous graph networks with calibrated predictive distributions.

    Each training sample is a labelled node of a graph with spatial, spectral and elevation relations; a query attaches
    to its labelled neighbours only (DESIGN.md rule 1). Members fuse the imagery, environment, position and time streams
    with a sparse top-k mixture of experts, pass messages by relational GATv2 attention, and predict a mean and a
    variance; their mixture splits aleatoric from epistemic uncertainty (Lakshminarayanan et al. 2017).

    Args:
        members: Ensemble size ``M``.
        hidden, num_layers, num_experts, top_k, heads, dropout, label_inputs, trend, gating: ``model``
            section (``gating``: ``topk_softmax`` or ``dirichlet``).
        relations, k_spatial, k_spectral, k_elevation: ``graph`` section (relations and in-degree per relation).
        threads: CPU threads of torch, BLAS and trees (``None``: the policy of :mod:`sptgnn.threads`, 1 thread below
            50,000 samples unless ``$SPTGNN_THREADS`` or ``$OMP_NUM_THREADS`` says otherwise).
        targets: Multi-task targets, the primary first (``data.targets``), e.g. ``("soc_g_kg", "ph", "clay_percent")``;
            ``None``: ``target`` alone.
        loss: ``gaussian_nll``, ``beta_nll`` or ``mse_warmup``; moran_weight: λ of the Moran's I penalty.
        epochs, lr, patience, batch_size, seed: ``train`` section.
        target: Name of the target (``soc_g_kg``: SOC in g/kg); with ``y=None`` in :meth:`fit` the column of ``X``.
        target_transform: ``none`` or ``log1p``.
        calibration: Post-hoc recalibration: ``auto`` (default: the candidate that lowers the held-out calibration error
            of the calibration part without raising its CRPS by more than 1 %, else none), ``none``, ``variance``,
            ``isotonic``, ``isotonic_central``, ``conformal``. Never moves the mean (DESIGN.md rule 9).
        coords: ``(x, y)`` column names when ``X`` is a DataFrame (default ``("x", "y")``).
        crs: CRS of plain coordinates (DataFrame, array), e.g. ``"EPSG:4326"``. ``X`` may also be
            :class:`~sptgnn.data.samples.SoilSamples` (from :func:`sptgnn.load_dataset`), whose streams are used.
        imagery_columns, environment_columns: Feature columns per stream; both ``None``: every other numeric column
            is an environment covariate.
        elevation_column: Column of elevation (m) for the elevation relation (left out without one).
        date_column: Column of sampling dates for the time stream.
        id_column: Column of sample ids.
        config: A base :class:`~sptgnn.config.Config` for every setting without a flat parameter (imagery encoders,
            calibration details, ...); the flat parameters override it.
        area_of_applicability: Fit the AOA reference at fit time (maps need it; cross-validation does not).
        verbose: Print a line per trained member on stderr.

    Attributes:
        run_: The fitted :class:`~sptgnn.estimator.run.Run`.
        feature_groups_: Feature columns per stream, ``{"imagery": [...], "environment": [...]}``.
        n_features_in_: Number of columns of ``X`` at fit.
        fit_seconds_: Wall-clock seconds of :meth:`fit`.
        choices_: What the fit decided from the training data alone: ``trend`` (the teacher used: ``none``,
            ``random_forest`` or ``kpr_random_forest``; ``auto`` decides per fit), ``trend_oof_r2`` and ``calibration``
            (the calibration method kept: ``identity`` when ``auto`` found none that helps, ``none`` when not asked).

    Example:
        >>> est = SpTGNNRegressor(members=5, calibration="variance").fit(gdf, gdf["soc_g_kg"])  # doctest: +SKIP
        >>> forecast = est.predict_dist(new_points)  # .mean, .sd, .quantiles([0.05, 0.95]), .crps(y)  # doctest: +SKIP
    """

    has_diagnostics = True  # MoE gates and stream usage (cross-validation keeps them)

    def __init__(self, members=_default("members"), hidden=_default("hidden"), num_layers=_default("num_layers"),
                 num_experts=_default("num_experts"), top_k=_default("top_k"), heads=_default("heads"),
                 dropout=_default("dropout"), label_inputs=_default("label_inputs"), trend=_default("trend"),
                 gating=_default("gating"), relations=_default("relations"), k_spatial=_default("k_spatial"), k_spectral=_default("k_spectral"),
                 k_elevation=_default("k_elevation"), loss=_default("loss"), moran_weight=_default("moran_weight"),
                 epochs=_default("epochs"), lr=_default("lr"), patience=_default("patience"),
                 batch_size=_default("batch_size"), seed=_default("seed"), target=_default("target"),
                 target_transform=_default("target_transform"), calibration=_default("calibration"),
                 targets=_default("targets"), threads=_default("threads"),
                 coords=None, crs=None, imagery_columns=None, environment_columns=None, elevation_column=None,
                 date_column=None, id_column=None, config=None, area_of_applicability=True, verbose=False):
        self.members, self.hidden, self.num_layers, self.num_experts = members, hidden, num_layers, num_experts
        self.top_k, self.heads, self.dropout, self.label_inputs, self.trend = top_k, heads, dropout, label_inputs, trend
        self.gating = gating
        self.relations, self.k_spatial, self.k_spectral, self.k_elevation = relations, k_spatial, k_spectral, k_elevation
        self.loss, self.moran_weight = loss, moran_weight
        self.epochs, self.lr, self.patience, self.batch_size, self.seed = epochs, lr, patience, batch_size, seed
        self.target, self.target_transform, self.calibration = target, target_transform, calibration
        self.targets, self.threads = targets, threads
        self.coords, self.crs = coords, crs
        self.imagery_columns, self.environment_columns = imagery_columns, environment_columns
        self.elevation_column, self.date_column, self.id_column = elevation_column, date_column, id_column
        self.config, self.area_of_applicability, self.verbose = config, area_of_applicability, verbose

    # -- config <-> parameters -------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: Config, **overrides) -> "SpTGNNRegressor":
        """The estimator of a run configuration; ``overrides`` set parameters. ``data`` (where samples come from) is
        the caller's: fit on :func:`sptgnn.data.tables.load_samples` of it, whose streams the estimator then takes."""
        params = {}
        for name, (section, field) in FLAT.items():
            value = getattr(getattr(config, section), field)
            params[name] = tuple(value) if isinstance(value, list) else value
        return cls(**(params | {"config": config} | overrides))

    def to_config(self) -> Config:
        """The whole :class:`~sptgnn.config.Config` these parameters stand for (``config`` with the flat parameters
        written into their sections).

        Raises:
            ConfigError: A parameter value the config schema does not accept (the message names it).
        """
        base = self.config if self.config is not None else Config()
        if not isinstance(base, Config):
            raise ConfigError(f"config must be a sptgnn.config.Config (e.g. load_config('run.yaml')), got {type(base).__name__}")
        sections: dict[str, dict] = {}
        for name, (section, field) in FLAT.items():
            value = getattr(self, name)
            sections.setdefault(section, {})[field] = list(value) if isinstance(value, tuple) else value
        sections["data"]["target"] = self._primary()
        try:
            return base.updated(**sections)
        except ValidationError as exc:
            raise ConfigError(format_config_error(exc, "SpTGNNRegressor")) from None

    def _primary(self) -> str:
        """The primary target: ``target``, or the first of ``targets`` when ``target`` was left at its default."""
        return self.targets[0] if self.targets and self.target == _default("target") else self.target

    # -- fit / predict ---------------------------------------------------------------------------------------------
    def _samples(self, X, y=None, groups: dict[str, Sequence[str]] | None = None):
        g = groups or {"imagery": self.imagery_columns, "environment": self.environment_columns}
        aux = list(self.targets or [])[1:]
        return to_samples(X, y, target=self._primary(), coords=self.coords, crs=self.crs, imagery=g["imagery"],
                          environment=g["environment"], elevation=self.elevation_column, date=self.date_column,
                          id_column=self.id_column, aux_targets=aux)

    def fit(self, X, y=None, progress=None) -> "SpTGNNRegressor":
        """Train the ensemble on every sample of ``X`` (the labelled nodes) and fit its calibration and AOA reference.

        Args:
            X: Training samples (see the class docstring), ``(num_samples, …)``.
            y: Targets ``(num_samples,)`` in target units (SOC in g/kg), or ``None`` to read column ``target`` of ``X``.
            progress: Called with ``"member m/M"`` after each trained member.

        Raises:
            SamplesError: Missing coordinates, CRS or columns; NaN features or targets; negative SOC.
            ConfigError: A parameter the config schema rejects.
            CalibrationError: Too few samples for the calibration part.
        """
        start = time.perf_counter()
        config = self.to_config()
        samples = self._samples(X, y)

        def member_done(m: int) -> None:
            if self.verbose:
                print(f"[{time.perf_counter() - start:6.1f} s] member {m + 1}/{config.train.members} trained",
                      file=sys.stderr, flush=True)
            if progress is not None:
                progress(f"member {m + 1}/{config.train.members}")

        self.run_ = fit_run(config, samples, progress=member_done, aoa=self.area_of_applicability)
        self.feature_groups_ = {k: list(v) for k, v in samples.feature_groups.items()}
        plain = not isinstance(X, SoilSamples) and len(np.shape(X)) == 2
        self.n_features_in_ = int(np.shape(X)[1]) if plain else len(samples.feature_columns)
        self.fit_seconds_ = time.perf_counter() - start
        self.choices_ = self.run_.choices
        return self

    def predict_dist(self, X, target: str | None = None, student: bool = False) -> Prediction:
        """Predictive distribution of ``X``: ``.mean``, ``.sd``, ``.aleatoric_sd``, ``.epistemic_sd`` ``(n,)``,
        ``.quantiles(levels)``, ``.interval(level)``, ``.cdf(y)``, ``.crps(y)``, ``.logpdf(y)`` (target units), of
        the primary target or, with ``target``, of one of ``targets`` (multi-task); ``student``: from the distilled
        fast student (``config.student.enabled``).

        Raises:
            ValueError: ``target`` was not trained, or ``X`` has another number of features.
        """
        check_is_fitted(self, "run_")
        if not isinstance(X, SoilSamples) and len(np.shape(X)) == 2 and not hasattr(X, "columns") \
                and np.shape(X)[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but SpTGNNRegressor is expecting {self.n_features_in_} "
                             "features as input (x, y, then the covariates it was fitted on)")
        return self.run_.predict(self._samples(X, groups=self.feature_groups_), target=target, student=student)

    def target_forecasts(self, X) -> dict[str, Prediction]:
        """Forecasts of the auxiliary targets (``targets`` after the first), ``{target: Prediction}``; cross-validation
        scores each against that target as ``<model>@<target>``. Empty for one target."""
        check_is_fitted(self, "run_")
        predictor = self.run_.predictor
        q = predictor.inputs(self._samples(X, groups=self.feature_groups_))
        return {t: predictor.predict_inputs(q, target=t) for t in self.run_.targets[1:]}

    def predict(self, X, return_std: bool = False, quantiles=None):
        """Predicted mean ``(n,)`` in target units (the mixture mean, through the target's back-transform).

        Args:
            X: Query samples with the training columns.
            return_std: Also return the total predictive sd ``(n,)`` (aleatoric and epistemic).
            quantiles: Levels in (0, 1): return the quantiles ``(n, L)`` instead (as quantile-forest does).

        Raises:
            ValueError: Both ``return_std`` and ``quantiles``, or a level outside (0, 1).
        """
        if return_std and quantiles is not None:
            raise ValueError("ask for either return_std=True or quantiles=[...], not both")
        pred = self.predict_dist(X)
        if quantiles is not None:
            return pred.quantiles(quantiles)
        return (pred.mean, pred.sd) if return_std else pred.mean

    def forecasts(self, X) -> dict[str, Prediction]:
        """Every forecast of one fit from one pass of the members over ``X``: ``{"": calibrated, "uncalibrated": raw,
        "student": …}`` (the first the one :meth:`predict_dist` gives; the calibrated forecast is
        the calibrator applied to the raw mixture, so the members predict ``X`` once). Cross-validation scores them as
        ``<model>``, ``<model>_uncalibrated`` and ``<model>_student``."""
        check_is_fitted(self, "run_")
        predictor = self.run_.predictor
        q = predictor.inputs(self._samples(X, groups=self.feature_groups_))
        raw = predictor.predict_inputs(q, calibrated=False)
        # a calibration part predicted by twins: the calibrated forecast and the raw one are two rows
        out = {"": self.run_.calibrate(raw), "uncalibrated": raw} if self.run_.calibrated_on_held_out_part else {"": raw}
        if self.run_.has_student:
            out["student"] = predictor.predict_inputs(q, student=True)
        return out

    def fit_choices(self) -> dict | None:
        """What this fit chose from its training data alone (:attr:`choices_`: trend, calibration, ...)."""
        check_is_fitted(self, "run_")
        return dict(self.choices_)

    def diagnostics(self, X) -> dict:
        """The MoE gate weights of each query sample averaged over members, ``gates`` ``(n, E)``, and the share of each
        stream in what the used experts read, ``stream_usage`` (:func:`sptgnn.train.interpret.stream_usage`)."""
        check_is_fitted(self, "run_")
        gates = self.run_.gates(self._samples(X, groups=self.feature_groups_))
        return {"gates": gates, "stream_usage": stream_usage(self.run_.ensemble, gates)}

    def save(self, path, overwrite: bool = False) -> Run:
        """Write the run folder (the same as ``sptgnn train`` writes) and return the :class:`Run`.

        Raises:
            RunError: ``path`` exists (without ``overwrite``) or its parent folder is missing.
        """
        check_is_fitted(self, "run_")
        return self.run_.save(path, overwrite=overwrite)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False  # seeded members give the same fit twice
        return tags


__all__ = ["FLAT", "SpTGNNRegressor"]
