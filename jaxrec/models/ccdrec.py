"""CCDRec (Curriculum Conditioned Diffusion, AAAI 2025) on the FREEDOM backbone.

Default = the official code's behaviour (REFERENCE.md §D); the paper's reading is
available where it is more general. Paper equations are cited as (Eq. n) of
``papers/ccdrec.txt``.

* DMA (Eq. 1-4): an x0-predicting DDPM over the RAW item ID embeddings of the
  batch's positives and (uniform) negatives, conditioned on the items' projected
  text and image features and a sinusoidal step embedding, through
  :class:`~jaxrec.diffusion.X0Estimator` (official: one single-head attention
  layer, non-affine LayerNorm, no residual/FFN, mean over tokens; ``estimator_*``
  options give the paper's deeper "Transformer"). Training steps are drawn in
  antithetic pairs. The fused rows ``(1 - mu) h + mu x0_hat`` (Eq. 5, ``mu`` =
  ``fusion_weight``) replace the batch items' rows of the item-graph output h,
  which is LightGCN's layer-0 item input; final item = LightGCN item + h (h is
  counted twice, as in the official code, REFERENCE.md §F.4).
* NDI (Eq. 6): after every epoch's training (``after_epoch``), all items are
  reverse-sampled from ``q(x_{T-1} | e_item)`` (official; ``chain_from_noise``
  starts from N(0, I) as the paper) with ancestral noise, keeping the outputs of
  steps ``int((T-1) * (0.75, 0.5, 0.25))`` and 0 (official; ``snapshots='paper'``
  uses 3T/4, T/2, T/4, 0). Evaluation fuses ALL items with the final snapshot.
* CNS (Eq. 7): the pool is chosen by epoch thresholds start/step/end (official;
  the paper's t = (T/4)(3 - min(3, floor(n / dtau))) with dtau = step), then the
  model's current item embeddings after ``curriculum_end``; a random
  ``candidate_fraction`` of items is shared by the batch; the positive's pool row
  scores them by dot product; the user's training items are excluded via the
  CSR; one of the top ``sample_k`` fraction is picked at random; its CURRENT
  model embedding enters the loss. Epoch 0 reuses the uniform negative.
* Loss (Eq. 8-9): (1 - omega) BPR(uniform) + omega BPR(hard) + lambda L_dm
  (+ reg_weight * FREEDOM's modality BPR), BPR averaged over the batch.

Ablations (paper Fig. 3) via ``negative_sampling``: ``'uniform'`` = FREEDOM + DMA
(no hard negatives; NDI pools only feed evaluation), ``'final_pool'`` = + NDI (the
hard negative drawn from the final pool from epoch 1 on, no curriculum),
``'curriculum'`` = full CCDRec.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxrec import diffusion, losses
from jaxrec.data import Dataset
from jaxrec.models import registry
from jaxrec.models.freedom import FREEDOM
from jaxrec.negatives import curriculum_pool_index, pool_hard_negatives

NEGATIVE_SAMPLING = ("curriculum", "final_pool", "uniform")
# The official estimator's token order: [x_t, text, image, step].
CONDITION_ORDER = ("text", "image")


@registry.register("ccdrec")
class CCDRec(FREEDOM):
  """CCDRec on FREEDOM; see the module docstring for every choice and its source."""

  always_feature_params = True

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
      timesteps: int = 20,
      beta_start: float = 1e-4,
      beta_end: float = 0.02,
      beta_schedule: str = "linear",
      diff_weight: float = 0.5,
      fusion_weight: float = 0.5,
      omega: float = 0.8,
      negative_sampling: str = "curriculum",
      curriculum_start: int = 5,
      curriculum_step: int = 5,
      curriculum_end: int = 30,
      candidate_fraction: float = 0.1,
      sample_k: float = 0.1,
      snapshots: str = "official",
      chain_from_noise: bool = False,
      stochastic_chain: bool = True,
      estimator_layers: int = 1,
      estimator_heads: int = 1,
      estimator_residual: bool = False,
      estimator_feed_forward: bool = False,
  ):
    if feat_embed_dim != embedding_size:
      raise ValueError(f"CCDRec's estimator tokens need feat_embed_dim == embedding_size; "
                       f"got {feat_embed_dim} and {embedding_size}.")
    if negative_sampling not in NEGATIVE_SAMPLING:
      raise ValueError(f"Unknown negative_sampling {negative_sampling!r}; valid: "
                       f"{', '.join(NEGATIVE_SAMPLING)}.")
    if snapshots not in ("official", "paper"):
      raise ValueError(f"Unknown snapshots {snapshots!r}; valid: official, paper.")
    super().__init__(dataset, rngs=rngs, embedding_size=embedding_size,
                     feat_embed_dim=feat_embed_dim, knn_k=knn_k,
                     mm_image_weight=mm_image_weight, n_mm_layers=n_mm_layers,
                     n_ui_layers=n_ui_layers, dropout=dropout, reg_weight=reg_weight,
                     propagation=propagation)
    self.timesteps = int(timesteps)
    self.schedule_args = (beta_schedule, self.timesteps, float(beta_start), float(beta_end))
    self.diff_weight, self.fusion_weight, self.omega = (
        float(diff_weight), float(fusion_weight), float(omega))
    self.negative_sampling = negative_sampling
    self.curriculum = (int(curriculum_start), int(curriculum_step), int(curriculum_end))
    self.n_candidates = max(1, int(candidate_fraction * self.n_items))
    self.top_k = max(1, int(sample_k * self.n_candidates))
    self.snapshot_steps = (diffusion.ndi_snapshot_steps(self.timesteps) if snapshots == "official"
                           else diffusion.paper_snapshot_steps(self.timesteps))
    self.chain_from_noise, self.stochastic_chain = bool(chain_from_noise), bool(stochastic_chain)
    self.conditions = tuple(m for m in CONDITION_ORDER if m in self.modalities)
    self.estimator = diffusion.X0Estimator(
        embedding_size, rngs=rngs, n_layers=estimator_layers, n_heads=estimator_heads,
        residual=estimator_residual, feed_forward=estimator_feed_forward)

  def build_context(self, dataset, *, cache_dir=None):
    context = super().build_context(dataset, cache_dir=cache_dir)
    d = self.item_id_embedding[...].shape[1]
    context.update(
        schedule=diffusion.make_schedule(*self.schedule_args[:2], beta_start=self.schedule_args[2],
                                         beta_end=self.schedule_args[3]),
        pools=jnp.zeros((len(self.snapshot_steps), self.n_items, d), jnp.float32),
        epoch=jnp.zeros((), jnp.int32),
        train_indptr=jnp.asarray(dataset.train.indptr),
        train_indices=jnp.asarray(dataset.train.indices),
    )
    return context

  def on_epoch(self, context, key, epoch):
    context = super().on_epoch(context, key, epoch)
    return {**context, "epoch": jnp.asarray(epoch, jnp.int32)}

  def _conditions(self, ids=None):
    return [self.projected(m, ids) for m in self.conditions]

  def after_epoch(self, context, key, epoch):
    """NDI: regenerate the pools from the current item ID embeddings (no gradient)."""
    del epoch
    k_start, k_chain = jax.random.split(key)
    x0 = jax.lax.stop_gradient(self.item_id_embedding[...])
    conds = [jax.lax.stop_gradient(c) for c in self._conditions()]
    schedule = context["schedule"]
    x_start = diffusion.chain_start(schedule, x0, k_start, from_noise=self.chain_from_noise)
    pools = diffusion.reverse_chain(
        lambda x, c, t: self.estimator(x, c, t), schedule, x_start, conds, k_chain,
        snapshot_steps=self.snapshot_steps, stochastic=self.stochastic_chain)
    return {**context, "pools": pools}

  def embed(self, context, *, train):
    h = self.item_graph(context)
    fused = h
    if not train:  # Evaluation: every item fused with the final pool (official full_sort_predict).
      fused = (1 - self.fusion_weight) * h + self.fusion_weight * context["pools"][-1]
    users, items = self.lightgcn(context, fused, train=train)
    return users, items + h

  def _pool_index(self, epoch):
    if self.negative_sampling == "final_pool":
      return jnp.where(epoch > 0, len(self.snapshot_steps) - 1, -1).astype(jnp.int32)
    return curriculum_pool_index(epoch, *self.curriculum)

  def loss(self, context, batch, key):
    k_t, k_noise, k_neg = jax.random.split(key, 3)
    n = batch.users.shape[0]
    # DMA on the batch's positives and uniform negatives.
    items_b = jnp.concatenate([batch.pos_items, batch.neg_items])
    mask_b = jnp.concatenate([batch.mask, batch.mask])
    x0 = self.item_id_embedding[...][items_b]
    t = diffusion.antithetic_timesteps(k_t, 2 * n, self.timesteps)
    x_t = diffusion.q_sample(context["schedule"], x0, t, jax.random.normal(k_noise, x0.shape))
    x0_hat = self.estimator(x_t, self._conditions(items_b), t)
    l_diff = diffusion.x0_mse_loss(x0, x0_hat, where=mask_b)

    h = self.item_graph(context)
    rows = (1 - self.fusion_weight) * h[items_b] + self.fusion_weight * x0_hat
    # Padding rows are dropped; duplicate items keep one of their rows, as the
    # reference's indexed assignment does.
    h_fused = h.at[jnp.where(mask_b, items_b, self.n_items)].set(rows, mode="drop")
    users, items = self.lightgcn(context, h_fused, train=True)
    items = items + h
    u = users[batch.users]
    score = lambda j: jnp.sum(u * items[j], -1)  # noqa: E731
    pos = score(batch.pos_items)
    bpr_uniform = losses.bpr_loss(pos, score(batch.neg_items), where=batch.mask)

    parts = {"bpr_uniform": bpr_uniform, "diffusion": l_diff}
    if self.negative_sampling == "uniform":
      rec = bpr_uniform
    else:
      idx = self._pool_index(context["epoch"])
      tables = jnp.concatenate([context["pools"], jax.lax.stop_gradient(items)[None]])
      hard = pool_hard_negatives(
          k_neg, batch.users, batch.pos_items, tables[jnp.clip(idx, 0, tables.shape[0] - 1)],
          context["train_indptr"], context["train_indices"],
          n_candidates=self.n_candidates, top_k=self.top_k)
      hard = jnp.where(idx < 0, batch.neg_items, hard)
      bpr_hard = losses.bpr_loss(pos, score(hard), where=batch.mask)
      parts["bpr_hard"] = bpr_hard
      rec = (1 - self.omega) * bpr_uniform + self.omega * bpr_hard
    total = rec + self.diff_weight * l_diff
    if self.reg_weight != 0.0:
      aux = self.modality_bpr(u, batch)
      parts.update(aux)
      total = total + self.reg_weight * sum(aux.values())
    return total, parts
