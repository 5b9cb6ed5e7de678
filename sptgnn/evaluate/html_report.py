"""The DSM model validation report (``sptgnn report``): one self-contained HTML page of one or more evaluation folders.

A carbon project files a model validation report with its stock estimates (Verra VT0014 v1.0). This page puts side by
side, for each evaluation folder (``sptgnn evaluate``: e.g. random, spatial blocks and kNNDM folds of one config):
the data's fingerprint, the cross-validation design, accuracy, calibration and interval coverage with the folder's
figures embedded, Moran's I of residuals, the configuration with its seeds, the package versions and, when given, the
block-mean coverage check of ``sptgnn check-blocks``. It is rendered with Jinja2 (autoescaped) from
``sptgnn/templates/report.html.j2``; nothing is fetched when it is opened.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Sequence

import pandas as pd
import yaml

from sptgnn.data.samples import samples_fingerprint

FIGURES = ("calibration_curve.png", "picp.png", "pred_vs_obs.png", "residual_map.png", "sharpness.png")
PACKAGES = ("torch", "torch-geometric", "scikit-learn", "xgboost", "gstools", "rasterio", "numpy")


class ReportError(ValueError):
    """An evaluation folder that cannot be reported; the message says what is missing."""


def _num(v) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def fingerprint(predictions: pd.DataFrame) -> str:
    """SHA-256 of the sorted sample ids with their observed values (the data the scores were computed on;
    :func:`~sptgnn.data.samples.samples_fingerprint`)."""
    return samples_fingerprint(predictions["sample_id"], predictions["y_true"])


def read_predictions(folder: str | Path) -> pd.DataFrame:
    """The out-of-fold ``predictions.csv`` of an evaluation folder.

    Raises:
        ReportError: It is missing or not a predictions table of ``sptgnn evaluate``.
    """
    path = Path(folder) / "predictions.csv"
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ReportError(f"{folder} is not an evaluation folder of `sptgnn evaluate` (no predictions.csv)") from None
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ReportError(f"{path} is not a predictions.csv of `sptgnn evaluate` ({type(exc).__name__})") from None
    if not {"sample_id", "y_true", "model"} <= set(frame.columns):
        raise ReportError(f"{path} lacks the columns sample_id, y_true and model of `sptgnn evaluate`")
    return frame


def read_evaluation(folder: str | Path) -> dict:
    """What the report shows of one evaluation folder.

    Raises:
        ReportError: ``metrics.json``, ``predictions.csv`` or ``config.yaml`` is missing.
    """
    folder = Path(folder)
    missing = [f for f in ("metrics.json", "predictions.csv", "config.yaml") if not (folder / f).is_file()]
    if missing:
        raise ReportError(f"{folder} is not an evaluation folder of `sptgnn evaluate` (no {', '.join(missing)})")
    metrics = json.loads((folder / "metrics.json").read_text())
    config_text = (folder / "config.yaml").read_text()
    config = yaml.safe_load(config_text)
    models = {name: {k: m.get(k) for k in ("r2", "rmse", "mae", "me", "me_percent", "ccc", "r2_log", "crps", "calibration_error", "picp50",
                                           "picp90", "picp95", "mpiw90", "morans_i", "morans_i_p")}
              for name, m in metrics["models"].items()}
    figures = [{"name": f, "data": base64.b64encode((folder / f).read_bytes()).decode()}
               for f in FIGURES if (folder / f).is_file()]
    units = (config.get("data", {}).get("table") or {}).get("units") or (
        "g/kg" if str(metrics["target"]).lower().startswith("soc") else "")
    return {"name": folder.name, "dataset": metrics["dataset"], "target": metrics["target"],
            "n_samples": metrics["n_samples"], "fingerprint": fingerprint(read_predictions(folder)),
            "split": metrics.get("split", {"split": metrics.get("folds")}), "models": models, "figures": figures,
            "units": units, "config": config_text,
            "seeds": {"train": config.get("train", {}).get("seed"), "folds": config.get("evaluate", {}).get("seed")}}


def versions() -> dict:
    """Versions of Python, sptgnn and the packages its numbers depend on."""
    out = {"python": platform.python_version()}
    for name in ("sptgnn", *PACKAGES):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def render_report(folders: Sequence[str | Path], block_means: Sequence[str | Path] = ()) -> str:
    """The HTML page of evaluation ``folders`` and block-mean checks ``block_means`` (JSON files).

    Raises:
        ReportError: No folder, a folder that is not an evaluation, or an unreadable block-mean JSON.
    """
    from jinja2 import Environment, PackageLoader, select_autoescape

    if not folders:
        raise ReportError("give at least one evaluation folder of `sptgnn evaluate`")
    evaluations = [read_evaluation(f) for f in folders]
    checks = []
    for path in block_means:
        try:
            checks.append(json.loads(Path(path).read_text()))
        except (OSError, ValueError):
            raise ReportError(f"{path} is not a JSON of `sptgnn check-blocks`") from None
    env = Environment(loader=PackageLoader("sptgnn", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.filters["num"] = _num
    return env.get_template("report.html.j2").render(
        title=", ".join(sorted({e["dataset"] for e in evaluations})), evaluations=evaluations, block_means=checks,
        versions=versions(), written=dt.datetime.now().isoformat(timespec="seconds"),
        aoa_note=("The area of applicability (Meyer & Pebesma 2021) is a band of every map (aoa, 1 inside) and a column "
                  "of every point prediction. These evaluation folders do not report the share of test samples "
                  "inside each fold's area of applicability."))


__all__ = ["FIGURES", "ReportError", "fingerprint", "read_evaluation", "read_predictions", "render_report", "versions"]
