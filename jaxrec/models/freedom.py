"""FREEDOM (Zhou & Shen, 2023, arXiv:2211.06924) as MMRec's ``freedom.py`` defines it.

Frozen item-item graph from the raw modality features + degree-sensitive
pruning of the user-item graph, resampled every epoch. See REFERENCE.md §C.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrec import losses
from jaxrec.data import Dataset
from jaxrec.graph import (
    cached_mixed_graph,
    degree_edge_weights,
    features_fingerprint,
    keep_count,
    normalized_bipartite_adjacency,
    propagate_layers,
    prune_edges,
    spmm,
)
from jaxrec.models import registry
from jaxrec.models.base import Recommender, present_modalities, xavier_table
from jaxrec.negatives import dns_negatives, exclusion_index, mixgcf_negatives, uniform_negatives

MODALITIES = ("image", "text")
NEGATIVE_SAMPLERS = ("uniform", "dns", "mixgcf")


def torch_linear(in_dim: int, out_dim: int, *, rngs: nnx.Rngs) -> nnx.Linear:
  """``nn.Linear``'s default init: weight and bias ~ U(+-1/sqrt(in_dim))."""
  bound = 1.0 / np.sqrt(in_dim)

  def bias_init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return nnx.Linear(in_dim, out_dim, rngs=rngs, bias_init=bias_init,
                    kernel_init=nnx.initializers.variance_scaling(1 / 3, "fan_in", "uniform"))


