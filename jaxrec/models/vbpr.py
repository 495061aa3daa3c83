"""VBPR (He & McAuley, AAAI 2016) as MMRec's ``vbpr.py`` defines it."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from jaxrec import losses
from jaxrec.data import Dataset
from jaxrec.models import registry
from jaxrec.models.base import Recommender, present_modalities, xavier_table

# MMRec concatenates text before image.
MODALITY_ORDER = ("text", "image")


@registry.register("vbpr")
class VBPR(Recommender):
  """Visual BPR: item = [e_i ; W [t_i ; v_i] + b], user = 2d-dim e_u, score = dot.

  * e_u ``[U, 2d]`` and e_i ``[I, d]`` Xavier-uniform; W Xavier-normal with zero
    bias (MMRec's ``xavier_normal_initialization`` of ``nn.Linear``).
  * The raw features are constants (MMRec's ``v_feat``/``t_feat`` tensors), not
    parameters; they live in the context.
  * loss = BPR + ``reg_weight`` * EmbLoss(u, i+, i-) on the FINAL vectors.
    MMRec's grid: reg_weight in {2, 1, 0.1, 1e-2, 1e-3, 1e-4, 1e-5}.
  """

  def __init__(
      self, dataset: Dataset, *, rngs: nnx.Rngs, embedding_size: int = 64,
      reg_weight: float = 0.1,
  ):
    self.n_users, self.n_items = dataset.n_users, dataset.n_items
    self.modalities = present_modalities(dataset, MODALITY_ORDER, "VBPR")
    self.reg_weight = float(reg_weight)
    d = embedding_size
    self.user_embedding = nnx.Param(xavier_table(rngs.params(), self.n_users, 2 * d))
    self.item_embedding = nnx.Param(xavier_table(rngs.params(), self.n_items, d))
    in_dim = sum(dataset.features[m].shape[1] for m in self.modalities)
    self.item_linear = nnx.Linear(in_dim, d, rngs=rngs,
                                  kernel_init=nnx.initializers.xavier_normal(),
                                  bias_init=nnx.initializers.zeros)

  def build_context(self, dataset, *, cache_dir=None):
    del cache_dir
    raw = jnp.concatenate([jnp.asarray(dataset.features[m], jnp.float32)
                           for m in self.modalities], axis=1)
    return {"raw_features": raw}

  def _items(self, context, ids=None):
    raw = context["raw_features"] if ids is None else context["raw_features"][ids]
    ids_emb = self.item_embedding[...] if ids is None else self.item_embedding[...][ids]
    return jnp.concatenate([ids_emb, self.item_linear(raw)], -1)

  def embed(self, context, *, train):
    del train
    return self.user_embedding[...], self._items(context)

  def loss(self, context, batch, key):
    del key
    # Only the batch's item rows go through the projection: same values and
    # gradients as projecting all items, at a fraction of the cost.
    u = self.user_embedding[...][batch.users]
    p, n = self._items(context, batch.pos_items), self._items(context, batch.neg_items)
    bpr = losses.bpr_loss(jnp.sum(u * p, -1), jnp.sum(u * n, -1), where=batch.mask)
    reg = losses.emb_loss(u, p, n, where=batch.mask)
    return bpr + self.reg_weight * reg, {"bpr": bpr, "reg": reg}
