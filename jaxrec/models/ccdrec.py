"""CCDRec (Curriculum Conditioned Diffusion, AAAI 2025) on the FREEDOM and LATTICE backbones.

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
  CSR (a binary search per pair, its depth from the largest user degree); one
  of the top ``sample_k`` fraction is picked at random; its CURRENT model
  embedding enters the loss. Epoch 0 reuses the uniform negative.
* Loss (Eq. 8-9): (1 - omega) BPR(uniform) + omega BPR(hard) + lambda L_dm
  (+ reg_weight * FREEDOM's modality BPR), BPR averaged over the batch.

Ablations (paper Fig. 3) via ``negative_sampling``: ``'uniform'`` = FREEDOM + DMA
(no hard negatives; NDI pools only feed evaluation), ``'final_pool'`` = + NDI (the
hard negative drawn from the final pool from epoch 1 on, no curriculum),
``'curriculum'`` = full CCDRec.

Backbones: ``ccdrec`` is FREEDOM (the only one the official code ships);
``ccdrec_lattice`` is LATTICE (paper Table 2), where no official code exists.
There the fused rows ``(1 - mu) e_item + mu x0_hat`` (Eq. 5 as written) replace
the batch items' rows of LATTICE's collaborative input ``e_item`` (LATTICE's
LightGCN runs on the ID table, not on its item-graph output ``h``); final item =
LightGCN item + ``h / |h|`` as in LATTICE; evaluation fuses every item with the
final pool; the estimator's conditions are LATTICE's own projections.
"""

from __future__ import annotations

import inspect
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrec import diffusion, losses
from jaxrec.data import Dataset
from jaxrec.models import registry
from jaxrec.models.freedom import FREEDOM
from jaxrec.models.lattice import LATTICE
from jaxrec.negatives import curriculum_pool_index, pool_hard_negatives

NEGATIVE_SAMPLING = ("curriculum", "final_pool", "uniform")
# The official estimator's token order: [x_t, text, image, step].
CONDITION_ORDER = ("text", "image")


def diffusion_options(
    *,
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
) -> dict[str, Any]:
  """CCDRec's own hyper-parameters (any backbone), checked; defaults = the official code."""
  options = dict(locals())
  if negative_sampling not in NEGATIVE_SAMPLING:
    raise ValueError(f"Unknown negative_sampling {negative_sampling!r}; valid: "
                     f"{', '.join(NEGATIVE_SAMPLING)}.")
  if snapshots not in ("official", "paper"):
    raise ValueError(f"Unknown snapshots {snapshots!r}; valid: official, paper.")
  ranges = {  # name: (low, high, low included); the bounds the formulas need.
      "timesteps": (2, None, True), "diff_weight": (0.0, None, True),
      "fusion_weight": (0.0, 1.0, True), "omega": (0.0, 1.0, True),
      "candidate_fraction": (0.0, 1.0, False), "sample_k": (0.0, 1.0, False),
      "curriculum_start": (0, None, True), "curriculum_step": (1, None, True),
      "estimator_layers": (1, None, True), "estimator_heads": (1, None, True),
  }
  for name, (low, high, closed) in ranges.items():
    v = options[name]
    if (v < low if closed else v <= low) or (high is not None and v > high):
      interval = f"{'[' if closed else '('}{low}, {high if high is not None else 'inf'}"
      raise ValueError(f"{name} must lie in {interval}{']' if high is not None else ')'}; "
                       f"got {v!r}.")
  if curriculum_end < curriculum_start:
    raise ValueError(f"curriculum_end ({curriculum_end}) must be >= curriculum_start "
                     f"({curriculum_start}).")
  return options


_OPTION_NAMES = frozenset(inspect.signature(diffusion_options).parameters)


