"""Are the intervals of block means calibrated? Spatially blocked CV of block means from correlated realisations
(``sptgnn check-blocks``; DESIGN.md, "Aggregation and carbon accounting": 90 % intervals of block means should cover the
observed block means 85–95 % of the time).

For every outer fold (whole square blocks held out, :func:`~sptgnn.splits.block_ids`), a run is trained on the other
blocks with cross-fitted variance calibration (``calibration.folds``), so that every training sample has an
out-of-sample PIT value; the residual field (:class:`~sptgnn.accounting.residual_field.ResidualField`) is fitted on their
normal scores and conditioned on them — nothing of the test blocks is used. For every test block with at least
``min_samples`` samples, the realisations at its sample locations (point support) give the 90 % interval of the block
mean, which is compared with the observed mean of the block's samples. The naive interval from independent points
(``mean ± 1.645 · sqrt(Σ sd²) / n``) is scored beside. This is what a zone total's interval claims, checked where the
truth is known (Goovaerts 2001, Geoderma 103; Verra VT0014's model validation).
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from scipy.spatial.distance import cdist

from sptgnn.accounting.aggregate import Z90
from sptgnn.accounting.residuals import residual_field_from_calibration
from sptgnn.accounting.realisations import soc_realisations
from sptgnn.accounting.residual_field import normal_scores
from sptgnn.data.samples import samples_fingerprint

def block_side_m(xy: np.ndarray, block_samples: float) -> float:
    """Side (m) of square blocks holding about ``block_samples`` samples on average over the samples' bounding box."""
    span = xy.max(0) - xy.min(0)
    return float(np.sqrt(max(span[0] * span[1], 1.0) * block_samples / len(xy)))


def check_block_means(config, samples, folds: int = 5, block_samples: float = 5.0, block_km: float | None = None,
                      realisations: int = 200, min_samples: int = 3, seed: int = 0,
                      progress: Callable[[int, int], None] | None = None) -> dict:
    """Coverage of the 90 % intervals of block means in a spatially blocked CV.

    Args:
        config: The run's :class:`~sptgnn.config.Config`; its calibration is replaced by cross-fitted variance scaling
            (5 folds) so that every training sample gets an out-of-sample PIT value.
        samples: The labelled :class:`~sptgnn.data.samples.SoilSamples`.
        folds: Outer folds of whole blocks.
        block_samples: Block side chosen for this many samples a block (ignored with ``block_km``).
        block_km: Block side in km.
        realisations: Realisations per test block.
        min_samples: Blocks with fewer test samples are not scored.
        seed: Seed of the block-to-fold assignment and of the realisations.
        progress: Called with ``(folds done, folds)``.

    Returns:
        ``coverage_90_realisations`` and ``coverage_90_naive`` (shares of scored blocks, 0–1), mean widths (target
        units), ``blocks_scored``, ``block_side_m``, ``samples_fingerprint`` and one row per block (``blocks``).

    Raises:
        ValueError: Fewer than two blocks, or no block with ``min_samples`` test samples.
    """
    from sptgnn.estimator.run import fit_run
    from sptgnn.splits import assign_blocks, block_ids, planar_coords

    cfg = config.updated(calibration={"method": "variance", "folds": 5})
    target = config.data.target
    xy = planar_coords(samples)
    side = block_km * 1000.0 if block_km else block_side_m(xy, block_samples)
    blocks = block_ids(xy, side)
    if len(np.unique(blocks)) < 2:
        raise ValueError(f"blocks of {side / 1000:.3g} km leave fewer than two blocks; give a smaller --block-km")
    fold_of_block = assign_blocks(blocks, folds, seed)
    y = samples.target(target)
    seeds = seed * 1_000_003 + np.arange(realisations)
    rows, start, fold_ids = [], time.perf_counter(), np.unique(fold_of_block)
    for k, f in enumerate(fold_ids):
        test = fold_of_block == f
        run = fit_run(cfg, samples.subset(~test), aoa=False)
        field = residual_field_from_calibration(run.ensemble, xy[~test])
        pred = run.predict(samples.subset(test))
        draws = soc_realisations(pred, xy[test], field, seeds, window_seed=int(f))
        tb, ty = blocks[test], y[test]
        z_test = normal_scores(pred.cdf(ty))
        model = field.model()
        for b in np.unique(tb):
            inb = tb == b
            if inb.sum() < min_samples:
                continue
            lo, hi = np.quantile(draws[:, inb].mean(1), [0.05, 0.95])
            m, sd = pred.mean[inb].mean(), np.sqrt((pred.sd[inb] ** 2).sum()) / inb.sum()
            d = cdist(xy[test][inb], xy[test][inb])
            rows.append({"fold": int(f), "block": int(b), "n": int(inb.sum()), "observed": float(ty[inb].mean()),
                         "low": float(lo), "high": float(hi), "naive_low": float(m - Z90 * sd),
                         "naive_high": float(m + Z90 * sd), "nugget": field.nugget, "len_scale_m": field.len_scale_m,
                         "z_mean": float(z_test[inb].mean()),
                         "z_var_model": float((model.covariance(d) + model.nugget * (d == 0)).mean()),
                         "point_coverage": float(np.mean(np.abs(z_test[inb]) <= Z90))})
        if progress is not None:
            progress(k + 1, len(fold_ids))
    if not rows:
        raise ValueError(f"no test block holds {min_samples} samples; give larger blocks (--block-samples, --block-km) "
                         f"or a lower --min-samples")
    inside = [r["low"] <= r["observed"] <= r["high"] for r in rows]
    naive = [r["naive_low"] <= r["observed"] <= r["naive_high"] for r in rows]
    return {
        "dataset": config.data.source, "target": target, "samples": len(samples),
        "samples_fingerprint": samples_fingerprint(samples.sample_ids, y), "block_side_m": side, "folds": folds,
        "members": config.train.members, "realisations": realisations, "blocks_scored": len(rows),
        "coverage_90_realisations": float(np.mean(inside)), "coverage_90_naive": float(np.mean(naive)),
        "mean_width_realisations": float(np.mean([r["high"] - r["low"] for r in rows])),
        "mean_width_naive": float(np.mean([r["naive_high"] - r["naive_low"] for r in rows])),
        "point_coverage_90": float(np.average([r["point_coverage"] for r in rows], weights=[r["n"] for r in rows])),
        "block_z_variance_ratio": float(np.mean([r["z_mean"] ** 2 for r in rows])
                                        / np.mean([r["z_var_model"] for r in rows])),
        "seconds": round(time.perf_counter() - start, 1), "blocks": rows,
    }


__all__ = ["block_side_m", "check_block_means"]
