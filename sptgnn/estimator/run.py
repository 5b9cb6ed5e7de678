"""`Run`: the one versioned artefact of a fitted SpTGNN model, and the one prediction path.

A run folder holds ``config.yaml`` (the whole configuration), ``ensemble.pt`` (members' weights, the graph builder's
:meth:`~sptgnn.graph.builder.GraphBuilder.state`, the target transform, the calibrator; tensors and plain values only,
read with ``torch.load(weights_only=True)``), ``labelled.gpkg`` (the labelled nodes every query attaches to), optionally
``aoa.npz`` (area-of-applicability reference), ``trend.skops`` (covariate trend), ``run.json`` (what was fitted on
what, in how long) and the calibration part's uncertainty figures. ``SpTGNNRegressor.fit(...).save(path)`` and
``sptgnn train`` write the same folder (both go through :func:`fit_run` and :meth:`Run.save`).

:meth:`Run.predict` is the prediction path of cross-validation test folds, point tables and raster maps alike: the
labelled nodes' hidden states are computed once per member and cached, and each query costs one attention step per
layer over its neighbours in each relation (:class:`~sptgnn.estimator.query.QueryPredictor`; equal to the full-graph
forward pass up to float error, tested).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from sptgnn.atomic import atomic_dir, check_new_folder
from sptgnn.config import Config
from sptgnn.data.samples import SoilSamples
from sptgnn.data.spline import GSM_DEPTHS
from sptgnn.distributions import Prediction, check_levels
from sptgnn.estimator.inputs import to_samples
from sptgnn.estimator.persistence import RUN_FORMAT, RunError, read_run_folder, write_run_folder
from sptgnn.estimator.aoa import AreaOfApplicability, fit_aoa
from sptgnn.estimator.query import PREDICT_CHUNK, QueryPredictor
from sptgnn.train.checks import check_training_samples
from sptgnn.estimator.selection import select_config
from sptgnn.threads import apply_threads, resolve_threads
from sptgnn.train.ensemble import DeepEnsemble


def fit_run(config: Config, samples: SoilSamples, progress: Callable[[int], None] | None = None,
            aoa: bool = True) -> "Run":
    """Train the ensemble of ``config`` on every sample and wrap it as a :class:`Run` with its AOA reference.

    Args:
        config: Whole run configuration.
        samples: Training samples (the labelled nodes of every later prediction).
        progress: Called with the member index after each trained member.
        aoa: Fit the area-of-applicability reference (needs covariates; skipped without any).

    With ``selection.candidates`` the configuration is first chosen by an inner cross-validation of ``samples``
    (:func:`~sptgnn.estimator.selection.select_config`); the run stores the chosen one and ``ensemble.selection``.

    Raises:
        SamplesError: The target is missing or invalid.
        CalibrationError: Too few samples for the configured calibration part.
    """
    apply_threads(resolve_threads(config.train.threads, len(samples)))  # torch, BLAS and trees: sptgnn.threads
    config, selection = select_config(config, samples)  # selection.candidates: an inner CV of the training samples
    ensemble = DeepEnsemble(config).fit(samples, progress=progress)
    ensemble.selection = selection
    reference = fit_aoa(samples, config.data.target, seed=config.train.seed) if aoa and samples.feature_columns else None
    units = samples.metadata.get("units", {}).get(config.data.target, "")
    table = config.data.table
    if table is not None and table.units:
        units = table.units
    return Run(ensemble, aoa=reference, units=units or "")


def train_to_folder(config: Config, out: str | Path,
                    start: Callable[[], Callable[[int], None] | None] | None = None) -> "Run":
    """Load ``data.table`` or ``data.dataset``, train on every sample and write the run folder ``out`` (what
    ``sptgnn train`` does); ``out`` must not exist and is written atomically. ``start`` is called once the samples are
    loaded and checked, and returns the per-member progress callback.

    Raises:
        FileExistsError: ``out`` exists. SamplesError, DatasetError, RasterError, CalibrationError: Unusable inputs.
    """
    from sptgnn.data.tables import load_samples

    out = Path(out)
    check_new_folder(out)
    samples = load_samples(config.data)
    check_training_samples(samples, config)
    run = fit_run(config, samples, progress=None if start is None else start())
    with atomic_dir(out) as tmp:
        run.write_into(tmp)
    run.path = out
    return run


class Run:
    """A fitted ensemble with everything needed to predict anywhere: the artefact ``sptgnn train`` and
    :meth:`SpTGNNRegressor.save <sptgnn.estimator.regressor.SpTGNNRegressor.save>` write and :func:`load_run` reads.

    Args:
        ensemble: A fitted :class:`~sptgnn.train.ensemble.DeepEnsemble`.
        aoa: Area-of-applicability reference, or ``None`` (then fitted from the labelled nodes when a map needs it).
        units: Unit of the target, e.g. ``"g/kg"``.
        path: The folder it was loaded from or saved to, or ``None``.

    Attributes:
        config: The whole run configuration.
        target: Target column, e.g. ``"soc_g_kg"``.
        labelled: The labelled nodes (training samples).
    """

    def __init__(self, ensemble: DeepEnsemble, aoa: AreaOfApplicability | None = None, units: str = "",
                 path: Path | None = None):
        if not ensemble.members or ensemble.builder is None:
            raise RunError("a Run needs a fitted ensemble; call fit first")
        self.ensemble = ensemble
        self.aoa = aoa
        self.units = units
        self.path = path
        self._predictor: QueryPredictor | None = None
        self._predictor_options = {"chunk": PREDICT_CHUNK, "compile": False, "workers": 1}

    # -- what the run is -------------------------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        return self.ensemble.config

    @property
    def target(self) -> str:
        return self.ensemble.target

    @property
    def labelled(self) -> SoilSamples:
        return self.ensemble.builder.labelled

    @property
    def features(self) -> list[str]:
        """Covariate columns the model reads (imagery and environment streams, in order)."""
        columns = self.ensemble.builder.transform.columns
        return [c for s in ("imagery", "environment") for c in columns.get(s, [])]

    @property
    def elevation(self) -> str | None:
        """Column of elevation (m) when the elevation relation is used, else ``None``."""
        return self.labelled.elevation if "elevation" in self.ensemble.builder.relations else None

    @property
    def prefix(self) -> str:
        """Column prefix of predictions: ``soc`` for an SOC target, else the target name (SOM stays SOM)."""
        return "soc" if self.target.lower().startswith("soc") else self.target

    @property
    def fit_seconds(self) -> float:
        """Wall-clock seconds the ensemble's fit took."""
        return self.ensemble.fit_seconds

    @property
    def choices(self) -> dict:
        """What the fit chose from its training data alone: ``trend`` (the teacher: ``none``, ``random_forest``,
        ...), ``trend_oof_r2``, ``calibration`` (the method ``auto`` kept), and ``selection_<key>`` for each choice of
        the inner cross-validation (``selection.candidates``)."""
        ens = self.ensemble
        out = {"trend": "none" if ens.trend is None else ens.trend.kind,
               "trend_oof_r2": None if ens.trend is None else round(float(ens.trend.oof_r2), 4),
               "calibration": ens.calibration_choice["method"]}
        return out | {f"selection_{k}": v for k, v in ens.selection.items()}

    @property
    def calibrated_on_held_out_part(self) -> bool:
        """Whether a calibrator was fitted on a held-out calibration part (so a raw forecast differs from it)."""
        return self.ensemble.calibrator is not None and self.ensemble.calibrator.n_samples > 0

    def calibrate(self, raw: Prediction) -> Prediction:
        """The run's calibrator applied to a raw mixture (the mean stays; :mod:`sptgnn.distributions.calibration`)."""
        return raw if self.ensemble.calibrator is None else self.ensemble.calibrator.apply(raw)

    def gates(self, samples: SoilSamples) -> np.ndarray:
        """MoE gate weights of query samples averaged over members ``(n, E)``."""
        return self.ensemble.gates(samples)

    def area_of_applicability(self) -> AreaOfApplicability:
        """The AOA reference, fitted from the labelled nodes (and kept) when the run has none."""
        if self.aoa is None:
            self.aoa = fit_aoa(self.labelled, self.target, seed=self.config.train.seed)
        return self.aoa

    @property
    def needed(self) -> list[str]:
        """Columns a prediction reads from rasters or a point table: the covariates, elevation, the AOA's and the
        trend's features; a profile run's layer depth columns are not among them (they come from the depth interval
        asked for, :meth:`with_depth`)."""
        extra = [self.elevation] if self.elevation and self.elevation not in self.features else []
        trend = [] if self.ensemble.trend is None else self.ensemble.trend.columns
        aoa = self.area_of_applicability().features
        columns = dict.fromkeys(self.features + extra + [f for f in [*aoa, *trend] if f not in self.features])
        return [c for c in columns if c not in (self.depth or ())]

    @property
    def depth(self) -> tuple[str, str] | None:
        """The layer depth columns (top, bottom; cm) of a run trained on profile layers, else ``None``."""
        return self.labelled.depth

    def with_depth(self, values: dict[str, np.ndarray], n: int, depth: tuple[float, float] | None) -> dict:
        """``values`` with a profile run's depth columns: the interval ``depth`` (top, bottom cm) for every query, or
        the queries' own columns when ``depth`` is ``None``; unchanged for a run of one layer.

        Raises:
            RunError: A depth for a run of one layer, an inverted interval, or a profile run without either.
        """
        if self.depth is None:
            if depth is not None:
                raise RunError("this run was trained on one sampled layer, not on profile layers: drop the depth "
                               "interval (its layer is in run.json's config, data.top_cm/bottom_cm)")
            return values
        top, bottom = self.depth
        if depth is None:
            if top in values and bottom in values:
                return values
            raise RunError(f"this run predicts profile layers: give the depth interval (e.g. --depth 0-30) or "
                           f"columns '{top}' and '{bottom}' (cm)")
        if not 0 <= depth[0] < depth[1]:
            raise RunError(f"depth interval {depth[0]:g}-{depth[1]:g} cm: the bottom must lie below the top")
        return values | {top: np.full(n, float(depth[0])), bottom: np.full(n, float(depth[1]))}

    @staticmethod
    def layer_label(layer: tuple[float, float]) -> str:
        """The name of a depth interval in output bands and columns: ``(0, 5)`` → ``"0-5cm"``."""
        return f"{layer[0]:g}-{layer[1]:g}cm"

    def layers(self, depth=None) -> list[tuple[float, float] | None]:
        """The layers a prediction is made for: ``[None]`` for a run of one sampled layer (``depth`` must be
        ``None``); for a profile run the interval ``depth`` (top, bottom cm), each of a sequence of intervals, or, when
        none is given, the six GlobalSoilMap intervals (0-5, 5-15, 15-30, 30-60, 60-100, 100-200 cm).

        Raises:
            RunError: A depth for a run of one layer, or an inverted interval.
        """
        if depth is None:
            return [None] if self.depth is None else [tuple(map(float, d)) for d in GSM_DEPTHS]
        layers = [tuple(map(float, depth))] if np.ndim(depth) == 1 else [tuple(map(float, d)) for d in depth]
        for layer in layers:
            self.with_depth({}, 0, layer)
        return layers

    # -- prediction ------------------------------------------------------------------------------------------------
    def set_prediction_options(self, chunk: int = PREDICT_CHUNK, compile: bool = False, workers: int = 1) -> "Run":
        """Query chunk size (memory ``O(chunk · k · d)``), ``torch.compile`` of the attention step, and threads of the
        neighbour search; see :class:`~sptgnn.estimator.query.QueryPredictor`."""
        self._predictor_options = {"chunk": int(chunk), "compile": bool(compile), "workers": int(workers)}
        self._predictor = None
        return self

    @property
    def prediction_options(self) -> dict:
        """The options of :meth:`set_prediction_options` in force (``chunk``, ``compile``, ``workers``)."""
        return dict(self._predictor_options)

    @property
    def predictor(self) -> QueryPredictor:
        """The cached-state query predictor (built on first use)."""
        if self._predictor is None:
            self._predictor = QueryPredictor(self.ensemble, **self._predictor_options)
        return self._predictor

    def predict(self, samples, quantiles=None, calibrated: bool = True, coords=None, crs=None,
                target: str | None = None, student: bool = False) -> Prediction:
        """Predictive distribution of query samples attached to the labelled nodes (DESIGN.md rule 1).

        Args:
            samples: Query samples with the training samples' feature columns (and elevation, dates if used):
                :class:`~sptgnn.data.samples.SoilSamples`, a point GeoDataFrame, or a DataFrame with ``coords`` columns
                in ``crs`` (see :func:`sptgnn.estimator.inputs.to_samples`).
            quantiles: Levels in (0, 1) to store in ``Prediction.quantile_values`` ``(n, L)``, or ``None``.
            calibrated: Apply the run's calibrator (if any); ``False`` gives the raw mixture.
            target: One of the run's :attr:`targets` (multi-task ``data.targets``); ``None``: the primary.
            student: Predict with the distilled fast student (``student.enabled``) instead of the ensemble.

        Returns:
            :class:`~sptgnn.distributions.Prediction` in target units, ``(n,)`` moments.

        Raises:
            ValueError: A quantile level outside (0, 1), a target the run was not trained on, or ``student`` for a
                run without one.
        """
        levels = None if quantiles is None else check_levels(quantiles)
        if not isinstance(samples, SoilSamples):
            lab = self.labelled
            samples = to_samples(samples, target=self.target, coords=coords, crs=crs,
                                 imagery=lab.feature_groups.get("imagery", []),
                                 environment=lab.feature_groups.get("environment", []), elevation=lab.elevation,
                                 date=lab.date_column)
        pred = self.predictor.predict(samples, calibrated, target, student)
        if levels is not None:
            pred.quantile_levels, pred.quantile_values = levels, pred.quantiles(levels)
        return pred

    def predict_distributions(self, values: dict[str, np.ndarray], xy: np.ndarray, dates=None,
                              targets: list[str] | None = None, student: bool = False,
                              depth: tuple[float, float] | None = None) -> dict[str, Prediction]:
        """Predictive distributions of queries given as raw covariates ``{name: (n,)}`` at ``xy`` ``(n, 2)`` in the
        training CRS (raster windows, point tables, zone pixels): one calibrated
        :class:`~sptgnn.distributions.Prediction` per target in ``targets`` (default: the primary), built from one set
        of inputs (:meth:`GraphBuilder.inputs <sptgnn.graph.builder.GraphBuilder.inputs>`, the path samples take too).
        ``student``: the primary from the distilled fast student. ``depth``: the layer (top, bottom cm) a profile run
        predicts (:meth:`with_depth`).

        Raises:
            KeyError: A fitted feature column is missing from ``values``.
            ValueError: A target the run was not trained on.
            RunError: A depth interval missing or given in vain (:meth:`with_depth`).
        """
        values = self.with_depth(values, len(xy), depth)
        targets = [self.target] if targets is None else list(targets)
        unknown = [t for t in targets if t not in self.targets]
        if unknown:
            raise ValueError(f"the run predicts {self.targets}, not {unknown}")
        q = self.predictor.array_inputs(values, xy, dates, self.elevation)
        return {t: self.predictor.predict_inputs(q, target=None if t == self.target else t,
                                                 student=student and t == self.target) for t in targets}

    def predict_arrays(self, values: dict[str, np.ndarray], xy: np.ndarray, dates=None,
                       student: bool = False, depth: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
        """The map bands of queries given as raw covariates ``{name: (n,)}`` and coordinates ``(n, 2)`` in the training
        CRS (raster windows, point tables): ``mean``, ``sd``, ``aleatoric_sd``, ``epistemic_sd``, ``q05``, ``q95``
        (target units), ``aoa`` (0/1) and ``di`` (the dissimilarity index of CAST, Meyer & Pebesma 2021, whose
        threshold makes the AOA), each ``(n,)``; with auxiliary targets (``data.targets``) also
        ``{target}_mean``, ``{target}_sd``, ``{target}_q05`` and ``{target}_q95`` for each (see :attr:`map_bands`).
        ``student``: the primary's bands from the distilled fast student (its auxiliary bands still the members').
        ``depth``: the layer (top, bottom cm) a profile run predicts (:meth:`with_depth`)."""
        values = self.with_depth(values, len(xy), depth)  # filled once: the AOA reads the depth columns too
        preds = self.predict_distributions(values, xy, dates, self.targets, student)
        pred = preds[self.target]
        q05, q95 = pred.quantiles([0.05, 0.95]).T
        aoa = self.area_of_applicability()
        X = np.stack([values[f] for f in aoa.features], axis=1)
        di = aoa.di(X)
        bands = {"mean": pred.mean, "sd": pred.sd, "aleatoric_sd": pred.aleatoric_sd, "epistemic_sd": pred.epistemic_sd,
                 "q05": q05, "q95": q95, "aoa": aoa.flag_of_di(di).astype(np.float64),
                 "di": di}
        for t in self.ensemble.aux_targets:
            aux = preds[t]
            lo, hi = aux.quantiles([0.05, 0.95]).T
            bands |= {f"{t}_mean": aux.mean, f"{t}_sd": aux.sd, f"{t}_q05": lo, f"{t}_q95": hi}
        return bands

    @property
    def has_student(self) -> bool:
        """Whether the run carries a distilled fast student (``student.enabled``)."""
        return self.ensemble.student is not None

    @property
    def targets(self) -> list[str]:
        """Every target the run predicts: the primary, then the auxiliary targets of ``data.targets``."""
        return [self.target, *self.ensemble.aux_targets]

    @property
    def map_bands(self) -> list[str]:
        """Names of the bands :meth:`predict_arrays` returns, in map order: the primary's ``mean``, ``sd``,
        ``aleatoric_sd``, ``epistemic_sd``, ``q05``, ``q95``, ``aoa``, ``di``, then four per auxiliary target."""
        aux = [f"{t}_{b}" for t in self.ensemble.aux_targets for b in ("mean", "sd", "q05", "q95")]
        return ["mean", "sd", "aleatoric_sd", "epistemic_sd", "q05", "q95", "aoa", "di", *aux]

    # -- persistence -----------------------------------------------------------------------------------------------
    def save(self, path: str | Path, overwrite: bool = False) -> "Run":
        """Write the run folder atomically (a temporary sibling renamed when complete); returns ``self``.

        Raises:
            RunError: ``path`` exists and ``overwrite`` is False, or its parent folder does not exist.
        """
        path = Path(path)
        try:
            with atomic_dir(path, overwrite=overwrite, make_parents=False) as tmp:
                self.write_into(tmp)
        except (FileExistsError, FileNotFoundError) as exc:
            raise RunError(str(exc)) from None
        self.path = path
        return self

    def write_into(self, folder: Path) -> None:
        """Write the run files into an existing, empty folder (see the module docstring for the files)."""
        write_run_folder(self.ensemble, self.aoa, self.units, folder)

    @classmethod
    def load(cls, path: str | Path) -> "Run":
        """Read a run folder; predictions equal those before saving.

        Raises:
            RunError: A missing or incomplete folder, a run of another format version, or a corrupt file.
        """
        ensemble, aoa, units = read_run_folder(Path(path))
        return cls(ensemble, aoa=aoa, units=units, path=Path(path))


def load_run(path: str | Path, chunk: int = PREDICT_CHUNK, compile: bool = False, workers: int = 1) -> Run:
    """Load a run folder written by ``sptgnn train`` or :meth:`Run.save`, ready to predict.

    Args:
        path: The run folder.
        chunk, compile, workers: Prediction options (see :meth:`Run.set_prediction_options`).

    Raises:
        RunError: Missing, incomplete, corrupt or other-version run folder.
    """
    return Run.load(path).set_prediction_options(chunk, compile, workers)


__all__ = ["RUN_FORMAT", "Run", "RunError", "fit_run", "load_run", "train_to_folder"]
