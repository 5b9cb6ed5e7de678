"""Imagery stream encoders.

Chip encoders behind one interface, :class:`ChipEncoder`: ``fit(chips)`` on the labelled samples' chips only (rule 1 of
  DESIGN.md: their statistics never see a query node) and ``encode(chips)`` → ``(num_samples, dim)`` features that
  become the imagery stream. :class:`PointValueEncoder` (the band values at the sample's pixel),
  :class:`ChipStatsEncoder` (per-channel mean, sd and centre value), :class:`RandomConvEncoder` (random convolutional
  features, MOSAIKS; the offline default for chips), :class:`~sptgnn.imagery.series.SeriesEncoder` (multi-date chips)
  and :class:`~sptgnn.imagery.terramind.TerraMindEncoder` (optional foundation model).

:class:`~sptgnn.imagery.stream.ImageryStream` ties an :class:`~sptgnn.data.chip_extractor.ChipExtractor` and a chip encoder
to :class:`~sptgnn.data.samples.SoilSamples`, driven by the ``imagery`` section of the config.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from sptgnn.data.chips import ChipError, Chips


# -- chip encoders -----------------------------------------------------------------------------------------------------
class ChipEncoder(ABC):
    """Chips → fixed-width features. Fit on labelled chips only; encode any chips with the fitted statistics.

    Attributes:
        name: Short name used in feature names (``"{name}_{i:03d}"``).
    """

    name = "chip"

    @abstractmethod
    def fit(self, chips: Chips) -> "ChipEncoder":
        """Fit statistics (channel scales, filters...) on the labelled samples' chips."""

    @abstractmethod
    def encode(self, chips: Chips) -> np.ndarray:
        """Features ``(num_samples, dim)`` float64 of the chips."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Width of :meth:`encode`'s output (known after :meth:`fit`)."""

    @property
    def feature_names(self) -> list[str]:
        return [f"{self.name}_{i:03d}" for i in range(self.dim)]

    def state(self) -> dict:
        """Fitted state as a dict of numpy arrays and plain values (saved with a run)."""
        return {}

    def load_state(self, state: dict) -> "ChipEncoder":
        """Restore :meth:`state`."""
        return self

    @staticmethod
    def _single_date(chips: Chips) -> None:
        if chips.is_series:
            raise ChipError("this encoder takes single-date chips (N, C, H, W); use the 'series' encoder for a multi-date "
                            "stack")


