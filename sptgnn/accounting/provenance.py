"""What a filed stock total must show it belongs to, and the inputs ``sptgnn aggregate`` refuses (DESIGN.md rule 10).

A total is only as good as the chain behind it: the target must be SOC in g/kg (or converted by a stated factor), the
residuals that condition the realisations must be the out-of-fold residuals of the run's own samples, a "change" must
compare two states of the soil rather than two models of the same samples, and the layer thickness must be known
rather than assumed. Each check here raises :class:`ProvenanceError` with a one-line message that says the fix; what
passes is recorded (:func:`provenance_record`) in the output beside the numbers.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from sptgnn.accounting.stocks import standard_layers
from sptgnn.errors import UserError
from sptgnn.data.samples import samples_fingerprint
from sptgnn.splits import planar_coords

#: van Bemmelen factor: SOC = 0.58 × SOM (soil organic matter taken as 58 % carbon; e.g. Pribyl 2010, Geoderma 156).
VAN_BEMMELEN = 0.58
#: ``--conversion`` → (quantity, units it applies to, factor to SOC in g/kg, statement).
CONVERSIONS = {
    "soc_percent": ("soc", "%", 10.0, "SOC % × 10 = SOC g/kg"),
    "som_percent": ("som", "%", 10.0 * VAN_BEMMELEN, "SOM % × 10 × 0.58 (van Bemmelen factor) = SOC g/kg"),
    "som_g_kg": ("som", "g/kg", VAN_BEMMELEN, "SOM g/kg × 0.58 (van Bemmelen factor) = SOC g/kg"),
}
#: Largest distance (m) between a residual's coordinates and its sample's in the run before the CRS is called different.
COORD_TOLERANCE_M = 1.0


class ProvenanceError(UserError):
    """Inputs of a stock total that cannot be shown to belong together; the message says what to give instead."""


def target_quantity(run) -> str:
    """``soc``, ``som`` or ``other``: ``data.quantity``, else inferred from the target's name."""
    declared = run.config.data.quantity
    if declared is not None:
        return declared
    name = run.target.lower()
    if name.startswith("soc") or name in ("oc", "orcdrc"):
        return "soc"
    if name.startswith("som") or name in ("om", "organic_matter"):
        return "som"
    return "other"


def _units(run) -> str:
    return str(run.units or "").strip().lower().replace(" ", "")


def soc_conversion(run, conversion: str | None) -> tuple[float, str]:
    """The factor from the run's target to SOC in g/kg and its statement.

    Raises:
        ProvenanceError: The target is not SOC in g/kg and ``conversion`` does not name its quantity and units, or a
            conversion is given for a target that needs none.
    """
    quantity, units = target_quantity(run), _units(run)
    what = f"the run's target '{run.target}' is {quantity.upper() if quantity != 'other' else 'not SOC'} in " \
           f"'{run.units or 'unknown units'}'"
    if conversion is None:
        if quantity == "soc" and units == "g/kg":
            return 1.0, "SOC g/kg as predicted (no conversion)"
        fits = [name for name, (q, u, _, _) in CONVERSIONS.items() if q == quantity and u == units]
        fix = f"give --conversion {fits[0]} ({CONVERSIONS[fits[0]][3]})" if fits else \
            "stocks need SOC in g/kg: train on SOC, or declare data.quantity and the target's units"
        raise ProvenanceError(f"{what}; {fix}")
    if conversion not in CONVERSIONS:
        raise ProvenanceError(f"--conversion '{conversion}' is unknown; valid: {', '.join(CONVERSIONS)}")
    q, u, factor, statement = CONVERSIONS[conversion]
    if (quantity, units) != (q, u):
        raise ProvenanceError(f"--conversion {conversion} converts {q.upper()} in '{u}', but {what}; "
                              + ("drop --conversion" if (quantity, units) == ("soc", "g/kg") else
                                 "choose the conversion of the target's quantity and units"))
    return factor, statement


def run_fingerprint(run) -> str:
    """Fingerprint of the run's labelled samples and their targets (:func:`samples_fingerprint`)."""
    lab = run.labelled
    return samples_fingerprint(lab.sample_ids, lab.target(run.target))


