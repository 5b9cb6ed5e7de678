"""Uncertainty figures of out-of-fold predictions (matplotlib, Agg backend, PNG files).

* ``calibration_curve.png``: observed vs expected proportion of observations inside central prediction intervals
  (interval-based calibration curve, Kuleshov et al. 2018; the diagonal is perfect calibration).
* ``picp.png``: PICP at the nominal levels 50/80/90/95 % per model.
* ``sharpness.png``: histograms of the 90 % interval widths (target units) per model (sharper = narrower).
* ``predicted_vs_observed.png``: SpTGNN mean vs observation with 90 % interval error bars, coloured by the epistemic
  share of the predictive variance ``epistemic² / (aleatoric² + epistemic²)``.

All read the predictions table of :func:`sptgnn.evaluate.crossval.cross_validate` (columns ``pit`` and
``lowerXX``/``upperXX`` where the model has a distribution; a Gaussian ``N(mean, sd²)`` otherwise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from sptgnn.scores.metrics import INTERVAL_LEVELS, interval_calibration_curve

FIGURES = ("calibration_curve.png", "picp.png", "sharpness.png", "predicted_vs_observed.png")


def _pit_and_bounds(group: pd.DataFrame) -> tuple[np.ndarray, dict] | None:
    """PIT values and central interval bounds of one model's rows, or ``None`` for a point forecast."""
    y = group["y_true"].to_numpy(dtype=float)
    if "pit" in group and group["pit"].notna().all():
        bounds = {lv: (group[f"lower{round(100 * lv)}"].to_numpy(float), group[f"upper{round(100 * lv)}"].to_numpy(float))
                  for lv in INTERVAL_LEVELS}
        return group["pit"].to_numpy(dtype=float), bounds
    if group["sd"].notna().all():
        mean, sd = group["mean"].to_numpy(float), group["sd"].to_numpy(float)
        bounds = {lv: (mean - norm.ppf(0.5 + lv / 2) * sd, mean + norm.ppf(0.5 + lv / 2) * sd) for lv in INTERVAL_LEVELS}
        return norm.cdf((y - mean) / sd), bounds
    return None


def uncertainty_figures(predictions: pd.DataFrame, out_dir: str | Path, target: str = "SOC (g/kg)") -> list[Path]:
    """Write the four PNG figures into ``out_dir`` (an existing folder) and return their paths.

    Args:
        predictions: Out-of-fold predictions, one row per sample and model.
        out_dir: Folder to write into.
        target: Axis label of the target and its unit.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    models = {name: r for name, g in predictions.groupby("model", sort=False) if (r := _pit_and_bounds(g)) is not None}
    paths = [out_dir / f for f in FIGURES]

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="ideal")
    for name, (pit, _) in models.items():
        expected, observed = interval_calibration_curve(pit)
        ax.plot(expected, observed, label=name)
    ax.set(xlabel="expected proportion in central interval", ylabel="observed proportion", xlim=(0, 1), ylim=(0, 1),
           title="Calibration curve (interval-based)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    nominal = np.array(INTERVAL_LEVELS)
    ax.plot(nominal, nominal, color="grey", lw=1, ls="--", label="ideal")
    for name, (_, bounds) in models.items():
        y = predictions.loc[predictions["model"] == name, "y_true"].to_numpy(float)
        picp = [np.mean((y >= bounds[lv][0]) & (y <= bounds[lv][1])) for lv in INTERVAL_LEVELS]
        ax.plot(nominal, picp, marker="o", label=name)
    ax.set(xlabel="nominal level", ylabel="PICP", title="Coverage of central prediction intervals")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    widths = {name: b[0.9][1] - b[0.9][0] for name, (_, b) in models.items()}
    if widths:
        edges = np.histogram_bin_edges(np.concatenate(list(widths.values())), bins=30)
        for name, w in widths.items():
            ax.hist(w, bins=edges, histtype="step", lw=1.5, label=f"{name} (mean {w.mean():.2f})")
    ax.set(xlabel=f"90 % interval width, {target}", ylabel="samples", title="Sharpness")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths[2], dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 5))
    sp = predictions[predictions["model"] == "sptgnn"]
    if len(sp) and "sptgnn" in models:
        lo, hi = models["sptgnn"][1][0.9]
        mean, y = sp["mean"].to_numpy(float), sp["y_true"].to_numpy(float)
        share = sp["epistemic_sd"].to_numpy(float) ** 2 / np.maximum(sp["sd"].to_numpy(float) ** 2, 1e-300)
        cmap = plt.get_cmap("viridis")
        ax.errorbar(y, mean, yerr=np.vstack([np.maximum(mean - lo, 0), np.maximum(hi - mean, 0)]), fmt="none",
                    ecolor=cmap(share), alpha=0.5, lw=0.8)
        sc = ax.scatter(y, mean, c=share, cmap=cmap, vmin=0, vmax=1, s=12, zorder=3)
        fig.colorbar(sc, ax=ax, label="epistemic share of variance")
        lim = [min(y.min(), lo.min()), max(y.max(), hi.max())]
        ax.plot(lim, lim, color="grey", lw=1, ls="--")
    ax.set(xlabel=f"observed {target}", ylabel=f"predicted {target} (90 % interval)", title="SpTGNN out-of-fold")
    fig.tight_layout()
    fig.savefig(paths[3], dpi=120)
    plt.close(fig)
    return paths


__all__ = ["uncertainty_figures", "FIGURES"]
