"""Cross-validation reports: a Markdown summary and figures.

:func:`write_report` turns a ``metrics.json`` dict and the out-of-fold ``predictions.csv`` frame into ``report.md`` and
PNG figures (predicted vs observed per model on log axes, a residual map of SpTGNN, per-fold R² on log SOC).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TABLE_COLUMNS = [("r2", "R²", 3), ("r2_log", "R² log", 3), ("r2_median", "R² median", 3), ("rmse", "RMSE", 2), ("mae", "MAE", 2),
                 ("me", "ME", 2), ("me_percent", "ME %", 1), ("ccc", "CCC", 3), ("mape", "MAPE %", 1),
                 ("crps", "CRPS", 2), ("picp90", "PICP90", 3), ("morans_i", "Moran's I", 3),
                 ("fit_seconds", "fit s", 0)]
CONSOLE_COLUMNS = [("r2", "R²", 3), ("r2_log", "R² log", 3), ("r2_median", "R² median", 3), ("rmse", "RMSE", 3),
                   ("mae", "MAE", 3), ("me", "ME", 3), ("me_percent", "ME %", 1), ("ccc", "CCC", 3), ("nll", "NLL", 3),
                   ("crps", "CRPS", 3), ("picp90", "PICP90", 3), ("calibration_error", "cal. err", 3),
                   ("morans_i", "Moran's I", 3), ("fit_seconds", "fit s", 1)]


def console_table(title: str, metrics: dict):
    """The pooled scores of every model as a rich table for the terminal (``sptgnn evaluate``, ``ablate``)."""
    from rich.table import Table

    table = Table(title=title)
    table.add_column("model")
    for _, label, _ in CONSOLE_COLUMNS:
        table.add_column(label, justify="right")
    for model, m in metrics.items():
        table.add_row(model, *["—" if m.get(k) is None else f"{m[k]:.{d}f}" for k, _, d in CONSOLE_COLUMNS])
    return table


def metrics_table(models: dict[str, dict]) -> str:
    """A Markdown table of the pooled scores of every model (``—`` where a score is undefined)."""
    head = "| model | " + " | ".join(label for _, label, _ in TABLE_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(TABLE_COLUMNS)
    lines = [head, rule]
    for name, m in models.items():
        cells = ["—" if m.get(k) is None else f"{m[k]:.{d}f}" for k, _, d in TABLE_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figures(predictions: pd.DataFrame, out: Path, main_model: str = "sptgnn") -> list[str]:
    """Write the report's PNG figures into ``out`` and return their file names.

    ``pred_vs_obs.png``: predicted vs observed (log axes, ``1 + SOC``) per model; ``residual_map.png``: SpTGNN's
    ``log1p`` residuals at the samples' planar coordinates; ``per_fold_r2_log.png``: R² on log SOC per fold and model.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    models = list(dict.fromkeys(predictions["model"]))
    cols = min(3, len(models))
    rows = int(np.ceil(len(models) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), models):
        g = predictions[predictions["model"] == name]
        obs, pred = 1 + g["y_true"].to_numpy(), 1 + np.expm1(g["mean_log"].to_numpy())
        ax.scatter(obs, pred, s=3, alpha=0.3)
        lo, hi = max(min(obs.min(), pred.min()), 0.5), max(obs.max(), pred.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set(xscale="log", yscale="log", title=name, xlabel="observed 1 + SOC (g/kg)", ylabel="predicted 1 + SOC")
    for ax in axes.ravel()[len(models):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out / "pred_vs_obs.png", dpi=110)
    plt.close(fig)
    written.append("pred_vs_obs.png")
    main = predictions[predictions["model"] == (main_model if main_model in models else models[0])]
    if len(main):
        resid = np.log1p(main["y_true"].to_numpy()) - main["mean_log"].to_numpy()
        lim = float(np.quantile(np.abs(resid), 0.98)) or 1.0
        fig, ax = plt.subplots(figsize=(6, 6))
        sc = ax.scatter(main["x"] / 1000, main["y"] / 1000, c=resid, s=4, cmap="RdBu", vmin=-lim, vmax=lim)
        fig.colorbar(sc, ax=ax, label="residual, log(1 + SOC)")
        ax.set(aspect="equal", xlabel="x (km)", ylabel="y (km)", title=f"{main['model'].iloc[0]}: out-of-fold residuals")
        fig.tight_layout()
        fig.savefig(out / "residual_map.png", dpi=110)
        plt.close(fig)
        written.append("residual_map.png")
    per_fold = predictions.groupby(["model", "fold"]).apply(
        lambda g: _r2(np.log1p(g["y_true"].to_numpy()), g["mean_log"].to_numpy()), include_groups=False).unstack(0)
    fig, ax = plt.subplots(figsize=(7, 4))
    per_fold[models].plot.bar(ax=ax)
    ax.set(ylabel="R² on log(1 + SOC)", xlabel="fold")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "per_fold_r2_log.png", dpi=110)
    plt.close(fig)
    written.append("per_fold_r2_log.png")
    return written


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    sst = ((y - y.mean()) ** 2).sum()
    return float(1 - ((y - p) ** 2).sum() / sst) if len(y) > 1 and sst > 0 else float("nan")


