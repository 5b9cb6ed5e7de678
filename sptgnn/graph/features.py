"""Node feature transforms fitted on labelled nodes only (rule 1 of DESIGN.md).

:class:`NodeFeatureTransform` standardises the imagery and environment streams, centres the metric coordinates of the
position stream and turns sampling dates into the time stream. Statistics come from the labelled nodes passed to
:meth:`NodeFeatureTransform.fit`; query nodes are only transformed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sptgnn.errors import UserError
from sptgnn.data.samples import STREAMS, SoilSamples

TIME_FEATURES = 3  # (year - reference year) / 10, sin and cos of day of year


def time_features(dates: pd.Series | None, n: int, reference_year: float) -> np.ndarray:
    """Time stream ``(n, 3)``: decades since the reference year, sin/cos day of year."""
    if dates is None:
        return np.zeros((n, TIME_FEATURES))
    dates = pd.to_datetime(pd.Series(dates)).reset_index(drop=True)
    if len(dates) == 1 and n != 1:
        dates = pd.Series(np.repeat(dates.to_numpy(), n))
    doy = 2 * np.pi * (dates.dt.day_of_year.to_numpy() - 1) / 365.25
    return np.c_[(dates.dt.year.to_numpy() - reference_year) / 10.0, np.sin(doy), np.cos(doy)]


class StreamColumnsError(UserError):
    """A stream's columns differ from those its fixed standardisation (a pre-trained encoder's) was fitted on; the
    message names both lists."""


@dataclass
class NodeFeatureTransform:
    """Standardisation of node streams, fitted on labelled nodes.

    Attributes:
        mean: Per-stream feature means, ``{stream: (num_features,)}``.
        scale: Per-stream feature standard deviations (1 where constant).
        centre_m: Centroid of the labelled nodes' metric coordinates, shape ``(d,)``.
        spread_m: Root-mean-square distance (m) of the labelled nodes from their centroid; positions are expressed in
            this unit so that positional length scales mean the same on a field and on a continent.
        reference_year: Mean sampling year of the labelled nodes (0 when dates are unknown).
        columns: Feature columns per stream, as fitted (the samples' own columns).
        imagery: An :class:`~sptgnn.imagery.stream.ImageryStream` whose chip features form the imagery stream (fitted
            here on the labelled samples' chips), or ``None`` to use the samples' imagery columns.
        keep_columns: With ``imagery``: keep the samples' imagery columns before the chip features.
        fixed: Statistics that replace the fitted ones, ``{stream: {"columns", "mean", "scale"}}``: those of the
            unlabelled cells a pre-trained encoder was fitted on (``model.pretrained``; label-free, so rule 1 holds).
        location: A :class:`~sptgnn.imagery.location.LocationFM` (the ``location_fm`` stream, fitted here on the
            labelled samples' locations), or ``None`` without that stream.
    """

    mean: dict[str, np.ndarray] = field(default_factory=dict)
    scale: dict[str, np.ndarray] = field(default_factory=dict)
    centre_m: np.ndarray | None = None
    spread_m: float = 1.0
    reference_year: float = 0.0
    columns: dict[str, list[str]] = field(default_factory=dict)
    fitted_ids: np.ndarray | None = None
    imagery: Any = None
    keep_columns: bool = False
    fixed: dict = field(default_factory=dict)
    location: Any = None

    def _raw(self, samples: SoilSamples, stream: str) -> np.ndarray:
        values = samples.stream(stream)
        if stream != "imagery" or self.imagery is None:
            return values
        chips = self.imagery.features(samples)
        return np.concatenate([values, chips], axis=1) if self.keep_columns else chips

    def stream_names(self, stream: str) -> list[str]:
        """Names of a stream's features as they enter the model (imagery: columns and/or chip feature names)."""
        if stream != "imagery" or self.imagery is None:
            return list(self.columns[stream])
        return (list(self.columns[stream]) if self.keep_columns else []) + list(self.imagery.feature_names)

    def fit(self, labelled: SoilSamples) -> "NodeFeatureTransform":
        """Fit means, scales, the coordinate centre and the reference year on labelled samples only."""
        if self.imagery is not None:
            self.imagery.fit(labelled)
        for stream in STREAMS:
            self.columns[stream] = list(labelled.feature_groups.get(stream, []))
            values = self._raw(labelled, stream)
            self.mean[stream] = values.mean(0) if values.size else np.zeros(values.shape[1])
            sd = values.std(0) if values.size else np.ones(values.shape[1])
            self.scale[stream] = np.where(sd > 0, sd, 1.0)
        for stream, stats in self.fixed.items():
            if self.stream_names(stream) != list(stats["columns"]):
                raise StreamColumnsError(
                    f"the pre-trained {stream} encoder was fitted on columns {list(stats['columns'])}, but the samples' "
                    f"{stream} stream has {self.stream_names(stream)}; pre-train on rasters with the same bands")
            self.mean[stream], self.scale[stream] = np.asarray(stats["mean"]), np.asarray(stats["scale"])
        if self.location is not None:
            self.location.fit(labelled.lonlat())
        coords = labelled.metric_coords()
        self.centre_m = coords.mean(0)
        spread = float(np.sqrt(((coords - self.centre_m) ** 2).sum(1).mean()))
        self.spread_m = spread if spread > 0 else 1.0
        dates = labelled.dates()
        self.reference_year = float(dates.dt.year.mean()) if dates is not None else 0.0
        self.fitted_ids = labelled.sample_ids.copy()
        return self

    def stream(self, samples: SoilSamples, stream: str) -> np.ndarray:
        """Standardised stream features, shape ``(num_samples, num_stream_features)``.

        Raises:
            ValueError: The samples' columns differ from those fitted.
        """
        cols = list(samples.feature_groups.get(stream, []))
        if cols != self.columns[stream]:
            raise ValueError(f"{stream} features {cols} differ from the fitted ones {self.columns[stream]}")
        return (self._raw(samples, stream) - self.mean[stream]) / self.scale[stream]

    def position(self, samples: SoilSamples) -> np.ndarray:
        """Coordinates relative to the labelled centroid in units of :attr:`spread_m`, shape ``(num_samples, d)``."""
        return (samples.metric_coords() - self.centre_m) / self.spread_m

    def location_fm(self, lonlat: np.ndarray) -> np.ndarray:
        """The ``location_fm`` stream of locations ``(n, 2)`` (lon, lat in degrees), ``(n, k)``; ``(n, 0)`` without
        that stream."""
        if self.location is None:
            return np.zeros((len(lonlat), 0))
        return self.location.transform(lonlat)

    def time(self, samples: SoilSamples) -> np.ndarray:
        """Time stream, shape ``(num_samples, 3)``: decades since the reference year, sin and cos of the day of year.

        Zeros when the samples have no sampling date.
        """
        return time_features(samples.dates(), len(samples), self.reference_year)
