"""Positional stream: multi-scale random Fourier features of metric coordinates (Tancik et al. 2020; Rahimi & Recht 2007)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class PositionalEncoder(nn.Module):
    """Multi-scale sinusoidal encoding of node coordinates, then a linear map to ``out_dim``.

    For each length scale ``s`` (in units of the labelled nodes' spatial spread, see
    :class:`~sptgnn.graph.features.NodeFeatureTransform`) the frequencies ``B_s ~ N(0, 1 / s²)`` are drawn once from a seeded generator
    and kept as a buffer (saved with the model); the features are ``[sin(2π x B), cos(2π x B)]``.

    Args:
        in_dim: Coordinate dimensions (2 for projected x, y; 3 for unit-sphere coordinates scaled to metres).
        out_dim: Embedding width.
        num_frequencies: Frequencies per scale.
        scales: Length scales, in units of the labelled spread.
        seed: Seed of the frequency draw.

    Shapes:
        input ``(num_nodes, in_dim)`` normalised offsets from the labelled centroid → output ``(num_nodes, out_dim)``.
    """

    def __init__(self, in_dim: int, out_dim: int, num_frequencies: int = 16, scales: list[float] | None = None, seed: int = 0):
        super().__init__()
        scales = scales or [1.0, 4.0]
        gen = torch.Generator().manual_seed(seed)
        freqs = [torch.randn(in_dim, num_frequencies, generator=gen) / s for s in scales]
        self.register_buffer("frequencies", torch.cat(freqs, dim=1))
        self.proj = nn.Linear(2 * self.frequencies.shape[1], out_dim)

    def forward(self, pos: Tensor) -> Tensor:
        angle = 2 * math.pi * pos @ self.frequencies
        return self.proj(torch.cat([angle.sin(), angle.cos()], dim=-1))
