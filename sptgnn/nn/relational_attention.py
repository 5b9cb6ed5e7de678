"""Relational graph attention: one GATv2 operator per relation, summed, with residual, LayerNorm and dropout; and its
cached form for query nodes (:meth:`RelationalAttentionLayer.forward_cached`).

GATv2: Brody et al. (2022), "How Attentive are Graph Attention Networks?", with the edge distance as edge feature.
Relations are combined by :class:`torch_geometric.nn.HeteroConv` (sum), as in R-GCN-style relational message passing
(Schlichtkrull et al. 2018). No self loops are added: a node's own state enters through the residual only, so a query
node never sends a message (rule 1 of DESIGN.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATv2Conv, HeteroConv

from sptgnn.graph.builder import NODE, edge_type


def attend(xl: Tensor, idx: Tensor, x_r: Tensor, attr: Tensor, we: Tensor | None, att: Tensor, bias: Tensor | None,
           slope: float) -> Tensor:
    """One GATv2 step of query nodes over their labelled neighbours (eval mode, no dropout; Brody et al. 2022, eq. 7):
    ``e_ij = aᵀ LeakyReLU(Θ_l h_j + Θ_r h_i + Θ_e a_ij)``, ``α_ij = softmax_j(e_ij)``, ``m_i = Σ_j α_ij Θ_l h_j + b``.
    Tensors only, so that ``torch.compile`` can fuse it.

    Args:
        xl: Labelled source projections ``Θ_l h_j``, ``(N_lab, H, C)``.
        idx: Neighbour indices ``(n, k)``.
        x_r: Query target projections ``Θ_r h_i``, ``(n, 1, H, C)``.
        attr: Edge attributes ``(n, k)``.
        we: Edge weight vector ``(1, 1, H, C)`` of ``Θ_e`` (scalar attribute, no bias) or ``None``.
        att: Attention vector ``a``, ``(1, H, C)``.
        bias: Output bias ``(H·C,)`` or ``None``.
        slope: LeakyReLU negative slope.

    Returns:
        Messages ``(n, H·C)`` (heads concatenated).
    """
    if torch.is_grad_enabled():  # differentiable form
        xg = xl[idx]  # (n, k, H, C) projections of the neighbours
        e = xg + x_r
        if we is not None:
            e = e + attr[:, :, None, None] * we
        alpha = torch.softmax((F.leaky_relu(e, slope) * att).sum(-1), dim=1)  # (n, k, H)
        out = (alpha.unsqueeze(-1) * xg).sum(1).reshape(xg.shape[0], -1)
        return out if bias is None else out + bias
    # prediction: the same steps in place on two (n, k, H, C) buffers (half the memory traffic of the form above)
    xg = xl[idx]
    e = xg + x_r
    if we is not None:
        e.addcmul_(attr[:, :, None, None], we)
    F.leaky_relu_(e, slope)
    alpha = torch.softmax(e.mul_(att).sum(-1), dim=1)
    out = xg.mul_(alpha.unsqueeze(-1)).sum(1).reshape(xg.shape[0], -1)
    return out if bias is None else out.add_(bias)


class RelationalAttentionLayer(nn.Module):
    """``h ← LayerNorm(h + Dropout(GELU(Σ_r GATv2_r(h))))``.

    Args:
        dim: Hidden width (divisible by ``heads``).
        relations: Relation names, one GATv2 operator each.
        heads: Attention heads per relation (concatenated to ``dim``).
        dropout: Dropout on the update and on attention coefficients.
        edge_dim: Edge attribute width.

    Shapes:
        forward: ``h`` ``(num_nodes, dim)``; per relation ``edge_index`` ``(2, E_r)``, ``edge_attr`` ``(E_r, edge_dim)``
        → ``(num_nodes, dim)``.
        cache_sources: labelled states ``(N_lab, dim)`` → per relation ``(N_lab, heads, dim / heads)`` projections
        and ``(1, 1, heads, dim / heads)`` edge weight vectors.
        forward_cached: query states ``(n, dim)``; per relation neighbour indices ``(n, k)`` into the labelled nodes
        and edge attributes ``(n, k)`` → ``(n, dim)``.
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

    def cache_sources(self, h_lab: Tensor) -> tuple[dict[str, Tensor], dict[str, Tensor | None]]:
        """The labelled nodes' source projections ``Θ_l h_j`` and the edge weight vectors, per relation: all a query
        needs from the labelled nodes at this layer, since no edge leaves a query node (DESIGN.md rule 1).

        Raises:
            NotImplementedError: An edge attribute wider than one or an edge projection with a bias.
        """
        xl, we = {}, {}
        for et, conv in self.conv.convs.items():
            r = et[1]
            xl[r] = conv.lin_l(h_lab).view(-1, conv.heads, conv.out_channels)
            lin_e = conv.lin_edge
            if lin_e is not None and (lin_e.weight.shape[1] != 1 or getattr(lin_e, "bias", None) is not None):
                raise NotImplementedError("the cached path assumes a scalar edge attribute without bias")
            we[r] = None if lin_e is None else lin_e.weight.detach().reshape(1, 1, conv.heads, conv.out_channels)
        return xl, we

    def forward_cached(self, h: Tensor, cache: tuple[dict[str, Tensor], dict[str, Tensor | None]],
                       nbr: dict[str, tuple[Tensor, Tensor]], attend_fn=attend) -> Tensor:
        """:meth:`forward` for query nodes attached to labelled nodes whose :meth:`cache_sources` are given (eval mode):
        equal to the query rows of :meth:`forward` on the full graph, at a cost linear in the queries.

        Args:
            h: Query node states ``(n, dim)``.
            cache: :meth:`cache_sources` of the labelled nodes' states at this layer.
            nbr: Per relation, neighbour indices ``(n, k)`` (int64) and edge attributes ``(n, k)``.
            attend_fn: :func:`attend` or its ``torch.compile``-d version.
        """
        xl, we = cache
        msg = None
        for et, conv in self.conv.convs.items():
            r = et[1]
            idx, attr = nbr[r]
            x_r = conv.lin_r(h).view(-1, 1, conv.heads, conv.out_channels)
            out = attend_fn(xl[r], idx, x_r, attr, we[r], conv.att, conv.bias, conv.negative_slope)
            msg = out if msg is None else msg + out
        return h if msg is None else self.norm(h + F.gelu(msg))
