"""The imagery stream of :class:`~sptgnn.data.samples.SoilSamples`: chips cut by a
:class:`~sptgnn.data.chip_extractor.ChipExtractor` and encoded by the chip encoder the ``imagery`` config section names."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from sptgnn.data.chips import Chips
from sptgnn.imagery.encoders import ChipEncoder, ChipStatsEncoder, PointValueEncoder, RandomConvEncoder
from sptgnn.imagery.series import SeriesEncoder


def make_chip_encoder(config) -> ChipEncoder:
    """The chip encoder named by an :class:`~sptgnn.config.ImageryConfig` (``point``, ``stats``, ``random_conv``,
    ``series``, ``terramind``)."""
    rc = config.random_conv
    if config.encoder == "point":
        return PointValueEncoder()
    if config.encoder == "stats":
        return ChipStatsEncoder()
    if config.encoder == "random_conv":
        return RandomConvEncoder(rc.num_filters, rc.patch_size, rc.bias, rc.whiten, seed=rc.seed)
    if config.encoder == "series":
        s = config.series
        per_date = (RandomConvEncoder(rc.num_filters, rc.patch_size, rc.bias, rc.whiten, seed=rc.seed)
                    if s.per_date == "random_conv" else ChipStatsEncoder())
        return SeriesEncoder(per_date, s.pooling, s.harmonics, s.min_valid)
    if config.encoder == "terramind":
        from sptgnn.imagery.terramind import TerraMindEncoder  # optional extra: imported only when configured

        t = config.terramind
        return TerraMindEncoder(t.backbone, t.ckpt_path, t.modalities, t.finetune, t.batch_size)
    raise ValueError(f"imagery.encoder '{config.encoder}' has no chip encoder")


def _to_saveable(obj):
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        return {k: _to_saveable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_saveable(v) for v in obj]
    return obj


def _from_saveable(obj):
    if isinstance(obj, Tensor):
        return obj.numpy()
    if isinstance(obj, dict):
        return {k: _from_saveable(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_saveable(v) for v in obj]
    return obj


class ImageryStream:
    """Chip features of :class:`~sptgnn.data.samples.SoilSamples`: chips cut by a
    :class:`~sptgnn.data.chip_extractor.ChipExtractor` (cached on disk), encoded by the configured chip encoder.

    Args:
        config: The ``imagery`` section of the run config (an encoder other than ``columns``).

    Used by :class:`~sptgnn.graph.features.NodeFeatureTransform`: :meth:`fit` on the labelled samples of a fold only,
    then :meth:`features` for labelled and query samples alike.
    """

    def __init__(self, config):
        from sptgnn.data.chip_extractor import ChipExtractor
        from sptgnn.data.chips import ChipSource, resolve_source_path

        self.config = config
        sources = [ChipSource(path=resolve_source_path(s.path), bands=s.bands, name=s.name,
                              dates=(s.dates if s.dates in (None, "descriptions") else str(resolve_source_path(s.dates))),
                              kind=s.kind, resampling=s.resampling) for s in config.sources]
        self.extractor = ChipExtractor(sources, config.chip_size, config.crs, config.resolution, config.cache_dir)
        self.encoder = make_chip_encoder(config)
        self._memo: dict[tuple, np.ndarray] = {}

    def chips(self, samples) -> Chips:
        """Chips of the samples with the configured channels, ``(N, C, H, W)`` or ``(N, T, C, H, W)``."""
        chips = self.extractor.extract_samples(samples)
        return chips.select(self.config.bands) if self.config.bands else chips

    def _key(self, samples) -> tuple:
        return (tuple(samples.sample_ids.astype(str)), samples.xy().round(6).tobytes(), str(samples.crs))

    def fit(self, labelled) -> "ImageryStream":
        """Fit the chip encoder on the labelled samples' chips only."""
        self._memo.clear()
        self.encoder.fit(self.chips(labelled))
        return self

    def features(self, samples) -> np.ndarray:
        """Chip features ``(num_samples, dim)`` float64 (memoised per set of samples)."""
        key = self._key(samples)
        if key not in self._memo:
            if len(self._memo) > 16:
                self._memo.clear()
            self._memo[key] = np.asarray(self.encoder.encode(self.chips(samples)), dtype=np.float64)
        return self._memo[key]

    @property
    def feature_names(self) -> list[str]:
        return self.encoder.feature_names

    def state(self) -> dict:
        """Fitted encoder state with tensors (for ``torch.save(weights_only=True)``)."""
        return _to_saveable(self.encoder.state())

    def load_state(self, state: dict) -> "ImageryStream":
        self.encoder.load_state(_from_saveable(state))
        self._memo.clear()
        return self


__all__ = ["ImageryStream", "make_chip_encoder"]
