"""Subgraph mini-batches for large graphs: seed nodes and their in-neighbourhoods, hop by hop.

For an ``L``-layer model the prediction of a seed node depends on its ``L``-hop in-neighbourhood only. The sampler
takes the in-edges of the seeds (hop 1), the in-edges of the nodes those edges come from (hop 2), and so on up to ``L``
hops. Without a fanout it takes every in-edge, so a seed's output on the subgraph equals its output on the whole graph
(the full-neighbourhood variant of GraphSAGE's sampler, Hamilton et al. 2017; torch_geometric's ``NeighborLoader`` with
``num_neighbors=-1``, which needs the compiled pyg-lib and is not available here). With a fanout ``(f_1, …, f_L)`` it
keeps at most ``f_h`` in-edges per relation per node at hop ``h``, drawn uniformly without replacement (GraphSAGE's
``S_h``), so a batch of ``B`` seeds and ``R`` relations spans at most ``B·(1 + R·f_1 + R·f_1·R·f_2 + …)`` nodes
whatever the graph's size; a fanout at or above every in-degree gives the full neighbourhood. No array of the whole
graph's size is allocated per batch (the node bookkeeping is sorted arrays of the subgraph's ids), so a batch costs the
same at 10k and 1M nodes. Because edges leave labelled nodes only (rule 1 of DESIGN.md), a subgraph never holds a query
node other than a seed.

Shapes:
    graph with ``N`` nodes; seeds ``(B,)`` → a subgraph whose nodes ``0 … B-1`` are the seeds, in order, and whose
    ``n_id`` ``(N_sub,)`` maps local to global node ids.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from sptgnn.graph.builder import NODE

NODE_ATTRS = ("x_imagery", "x_environment", "pos", "time", "x_location_fm", "y", "labelled", "teacher")


class InNeighbourSampler:
    """Build seed-centred subgraphs of a :class:`HeteroData` sample graph.

    Args:
        graph: The whole graph (node type ``"sample"``; one edge type per relation, ``edge_index`` and ``edge_attr``).
        num_hops: In-neighbourhood depth, the model's number of attention layers ``L`` (0: seeds only, no edges).
        fanout: At most ``fanout[h]`` sampled in-edges per relation per node at hop ``h`` (``L`` values), or ``None``
            for every in-edge (exact).
        generator: Random generator of the fanout draws.

    Raises:
        ValueError: ``num_hops`` is negative, or ``fanout`` does not give one value >= 1 per hop.
    """

    def __init__(self, graph: HeteroData, num_hops: int, fanout: list[int] | None = None,
                 generator: torch.Generator | None = None):
        if num_hops < 0:
            raise ValueError(f"num_hops must be >= 0, got {num_hops}")
        if fanout is not None and (len(fanout) != num_hops or min(fanout, default=1) < 1):
            raise ValueError(f"fanout needs one value >= 1 per hop ({num_hops}), got {list(fanout)}")
        self.graph, self.num_hops, self.generator = graph, num_hops, generator
        self.fanout = None if fanout is None else [int(f) for f in fanout]
        self.num_nodes = int(graph[NODE].num_nodes)
        self._csr: dict[tuple, tuple[Tensor, Tensor]] = {}
        for et in graph.edge_types:
            ei = graph[et].edge_index
            order = torch.argsort(ei[1], stable=True)
            deg = torch.bincount(ei[1], minlength=self.num_nodes)
            ptr = torch.zeros(self.num_nodes + 1, dtype=torch.long)
            ptr[1:] = torch.cumsum(deg, 0)
            self._csr[et] = (ptr, order)

    def _in_edges(self, et: tuple, nodes: Tensor, limit: int | None) -> Tensor:
        """Ids (positions in the relation's ``edge_index``) of the edges into ``nodes``: all of them, or at most
        ``limit`` per node drawn without replacement."""
        ptr, order = self._csr[et]
        start, count = ptr[nodes], ptr[nodes + 1] - ptr[nodes]
        total = int(count.sum())
        if total == 0:
            return torch.empty(0, dtype=torch.long)
        first = torch.cumsum(count, 0) - count  # each node's first position in the flat list
        flat = torch.repeat_interleave(start - first, count) + torch.arange(total)
        if limit is not None and int(count.max()) > limit:
            segment = torch.repeat_interleave(torch.arange(len(nodes), dtype=torch.float64), count)
            key = segment + torch.rand(total, generator=self.generator, dtype=torch.float64)
            shuffled = torch.argsort(key)  # node by node, each node's edges in random order
            rank = torch.arange(total) - torch.repeat_interleave(first, count)
            flat = flat[shuffled[rank < limit]]
        return order[flat]

    def sample(self, seeds: Tensor, full: bool = False) -> HeteroData:
        """The subgraph of ``seeds`` (unique global node ids, ``(B,)``) and their ``num_hops`` in-neighbourhood
        (``full``: every in-edge whatever the fanout, as prediction uses it).

        Returns:
            HeteroData with the node attributes of the whole graph restricted to the subgraph's nodes (seeds first),
            ``n_id`` ``(N_sub,)`` global ids, ``num_seeds`` ``B``, and per relation the (sampled) edges into nodes
            within ``num_hops - 1`` hops of the seeds, renumbered.
        """
        seeds = torch.as_tensor(seeds, dtype=torch.long)
        visited = torch.sort(seeds).values
        nodes, frontier = [seeds], seeds
        picked: dict[tuple, list[Tensor]] = {et: [] for et in self._csr}
        for hop in range(self.num_hops):
            limit = None if self.fanout is None or full else self.fanout[hop]
            sources = []
            for et in self._csr:
                eids = self._in_edges(et, frontier, limit)
                picked[et].append(eids)
                sources.append(self.graph[et].edge_index[0, eids])
            cand = torch.unique(torch.cat(sources)) if sources else torch.empty(0, dtype=torch.long)
            frontier = cand[~torch.isin(cand, visited)]
            visited = torch.sort(torch.cat([visited, frontier])).values
            nodes.append(frontier)
            if frontier.numel() == 0:
                break
        n_id = torch.cat(nodes)
        sorted_ids, position = torch.sort(n_id)
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
            es.edge_index = position[torch.searchsorted(sorted_ids, fs.edge_index[:, eids])]  # global → local ids
            if "edge_attr" in fs:
                es.edge_attr = fs.edge_attr[eids]
        return sub


__all__ = ["InNeighbourSampler"]