def split_options(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
  """``(backbone kwargs, diffusion_options(...))`` from one model section."""
  backbone = {k: v for k, v in kwargs.items() if k not in _OPTION_NAMES}
  return backbone, diffusion_options(**{k: v for k, v in kwargs.items() if k in _OPTION_NAMES})


class CurriculumDiffusion:
  """DMA, NDI and CNS for a backbone: mixed into a backbone ``Recommender``.

  Listed first among the bases, it wraps the backbone's ``__init__`` (backbone
  keyword arguments + :func:`diffusion_options`), ``build_context`` (+ schedule,
  pools, train CSR), ``on_epoch`` (+ the epoch number) and ``after_epoch`` (the
  backbone's, then NDI). The backbone provides ``item_id_embedding``,
  ``n_items``, ``modalities`` and ``_conditions(context, ids)`` (projected
  modality rows in ``CONDITION_ORDER``).
  """

  def __init__(self, dataset: Dataset, *, rngs: nnx.Rngs, **kwargs: Any):
    backbone, o = split_options(kwargs)
    embedding_size = backbone.get("embedding_size", 64)
    if backbone.get("feat_embed_dim", 64) != embedding_size:
      raise ValueError(f"CCDRec's estimator tokens need feat_embed_dim == embedding_size; "
                       f"got {backbone.get('feat_embed_dim', 64)} and {embedding_size}.")
    super().__init__(dataset, rngs=rngs, **backbone)
    self.timesteps = int(o["timesteps"])
    self.schedule_args = (o["beta_schedule"], self.timesteps, float(o["beta_start"]),
                          float(o["beta_end"]))
    self.diff_weight, self.fusion_weight, self.omega = (
        float(o["diff_weight"]), float(o["fusion_weight"]), float(o["omega"]))
    self.negative_sampling = o["negative_sampling"]
    self.curriculum = (int(o["curriculum_start"]), int(o["curriculum_step"]),
                       int(o["curriculum_end"]))
    self.n_candidates = max(1, int(o["candidate_fraction"] * self.n_items))
    self.top_k = max(1, int(o["sample_k"] * self.n_candidates))
    self.max_user_items = max(1, int(np.diff(dataset.train.indptr).max(initial=0)))
    self.snapshot_steps = (diffusion.ndi_snapshot_steps(self.timesteps)
                           if o["snapshots"] == "official"
                           else diffusion.paper_snapshot_steps(self.timesteps))
    self.chain_from_noise = bool(o["chain_from_noise"])
    self.stochastic_chain = bool(o["stochastic_chain"])
    self.conditions = tuple(m for m in CONDITION_ORDER if m in self.modalities)
    self.estimator = diffusion.X0Estimator(
        embedding_size, rngs=rngs, n_layers=o["estimator_layers"],
        n_heads=o["estimator_heads"], residual=o["estimator_residual"],
        feed_forward=o["estimator_feed_forward"])

  def build_context(self, dataset, *, cache_dir=None):
    context = super().build_context(dataset, cache_dir=cache_dir)
    d = self.item_id_embedding[...].shape[1]
    return dict(
        context,
        schedule=diffusion.make_schedule(*self.schedule_args[:2], beta_start=self.schedule_args[2],
                                         beta_end=self.schedule_args[3]),
        pools=jnp.zeros((len(self.snapshot_steps), self.n_items, d), jnp.float32),
        epoch=jnp.zeros((), jnp.int32),
        train_indptr=jnp.asarray(dataset.train.indptr),
        train_indices=jnp.asarray(dataset.train.indices),
    )

  def on_epoch(self, context, key, epoch):
    context = super().on_epoch(context, key, epoch)
    return {**context, "epoch": jnp.asarray(epoch, jnp.int32)}

  def after_epoch(self, context, key, epoch):
    """The backbone's products (LATTICE: its evaluation graph), then NDI's pools."""
    return self._regenerate_pools(super().after_epoch(context, key, epoch), key)

  def _regenerate_pools(self, context, key):
    """NDI: the pools from the current item ID embeddings (no gradient)."""
    k_start, k_chain = jax.random.split(key)
    x0 = jax.lax.stop_gradient(self.item_id_embedding[...])
    conds = [jax.lax.stop_gradient(c) for c in self._conditions(context)]
    schedule = context["schedule"]
    x_start = diffusion.chain_start(schedule, x0, k_start, from_noise=self.chain_from_noise)
    pools = diffusion.reverse_chain(
        lambda x, c, t: self.estimator(x, c, t), schedule, x_start, conds, k_chain,
        snapshot_steps=self.snapshot_steps, stochastic=self.stochastic_chain)
    return {**context, "pools": pools}

  def _fuse_all(self, context, base: jax.Array) -> jax.Array:
    """Evaluation: every item fused with the final pool (official full_sort_predict)."""
    return (1 - self.fusion_weight) * base + self.fusion_weight * context["pools"][-1]

  def _dma(self, context, batch, base: jax.Array, k_t: jax.Array,
           k_noise: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(base with the batch items' rows fused, L_dm)``; ``base`` is ``[n_items, d]``.

    DMA on the batch's positives and uniform negatives: x0 = their raw ID rows;
    ``k_t`` draws the steps, ``k_noise`` the forward noise.
    """
    n = batch.users.shape[0]
    items_b = jnp.concatenate([batch.pos_items, batch.neg_items])
    mask_b = jnp.concatenate([batch.mask, batch.mask])
    x0 = self.item_id_embedding[...][items_b]
    t = diffusion.antithetic_timesteps(k_t, 2 * n, self.timesteps)
    x_t = diffusion.q_sample(context["schedule"], x0, t, jax.random.normal(k_noise, x0.shape))
    x0_hat = self.estimator(x_t, self._conditions(context, items_b), t)
    l_diff = diffusion.x0_mse_loss(x0, x0_hat, where=mask_b)
    rows = (1 - self.fusion_weight) * base[items_b] + self.fusion_weight * x0_hat
    # Padding rows are dropped; duplicate items keep one of their rows, as the
    # reference's indexed assignment does.
    fused = base.at[jnp.where(mask_b, items_b, self.n_items)].set(rows, mode="drop")
    return fused, l_diff

  def _pool_index(self, epoch):
    if self.negative_sampling == "final_pool":
      return jnp.where(epoch > 0, len(self.snapshot_steps) - 1, -1).astype(jnp.int32)
    return curriculum_pool_index(epoch, *self.curriculum)

  def _hard_negatives(self, context, batch, key, items):
    """CNS: ``[batch]`` hard negatives from the epoch's pool (``items``: current items)."""
    idx = self._pool_index(context["epoch"])
    tables = jnp.concatenate([context["pools"], jax.lax.stop_gradient(items)[None]])
    hard = pool_hard_negatives(
        key, batch.users, batch.pos_items, tables[jnp.clip(idx, 0, tables.shape[0] - 1)],
        context["train_indptr"], context["train_indices"],
        n_candidates=self.n_candidates, top_k=self.top_k, max_row_length=self.max_user_items)
    return jnp.where(idx < 0, batch.neg_items, hard)

  def sampling_probe(self, context, batch, key):
    if self.negative_sampling == "uniform":
      return None
    # The pools' shape stands in for the current items (only their values differ).
    return self._hard_negatives(context, batch, key, context["pools"][-1])

  def _ccd_loss(self, context, batch, key, u, items, l_diff):
    """(1 - omega) BPR(uniform) + omega BPR(CNS) + lambda L_dm, and its parts."""
    score = lambda j: jnp.sum(u * items[j], -1)  # noqa: E731
    pos = score(batch.pos_items)
    bpr_uniform = losses.bpr_loss(pos, score(batch.neg_items), where=batch.mask)
    parts = {"bpr_uniform": bpr_uniform, "diffusion": l_diff}
    if self.negative_sampling == "uniform":
      rec = bpr_uniform
    else:
      hard = self._hard_negatives(context, batch, key, items)
      bpr_hard = losses.bpr_loss(pos, score(hard), where=batch.mask)
      parts["bpr_hard"] = bpr_hard
      rec = (1 - self.omega) * bpr_uniform + self.omega * bpr_hard
    return rec + self.diff_weight * l_diff, parts


@registry.register("ccdrec")
class CCDRec(CurriculumDiffusion, FREEDOM):
  """CCDRec on FREEDOM; see the module docstring for every choice and its source.

  Hyper-parameters: FREEDOM's (except its DNS / MixGCF ``negative_sampler``) and
  :func:`diffusion_options`.
  """

  always_feature_params = True
  hyperparameter_sources = (FREEDOM.__init__, diffusion_options)
  excluded_hyperparameters = ("negative_sampler", "n_negative_candidates")

  def _conditions(self, context, ids=None):
    del context
    return [self.projected(m, ids) for m in self.conditions]

  def embed(self, context, *, train):
    h = self.item_graph(context)
    users, items = self.lightgcn(context, h if train else self._fuse_all(context, h),
                                 train=train)
    return users, items + h

  def loss(self, context, batch, key):
    k_t, k_noise, k_neg = jax.random.split(key, 3)
    h = self.item_graph(context)
    h_fused, l_diff = self._dma(context, batch, h, k_t, k_noise)
    users, items = self.lightgcn(context, h_fused, train=True)
    items = items + h
    u = users[batch.users]
    total, parts = self._ccd_loss(context, batch, k_neg, u, items, l_diff)
    if self.reg_weight != 0.0:
      aux = self.modality_bpr(u, batch)
      parts.update(aux)
      total = total + self.reg_weight * sum(aux.values())
    return total, parts


@registry.register("ccdrec_lattice")
class CCDRecLATTICE(CurriculumDiffusion, LATTICE):
  """CCDRec on LATTICE (paper Table 2); see the module docstring.

  Hyper-parameters: LATTICE's and :func:`diffusion_options`.
  """

  hyperparameter_sources = (LATTICE.__init__, diffusion_options)

  def _conditions(self, context, ids=None):
    return self._projected(self._graph_inputs(context), self.conditions, ids)

  def embed(self, context, *, train):
    if train:
      return super().embed(context, train=True)
    return self._forward(context, self.eval_item_graph(context),
                         self._fuse_all(context, self.item_id_embedding[...]))

  def loss(self, context, batch, key):
    k_t, k_noise, k_neg = jax.random.split(key, 3)
    h, fresh = self._train_h(context)
    item_input, l_diff = self._dma(context, batch, self.item_id_embedding[...], k_t, k_noise)
    users, items = self._forward(context, h, item_input)
    u = users[batch.users]
    total, parts = self._ccd_loss(context, batch, k_neg, u, items, l_diff)
    if self.reg_weight != 0.0:
      reg = self.norm_regularizer(u, items[batch.pos_items], items[batch.neg_items], batch.mask)
      parts["reg"] = reg
      total = total + self.reg_weight * reg
    parts["fresh_graph"] = fresh.astype(jnp.float32)
    return total, parts
