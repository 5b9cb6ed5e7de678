"""Graph: relations, node feature transforms and the HeteroData builder."""

from sptgnn.graph.builder import NODE, GraphBuilder, edge_type

__all__ = ["GraphBuilder", "NODE", "edge_type"]