def _channel_stats(chips: Chips) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and sd over the valid pixels, ``(C,)`` each (sd 1 where constant or no valid pixel)."""
    v = np.moveaxis(chips.values, -3, 0).reshape(len(chips.channels), -1).astype(np.float64)
    m = np.moveaxis(chips.mask, -3, 0).reshape(len(chips.channels), -1)
    count = m.sum(1)
    mean = np.where(count > 0, (v * m).sum(1) / np.maximum(count, 1), 0.0)
    var = np.where(count > 0, (((v - mean[:, None]) * m) ** 2).sum(1) / np.maximum(count, 1), 1.0)
    sd = np.sqrt(var)
    return mean, np.where(sd > 0, sd, 1.0)


def _standardise(chips: Chips, mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    shape = (1,) * (chips.values.ndim - 3) + (-1, 1, 1)
    z = (chips.values - mean.reshape(shape)) / sd.reshape(shape)
    return np.where(chips.mask, z, 0.0).astype(np.float32)


class PointValueEncoder(ChipEncoder):
    """Band values at the sample's own pixel (the chip's centre), the "point values" variant.

    A masked centre value is replaced by the mean of the valid centre values of the labelled chips (fitted).

    Shapes:
        chips ``(N, C, H, W)`` → ``(N, C)``.
    """

    name = "point"

    def __init__(self):
        self.fill: np.ndarray | None = None
        self.channels: list[str] = []

    def _centre(self, chips: Chips) -> tuple[np.ndarray, np.ndarray]:
        h, w = chips.values.shape[-2:]
        return chips.values[:, :, h // 2, w // 2].astype(np.float64), chips.mask[:, :, h // 2, w // 2]

    def fit(self, chips: Chips) -> "PointValueEncoder":
        self._single_date(chips)
        v, m = self._centre(chips)
        self.fill = np.where(m.sum(0) > 0, (v * m).sum(0) / np.maximum(m.sum(0), 1), 0.0)
        self.channels = list(chips.channels)
        return self

    def encode(self, chips: Chips) -> np.ndarray:
        self._single_date(chips)
        v, m = self._centre(chips)
        return np.where(m, v, self.fill)

    @property
    def dim(self) -> int:
        return len(self.channels)

    @property
    def feature_names(self) -> list[str]:
        return list(self.channels)

    def state(self) -> dict:
        return {"fill": self.fill, "channels": self.channels}

    def load_state(self, state: dict) -> "PointValueEncoder":
        self.fill, self.channels = np.asarray(state["fill"]), list(state["channels"])
        return self


class ChipStatsEncoder(ChipEncoder):
    """Per-channel mean and standard deviation over the chip's valid pixels and the centre value: ``3 C`` features, in
    units standardised with the labelled chips' channel statistics (0 where no pixel is valid).

    Shapes:
        chips ``(N, C, H, W)`` → ``(N, 3 C)``.
    """

    name = "stats"

    def __init__(self):
        self.mean = self.sd = None

    def fit(self, chips: Chips) -> "ChipStatsEncoder":
        self._single_date(chips)
        self.mean, self.sd = _channel_stats(chips)
        return self

    def encode(self, chips: Chips) -> np.ndarray:
        self._single_date(chips)
        z = _standardise(chips, self.mean, self.sd).astype(np.float64)
        m = chips.mask
        n = np.maximum(m.sum((2, 3)), 1)
        mean = z.sum((2, 3)) / n
        sd = np.sqrt(((z - mean[:, :, None, None]) ** 2 * m).sum((2, 3)) / n)
        h, w = z.shape[-2:]
        return np.concatenate([mean, sd, z[:, :, h // 2, w // 2]], axis=1)

    @property
    def dim(self) -> int:
        return 3 * len(self.mean)

    def state(self) -> dict:
        return {"mean": self.mean, "sd": self.sd}

    def load_state(self, state: dict) -> "ChipStatsEncoder":
        self.mean, self.sd = np.asarray(state["mean"]), np.asarray(state["sd"])
        return self


class RandomConvEncoder(ChipEncoder):
    """Random convolutional features (MOSAIKS; Rolf et al. 2021, Nature Communications 12:4392, after Coates & Ng 2011).

    Fit (labelled chips only): per-channel standardisation; ZCA whitening of ``p × p × C`` patches drawn from valid
    positions of the labelled chips; ``K`` of those whitened patches, drawn with a seeded generator, become the filters.
    Encode: each chip's whitened patches are convolved with the filters, passed through ``ReLU(r - b)`` and
    ``ReLU(-r - b)`` and average-pooled over the positions whose patch is fully valid, giving ``2 K`` features. Nothing
    is trained: the features are weight-free and deterministic given the seed and the labelled chips.

    Args:
        num_filters: ``K`` (features are ``2 K``).
        patch_size: ``p``, filter height and width in pixels (at most the chip size).
        bias: ``b`` of the ReLUs (MOSAIKS uses 1).
        whiten: ZCA-whiten patches and filters (MOSAIKS does).
        whiten_eps: Added to the patch covariance's eigenvalues.
        max_patches: Patches drawn for the whitening statistics.
        seed: Seed of the patch and filter draws.

    Shapes:
        chips ``(N, C, H, W)`` → ``(N, 2 K)``.

    Raises:
        ChipError: Patch larger than the chips, multi-date chips, or fewer valid patches than filters.
    """

    name = "rcf"

    def __init__(self, num_filters: int = 64, patch_size: int = 3, bias: float = 1.0, whiten: bool = True,
                 whiten_eps: float = 1e-2, max_patches: int = 20_000, seed: int = 0):
        self.num_filters, self.patch_size, self.bias = num_filters, patch_size, bias
        self.whiten, self.whiten_eps, self.max_patches, self.seed = whiten, whiten_eps, max_patches, seed
        self.mean = self.sd = self.patch_mean = self.zca = self.filters = None

    def _patches(self, chips: Chips) -> tuple[Tensor, Tensor]:
        """``(N, L, C p²)`` standardised patches and ``(N, L)`` full-validity of each patch position."""
        p = self.patch_size
        if p > min(chips.values.shape[-2:]):
            raise ChipError(f"random_conv.patch_size {p} is larger than the chips {chips.values.shape[-2:]}; "
                            "raise imagery.chip_size or lower the patch size")
        z = torch.from_numpy(_standardise(chips, self.mean, self.sd))
        m = torch.from_numpy(chips.mask.all(1, keepdims=True).astype(np.float32))
        patches = F.unfold(z, p).transpose(1, 2)                  # (N, L, C p²)
        valid = F.unfold(m, p).min(1).values > 0.5                  # (N, L)
        return patches, valid

    def fit(self, chips: Chips) -> "RandomConvEncoder":
        self._single_date(chips)
        self.mean, self.sd = _channel_stats(chips)
        patches, valid = self._patches(chips)
        pool = patches[valid].double()
        if len(pool) < self.num_filters:
            raise ChipError(f"only {len(pool)} fully valid {self.patch_size}×{self.patch_size} patches in the labelled chips, "
                            f"fewer than random_conv.num_filters={self.num_filters}")
        gen = torch.Generator().manual_seed(self.seed)
        if len(pool) > self.max_patches:
            pool = pool[torch.randperm(len(pool), generator=gen)[: self.max_patches]]
        self.patch_mean = pool.mean(0)
        if self.whiten:
            cov = torch.cov((pool - self.patch_mean).T)
            evals, evecs = torch.linalg.eigh(cov)
            self.zca = evecs @ torch.diag((evals.clamp_min(0) + self.whiten_eps).rsqrt()) @ evecs.T
        else:
            self.zca = torch.eye(pool.shape[1], dtype=torch.float64)
        pick = torch.randperm(len(pool), generator=gen)[: self.num_filters]
        self.filters = (pool[pick] - self.patch_mean) @ self.zca        # (K, C p²), whitened patches
        return self

    @torch.no_grad()
    def encode(self, chips: Chips, batch_size: int = 1024) -> np.ndarray:
        self._single_date(chips)
        out = []
        w = (self.zca @ self.filters.T).float()         # whitening folded into the filters: (C p², K)
        shift = (self.patch_mean.float() @ w)           # (K,)
        for start in range(0, len(chips), batch_size):
            patches, valid = self._patches(chips.subset(slice(start, start + batch_size)))
            r = patches @ w - shift                     # (N, L, K) responses of whitened patches to whitened filters
            feats = torch.cat([F.relu(r - self.bias), F.relu(-r - self.bias)], dim=-1)
            v = valid.float().unsqueeze(-1)
            out.append(((feats * v).sum(1) / v.sum(1).clamp_min(1.0)).double().numpy())
        return np.concatenate(out, axis=0) if out else np.zeros((0, self.dim))

    @property
    def dim(self) -> int:
        return 2 * self.num_filters

    def state(self) -> dict:
        return {"mean": self.mean, "sd": self.sd, "patch_mean": self.patch_mean.numpy(), "zca": self.zca.numpy(),
                "filters": self.filters.numpy()}

    def load_state(self, state: dict) -> "RandomConvEncoder":
        self.mean, self.sd = np.asarray(state["mean"]), np.asarray(state["sd"])
        self.patch_mean, self.zca, self.filters = (torch.as_tensor(np.asarray(state[k]), dtype=torch.float64)
                                                   for k in ("patch_mean", "zca", "filters"))
        return self
