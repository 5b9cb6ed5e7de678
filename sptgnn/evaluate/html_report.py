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

from sptgnn.errors import UserError
from sptgnn.accounting.inputs import zone_name_column
from sptgnn.data.samples import samples_fingerprint

FIGURES = ("calibration_curve.png", "picp.png", "pred_vs_obs.png", "residual_map.png", "sharpness.png")
PACKAGES = ("torch", "torch-geometric", "scikit-learn", "xgboost", "gstools", "rasterio", "numpy")


class ReportError(UserError):
    """An evaluation folder that cannot be reported; the message says what is missing."""


def _num(v) -> str:
    """A number as a reader wants it: four significant digits, large ones (totals in t C) in full with separators."""
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1e4 else f"{v:.4g}"
    return str(v)


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


def sample_summary(predictions: pd.DataFrame, config: dict) -> dict:
    """n and the distribution of the observed target (target units) of an evaluation's samples, the sampled layer
    (``data.top_cm``/``bottom_cm``) and the sampling dates (``date`` column of the predictions, when present)."""
    y = predictions.drop_duplicates("sample_id")["y_true"].astype(float)
    q = y.quantile([0.25, 0.5, 0.75]).to_numpy()
    data = config.get("data", {})
    layer = (f"{data['top_cm']:g}–{data['bottom_cm']:g} cm" if data.get("top_cm") is not None
             else "not recorded (data.top_cm, data.bottom_cm)")
    dates = "not recorded"
    if "date" in predictions:
        d = pd.to_datetime(predictions["date"], errors="coerce").dropna()
        dates = f"{d.min():%Y-%m-%d} – {d.max():%Y-%m-%d}" if len(d) else dates
    return {"n": int(len(y)), "mean": float(y.mean()), "sd": float(y.std()), "min": float(y.min()), "q25": float(q[0]),
            "median": float(q[1]), "q75": float(q[2]), "max": float(y.max()), "layer": layer, "dates": dates}


def read_map(path: str | Path) -> dict:
    """The area-of-applicability share and DI quantiles of a map of ``sptgnn predict`` (bands ``aoa`` and ``di``, tag
    ``di_threshold``). Both bands are read whole: memory grows with the map (8 bytes a pixel).

    Raises:
        ReportError: Not a GeoTIFF of ``sptgnn predict`` with those bands.
    """
    import numpy as np
    import rasterio

    try:
        with rasterio.open(path) as src:
            names = list(src.descriptions)
            if "aoa" not in names or "di" not in names:
                raise ReportError(f"{path} has no aoa and di bands; give a map of `sptgnn predict`")
            aoa = src.read(names.index("aoa") + 1, masked=True).compressed()
            di = src.read(names.index("di") + 1, masked=True).compressed()
            threshold = src.tags().get("di_threshold")
    except rasterio.errors.RasterioIOError:
        raise ReportError(f"{path} is not a readable GeoTIFF; give a map of `sptgnn predict`") from None
    di = di[np.isfinite(di)]
    return {"name": Path(path).name, "pixels": int(aoa.size), "aoa_share": float(aoa.mean()) if aoa.size else None,
            "di_median": float(np.median(di)) if di.size else None,
            "di_q95": float(np.quantile(di, 0.95)) if di.size else None,
            "threshold": None if threshold is None else float(threshold)}


def read_totals(path: str | Path) -> dict:
    """Zone and project rows and the provenance of a GeoPackage of ``sptgnn aggregate``.

    Raises:
        ReportError: Not such a GeoPackage.
    """
    import geopandas as gpd
    import pyogrio

    try:
        table = gpd.read_file(path, layer="zone_totals")
        provenance = dict(gpd.read_file(path, layer="provenance")[["key", "value"]].to_numpy())
    except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, KeyError, ValueError):
        raise ReportError(f"{path} is not a GeoPackage of `sptgnn aggregate` (layers zone_totals and provenance)") from None
    name_col = zone_name_column(table.columns)
    rows = []
    for i, r in table.drop(columns="geometry").iterrows():
        label = "project total" if r.get("zone_kind") == "project" else (str(r[name_col]) if name_col else f"zone {i + 1}")
        rows.append({"label": label, **{k: (None if pd.isna(v) else float(v)) for k, v in r.items()
                                        if k.startswith(("stock_", "soc_", "area_"))}})
    return {"name": Path(path).name, "rows": rows, "provenance": provenance}


def read_evaluation(folder: str | Path) -> dict:
    """What the report shows of one evaluation folder.

    Raises:
        ReportError: ``metrics.json``, ``predictions.csv`` or ``config.yaml`` is missing.
    """
    folder = Path(folder)
    missing = [f for f in ("metrics.json", "predictions.csv", "config.yaml") if not (folder / f).is_file()]
    if missing:
        raise ReportError(f"{folder} is not an evaluation folder of `sptgnn evaluate` (no {', '.join(missing)})")
    try:
        metrics = json.loads((folder / "metrics.json").read_text())
        metrics["models"], metrics["target"], metrics["dataset"], metrics["n_samples"]  # noqa: B018 - the keys shown
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise ReportError(f"{folder / 'metrics.json'} is not a metrics.json of `sptgnn evaluate` ({type(exc).__name__});"
                          f" evaluate again") from None
    config_text = (folder / "config.yaml").read_text()
    config = yaml.safe_load(config_text)
    models = {name: {k: m.get(k) for k in ("r2", "rmse", "mae", "me", "me_percent", "ccc", "r2_log", "crps", "calibration_error", "picp50",
                                           "picp90", "picp95", "mpiw90", "morans_i", "morans_i_p")}
              for name, m in metrics["models"].items()}
    figures = [{"name": f, "data": base64.b64encode((folder / f).read_bytes()).decode()}
               for f in FIGURES if (folder / f).is_file()]
    units = (config.get("data", {}).get("table") or {}).get("units") or (
        "g/kg" if str(metrics["target"]).lower().startswith("soc") else "")
    predictions = read_predictions(folder)
    return {"name": folder.name, "dataset": metrics["dataset"], "target": metrics["target"],
            "n_samples": metrics["n_samples"], "fingerprint": fingerprint(predictions), "summary": sample_summary(predictions, config),
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


def render_report(folders: Sequence[str | Path], block_means: Sequence[str | Path] = (),
                  maps: Sequence[str | Path] = (), totals: Sequence[str | Path] = ()) -> str:
    """The HTML page of evaluation ``folders``, block-mean checks ``block_means`` (JSON files of
    ``sptgnn check-blocks``), and optionally ``maps`` (GeoTIFFs of ``sptgnn predict``: AOA share and DI) and
    ``totals`` (GeoPackages of ``sptgnn aggregate``: zone and project totals with their provenance).

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
        maps=[read_map(m) for m in maps], totals=[read_totals(t) for t in totals],
        versions=versions(), written=dt.datetime.now().isoformat(timespec="seconds"),
        aoa_note=("The area of applicability (Meyer & Pebesma 2021) is a band of every map (aoa, 1 inside) and a column "
                  "of every point prediction, beside its dissimilarity index (di). Give the map with --map to report the "
                  "share of its pixels inside."))


__all__ = ["FIGURES", "ReportError", "fingerprint", "read_evaluation", "read_map", "read_predictions", "read_totals",
           "sample_summary", "render_report", "versions"]