def check_residuals(rows: pd.DataFrame, run, source: str | Path) -> str:
    """Check that out-of-fold residual rows (``sample_id``, ``y_true``, planar ``x``/``y`` in m) are the run's own
    samples, with the same targets and the same plane; returns their fingerprint.

    Raises:
        ProvenanceError: Other samples or other target values (another dataset or target), or coordinates more than
            :data:`COORD_TOLERANCE_M` from the run's (another CRS).
    """
    found, expected = samples_fingerprint(rows["sample_id"], rows["y_true"]), run_fingerprint(run)
    if found != expected:
        ids = set(rows["sample_id"].astype(str))
        common = len(ids & set(run.labelled.sample_ids.astype(str)))
        raise ProvenanceError(
            f"the residuals in {source} are not the out-of-fold residuals of this run's samples ({common} of "
            f"{len(ids)} sample ids shared, fingerprint {found[:12]} vs the run's {expected[:12]}); evaluate the run's "
            f"own config with `sptgnn evaluate` and give its predictions.csv")
    lab = run.labelled
    xy = pd.DataFrame(planar_coords(lab), index=lab.sample_ids.astype(str), columns=["x", "y"])
    got = rows.assign(sample_id=rows["sample_id"].astype(str)).drop_duplicates("sample_id").set_index("sample_id")
    dist = np.hypot(got["x"] - xy.loc[got.index, "x"], got["y"] - xy.loc[got.index, "y"])
    if not (dist <= COORD_TOLERANCE_M).all():
        raise ProvenanceError(f"the residuals in {source} sit up to {float(dist.max()):,.0f} m from the run's samples: "
                              f"they were computed in another CRS; evaluate the run's own config again")
    return found


def check_change(run, baseline_run, date: str | None, baseline_date: str | None) -> dict:
    """What the baseline of a change is; refuses a "change" between two models of the same samples at one date.

    Raises:
        ProvenanceError: ``baseline_run`` was fitted on the same samples (fingerprint) and no ``baseline_date``
            different from ``date`` is given: the difference would be between models, not soils.
    """
    baseline_fp = run_fingerprint(baseline_run)
    same_samples = baseline_run is run or baseline_fp == run_fingerprint(run)
    same_date = baseline_date is None or (date is not None and pd.Timestamp(baseline_date) == pd.Timestamp(date))
    if same_samples and same_date:
        raise ProvenanceError(
            "the baseline run was fitted on the same samples as the run, at the same date: their difference is a "
            "difference between models, not a change in the soil; give a baseline run of earlier samples, or "
            "--baseline-date (a date other than --date) with a run that has a time stream")
    return {"baseline_run": "the run itself" if baseline_run is run else str(getattr(baseline_run, "path", "")),
            "baseline_samples_fingerprint": baseline_fp, "baseline_date": baseline_date,
            "date": date}


def depth_interval(text: str, depth_cm: float | None = None) -> tuple[float, float]:
    """The depth interval ``TOP-BOTTOM`` (cm) of ``--depths``, e.g. ``"0-30"`` → ``(0.0, 30.0)``.

    Raises:
        ProvenanceError: Text that is not two numbers joined by ``-``, an inverted interval, or ``depth_cm`` given
            too (the interval is the layer).
    """
    if depth_cm is not None:
        raise ProvenanceError("give either --depths (an interval integrated over standard layers) or --depth-cm, "
                              "not both")
    try:
        top, bottom = (float(v) for v in text.split("-"))
    except ValueError:
        raise ProvenanceError(f"--depths '{text}': give the interval as TOP-BOTTOM in cm, e.g. 0-30") from None
    if not 0 <= top < bottom:
        raise ProvenanceError(f"--depths '{text}': the bottom must lie below the top, both >= 0 cm")
    return top, bottom


