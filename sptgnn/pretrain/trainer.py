"""Masked-reconstruction pre-training of the stream encoders on unlabelled cells (``sptgnn pretrain``).

Every epoch draws new joint masks (:mod:`sptgnn.pretrain.masking`) over all cells and scores the reconstruction of the
hidden values (MSE on hidden entries only) in mini-batches of cells; a held-out share of cells, with masks fixed by the
seed, gives the validation RMSE (standardised units) beside that of filling hidden values with the mean (0). No
target is read (tested with NaN targets).
"""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial import cKDTree

from sptgnn.pretrain.autoencoder import PRETRAIN_STREAMS, MaskedStreamAutoencoder
from sptgnn.pretrain.cells import Cells, PretrainError
from sptgnn.pretrain.masking import joint_mask, masked_mse


@dataclass
class Pretrained:
    """A pre-trained autoencoder and what a fine-tuning run needs to use its encoders.

    Attributes:
        model: The :class:`~sptgnn.pretrain.autoencoder.MaskedStreamAutoencoder` (eval mode).
        normalisation: Per stream ``{"columns": [...], "mean": [...], "scale": [...]}`` of the cells (raw units).
        history: Per epoch ``{"epoch", "train_mse", "val_rmse"}``.
        val_rmse_mean_fill: Validation RMSE of filling hidden values with the mean (0), the no-skill reference.
        cells: Number of cells pre-trained on; ``fingerprint``: their SHA-256.
        seconds: Wall time; ``peak_rss_mb``: the process's peak resident memory (MB).
    """

    model: MaskedStreamAutoencoder
    normalisation: dict
    history: list = field(default_factory=list)
    val_rmse_mean_fill: float = float("nan")
    cells: int = 0
    fingerprint: str = ""
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    source: str = ""


def standardise(cells: Cells, clip: float | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """Standardised streams ``{stream: (N, F)}`` of the pre-trained streams and their normalisation (cells' mean and
    sd, 1 where constant), clipped to ``±clip`` sd like ``graph.feature_clip``."""
    out, norm = {}, {}
    for s in PRETRAIN_STREAMS:
        v = cells.streams.get(s)
        if v is None or not v.shape[1]:
            continue
        mean, sd = v.mean(0), v.std(0)
        scale = np.where(sd > 0, sd, 1.0)
        z = (v - mean) / scale
        out[s] = np.clip(z, -clip, clip) if clip is not None else z
        norm[s] = {"columns": list(cells.columns[s]), "mean": mean.tolist(), "scale": scale.tolist()}
    if not out:
        raise PretrainError(f"{cells.source}: the cells have no imagery or environment features to pre-train on")
    return out, norm


def _peak_rss_mb() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024**2 if sys.platform == "darwin" else rss / 1024


def _masks(dims: dict[str, int], nbr_mask: torch.Tensor, pc, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {s: joint_mask(f, nbr_mask, pc.band_mask_ratio, pc.neighbourhood_mask_ratio, gen) for s, f in dims.items()}


def pretrain_cells(cells: Cells, config, progress=None) -> Pretrained:
    """Pre-train the imagery / environment encoders of ``config.model`` on ``cells`` with ``config.pretrain``.

    Args:
        cells: Unlabelled cells (:func:`~sptgnn.pretrain.cells.config_cells`).
        config: The run :class:`~sptgnn.config.Config` (``model.hidden``, ``model.dropout``, ``graph.feature_clip``,
            ``pretrain``).
        progress: Optional ``(epoch, epochs)`` callback.

    Raises:
        PretrainError: Fewer cells than neighbours asked for, or no pre-trainable stream.
    """
    pc, start = config.pretrain, time.perf_counter()
    k = max(pc.context_k, pc.mask_neighbours)
    if len(cells) < max(k + 2, 20):
        raise PretrainError(f"{cells.source}: {len(cells)} cells are too few to pre-train on (need {max(k + 2, 20)})")
    z, norm = standardise(cells, config.graph.feature_clip)
    x = {s: torch.tensor(v, dtype=torch.float32) for s, v in z.items()}
    dims = {s: v.shape[1] for s, v in z.items()}
    nbrs = torch.as_tensor(cKDTree(cells.xy_m).query(cells.xy_m, k=k + 1)[1][:, 1:], dtype=torch.long)
    context, nbr_mask = nbrs[:, :pc.context_k], nbrs[:, :pc.mask_neighbours]
    gen = torch.Generator().manual_seed(pc.seed)
    torch.manual_seed(pc.seed)
    model = MaskedStreamAutoencoder(dims, config.model)
    opt = torch.optim.AdamW(model.parameters(), lr=pc.lr, weight_decay=pc.weight_decay)
    n = len(cells)
    perm = torch.randperm(n, generator=gen)
    n_val = int(round(pc.validation_fraction * n))
    val, train = perm[:n_val], perm[n_val:]
    val_masks = _masks(dims, nbr_mask, pc, torch.Generator().manual_seed(pc.seed + 1))
    mean_fill = _rmse({s: torch.zeros_like(x[s][val]) for s in dims}, x, val_masks, val)
    history = []
    for epoch in range(pc.epochs):
        model.train()
        masks = _masks(dims, nbr_mask, pc, gen)
        total, count = 0.0, 0
        order = train[torch.randperm(len(train), generator=gen)]
        for batch in order.split(pc.batch_size):
            rec = model(x, masks, context, batch)
            loss = sum(masked_mse(rec[s], x[s][batch], masks[s][batch]) for s in dims)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, count = total + loss.item() * len(batch), count + len(batch)
        model.eval()
        with torch.no_grad():
            val_rmse = _rmse(model(x, val_masks, context, val), x, val_masks, val) if n_val else float("nan")
        history.append({"epoch": epoch + 1, "train_mse": total / max(count, 1), "val_rmse": val_rmse})
        if progress is not None:
            progress(epoch + 1, pc.epochs)
    return Pretrained(model.eval(), norm, history, mean_fill, n, cells.fingerprint(),
                      time.perf_counter() - start, _peak_rss_mb(), cells.source)


def _rmse(rec, x, masks, idx) -> float:
    """RMSE over hidden entries of cells ``idx``; ``rec`` holds their reconstructions, ``{stream: (len(idx), F)}``."""
    err, cnt = 0.0, 0
    for s in masks:
        m = masks[s][idx]
        err += float(((rec[s] - x[s][idx])[m] ** 2).sum())
        cnt += int(m.sum())
    return float(np.sqrt(err / max(cnt, 1)))


__all__ = ["Pretrained", "pretrain_cells", "standardise"]
