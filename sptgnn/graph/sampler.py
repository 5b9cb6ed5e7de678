"""Subgraph mini-batches for large graphs: seed nodes and their in-neighbourhoods, hop by hop.

For an ``L``-layer model the prediction of a seed node depends on its ``L``-hop in-neighbourhood only. The sampler
takes every in-edge of the seeds (hop 1), every in-edge of the nodes those edges come from (hop 2), and so on up to
``L`` hops, so a seed's output on the subgraph equals its output on the whole graph (the full-neighbourhood variant of
GraphSAGE's sampler, Hamilton et al. 2017; torch_geometric's ``NeighborLoader`` with ``num_neighbors=-1``, which needs
the compiled pyg-lib and is not available here). Because edges leave labelled nodes only (rule 1 of DESIGN.md), a
subgraph never holds a query node other than a seed.

Shapes:
    graph with ``N`` nodes; seeds ``(B,)`` → a subgraph whose nodes ``0 … B-1`` are the seeds, in order, and whose
    ``n_id`` ``(N_sub,)`` maps local to global node ids.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from sptgnn.graph.builder import NODE

NODE_ATTRS = ("x_imagery", "x_environment", "pos", "time", "y", "labelled", "teacher")


class InNeighbourSampler:
    """Build seed-centred subgraphs of a :class:`HeteroData` sample graph.

    Args:
        graph: The whole graph (node type ``"sample"``; one edge type per relation, ``edge_index`` and ``edge_attr``).
        num_hops: In-neighbourhood depth, the model's number of attention layers ``L`` (0: seeds only, no edges).

    Raises:
        ValueError: ``num_hops`` is negative.
    """

    def __init__(self, graph: HeteroData, num_hops: int):
        if num_hops < 0:
            raise ValueError(f"num_hops must be >= 0, got {num_hops}")
        self.graph = graph
        self.num_hops = num_hops
        self.num_nodes = int(graph[NODE].num_nodes)
        self._csr: dict[tuple, tuple[Tensor, Tensor, Tensor]] = {}
        for et in graph.edge_types:
            ei = graph[et].edge_index
            order = torch.argsort(ei[1], stable=True)
            deg = torch.bincount(ei[1], minlength=self.num_nodes)
            ptr = torch.zeros(self.num_nodes + 1, dtype=torch.long)
            ptr[1:] = torch.cumsum(deg, 0)
            self._csr[et] = (ptr, order, ei[0, order])

    def _in_edges(self, et: tuple, nodes: Tensor) -> Tensor:
        """Ids (positions in the relation's ``edge_index``) of every edge into ``nodes``."""
        ptr, order, _ = self._csr[et]
        start, count = ptr[nodes], ptr[nodes + 1] - ptr[nodes]
        total = int(count.sum())
        if total == 0:
            return torch.empty(0, dtype=torch.long)
        offsets = torch.repeat_interleave(start - (torch.cumsum(count, 0) - count), count)
        return order[offsets + torch.arange(total)]

    def sample(self, seeds: Tensor) -> HeteroData:
        """The subgraph of ``seeds`` (unique global node ids, ``(B,)``) and their ``num_hops`` in-neighbourhood.

        Returns:
            HeteroData with the node attributes of the whole graph restricted to the subgraph's nodes (seeds first),
            ``n_id`` ``(N_sub,)`` global ids, ``num_seeds`` ``B``, and per relation the edges into nodes within
            ``num_hops - 1`` hops of the seeds, renumbered.
        """
        seeds = torch.as_tensor(seeds, dtype=torch.long)
        seen = torch.zeros(self.num_nodes, dtype=torch.bool)
        seen[seeds] = True
        nodes, frontier = [seeds], seeds
        picked: dict[tuple, list[Tensor]] = {et: [] for et in self._csr}
        for _ in range(self.num_hops):
            sources = []
            for et in self._csr:
                eids = self._in_edges(et, frontier)
                picked[et].append(eids)
                sources.append(self.graph[et].edge_index[0, eids])
            cand = torch.unique(torch.cat(sources)) if sources else torch.empty(0, dtype=torch.long)
            frontier = cand[~seen[cand]]
            seen[frontier] = True
            nodes.append(frontier)
            if frontier.numel() == 0:
                break
        n_id = torch.cat(nodes)
        local = torch.full((self.num_nodes,), -1, dtype=torch.long)
        local[n_id] = torch.arange(n_id.numel())
        sub = HeteroData()
        store, full = sub[NODE], self.graph[NODE]
        for attr in NODE_ATTRS:
            if attr in full:
                store[attr] = full[attr][n_id]
        store.n_id = n_id
        store.num_nodes = int(n_id.numel())
        sub.num_seeds = int(seeds.numel())
        for et in self._csr:
            eids = torch.cat(picked[et]) if picked[et] else torch.empty(0, dtype=torch.long)
            es, fs = sub[et], self.graph[et]
            es.edge_index = local[fs.edge_index[:, eids]]
            if "edge_attr" in fs:
                es.edge_attr = fs.edge_attr[eids]
        return sub


__all__ = ["InNeighbourSampler"]
