"""What the ensemble attaches to the builder's graphs of training samples beyond the streams: the mask blocks of
mini-batch label masking and the teacher's out-of-fold features (``model.teacher_input``)."""

from __future__ import annotations

import numpy as np
import torch

from sptgnn.data.samples import SoilSamples
from sptgnn.graph.builder import NODE


def attach_mask_blocks(graph, labelled: SoilSamples, n_query: int | None, block_km: float | None) -> None:
    """Store the square block (``block_km`` side, planar metres) of every labelled node as ``mask_block`` (``-1``
    for query nodes), so that mini-batch training hides whole blocks of labels at once (``train.label_mask_block_km``)."""
    if block_km is None:
        return
    from sptgnn.splits import block_ids, planar_coords

    ids = block_ids(planar_coords(labelled), block_km * 1000.0)
    graph[NODE].mask_block = torch.cat([torch.as_tensor(ids, dtype=torch.long),
                                        torch.full((n_query or 0,), -1, dtype=torch.long)])


def attach_teacher_rows(ensemble, graph, order: np.ndarray, query: np.ndarray | None = None, trend=None) -> None:
    """With ``model.teacher_input``: the teacher's out-of-fold features of the training samples at positions
    ``order`` (one per graph node), then the rows ``query`` ``(num_query, F)`` of query nodes (from the teacher fitted
    on every training sample), as ``graph[NODE].teacher``, so no training node's input depends on its own label.
    ``trend``: that teacher (default the ensemble's; a calibration twin passes its own)."""
    trend = ensemble.trend if trend is None else trend
    if ensemble.config.model.teacher_input and trend is not None:
        rows = trend.oof_features[order]
        graph[NODE].teacher = torch.tensor(rows if query is None else np.r_[rows, query], dtype=torch.float32)


__all__ = ["attach_mask_blocks", "attach_teacher_rows"]
