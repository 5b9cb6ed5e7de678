"""Reading and writing run folders (format :data:`RUN_FORMAT`; format 1 still loads). The files are listed in
:mod:`sptgnn.estimator.run`; everything is tensors and plain values, read with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import hashlib

import json
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import torch
from skops.io.exceptions import UntrustedTypesFoundException

from sptgnn.errors import UserError
from sptgnn._version import __version__
from sptgnn.config import ConfigError, load_config
from sptgnn.data.samples import SoilSamples
from sptgnn.estimator.figures import calibration_part_figures
from sptgnn.estimator.manifest import MANIFEST, manifest_problems, write_manifest
from sptgnn.estimator.aoa import AOAError, AreaOfApplicability
from sptgnn.train.ensemble import DeepEnsemble, EnsembleStateError
from sptgnn.train.trend import TREND_FILE, CovariateTrend

RUN_FORMAT = 3  # 3: manifest.json and a skops trend; 2: the builder's state under "builder"; 1 and 2 still load
RUN_FILES = ("config.yaml", "ensemble.pt", "labelled.gpkg")


class RunError(UserError):
    """A run folder that cannot be written or read back; the message says what is wrong and what to do."""


def write_run_folder(ens: DeepEnsemble, aoa: AreaOfApplicability | None, units: str, folder: Path) -> None:
    """Write a fitted ensemble, its AOA reference and target unit into an existing, empty folder (the files of
    :mod:`sptgnn.estimator.run`)."""
    lab = ens.builder.labelled
    state = {
        "format": RUN_FORMAT, "sptgnn_version": __version__, "target": ens.target, "units": units,
        "samples": {"targets": lab.targets, "feature_groups": lab.feature_groups, "elevation": lab.elevation,
                    "date_column": lab.date_column, "name": lab.name, "site": lab.site,
                    "depth": None if lab.depth is None else list(lab.depth)},
        **ens.state(),
        # what the weights were trained with, checked on loading even when a manifest was rewritten to match an edit
        "n_labelled": len(lab), "config_sha256": config_digest(ens.config),
    }
    (folder / "config.yaml").write_text(ens.config.to_yaml())
    torch.save(state, folder / "ensemble.pt")
    frame = lab.frame.copy()
    if lab.date_column:
        frame[lab.date_column] = pd.to_datetime(frame[lab.date_column]).dt.strftime("%Y-%m-%d")
    frame.to_file(folder / "labelled.gpkg", driver="GPKG", layer="labelled")
    if aoa is not None:
        aoa.save(folder / "aoa.npz")
    if ens.trend is not None:
        ens.trend.save(folder)
    summary = {"format": RUN_FORMAT, "sptgnn_version": __version__, "dataset": lab.name, "target": ens.target,
               "units": units, "n_samples": len(lab), "members": len(ens.members),
               "best_epochs": ens.best_epochs, "fit_seconds": round(ens.fit_seconds, 2),
               "calibration": ens.calibration_choice,
               "trend_oof_r2": None if ens.trend is None else ens.trend.oof_r2}
    (folder / "run.json").write_text(json.dumps(summary, indent=2))
    if ens.calibration_data is not None:
        calibration_part_figures(ens, folder)
    write_manifest(folder, {"format": RUN_FORMAT, "sptgnn_version": __version__})


def config_digest(config) -> str:
    """SHA-256 of a config's YAML text (:meth:`~sptgnn.config.Config.to_yaml`): which config weights were trained with."""
    return hashlib.sha256(config.to_yaml().encode()).hexdigest()


