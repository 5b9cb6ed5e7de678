"""Joint band and spatial masking for masked-reconstruction pre-training (STCLN: Qin et al. 2025, Int. J. Appl. Earth
Obs. Geoinf. 137, 104426, §2.2: random masking jointly in space and time; here bands stand for dates in a tabular
stream).

A mask is ``True`` where a value is hidden. Two kinds are joined (logical or):

* **band masking**: each (cell, feature) is hidden with probability ``band_ratio``;
* **neighbourhood masking**: a share of cells are centres, and every feature of a centre and of its
  ``neighbours`` nearest cells is hidden, so that a whole patch of the map is gone and must be inferred from the
  cells around it.

Hidden values are replaced by zero, the mean of a standardised feature, by :func:`hide`; nothing of a hidden value reaches
the encoder (tested by perturbing the hidden values).
"""

from __future__ import annotations

import torch
from torch import Tensor


def band_mask(num_cells: int, num_features: int, ratio: float, gen: torch.Generator) -> Tensor:
    """``(num_cells, num_features)`` bool: each entry hidden with probability ``ratio``."""
    return torch.rand(num_cells, num_features, generator=gen) < ratio


def neighbourhood_mask(neighbours: Tensor, ratio: float, gen: torch.Generator) -> Tensor:
    """``(num_cells,)`` bool: cells hidden as part of a masked neighbourhood.

    Args:
        neighbours: Each cell's nearest cells (itself excluded), ``(num_cells, m)`` indices; a centre hides itself and
            these ``m``.
        ratio: Expected share of hidden cells; centres are drawn with probability ``ratio / (m + 1)``.
        gen: Random generator.
    """
    n, m = neighbours.shape
    centre = torch.rand(n, generator=gen) < ratio / (m + 1)
    hidden = centre.clone()
    hidden[neighbours[centre].flatten()] = True
    return hidden


def joint_mask(num_features: int, neighbours: Tensor, band_ratio: float, neighbourhood_ratio: float,
               gen: torch.Generator) -> Tensor:
    """Band and neighbourhood masks joined, ``(num_cells, num_features)`` bool."""
    cells = neighbourhood_mask(neighbours, neighbourhood_ratio, gen) if neighbourhood_ratio > 0 else None
    mask = band_mask(len(neighbours), num_features, band_ratio, gen)
    return mask | cells[:, None] if cells is not None else mask


def hide(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` with hidden entries set to 0 (the standardised mean); same shape. ``torch.where`` takes no gradient and
    no value from the hidden entries."""
    return torch.where(mask, torch.zeros((), dtype=x.dtype), x)


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean squared error over hidden entries only (STCLN's reconstruction loss); 0 when nothing is hidden."""
    if not bool(mask.any()):
        return pred.sum() * 0.0
    return ((pred - target)[mask] ** 2).mean()


__all__ = ["band_mask", "hide", "joint_mask", "masked_mse", "neighbourhood_mask"]
