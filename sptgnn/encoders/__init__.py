"""Stream encoders: imagery, position, time."""

from sptgnn.encoders.imagery import (
    ChipEncoder,
    ChipStatsEncoder,
    ImageryStream,
    PointBandEncoder,
    PointValueEncoder,
    RandomConvEncoder,
)
from sptgnn.encoders.positional import PositionalEncoder
from sptgnn.encoders.series import SeriesEncoder
from sptgnn.encoders.temporal import TemporalEncoder

__all__ = ["ChipEncoder", "ChipStatsEncoder", "ImageryStream", "PointBandEncoder", "PointValueEncoder", "PositionalEncoder",
           "RandomConvEncoder", "SeriesEncoder", "TemporalEncoder"]