def write_report(out: Path, metrics: dict, predictions: pd.DataFrame, with_figures: bool = True) -> Path:
    """Write ``report.md`` (and the figures) of a cross-validation run into the folder ``out``.

    Args:
        out: Existing folder.
        metrics: The ``metrics.json`` dict (``dataset``, ``split``, ``models`` ...).
        predictions: The out-of-fold predictions.
        with_figures: Also write the PNG figures.

    Returns:
        Path of ``report.md``.
    """
    out = Path(out)
    split = metrics.get("split", {})
    lines = [
        f"# Cross-validation: {metrics.get('dataset')} ({metrics.get('target')})",
        "",
        f"{metrics.get('n_samples')} samples, split `{split.get('split', metrics.get('folds'))}`"
        + (f", {split.get('block_size_km')} km blocks" if split.get("split") == "blocks" else "")
        + (f", {split.get('buffer_km')} km buffer" if split.get("buffer_km") else "")
        + f", {metrics.get('n_folds')} folds; {metrics.get('members')} SpTGNN members. Scores pooled over all out-of-fold "
        "predictions; RMSE, MAE and CRPS in target units (g/kg for SOC), MAPE in %, R² log on log(1 + SOC). Every model's "
        "point prediction is the mean of its predictive distribution (through the same back-transform for every model); "
        "R² median scores its median instead.",
        "",
        metrics_table(metrics.get("models", {})),
        "",
    ]
    if metrics.get("wall_seconds") is not None:
        cpu = f", CPU time {metrics['cpu_seconds']:.0f} s" if metrics.get("cpu_seconds") is not None else ""
        lines += [f"Wall time {metrics['wall_seconds']:.0f} s{cpu} (load average at the end {metrics.get('load_average')}, "
                  f"{metrics.get('torch_threads')} torch thread(s)).", ""]
    if metrics.get("fold_sizes"):
        lines += ["| fold | train | test | buffer-excluded |", "|---:|---:|---:|---:|"]
        lines += [f"| {f['fold']} | {f['n_train']} | {f['n_test']} | {f['n_excluded']} |" for f in metrics["fold_sizes"]]
        lines.append("")
    per_fold = {name: m.get("per_fold", {}) for name, m in metrics.get("models", {}).items()}
    if per_fold:
        folds = sorted({f for pf in per_fold.values() for f in pf}, key=lambda f: (len(f), f))
        lines += ["R² on log SOC per fold:", "", "| model | " + " | ".join(folds) + " |", "|---|" + "---:|" * len(folds)]
        for name, pf in per_fold.items():
            cells = ["—" if pf.get(f, {}).get("r2_log") is None else f"{pf[f]['r2_log']:.3f}" for f in folds]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    if metrics.get("stream_usage"):
        lines += ["MoE stream usage (gate-weighted share of expert input weights): "
                  + ", ".join(f"{k} {v:.2f}" for k, v in metrics["stream_usage"].items()), ""]
    if with_figures and len(predictions):
        for name in figures(predictions, out):
            lines += [f"![{name}]({name})", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


__all__ = ["console_table", "metrics_table", "figures", "write_report"]