def read_run_folder(path: Path) -> tuple[DeepEnsemble, AreaOfApplicability | None, str]:
    """The fitted ensemble, AOA reference (or ``None``) and target unit of a run folder.

    Raises:
    RunError: A missing or incomplete folder, a run of another format version, or a corrupt file.
    """
    if not path.is_dir():
        raise RunError(f"run directory not found: {path}; train one with `sptgnn train CONFIG --out {path}`")
    missing = [f for f in RUN_FILES if not (path / f).is_file()]
    if missing:
        raise RunError(f"{path} is not a complete sptgnn run directory (missing {missing}); train one with `sptgnn train`")
    problems = manifest_problems(path)
    if problems:
        raise RunError(f"{path} does not match its manifest: {'; '.join(problems)}; the folder was edited, copied "
                       "incompletely or corrupted: copy or retrain the run again")
    try:
        config = load_config(path / "config.yaml")
    except ConfigError as exc:
        raise RunError(f"{path}: {exc}") from None
    try:
        state = torch.load(path / "ensemble.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a corrupt file
        raise RunError(f"{path / 'ensemble.pt'} is corrupt or not an sptgnn checkpoint ({type(exc).__name__}); "
                       "retrain the run") from None
    version = state.get("format") if isinstance(state, dict) else "?"
    if version not in (1, 2, RUN_FORMAT):
        raise RunError(f"{path / 'ensemble.pt'} has run format {version}, this sptgnn {__version__} reads formats 1 to "
                       f"{RUN_FORMAT}; retrain the run with this version")
    if problems is None:
        if version == RUN_FORMAT:
            raise RunError(f"{path} has no {MANIFEST}, which every run of format {RUN_FORMAT} has; copy the whole folder "
                           "again or retrain the run")
        warnings.warn(f"{path}: a run of format {version} has no {MANIFEST}: its files are not verified", stacklevel=2)
    try:
        return _read_state(path, config, state, version)
    except (KeyError, TypeError, IndexError) as exc:
        raise RunError(f"{path / 'ensemble.pt'} lacks what a run of format {version} holds ({type(exc).__name__}: "
                       f"{exc}); it was damaged or edited: copy the whole folder again or retrain the run") from None


def _read_state(path: Path, config, state: dict, version) -> tuple[DeepEnsemble, AreaOfApplicability | None, str]:
    if "config_sha256" in state and state["config_sha256"] != config_digest(config):
        raise RunError(f"{path / 'config.yaml'} is not the config {path / 'ensemble.pt'} was trained with; the folder "
                       "was edited: copy the whole folder again or retrain the run")
    if version == 1:  # format 1 kept the builder's fields at the top level
        state["builder"] = {k: state[k] for k in ("relations", "distance_scale", "transform")}
    s = state["samples"]
    try:
        frame = gpd.read_file(path / "labelled.gpkg", layer="labelled")
    except Exception as exc:  # noqa: BLE001 - any read failure of the GeoPackage means a corrupt file
        raise RunError(f"{path / 'labelled.gpkg'} cannot be read ({type(exc).__name__}); copy or retrain the run") from None
    if "n_labelled" in state and len(frame) != state["n_labelled"]:
        raise RunError(f"{path / 'ensemble.pt'} was trained on {state['n_labelled']} labelled samples, but "
                       f"{path / 'labelled.gpkg'} holds {len(frame)}; the folder mixes two runs: copy or retrain the run")
    if s["date_column"]:
        frame[s["date_column"]] = pd.to_datetime(frame[s["date_column"]])
    depth = s.get("depth")
    labelled = SoilSamples(frame=frame, targets=s["targets"], feature_groups=s["feature_groups"],
                           elevation=s["elevation"], date_column=s["date_column"], name=s["name"], site=s.get("site"),
                           depth=None if depth is None else tuple(depth))
    trend = None
    if state.get("trend", False):
        if (path / "trend.joblib").is_file() and not (path / TREND_FILE).is_file():
            raise RunError(f"{path} stores its covariate trend as a pickle (trend.joblib), which sptgnn no longer loads "
                           "because unpickling can run code; retrain the run with this version")
        if not (path / TREND_FILE).is_file():
            raise RunError(f"{path} misses {TREND_FILE}, the covariate trend this run was trained with; retrain the run")
        try:
            trend = CovariateTrend.load(path)
        except UntrustedTypesFoundException as exc:
            raise RunError(f"{path / TREND_FILE} holds types a trend never has ({exc}); it was not loaded and nothing in "
                           "it was run: use a run folder from a source you trust, or retrain") from None
        except Exception as exc:  # noqa: BLE001 - any other read failure means a corrupt file
            raise RunError(f"{path / TREND_FILE} is corrupt ({type(exc).__name__}); retrain the run") from None
    try:
        ens = DeepEnsemble.from_state(config, state, labelled, trend)
    except EnsembleStateError as exc:
        raise RunError(f"{path / 'ensemble.pt'}: {exc}") from None
    aoa = None
    if (path / "aoa.npz").is_file():
        try:
            aoa = AreaOfApplicability.load(path / "aoa.npz")
        except AOAError as exc:
            raise RunError(str(exc)) from None
    return ens, aoa, str(state.get("units", ""))


__all__ = ["RUN_FILES", "RUN_FORMAT", "RunError", "read_run_folder", "write_run_folder"]
