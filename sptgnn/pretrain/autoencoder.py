"""The masked autoencoder of pre-training: the members' stream encoders, a neighbourhood context and one decoder per
stream (STCLN's masked reconstruction, Qin et al. 2025, applied to a graph of unlabelled cells)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sptgnn.config import ModelConfig
from sptgnn.nn.mlp import MLP
from sptgnn.nn.model import stream_encoder
from sptgnn.pretrain.masking import hide

#: Streams whose encoders pre-training fits (tabular streams of covariate values).
PRETRAIN_STREAMS = ("imagery", "environment")


class MaskedStreamAutoencoder(nn.Module):
    """Masked reconstruction of covariate streams from the visible values of a cell and of its neighbours.

    Each stream's values, hidden entries set to 0 (:func:`~sptgnn.pretrain.masking.hide`), pass through the same
    encoder a member has (:func:`sptgnn.nn.model.stream_encoder`, so ``encoders.<stream>.*`` keys load into it); the
    stream embeddings are summed to a cell state ``h``; the context of a cell is the mean state of its ``k`` nearest
    cells; each stream's decoder reads ``[h, context]`` and reconstructs every value of the stream. A cell whose
    neighbourhood is hidden is reconstructed from the cells around the hidden patch.

    Args:
        stream_dims: Width per stream, ``{stream: num_features}`` (streams of width 0 are left out).
        config: The model section (``hidden``, ``dropout``) of the run the encoders will serve.

    Shapes:
        ``x`` ``{stream: (N, F_s)}``, ``mask`` ``{stream: (N, F_s)}`` bool, ``neighbours`` ``(N, k)``, ``batch``
        ``(B,)`` → ``{stream: (B, F_s)}`` reconstructions.
    """

    def __init__(self, stream_dims: dict[str, int], config: ModelConfig):
        super().__init__()
        self.streams = [s for s in PRETRAIN_STREAMS if stream_dims.get(s, 0) > 0]
        if not self.streams:
            raise ValueError(f"no imagery or environment features to pre-train on (widths {stream_dims})")
        d = config.hidden
        self.encoders = nn.ModuleDict({s: stream_encoder(s, stream_dims[s], config) for s in self.streams})
        self.decoders = nn.ModuleDict({s: MLP(2 * d, d, stream_dims[s], layers=2) for s in self.streams})

    def states(self, x: dict[str, Tensor], mask: dict[str, Tensor]) -> Tensor:
        """Cell states ``(N, d)`` from the visible values only."""
        return sum(self.encoders[s](hide(x[s], mask[s])) for s in self.streams)

    def forward(self, x: dict[str, Tensor], mask: dict[str, Tensor], neighbours: Tensor,
                batch: Tensor | None = None) -> dict[str, Tensor]:
        """Reconstructions of the cells ``batch`` (default: all), ``{stream: (len(batch), F_s)}``; only the states of
        the batch and of its neighbours are computed."""
        if batch is None:
            batch = torch.arange(len(neighbours))
        nodes, inverse = torch.unique(torch.cat([batch, neighbours[batch].flatten()]), return_inverse=True)
        h = self.states({s: x[s][nodes] for s in self.streams}, {s: mask[s][nodes] for s in self.streams})
        own = h[inverse[:len(batch)]]
        context = h[inverse[len(batch):].view(len(batch), -1)].mean(1)
        z = torch.cat([own, context], dim=-1)
        return {s: self.decoders[s](z) for s in self.streams}


__all__ = ["MaskedStreamAutoencoder", "PRETRAIN_STREAMS"]
