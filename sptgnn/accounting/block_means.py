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

For profile layers, :func:`check_profile_block_means` checks the interval a depth-integrated stock uses (``sptgnn
check-blocks --depths 0-30``): the observed value of a site is the thickness-weighted mean SOC over the interval's
standard layers from its equal-area spline (:func:`~sptgnn.data.spline.harmonise`), the predicted one the same mean of
the run's predictions at each standard layer, drawn from realisations correlated along depth
(:func:`~sptgnn.accounting.realisations.profile_realisations`). A stock at one bulk density is this mean times a
constant, so its block means have the same coverage.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

import numpy as np
from scipy.spatial.distance import cdist

from sptgnn.accounting.aggregate import Z90
from sptgnn.accounting.residuals import residual_field_from_calibration
from sptgnn.accounting.realisations import interval_mean, profile_realisations, soc_realisations
from sptgnn.accounting.residual_field import normal_scores
from sptgnn.accounting.stocks import layer_weights, standard_layers
from sptgnn.data.samples import samples_fingerprint

def block_side_m(xy: np.ndarray, block_samples: float) -> float:
    """Side (m) of square blocks holding about ``block_samples`` samples on average over the samples' bounding box."""
    span = xy.max(0) - xy.min(0)
    return float(np.sqrt(max(span[0] * span[1], 1.0) * block_samples / len(xy)))


def outer_fits(cfg, samples, fold_of_block: np.ndarray, xy: np.ndarray):
    """For each outer fold ``f`` of ``fold_of_block`` ``(num_samples,)``: ``(k, f, test mask, run fitted on the other
    folds, its residual field from the cross-fitted calibration part at planar ``xy``)``."""
    from sptgnn.estimator.run import fit_run

    for k, f in enumerate(np.unique(fold_of_block)):
        test = fold_of_block == f
        run = fit_run(cfg, samples.subset(~test), aoa=False)
        yield k, f, test, run, residual_field_from_calibration(run.ensemble, xy[~test])


def block_interval(draws: np.ndarray, mean: np.ndarray, var: np.ndarray, observed: np.ndarray) -> dict:
    """One block's row: its ``n`` members (samples or sites), observed mean, the 90 % interval of its mean from
    realisations ``draws`` ``(R, n)``, and the naive interval from independent predictions (``mean`` and ``var``,
    ``(n,)``): ``mean ± 1.645 · sqrt(Σ var) / n``."""
    lo, hi = np.quantile(draws.mean(1), [0.05, 0.95])
    m, sd = mean.mean(), np.sqrt(var.sum()) / len(mean)
    return {"n": int(len(mean)), "observed": float(observed.mean()), "low": float(lo), "high": float(hi),
            "naive_low": float(m - Z90 * sd), "naive_high": float(m + Z90 * sd)}


def coverage(rows: list[dict]) -> dict:
    """Shares of blocks whose interval covers the observed mean (realisations, naive) and mean widths."""
    return {"blocks_scored": len(rows),
            "coverage_90_realisations": float(np.mean([r["low"] <= r["observed"] <= r["high"] for r in rows])),
            "coverage_90_naive": float(np.mean([r["naive_low"] <= r["observed"] <= r["naive_high"] for r in rows])),
            "mean_width_realisations": float(np.mean([r["high"] - r["low"] for r in rows])),
            "mean_width_naive": float(np.mean([r["naive_high"] - r["naive_low"] for r in rows]))}


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
    for k, f, test, run, field in outer_fits(cfg, samples, fold_of_block, xy):
        pred = run.predict(samples.subset(test))
        draws = soc_realisations(pred, xy[test], field, seeds, window_seed=int(f))
        tb, ty = blocks[test], y[test]
        z_test = normal_scores(pred.cdf(ty))
        model = field.model()
        for b in np.unique(tb):
            inb = tb == b
            if inb.sum() < min_samples:
                continue
            d = cdist(xy[test][inb], xy[test][inb])
            rows.append({"fold": int(f), "block": int(b),
                         **block_interval(draws[:, inb], pred.mean[inb], pred.sd[inb] ** 2, ty[inb]),
                         "nugget": field.nugget, "len_scale_m": field.len_scale_m, "z_mean": float(z_test[inb].mean()),
                         "z_var_model": float((model.covariance(d) + model.nugget * (d == 0)).mean()),
                         "point_coverage": float(np.mean(np.abs(z_test[inb]) <= Z90))})
        if progress is not None:
            progress(k + 1, len(fold_ids))
    if not rows:
        raise ValueError(f"no test block holds {min_samples} samples; give larger blocks (--block-samples, --block-km) "
                         f"or a lower --min-samples")
    return {
        "dataset": config.data.source, "target": target, "samples": len(samples),
        "samples_fingerprint": samples_fingerprint(samples.sample_ids, y), "block_side_m": side, "folds": folds,
        "members": config.train.members, "realisations": realisations, **coverage(rows),
        "point_coverage_90": float(np.average([r["point_coverage"] for r in rows], weights=[r["n"] for r in rows])),
        "block_z_variance_ratio": float(np.mean([r["z_mean"] ** 2 for r in rows])
                                        / np.mean([r["z_var_model"] for r in rows])),
        "seconds": round(time.perf_counter() - start, 1), "blocks": rows,
    }


