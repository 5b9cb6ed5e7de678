"""Masked spatio-temporal pre-training of a pixel series encoder on an unlabelled satellite image time series (STCLN:
Qin et al. 2025, Int. J. Appl. Earth Obs. Geoinf. 137, 104426: joint masking in space and time, MSE on masked
positions only).

Every pixel is a sequence of dated observations (e.g. Sentinel-2 NDVI with a cloud mask). A token per date carries
``[value · visible, visible, neighbourhood mean, neighbourhood visible share, cos doy, sin doy, years]``, the
neighbourhood being the pixel's ``k`` nearest pixels at the same date (visible values only); a transformer encoder mixes
the dates of a pixel, so a value hidden by a cloud-like patch is inferred from the pixel's other dates and from the
clear pixels around it.
Masks join random (pixel, date) entries and whole neighbourhoods × runs of consecutive dates
(:func:`spatiotemporal_mask`); only clear, hidden entries are scored. The embedding of a pixel (``(N, d)``, the mean of
its visible tokens' states) is what a fine-tuned model reads; it is deterministic for a seed.

The reference is harmonic regression per pixel (:func:`harmonic_fill`; Zhu & Woodcock 2014, CCDC), the standard gap
filler of such series.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor, nn

from sptgnn.imagery.series import date_embedding


@dataclass
class PixelSeries:
    """An image time series as pixels: ``values`` ``(N, T)``, ``clear`` ``(N, T)`` bool, ``dates`` ``(T,)``
    datetime64 and pixel centres ``xy`` ``(N, 2)`` (m)."""

    values: np.ndarray
    clear: np.ndarray
    dates: np.ndarray
    xy: np.ndarray

    @classmethod
    def from_rasters(cls, values_tif, cloud_tif=None) -> "PixelSeries":
        """Read a one-band-per-date GeoTIFF (band descriptions are ISO dates) and an optional cloud mask of the same
        layout (non-zero = cloud). Non-finite values and nodata are not clear.

        Raises:
            ValueError: A band description that is not a date, or a cloud mask of another shape.
        """
        import rasterio

        with rasterio.open(values_tif) as ds:
            values = ds.read(masked=True)
            try:
                dates = np.array([np.datetime64(d[:19]) for d in ds.descriptions], dtype="datetime64[s]")
            except (TypeError, ValueError):
                raise ValueError(f"{values_tif}: band descriptions must be acquisition dates, e.g. 2016-05-01") from None
            rows, cols = np.mgrid[0:ds.height, 0:ds.width]
            t = ds.transform
            xy = np.c_[(t.c + t.a * (cols + 0.5)).ravel(), (t.f + t.e * (rows + 0.5)).ravel()]
        clear = ~np.ma.getmaskarray(values) & np.isfinite(values.filled(np.nan))
        if cloud_tif is not None:
            with rasterio.open(cloud_tif) as ds:
                cloud = ds.read()
            if cloud.shape != clear.shape:
                raise ValueError(f"{cloud_tif}: shape {cloud.shape} differs from {values_tif} {clear.shape}")
            clear &= cloud == 0
        n = clear.shape[1] * clear.shape[2]
        return cls(values.filled(0).reshape(len(dates), n).T.astype(np.float64), clear.reshape(len(dates), n).T,
                   dates, xy)


def spatiotemporal_mask(neighbours: np.ndarray, num_dates: int, entry_ratio: float, patch_ratio: float, run: int,
                        rng: np.random.Generator) -> np.ndarray:
    """``(N, T)`` bool hidden entries: each entry with probability ``entry_ratio``, and patches of a pixel and its
    ``neighbours`` ``(N, m)`` hidden over ``run`` consecutive dates, centres drawn so that about ``patch_ratio`` of
    the entries fall in a patch."""
    n, m = neighbours.shape
    hidden = rng.random((n, num_dates)) < entry_ratio
    centres = rng.random((n, num_dates)) < patch_ratio / ((m + 1) * run)
    for p, t in zip(*np.nonzero(centres)):
        hidden[np.r_[p, neighbours[p]], t:t + run] = True
    return hidden


class PixelSeriesEncoder(nn.Module):
    """Transformer over a pixel's dated tokens, each token also carrying its neighbourhood at the same date (see the
    module docstring).

    Shapes:
        ``values``, ``visible`` ``(B, T)``, their neighbourhood means ``nbr_values``, ``nbr_visible`` ``(B, T)``
        (:func:`neighbourhood_means`), ``time`` ``(T, 3)`` → reconstructions ``(B, T)``; :meth:`embed` → ``(B, d)``.
    """

    def __init__(self, hidden: int = 32, heads: int = 4, layers: int = 2):
        super().__init__()
        self.token = nn.Linear(7, hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.decoder = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def states(self, values: Tensor, visible: Tensor, nbr_values: Tensor, nbr_visible: Tensor, time: Tensor) -> Tensor:
        """Token states ``(B, T, d)``; a hidden value enters as 0 with ``visible = 0``."""
        v = visible.to(values.dtype)
        tok = torch.cat([torch.where(visible, values, 0.0)[..., None], v[..., None], nbr_values[..., None],
                         nbr_visible[..., None], time[None].expand(len(values), -1, -1)], dim=-1)
        return self.encoder(self.token(tok))

    def forward(self, values: Tensor, visible: Tensor, nbr_values: Tensor, nbr_visible: Tensor, time: Tensor) -> Tensor:
        return self.decoder(self.states(values, visible, nbr_values, nbr_visible, time)).squeeze(-1)

    def embed(self, values: Tensor, visible: Tensor, nbr_values: Tensor, nbr_visible: Tensor, time: Tensor) -> Tensor:
        """Pixel embeddings ``(B, d)``: the mean state of the visible tokens."""
        h = self.states(values, visible, nbr_values, nbr_visible, time)
        w = visible.to(h.dtype)[..., None]
        return (h * w).sum(1) / w.sum(1).clamp_min(1.0)


def neighbourhood_means(x: Tensor, visible: Tensor, neighbours: np.ndarray) -> tuple[Tensor, Tensor]:
    """Mean visible value ``(N, T)`` of each pixel's ``neighbours`` ``(N, k)`` at every date (0 where none is
    visible) and the visible share ``(N, T)``; hidden values never enter."""
    nb = torch.as_tensor(neighbours)
    vis = visible[nb].to(x.dtype)                       # (N, k, T)
    total = (torch.where(visible, x, 0.0)[nb] * vis).sum(1)
    count = vis.sum(1)
    return total / count.clamp_min(1.0), count / nb.shape[1]


def time_features(dates: np.ndarray) -> np.ndarray:
    """``(T, 3)``: cos and sin of the day of year and years since the first date."""
    e = date_embedding(dates, 1)[:, 1:]
    years = (dates - dates.min()).astype("timedelta64[s]").astype(float) / (365.25 * 86400)
    return np.c_[e, years]


def harmonic_fill(series: PixelSeries, visible: np.ndarray, harmonics: int = 2, trend: bool = True,
                  ridge: float = 1e-3) -> np.ndarray:
    """Harmonic regression per pixel (constant, optional linear trend, ``harmonics`` annual harmonics) fitted by
    ridge least squares on its ``visible`` entries ``(N, T)``; its value at every date, ``(N, T)``. A pixel with
    fewer visible dates than terms gets its visible mean."""
    e = date_embedding(series.dates, harmonics)
    if trend:
        e = np.c_[e, time_features(series.dates)[:, 2]]
    w = visible.astype(float)
    gram = np.einsum("nt,tp,tq->npq", w, e, e) + ridge * np.eye(e.shape[1])
    rhs = np.einsum("nt,tp,nt->np", w, e, series.values)
    coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
    out = coef @ e.T
    few = w.sum(1) < e.shape[1]
    mean = (series.values * w).sum(1) / np.maximum(w.sum(1), 1)
    out[few] = mean[few, None]
    return out


@dataclass
class SeriesPretrainResult:
    """A pre-trained :class:`PixelSeriesEncoder`, the standardisation (``mean``, ``sd`` of clear values), the
    neighbours ``(N, k)`` and the per-epoch training loss."""

    model: PixelSeriesEncoder
    mean: float
    sd: float
    neighbours: np.ndarray
    history: list


def pretrain_series(series: PixelSeries, held_out: np.ndarray | None = None, epochs: int = 20, batch: int = 256,
                    k: int = 8, entry_ratio: float = 0.15, patch_ratio: float = 0.15, run: int = 3, lr: float = 2e-3,
                    hidden: int = 32, seed: int = 0, progress=None) -> SeriesPretrainResult:
    """Pre-train a :class:`PixelSeriesEncoder` by masked reconstruction; ``held_out`` ``(N, T)`` entries are hidden
    in every epoch and never scored (the held-out test of :func:`reconstruct`)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    held = np.zeros_like(series.clear) if held_out is None else held_out
    clear = series.clear & ~held
    mean, sd = float(series.values[clear].mean()), float(series.values[clear].std() or 1.0)
    x = torch.tensor((series.values - mean) / sd, dtype=torch.float32)
    nbrs = cKDTree(series.xy).query(series.xy, k=k + 1)[1][:, 1:]
    time = torch.tensor(time_features(series.dates), dtype=torch.float32)
    model = PixelSeriesEncoder(hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    history = []
    for epoch in range(epochs):
        hidden_mask = spatiotemporal_mask(nbrs[:, :4], x.shape[1], entry_ratio, patch_ratio, run, rng)
        visible = torch.as_tensor(clear & ~hidden_mask)
        scored = torch.as_tensor(clear & hidden_mask)
        nv, nvis = neighbourhood_means(x, visible, nbrs)
        total = 0.0
        for b in torch.as_tensor(rng.permutation(len(x))).split(batch):
            rec = model(x[b], visible[b], nv[b], nvis[b], time)
            m = scored[b]
            loss = ((rec - x[b])[m] ** 2).mean() if m.any() else rec.sum() * 0
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(b)
        history.append({"epoch": epoch + 1, "train_mse": total / len(x)})
        if progress is not None:
            progress(epoch + 1, epochs)
    return SeriesPretrainResult(model.eval(), mean, sd, nbrs, history)


def encoder_inputs(result: "SeriesPretrainResult", series: PixelSeries, visible: np.ndarray):
    """The standardised values, visibility, neighbourhood means and time features ``PixelSeriesEncoder`` reads."""
    x = torch.tensor((series.values - result.mean) / result.sd, dtype=torch.float32)
    vis = torch.as_tensor(visible)
    nv, nvis = neighbourhood_means(x, vis, result.neighbours)
    return x, vis, nv, nvis, torch.tensor(time_features(series.dates), dtype=torch.float32)


def reconstruct(result: SeriesPretrainResult, series: PixelSeries, visible: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Reconstructed values ``(N, T)`` (the series' units) from the ``visible`` entries only."""
    x, vis, nv, nvis, time = encoder_inputs(result, series, visible)
    out = np.empty(series.values.shape)
    with torch.no_grad():
        for b in torch.arange(len(x)).split(batch):
            out[b.numpy()] = result.model(x[b], vis[b], nv[b], nvis[b], time).numpy() * result.sd + result.mean
    return out


def embeddings(result: SeriesPretrainResult, series: PixelSeries, visible: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Pixel embeddings ``(N, d)`` of the pre-trained encoder from the ``visible`` entries."""
    x, vis, nv, nvis, time = encoder_inputs(result, series, visible)
    with torch.no_grad():
        return np.concatenate([result.model.embed(x[b], vis[b], nv[b], nvis[b], time).numpy()
                               for b in torch.arange(len(x)).split(batch)])


__all__ = ["PixelSeries", "PixelSeriesEncoder", "SeriesPretrainResult", "embeddings", "harmonic_fill",
           "neighbourhood_means", "pretrain_series", "reconstruct", "spatiotemporal_mask", "time_features"]
