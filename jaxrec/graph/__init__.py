"""Frozen sparse graphs and propagation: ``A @ X`` with a portable and a fast path."""

from jaxrec.graph.adjacency import normalized_bipartite_adjacency, propagate_layers
from jaxrec.graph.knn import (
    cached_mixed_graph,
    features_fingerprint,
    knn_graph,
    mixed_modality_graph,
)
from jaxrec.graph.pruning import degree_edge_weights, keep_count, prune_edges
from jaxrec.graph.sparse import SPMM_METHODS, SparseMatrix, as_graphs_tuple, spmm

__all__ = [
    "SPMM_METHODS",
    "SparseMatrix",
    "as_graphs_tuple",
    "cached_mixed_graph",
    "degree_edge_weights",
    "features_fingerprint",
    "keep_count",
    "knn_graph",
    "mixed_modality_graph",
    "normalized_bipartite_adjacency",
    "propagate_layers",
    "prune_edges",
    "spmm",
]
