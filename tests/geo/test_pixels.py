"""The pixel iterator: every valid pixel once, at its centre, with the values the rasters hold there."""

from __future__ import annotations

import numpy as np

from sptgnn.geo.pixels import pixel_blocks, read_pixels
from sptgnn.geo.stack import CovariateStack

from helpers import X0, Y0, field, write_tif


def _stack(tmp_path):
    rows, cols = np.mgrid[0:20, 0:20]
    xc, yc = X0 + (cols + 0.5) * 10, Y0 - (rows + 0.5) * 10
    values = field(xc, yc).astype("float32")
    values[4, 7] = -9999  # one nodata pixel
    write_tif(tmp_path / "lin.tif", values, 10, nodata=-9999)
    return CovariateStack.open([tmp_path / "lin.tif"])


def test_every_valid_pixel_once_at_its_centre_with_its_value(tmp_path):
    with _stack(tmp_path) as stack:
        blocks = list(pixel_blocks(stack, ["lin"], size=8))
    assert [b.index for b in blocks] == list(range(9))  # 3 x 3 windows of at most 8 px
    xy = np.concatenate([b.xy for b in blocks])
    values = np.concatenate([b.columns()["lin"] for b in blocks])
    assert len(xy) == 400 - 1
    assert len(np.unique(xy, axis=0)) == 400 - 1
    np.testing.assert_allclose(values, field(xy[:, 0], xy[:, 1]), rtol=1e-6)  # the value at each centre
    assert not np.any(np.all(np.isclose(xy, [X0 + 75, Y0 - 45], rtol=0, atol=0.5), axis=1))  # the nodata pixel (row 4, col 7) left out


def test_a_mask_leaves_out_its_pixels(tmp_path):
    with _stack(tmp_path) as stack:
        window = next(iter(stack.windows(8)))
        mask = np.zeros((8, 8), dtype=bool)
        mask[:2, :3] = True
        block = read_pixels(stack, window, ["lin"], mask)
    assert len(block) == 6
    assert block.valid.sum() == 6
    np.testing.assert_allclose(block.xy[:, 0], X0 + np.tile([5.0, 15.0, 25.0], 2))
