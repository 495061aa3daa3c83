"""LightGCN (He et al., 2020, arXiv:2002.02126) as MMRec defines it."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jaxrec.data import Dataset
from jaxrec.graph import normalized_bipartite_adjacency, propagate_layers
from jaxrec.models import registry
from jaxrec.models.base import IDEmbeddingModel


@registry.register("lightgcn")
class LightGCN(IDEmbeddingModel):
  """Linear propagation of ID embeddings over the normalised user-item graph.

  E^(l+1) = D^-1/2 A D^-1/2 E^(l) over users+items (no self loops, no
  nonlinearity); final = mean of E^(0..n_layers). Loss = BPR on the final
  embeddings + ``reg_weight`` * EmbLoss on the batch's ego embeddings.

  Args:
    dataset: supplies n_users, n_items and (in build_context) the train edges.
    n_layers: propagation depth (MMRec's paper setting: 2).
    propagation: ``'segment'`` (portable) or ``'sparse'`` (custom-VJP sparse).
  """

  def __init__(
      self,
      dataset: Dataset,
      *,
      rngs: nnx.Rngs,
      embedding_size: int = 64,
      reg_weight: float = 1e-4,
      n_layers: int = 2,
      propagation: str = "sparse",
      init: str = "xavier_uniform",
  ):
    super().__init__(dataset, rngs=rngs, embedding_size=embedding_size, reg_weight=reg_weight,
                     init=init)
    self.n_layers = int(n_layers)
    self.propagation = propagation

  def build_context(self, dataset, *, cache_dir=None):
    del cache_dir
    users, items = dataset.train_edges[:, 0], dataset.train_edges[:, 1]
    return {"adj": normalized_bipartite_adjacency(users, items, self.n_users, self.n_items)}

  def embed(self, context, *, train):
    del train
    ego = jnp.concatenate([self.user_embedding[...], self.item_embedding[...]], 0)
    out = propagate_layers(context["adj"], ego, self.n_layers, method=self.propagation).mean(0)
    return out[: self.n_users], out[self.n_users :]