def layer_thickness(run, depth_cm: float | None, interval: tuple[float, float] | None = None) -> tuple[float, str]:
    """Thickness (cm) of the stock's layer and where it comes from; with ``interval`` (``--depths``, a run of profile
    layers), the interval's thickness and its standard layers.

    Raises:
        ProvenanceError: Neither ``depth_cm`` nor the run's sampled layer (``data.top_cm``/``bottom_cm``) is known,
            or an ``interval`` for a run that was not trained on profile layers.
    """
    if interval is not None:
        if run.depth is None:
            raise ProvenanceError(f"--depths {interval[0]:g}-{interval[1]:g} integrates predictions of profile layers; "
                                  "this run was trained on one sampled layer: give --depth-cm, or train on profile "
                                  "layers (data.table.site, top_cm, bottom_cm)")
        parts = ", ".join(f"{a:g}-{b:g}" for a, b in standard_layers(*interval))
        return interval[1] - interval[0], (f"{interval[0]:g}-{interval[1]:g} cm, the sum over the standard layers "
                                           f"{parts} cm, each predicted by the run of profile layers; realisations "
                                           "correlated along depth")
    data = run.config.data
    recorded = None if data.top_cm is None else (float(data.top_cm), float(data.bottom_cm))
    if depth_cm is not None:
        if not depth_cm > 0:
            raise ProvenanceError(f"--depth-cm {depth_cm}: the layer thickness must be positive (cm)")
        if recorded is None:
            return float(depth_cm), f"--depth-cm {depth_cm:g} (the run does not record its sampled layer)"
        if abs(depth_cm - (recorded[1] - recorded[0])) < 1e-9:
            return float(depth_cm), f"{recorded[0]:g}-{recorded[1]:g} cm, the sampled layer"
        return float(depth_cm), (f"--depth-cm {depth_cm:g}, while the samples are from {recorded[0]:g}-{recorded[1]:g} "
                                 f"cm: the concentration of the sampled layer is extrapolated to {depth_cm:g} cm")
    if recorded is None:
        raise ProvenanceError("the run does not record the sampled layer; give --depth-cm (the thickness of the "
                              "sampled layer, e.g. 30 for 0-30 cm) or set data.top_cm and data.bottom_cm and train again")
    return recorded[1] - recorded[0], f"{recorded[0]:g}-{recorded[1]:g} cm, the sampled layer (data.top_cm/bottom_cm)"


def run_manifest_hash(run) -> str | None:
    """SHA-256 of the run folder's ``manifest.json`` (which holds the SHA-256 of every other file), or ``None`` for a
    run that was not loaded from a folder."""
    from sptgnn.estimator.manifest import MANIFEST, sha256

    path = getattr(run, "path", None)
    return None if path is None or not (Path(path) / MANIFEST).is_file() else sha256(Path(path) / MANIFEST)


def provenance_record(run, run_folder, samples_fingerprint: str, residuals, residual_samples: int, conversion: tuple,
                      layer: tuple, change: dict | None = None, **settings) -> dict[str, str]:
    """Everything a filed total rests on, as text (GeoPackage layer metadata and its ``provenance`` layer).

    Args:
        run: The :class:`~sptgnn.estimator.run.Run`.
        run_folder: Its folder, as the user named it.
        samples_fingerprint: Fingerprint of the run's samples, which :func:`check_residuals` found the residuals to
            share.
        residuals: The residuals' file; residual_samples: how many rows the field was fitted on.
        conversion: ``(factor, statement)`` of :func:`soc_conversion`; layer: ``(thickness cm, statement)`` of
            :func:`layer_thickness`.
        change: :func:`check_change`'s description of the baseline, or ``None``.
        settings: The user's other settings (bulk density, coarse fragments, realisations, seed, ...), by name.
    """
    record = {
        "run": run_folder, "run_manifest_sha256": run_manifest_hash(run), "run_samples_fingerprint": samples_fingerprint,
        "target": run.target, "target_units": run.units, "conversion_to_soc_g_kg": conversion[1],
        "conversion_factor": conversion[0], "residuals": residuals, "residual_samples_fingerprint": samples_fingerprint,
        "residual_samples": residual_samples, "layer_thickness_cm": layer[0], "layer": layer[1], **settings,
        "zone_means_note": "zone means come from realisations conditioned on the out-of-fold residuals at the samples; "
                           "they differ from the mean map of `sptgnn predict`, which is not conditioned",
        "stock_formula": "SOC g/kg x bulk density g/cm3 x thickness cm x (1 - coarse) x 0.1 = t C/ha; t CO2e = t C x 44/12",
        **({f"change_{k}": v for k, v in change.items()} if change else {}),
        **{f"version_{k}": v for k, v in versions().items()},
    }
    return {k: "" if v is None else str(v) for k, v in record.items()}


def versions() -> dict[str, str]:
    """Versions of sptgnn and the packages a total depends on."""
    out = {}
    for name in ("sptgnn", "torch", "numpy", "gstools", "rasterio", "geopandas"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


__all__ = ["CONVERSIONS", "ProvenanceError", "VAN_BEMMELEN", "check_change", "check_residuals", "depth_interval",
           "layer_thickness", "provenance_record", "run_fingerprint", "run_manifest_hash", "soc_conversion",
           "target_quantity", "versions"]
