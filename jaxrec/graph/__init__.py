"""Frozen sparse graphs and propagation: ``A @ X`` with a portable and a fast path."""

from jaxrec.graph.adjacency import normalized_bipartite_adjacency, propagate_layers
from jaxrec.graph.sparse import SPMM_METHODS, SparseMatrix, as_graphs_tuple, spmm

__all__ = [
    "SPMM_METHODS",
    "SparseMatrix",
    "as_graphs_tuple",
    "normalized_bipartite_adjacency",
    "propagate_layers",
    "spmm",
]
