"""Chip encoders as fit/encode objects (point values, channel statistics, random convolutions, image series,
TerraMind) and the imagery stream they feed; fitted on the labelled samples of a fold only (DESIGN.md rule 1)."""

from sptgnn.imagery.encoders import ChipEncoder, ChipStatsEncoder, PointValueEncoder, RandomConvEncoder
from sptgnn.imagery.series import SeriesEncoder
from sptgnn.imagery.stream import ImageryStream, make_chip_encoder

__all__ = ["ChipEncoder", "ChipStatsEncoder", "ImageryStream", "PointValueEncoder", "RandomConvEncoder", "SeriesEncoder",
           "make_chip_encoder"]
