"""Stream encoders: imagery, position, time."""

from sptgnn.encoders.imagery import PointBandEncoder
from sptgnn.encoders.positional import PositionalEncoder
from sptgnn.encoders.temporal import TemporalEncoder

__all__ = ["PointBandEncoder", "PositionalEncoder", "TemporalEncoder"]