def site_interval_means(samples, target: str, depths: tuple[float, float]):
    """Observed thickness-weighted mean of ``target`` over ``depths`` (cm) per site, from each site's equal-area spline
    of its layers (:func:`~sptgnn.data.spline.harmonise` on the interval's standard layers). Returns the site ids
    ``(S,)`` and means ``(S,)`` of the sites whose layers reach the interval's bottom and start at or above its top.

    Raises:
        ValueError: Samples that are not profile layers (no site and depth columns).
    """
    from sptgnn.data.spline import harmonise

    if samples.depth is None or samples.site is None:
        raise ValueError("block means by depth need profile layers (data.table.site, top_cm and bottom_cm)")
    top, bottom = samples.depth
    layers = standard_layers(*depths)
    frame = samples.frame[[samples.site, top, bottom]].assign(value=samples.target(target))
    wide = harmonise(frame, samples.site, top, bottom, "value", layers)
    shallowest = frame.groupby(samples.site)[top].min().reindex(wide.index)
    keep = wide.notna().all(1).to_numpy() & (shallowest.to_numpy() <= depths[0])
    return wide.index.to_numpy()[keep].astype(str), wide.to_numpy()[keep] @ layer_weights(layers)


def check_profile_block_means(config, samples, depths: tuple[float, float] = (0.0, 30.0), folds: int = 5,
                              block_samples: float = 5.0, block_km: float | None = None, realisations: int = 200,
                              min_samples: int = 3, seed: int = 0,
                              progress: Callable[[int, int], None] | None = None) -> dict:
    """Coverage of the 90 % intervals of block means of a depth interval's mean SOC (g/kg) in a spatially blocked CV of
    profile layers (see the module docstring): :func:`check_block_means` with sites in place of samples.

    Args:
        config, samples: As for :func:`check_block_means`; the samples are profile layers.
        depths: The interval ``(top_cm, bottom_cm)``.
        folds, block_samples, block_km, realisations, seed, progress: As for :func:`check_block_means` (blocks are
            sized by sites).
        min_samples: Blocks with fewer test sites are not scored.

    Returns:
        As :func:`check_block_means` (without the point-support diagnostics), with ``depths_cm``, ``sites`` and one
        row per block whose ``n`` counts sites.

    Raises:
        ValueError: Samples that are not profile layers, fewer than two blocks, or no block with ``min_samples`` test
            sites.
    """
    from sptgnn.splits import assign_blocks, block_ids, planar_coords

    cfg = config.updated(calibration={"method": "variance", "folds": 5})
    target = config.data.target
    site_ids, observed = site_interval_means(samples, target, depths)
    if len(site_ids) < 2:
        raise ValueError(f"fewer than two sites have layers from {depths[0]:g} to {depths[1]:g} cm")
    xy = planar_coords(samples)
    sites = samples.sites()
    first = {s: i for i, s in reversed(list(enumerate(sites)))}  # a site's first layer: its location and covariates
    rep = np.array([first[s] for s in site_ids])
    side = block_km * 1000.0 if block_km else block_side_m(xy[rep], block_samples)
    blocks = block_ids(xy, side)
    if len(np.unique(blocks)) < 2:
        raise ValueError(f"blocks of {side / 1000:.3g} km leave fewer than two blocks; give a smaller --block-km")
    fold_of_block = assign_blocks(blocks, folds, seed)  # per layer; a site's layers share its location and block
    layers = standard_layers(*depths)
    top, bottom = samples.depth
    seeds = seed * 1_000_003 + np.arange(realisations)
    rows, start, fold_ids = [], time.perf_counter(), np.unique(fold_of_block)
    for k, f, test, run, field in outer_fits(cfg, samples, fold_of_block, xy):
        at = rep[test[rep]]  # the test sites' first layers
        if len(at):
            query = samples.subset(at)
            preds = [{target: run.predict(replace(query, frame=query.frame.assign(**{top: a, bottom: b})))}
                     for a, b in layers]
            layer_draws = profile_realisations(preds, target, xy[at], layers, field, seeds, int(f))[target]
            draws, mean, var = interval_mean(layer_draws, preds, target, layers)  # (R, sites), (sites,), (sites,)
            tb, ty = blocks[at], observed[test[rep]]
            for b in np.unique(tb):
                inb = tb == b
                if inb.sum() < min_samples:
                    continue
                rows.append({"fold": int(f), "block": int(b), **block_interval(draws[:, inb], mean[inb], var[inb],
                                                                               ty[inb]),
                             "nugget": field.nugget, "len_scale_m": field.len_scale_m,
                             "vertical_range_cm": field.vertical_range_cm})
        if progress is not None:
            progress(k + 1, len(fold_ids))
    if not rows:
        raise ValueError(f"no test block holds {min_samples} sites with layers from {depths[0]:g} to {depths[1]:g} cm; "
                         f"give larger blocks (--block-samples, --block-km) or a lower --min-samples")
    y = samples.target(target)
    return {
        "dataset": config.data.source, "target": target, "depths_cm": list(map(float, depths)),
        "quantity": "thickness-weighted mean over the interval's standard layers (equal-area splines of the observed "
                    "layers); block means of a stock at one bulk density cover as these do",
        "samples": len(samples), "sites": len(site_ids),
        "samples_fingerprint": samples_fingerprint(samples.sample_ids, y), "block_side_m": side, "folds": folds,
        "members": config.train.members, "realisations": realisations, **coverage(rows),
        "seconds": round(time.perf_counter() - start, 1), "blocks": rows,
    }


__all__ = ["block_interval", "outer_fits", "block_side_m", "check_block_means", "check_profile_block_means", "coverage",
           "site_interval_means"]