@registry.register("freedom")
class FREEDOM(Recommender):
  """FREEDOM: LightGCN on a pruned user-item graph + a frozen modality kNN item graph.

  * h = (S^n_mm_layers) e_item_id, S = mm_image_weight S_image + (1 - w) S_text,
    each S_m the top-``knn_k`` cosine graph of the RAW features (self included,
    entries 1/k), built once and cached on disk.
  * LightGCN (``n_ui_layers``, mean over layers 0..n) on [e_user; e_item_id]
    over the degree-pruned graph in training (``on_epoch``: keep
    int(|E| (1 - dropout)) edges drawn without replacement with probability
    proportional to 1/sqrt(d_u d_i), renormalised), the full graph at evaluation.
  * final user = LightGCN user; final item = LightGCN item + h.
  * loss = BPR + reg_weight * (BPR(u, W_t t_i+, W_t t_i-) + BPR(u, W_v v_i+, W_v v_i-))
    with the raw feature tables trainable (``freeze=False`` in the reference).

  ``negative_sampler`` swaps the BPR negative for a hard one (CCDRec paper,
  Table 3 baselines; the paper gives no settings, these are jaxrec's):

  * ``'dns'``: of ``n_negative_candidates`` uniform negatives (never a train
    positive), the one the current model scores highest (DNS, Zhang et al. 2013);
    the choice carries no gradient.
  * ``'mixgcf'``: MixGCF (Huang et al. 2021) over the final item's components
    ``[e_0/(L+1), ..., e_L/(L+1), h]`` (LightGCN's layers as the mean weights
    them, plus the item-graph term, so their sum is the final item): each
    component of each candidate is mixed with the positive's
    (``a e+ + (1 - a) e-``, ``a ~ U(0, 1)`` per row and component), the hardest
    candidate is taken per component by ``<u, .>`` with the final user ``u`` (so
    the sum is the highest-scoring mix), and the components are summed. Gradient flows
    through the mixed embedding, as in MixGCF.

  With ``reg_weight == 0`` the modality terms vanish, so the feature tables and
  projections get no gradient and cannot change: they are then not created as
  parameters at all (identical results, no 29M-parameter Adam update per step).
  """

  required_modalities = ()
  #: Subclasses whose loss always uses the projected features (CCDRec) set this.
  always_feature_params = False

  def __init__(
      self,
      dataset: Dataset,
      *,
      rngs: nnx.Rngs,
      embedding_size: int = 64,
      feat_embed_dim: int = 64,
      knn_k: int = 10,
      mm_image_weight: float = 0.1,
      n_mm_layers: int = 1,
      n_ui_layers: int = 2,
      dropout: float = 0.8,
      reg_weight: float = 0.0,
      propagation: str = "sparse",
      negative_sampler: str = "uniform",
      n_negative_candidates: int = 16,
  ):
    if negative_sampler not in NEGATIVE_SAMPLERS:
      raise ValueError(f"Unknown negative_sampler {negative_sampler!r}; valid: "
                       f"{', '.join(NEGATIVE_SAMPLERS)}.")
    if int(n_negative_candidates) < 1:
      raise ValueError(f"n_negative_candidates must be >= 1; got {n_negative_candidates}.")
    self.negative_sampler, self.n_negative_candidates = negative_sampler, int(n_negative_candidates)
    self.n_users, self.n_items = dataset.n_users, dataset.n_items
    self.modalities = present_modalities(dataset, MODALITIES, "FREEDOM")
    self.knn_k, self.mm_image_weight = int(knn_k), float(mm_image_weight)
    self.n_mm_layers, self.n_ui_layers = int(n_mm_layers), int(n_ui_layers)
    self.dropout, self.reg_weight = float(dropout), float(reg_weight)
    self.propagation = propagation
    self.user_embedding = nnx.Param(xavier_table(rngs.params(), self.n_users, embedding_size))
    self.item_id_embedding = nnx.Param(xavier_table(rngs.params(), self.n_items, embedding_size))
    self.features = nnx.Dict()
    self.projections = nnx.Dict()
    if self.reg_weight != 0.0 or self.always_feature_params:
      for m in self.modalities:
        table = jnp.asarray(dataset.features[m], jnp.float32)
        self.features[m] = nnx.Param(table)
        self.projections[m] = torch_linear(table.shape[1], feat_embed_dim, rngs=rngs)

  def graph_weights(self) -> dict[str, float]:
    weights = {"image": self.mm_image_weight, "text": 1.0 - self.mm_image_weight}
    present = {m: weights[m] for m in self.modalities}
    return present if len(present) > 1 else {m: 1.0 for m in present}

  def build_context(self, dataset, *, cache_dir=None):
    users, items = dataset.train_edges[:, 0], dataset.train_edges[:, 1]
    feats = {m: dataset.features[m] for m in self.modalities}
    mm_adj = cached_mixed_graph(
        feats, self.knn_k, self.graph_weights(), cache_dir,
        key=f"{dataset.name}-{features_fingerprint(feats)}")
    context = {
        "adj": normalized_bipartite_adjacency(users, items, self.n_users, self.n_items),
        "mm_adj": mm_adj,
        "edge_users": jnp.asarray(users, jnp.int32),
        "edge_items": jnp.asarray(items, jnp.int32),
        "edge_weights": jnp.asarray(
            degree_edge_weights(users, items, self.n_users, self.n_items), jnp.float32),
    }
    if self.negative_sampler != "uniform":
      context["negative_index"] = exclusion_index(
          dataset.train.indptr, dataset.train.indices, dataset.train_items())
    return context

  def on_epoch(self, context, key, epoch):
    del epoch
    if self.dropout <= 0.0:
      return {**context, "train_adj": context["adj"]}
    n_keep = keep_count(context["edge_users"].shape[0], self.dropout)
    pruned = prune_edges(key, context["edge_users"], context["edge_items"],
                         context["edge_weights"], n_keep, self.n_users, self.n_items)
    return {**context, "train_adj": pruned}

  def item_graph(self, context) -> jax.Array:
    """h = S^n_mm_layers e_item_id, ``[n_items, d]``."""
    h = self.item_id_embedding[...]
    for _ in range(self.n_mm_layers):
      h = spmm(context["mm_adj"], h, method=self.propagation)
    return h

  def lightgcn_layers(self, context, item_input, *, train) -> jax.Array:
    """LightGCN's layers 0..n_ui_layers on ``[e_user; item_input]``: ``[L + 1, n_nodes, d]``."""
    adj = context["train_adj"] if train else context["adj"]
    ego = jnp.concatenate([self.user_embedding[...], item_input], 0)
    return propagate_layers(adj, ego, self.n_ui_layers, method=self.propagation)

  def lightgcn(self, context, item_input, *, train):
    """Mean over layers 0..n_ui_layers of LightGCN on ``[e_user; item_input]``."""
    out = self.lightgcn_layers(context, item_input, train=train).mean(0)
    return out[: self.n_users], out[self.n_users :]

  def projected(self, m: str, ids=None) -> jax.Array:
    """``W_m x_m + b`` for items ``ids`` (all items when ``None``)."""
    table = self.features[m][...]
    return self.projections[m](table if ids is None else table[ids])

  def modality_bpr(self, u, batch) -> dict[str, jax.Array]:
    """FREEDOM's auxiliary terms BPR(u, W_m x_m[i+], W_m x_m[i-]) per modality."""
    return {f"bpr_{m}": losses.bpr_loss(
        jnp.sum(u * self.projected(m, batch.pos_items), -1),
        jnp.sum(u * self.projected(m, batch.neg_items), -1), where=batch.mask)
        for m in self.modalities}

  def embed(self, context, *, train):
    h = self.item_graph(context)
    users, items = self.lightgcn(context, self.item_id_embedding[...], train=train)
    return users, items + h

  def _hard_negative_bpr(self, context, batch, key) -> tuple[jax.Array, jax.Array]:
    """``(u [batch, d], BPR)`` with the DNS or MixGCF negative."""
    h = self.item_graph(context)
    layers = self.lightgcn_layers(context, self.item_id_embedding[...], train=True)
    u = layers.mean(0)[: self.n_users][batch.users]
    item_layers = layers[:, self.n_users :]
    k_cand, k_mix = jax.random.split(key)
    if self.negative_sampler == "dns":
      items = item_layers.mean(0) + h
      neg = dns_negatives(k_cand, batch.users, jax.lax.stop_gradient(u),
                          jax.lax.stop_gradient(items), context["negative_index"],
                          n_candidates=self.n_negative_candidates)
      pos_e, neg_e = items[batch.pos_items], items[neg]
    else:
      # [n_items, L + 2, d]: the summands of the final item embedding.
      parts = jnp.concatenate([item_layers / item_layers.shape[0], h[None]], 0).swapaxes(0, 1)
      cand = uniform_negatives(
          k_cand, jnp.broadcast_to(batch.users[:, None],
                                   batch.users.shape + (self.n_negative_candidates,)),
          context["negative_index"])
      pos_parts = parts[batch.pos_items]
      neg_e = mixgcf_negatives(k_mix, u, pos_parts, parts[cand], pool="sum")
      pos_e = pos_parts.sum(1)
    bpr = losses.bpr_loss(jnp.sum(u * pos_e, -1), jnp.sum(u * neg_e, -1), where=batch.mask)
    return u, bpr

  def loss(self, context, batch, key):
    if self.negative_sampler == "uniform":
      users, items = self.embed(context, train=True)
      u = users[batch.users]
      bpr = losses.bpr_loss(jnp.sum(u * items[batch.pos_items], -1),
                            jnp.sum(u * items[batch.neg_items], -1), where=batch.mask)
    else:
      u, bpr = self._hard_negative_bpr(context, batch, key)
    parts = {"bpr": bpr}
    total = bpr
    if self.reg_weight != 0.0:
      aux = self.modality_bpr(u, batch)
      parts.update(aux)
      total = total + self.reg_weight * sum(aux.values())
    return total, parts
