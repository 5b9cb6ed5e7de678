"""Relational graph attention: one GATv2 operator per relation, summed, with residual, LayerNorm and dropout.

GATv2: Brody et al. (2022), "How Attentive are Graph Attention Networks?", with the edge distance as edge feature.
Relations are combined by :class:`torch_geometric.nn.HeteroConv` (sum), as in R-GCN-style relational message passing
(Schlichtkrull et al. 2018). No self loops are added: a node's own state enters through the residual only, so a query
node never sends a message (rule 1 of DESIGN.md).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv, HeteroConv

from sptgnn.graph.builder import NODE, edge_type


class RelationalAttentionLayer(nn.Module):
    """``h ← LayerNorm(h + Dropout(GELU(Σ_r GATv2_r(h))))``.

    Args:
        dim: Hidden width (divisible by ``heads``).
        relations: Relation names, one GATv2 operator each.
        heads: Attention heads per relation (concatenated to ``dim``).
        dropout: Dropout on the update and on attention coefficients.
        edge_dim: Edge attribute width.

    Shapes:
        ``h`` ``(num_nodes, dim)``; per relation ``edge_index`` ``(2, E_r)``, ``edge_attr`` ``(E_r, edge_dim)`` →
        ``(num_nodes, dim)``.
    """

    def __init__(self, dim: int, relations: list[str], heads: int = 4, dropout: float = 0.1, edge_dim: int = 1):
        super().__init__()
        self.conv = HeteroConv(
            {
                edge_type(r): GATv2Conv(dim, dim // heads, heads=heads, edge_dim=edge_dim, add_self_loops=False, dropout=dropout)
                for r in relations
            },
            aggr="sum",
        )
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: Tensor, edge_index: dict, edge_attr: dict) -> Tensor:
        msg = self.conv({NODE: h}, edge_index, edge_attr_dict=edge_attr).get(NODE)
        if msg is None:  # no relation has edges
            return h
        return self.norm(h + self.dropout(F.gelu(msg)))
