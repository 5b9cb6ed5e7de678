"""The one pixel iterator: the valid pixels of a covariate stack, window by window, as feature values and pixel
centres. Map tiles (:mod:`sptgnn.predict.tiles`), zone totals (:mod:`sptgnn.accounting.aggregate`) and pre-training
cells (:mod:`sptgnn.pretrain.cells`) all read their pixels here, so a pixel is valid, and sits where it sits, by one
rule: every requested band's GDAL mask set and its value finite, and inside the caller's mask."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from rasterio.windows import Window


@dataclass
class PixelBlock:
    """The valid pixels of one window.

    Attributes:
        index: The window's number in reading order (row by row).
        window: The rasterio window of the stack's grid.
        features: The features read, in the order of :attr:`values`.
        valid: Which pixels of the window are valid ``(h, w)`` bool; :attr:`values` and :attr:`xy` hold those, in
            row-major order.
        values: Feature values of the valid pixels ``(F, n)`` float32, in the units of the rasters.
        xy: Pixel centres of the valid pixels ``(n, 2)`` in the stack's CRS.
    """

    index: int
    window: Window
    features: list[str]
    valid: np.ndarray
    values: np.ndarray
    xy: np.ndarray

    def __len__(self) -> int:
        return len(self.xy)

    def columns(self) -> dict[str, np.ndarray]:
        """``{feature: (n,)}`` values of the valid pixels."""
        return {f: self.values[j] for j, f in enumerate(self.features)}


def read_pixels(stack, window: Window, features: Sequence[str], mask: np.ndarray | None = None,
                index: int = 0) -> PixelBlock:
    """The pixels of ``window`` valid in every one of ``features`` (and in ``mask`` ``(h, w)`` when given).

    Raises:
        RasterError: A missing feature or a failed read (:meth:`CovariateStack.read_window
            <sptgnn.geo.stack.CovariateStack.read_window>`).
    """
    data, valid = stack.read_window(window, features)
    if mask is not None:
        valid &= mask
    x, y = stack.pixel_centres(window)
    return PixelBlock(index, window, list(features), valid, data[:, valid], np.c_[x[valid], y[valid]])


def pixel_blocks(stack, features: Sequence[str], size: int = 512) -> Iterator[PixelBlock]:
    """:func:`read_pixels` of every window of ``size`` pixels tiling the stack's grid, row by row."""
    for k, window in enumerate(stack.windows(size)):
        yield read_pixels(stack, window, features, index=k)


__all__ = ["PixelBlock", "pixel_blocks", "read_pixels"]
