"""LATTICE (Zhang et al., MM 2021, arXiv:2104.09036) as MMRec's ``lattice.py`` defines it.

A learned item-item graph (the kNN of projected modality features, weighted by similarity,
rebuilt every epoch) mixed with the frozen kNN graph of the raw features, on top of a
LightGCN over a self-looped, row-normalised user-item graph. See REFERENCE.md §C.2.

Item graphs are fixed-width neighbour lists (``idx [n_items, w]`` int32 + ``vals
[n_items, w]``; an item may be listed more than once and duplicates add up), so that they
can be rebuilt inside ``jit`` and differentiated w.r.t. their values. The reference keeps
dense ``n_items x n_items`` matrices instead; here no dense similarity matrix is ever held:
kNN is computed on device in blocks of ``knn_block_size`` rows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxrec import losses
from jaxrec.data import Dataset
from jaxrec.graph import SparseMatrix, features_fingerprint, propagate_layers, spmm
from jaxrec.models import registry
from jaxrec.models.base import Context, Recommender, present_modalities, xavier_table
from jaxrec.models.freedom import torch_linear

logger = logging.getLogger(__name__)

# Reference order: ``modal_weight[0]`` weighs the image graph, ``[1]`` the text graph.
MODALITIES = ("image", "text")
CF_MODELS = ("lightgcn", "mf")
# What on_epoch / after_epoch add to the context.
_GRAPH_KEYS = ("learned_idx", "item_idx", "item_vals", "item_adj", "snapshot")
# Bumped when the cache file layout changes, so that old files are rebuilt, not misread.
_CACHE_FORMAT = 1
# On GPUs the default f32 matmul may use TF32, whose ~1e-3 error reorders close neighbours.
_HIGHEST = jax.lax.Precision.HIGHEST


def _normalize_rows(x: jax.Array, eps: float = 0.0) -> jax.Array:
  """``[n, d]`` rows over ``max(norm, eps)``; an all-zero row stays zero (no 0/0 NaN).

  ``eps = 0`` is the reference's ``build_sim`` (plain division), ``eps = 1e-12`` its
  ``F.normalize``. The double ``where`` keeps the gradient of a zero row finite.
  """
  norm = jnp.linalg.norm(jnp.where(jnp.any(x != 0, 1, keepdims=True), x, 1.0), axis=1,
                         keepdims=True)
  return jnp.where(jnp.any(x != 0, 1, keepdims=True), x / jnp.maximum(norm, eps), 0.0)


def knn_neighbours(
    features: jax.Array, k: int, *, block_size: int = 1024
) -> tuple[jax.Array, jax.Array]:
  r"""The top-``k`` cosine neighbours of every row, jit-compatible, computed in blocks.

  .. math::
    S_{ij} = \frac{x_i \cdot x_j}{\|x_i\| \|x_j\|}, \qquad
    \mathrm{idx}_i = \mathrm{top}_k(S_{i,:})

  Only a ``[block_size, n]`` similarity block exists at a time (``lax.map`` over blocks;
  the rows are zero-padded to a multiple of ``block_size``). Ties go to the lower column
  (``lax.top_k``); an all-zero row has all similarities 0 (the reference: NaN).

  Args:
    features: ``[n, d]`` float features.
    k: neighbours per row, ``1 <= k <= n`` (static).
    block_size: rows per similarity block (static), clipped to ``n``; it does not change
      the result.

  Returns:
    ``(idx, sims)``, each ``[n, k]``: int32 column ids, best first, and their
    similarities. No gradient flows through either (use :func:`gather_similarities`).
  """
  normed = jax.lax.stop_gradient(_normalize_rows(jnp.asarray(features, jnp.float32)))
  n, d = normed.shape
  b = max(1, min(int(block_size), n))
  n_blocks = -(-n // b)
  queries = jnp.pad(normed, ((0, n_blocks * b - n), (0, 0))).reshape(n_blocks, b, d)

  def block_top_k(q):
    sim = jnp.matmul(q, normed.T, precision=_HIGHEST)
    return jax.lax.top_k(sim, k)

  sims, idx = jax.lax.map(block_top_k, queries)
  return idx.reshape(-1, k)[:n].astype(jnp.int32), sims.reshape(-1, k)[:n]


def gather_similarities(features: jax.Array, idx: jax.Array) -> jax.Array:
  """``[n, k]`` cosine similarity of row ``i`` with rows ``idx[i]``, differentiable.

  The values of the reference's ``build_knn_neighbourhood(build_sim(x))`` at its
  non-zero positions: its gradient reaches ``x`` through exactly these entries.
  """
  normed = _normalize_rows(features)
  return jnp.einsum("if,ikf->ik", normed, normed[idx], precision=_HIGHEST)


def sym_normalize(idx: jax.Array, vals: jax.Array) -> jax.Array:
  r"""``D^{-1/2} A D^{-1/2}`` of a neighbour-list matrix, ``D`` the ROW sums.

  The reference's ``compute_normalized_laplacian``: ``\hat A_{ij} = A_{ij} / \sqrt{r_i
  r_j}`` with ``r = A 1`` (``A`` need not be symmetric). A row with ``r_i = 0`` becomes
  zero, like the reference's ``inf -> 0``; a negative row sum (the reference: NaN) is
  treated the same way.

  Args:
    idx: ``[n, w]`` column ids.
    vals: ``[n, w]`` entry values (duplicates add up).

  Returns:
    ``[n, w]`` normalised values for the same ``idx``.
  """
  rowsum = vals.sum(1)
  positive = rowsum > 0
  d = jnp.where(positive, jax.lax.rsqrt(jnp.where(positive, rowsum, 1.0)), 0.0)
  return d[:, None] * vals * d[idx]


def neighbour_matmul(idx: jax.Array, vals: jax.Array, x: jax.Array) -> jax.Array:
  """``A @ x`` for the neighbour-list matrix ``A`` (``[n, w]`` ids/values), ``[n, d]``."""
  return jnp.einsum("ik,ikd->id", vals, x[idx], precision=_HIGHEST)


def neighbour_list_matrix(idx: jax.Array, vals: jax.Array) -> SparseMatrix:
  """A neighbour-list matrix as a canonical :class:`SparseMatrix`, jit-compatible.

  For the fast :func:`jaxrec.graph.spmm` ``'sparse'`` path (CSR kernels assume each
  ``(row, col)`` once). Each row's repeated columns are merged (values summed); the freed
  slots become explicit zeros in padding columns ``n .. n + w - 1``, so that the width
  stays fixed and every row stays sorted and unique. The result is ``[n, n + w]``: multiply
  it with ``x`` padded by ``w`` zero rows.

  Args:
    idx: ``[n, w]`` column ids in ``[0, n)``.
    vals: ``[n, w]`` values.

  Returns:
    ``[n, n + w]`` :class:`SparseMatrix` with ``n * w`` entries.
  """
  n, w = idx.shape
  order = jnp.argsort(idx, axis=1, stable=True)
  cols = jnp.take_along_axis(idx, order, 1)
  vals = jnp.take_along_axis(vals, order, 1)
  first = jnp.concatenate([jnp.ones((n, 1), bool), cols[:, 1:] != cols[:, :-1]], 1)
  group = jnp.cumsum(first, 1) - 1  # Slot of each entry's merged entry, [n, w].
  rows = jnp.broadcast_to(jnp.arange(n)[:, None], (n, w))
  merged = jnp.zeros((n, w), vals.dtype).at[rows, group].add(vals)
  slot = jnp.arange(w)[None, :]
  n_groups = group[:, -1:] + 1
  merged_cols = jnp.zeros((n, w), jnp.int32).at[rows, group].set(cols.astype(jnp.int32))
  merged_cols = jnp.where(slot < n_groups, merged_cols, n + slot).reshape(-1)
  # Rows are non-decreasing, so a stable sort by column orders A^T by (col, row).
  perm_t = jnp.argsort(merged_cols, stable=True).astype(jnp.int32)
  perm_t_inv = jnp.zeros_like(perm_t).at[perm_t].set(jnp.arange(n * w, dtype=jnp.int32))
  counts_t = jnp.bincount(merged_cols, length=n + w)
  return SparseMatrix(
      rows=rows.reshape(-1).astype(jnp.int32),
      cols=merged_cols,
      values=merged.reshape(-1),
      indptr=jnp.arange(n + 1, dtype=jnp.int32) * w,
      perm_t=perm_t,
      perm_t_inv=perm_t_inv,
      indptr_t=jnp.concatenate([jnp.zeros(1, jnp.int32), jnp.cumsum(counts_t).astype(jnp.int32)]),
      shape=(n, n + w),
  )


def self_loop_row_normalized_adjacency(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int
) -> SparseMatrix:
  r"""LATTICE's user-item propagation matrix ``D^{-1} (A + I)`` (``get_adj_mat``).

  ``A`` is the bipartite graph (both directions, a repeated pair is one edge), ``I`` a
  self loop on every node, ``D`` the row sums of ``A + I`` (degree + 1), so each row sums
  to 1 and the matrix is NOT symmetric. Nodes: user ``u`` is ``u``, item ``i`` is
  ``n_users + i``. Host side (NumPy), once.

  Returns:
    ``[U+I, U+I]`` :class:`SparseMatrix` with ``2 * n_unique_edges + U + I`` entries.
  """
  n_users, n_items = int(n_users), int(n_items)
  pairs = np.unique(np.asarray(users, np.int64) * n_items + np.asarray(items, np.int64))
  u, i = pairs // max(n_items, 1), n_users + pairs % max(n_items, 1)
  n = n_users + n_items
  loops = np.arange(n)
  rows = np.concatenate([u, i, loops])
  cols = np.concatenate([i, u, loops])
  degree = np.bincount(rows, minlength=n).astype(np.float64)
  return SparseMatrix.from_coo(rows, cols, 1.0 / degree[rows], (n, n))


def cached_knn(
    features: np.ndarray, k: int, cache_dir: str | None, key: str, *, block_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
  """:func:`knn_neighbours` of raw features, stored in ``cache_dir`` and reused.

  The reference caches ``{image,text}_adj_{k}.pt`` in the data folder; this caches the
  neighbour ids and similarities (normalisation is cheap and done on load) in
  ``{cache_dir}/lattice_knn{k}_{sha256(key)[:12]}.npz``, reused when its stored ``(key,
  k)`` match, rebuilt when missing, unreadable or different. Writes are atomic.

  Returns:
    ``(idx [n, k] int32, sims [n, k] float32)``.
  """
  meta = json.dumps({"format": _CACHE_FORMAT, "key": key, "k": int(k)}, sort_keys=True)
  path = None
  if cache_dir is not None:
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    path = os.path.join(cache_dir, f"lattice_knn{int(k)}_{digest}.npz")
    if os.path.exists(path):
      try:
        with np.load(path, allow_pickle=False) as data:
          if str(data["meta"]) != meta:
            raise ValueError(f"cache metadata {str(data['meta'])!r} does not match {meta!r}")
          idx, sims = data["idx"], data["sims"]
        if idx.shape != (len(features), k) or sims.shape != idx.shape:
          raise ValueError(f"bad shapes {idx.shape}, {sims.shape}")
        logger.info("Loaded the LATTICE kNN graph from %s.", path)
        return idx.astype(np.int32), sims.astype(np.float32)
      except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        logger.warning("Rebuilding unreadable kNN cache %s (%s).", path, e)

  start = time.perf_counter()
  knn = jax.jit(knn_neighbours, static_argnames=("k", "block_size"))
  idx, sims = (np.asarray(a) for a in knn(jnp.asarray(features), k=int(k),
                                          block_size=block_size))
  logger.info("Built a %d-NN graph of %s features in %.2f s.", k, features.shape,
              time.perf_counter() - start)
  if path is not None:
    os.makedirs(cache_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npz.tmp")
    try:
      with os.fdopen(fd, "wb") as f:
        np.savez(f, meta=np.array(meta), idx=idx, sims=sims)
      os.replace(tmp, path)
    except BaseException:
      if os.path.exists(tmp):
        os.remove(tmp)
      raise
  return idx, sims


@registry.register("lattice")
class LATTICE(Recommender):
  r"""LATTICE: LightGCN + a learned, per-epoch rebuilt item-item graph.

  With ``w = softmax(modal_weight)`` (learnable, init ``[0.5, 0.5]``) over the modalities
  present (image first):

  * learned graph: per modality ``S_m`` = top-``knn_k`` cosine similarities of the
    PROJECTED features ``z_m = Linear_m(x_m)`` (entries weighted by the similarity, self
    included), ``\tilde A = \mathrm{norm}(\sum_m w_m S_m)``, ``norm`` the row-sum
    ``D^{-1/2} A D^{-1/2}`` (:func:`sym_normalize`);
  * original graph: ``\sum_m w_m \mathrm{norm}(S^0_m)``, ``S^0_m`` the same kNN of the RAW
    features, built once (cached);
  * item graph ``G = (1 - \lambda) \tilde A + \lambda \sum_m w_m \mathrm{norm}(S^0_m)``
    (``lambda_coeff``); ``h = G^{n\_layers} e_{item}``;
  * ``cf_model='lightgcn'``: mean over layers ``0..n_ui_layers`` of ``[e_user; e_item]``
    propagated by ``D^{-1}(A + I)``; final user = that, final item = that + ``h / \|h\|``
    (``'mf'``: the raw ID tables instead of the LightGCN output);
  * loss = BPR + ``reg_weight`` * ``(\|u\|^2 + \|i^+\|^2 + \|i^-\|^2) / (2 B)`` on the
    FINAL embeddings, ``B`` the configured batch size (also for the padded last batch).

  When the graph is built, and with which gradient (as MMRec):

  * ``on_epoch`` makes ``G`` from the params at the start of the epoch (the reference's
    ``pre_epoch_processing`` + first batch). In the FIRST batch of the epoch the loss
    rebuilds ``G``'s values from the current params, so the gradient reaches the
    projections, the (trainable) raw feature tables and ``modal_weight`` through ``G``,
    as in the reference; every later batch uses ``G`` as a constant (``.detach()``).
    "First batch" is recognised without a step counter: it is the batch whose params
    still equal the ones ``G`` was built from (any optimizer step moves the ID tables).
  * ``after_epoch`` rebuilds ``G`` from the trained params, and evaluation
    (``embed(train=False)``) uses it: the reference's ``full_sort_predict`` rebuilds the
    graph too (``build_item_graph=True``). The next ``on_epoch`` sees the same params and
    reuses that graph instead of building it a second time; any stale graph (params
    changed since it was built) is rebuilt, by all three.

  Deviations from MMRec (none changes a value in normal data):

  * ``G`` is a sparse neighbour list (``<= 2 M knn_k`` entries per item) instead of a dense
    ``n_items^2`` matrix; the same matrix. The kNN runs on device in row blocks.
  * The graph params get gradient in the first batch only, as in the reference, but Adam
    keeps moving them with its momentum in later batches (zero gradient). This is what
    the reference's torch 1.11 does (``zero_grad`` keeps zero tensors); torch >= 2.0 would
    skip them (``set_to_none``).
  * An all-zero feature row has similarity 0 to everything (the reference: NaN); a row of
    ``G`` with a non-positive degree becomes zero (the reference: zero / NaN).
  * Top-k ties go to the lower item id (``torch.topk`` leaves the order unspecified).
  * ``modal_weight`` has one entry per present modality (with a single modality the
    reference's two-entry parameter is unused; softmax of one entry is 1).
  * ``cf_model='ngcf'`` is not implemented. The learning-rate decay (``[0.96, 50]``)
    belongs to the trainer.

  Args:
    dataset: supplies the sizes, train edges and the image / text features.
    embedding_size: ID embedding size.
    feat_embed_dim: projected feature size.
    knn_k: neighbours per item in every kNN graph.
    lambda_coeff: weight of the original (raw-feature) graph vs the learned one.
    n_layers: item-graph propagation layers.
    n_ui_layers: user-item propagation layers (the reference's ``len(weight_size)``).
    cf_model: ``'lightgcn'`` (MMRec's setting) or ``'mf'``; ``'ngcf'`` is not supported.
    reg_weight: weight of the squared-norm regulariser.
    freeze_features: keep the raw feature tables constant (the reference trains them:
      ``freeze=False``); saves the optimizer update of ``n_items x d_image`` params.
    propagation: :func:`jaxrec.graph.spmm` method for the user-item graph and for the
      constant item graph of the later batches.
    knn_block_size: rows per similarity block in the kNN (memory only).
  """

  required_modalities = ()

  def __init__(
      self,
      dataset: Dataset,
      *,
      rngs: nnx.Rngs,
      embedding_size: int = 64,
      feat_embed_dim: int = 64,
      knn_k: int = 10,
      lambda_coeff: float = 0.9,
      n_layers: int = 1,
      n_ui_layers: int = 2,
      cf_model: str = "lightgcn",
      reg_weight: float = 0.0,
      freeze_features: bool = False,
      propagation: str = "sparse",
      knn_block_size: int = 1024,
  ):
    self.n_users, self.n_items = dataset.n_users, dataset.n_items
    self.modalities = present_modalities(dataset, MODALITIES, "LATTICE")
    if cf_model not in CF_MODELS:
      raise ValueError(f"Unknown cf_model {cf_model!r}; valid: {', '.join(CF_MODELS)}.")
    if int(knn_k) != knn_k or not 1 <= knn_k <= self.n_items:
      raise ValueError(f"knn_k must be an int in [1, n_items={self.n_items}]: got {knn_k!r}.")
    self.knn_k, self.lambda_coeff = int(knn_k), float(lambda_coeff)
    self.n_layers, self.n_ui_layers = int(n_layers), int(n_ui_layers)
    self.cf_model, self.reg_weight = cf_model, float(reg_weight)
    self.freeze_features, self.propagation = bool(freeze_features), propagation
    self.knn_block_size = int(knn_block_size)
    self.user_embedding = nnx.Param(xavier_table(rngs.params(), self.n_users, embedding_size))
    self.item_id_embedding = nnx.Param(xavier_table(rngs.params(), self.n_items, embedding_size))
    self.features = nnx.Dict()
    self.projections = nnx.Dict()
    for m in self.modalities:
      table = jnp.asarray(dataset.features[m], jnp.float32)
      if not self.freeze_features:
        self.features[m] = nnx.Param(table)
      self.projections[m] = torch_linear(table.shape[1], feat_embed_dim, rngs=rngs)
    # One weight per present modality: with a single one softmax gives exactly 1 and the
    # reference's unused two-entry parameter gets no gradient either.
    self.modal_weight = nnx.Param(jnp.full((len(self.modalities),), 0.5, jnp.float32))

  # --- context -------------------------------------------------------------------------

  def build_context(self, dataset, *, cache_dir=None):
    users, items = dataset.train_edges[:, 0], dataset.train_edges[:, 1]
    orig_idx, orig_vals = [], []
    for m in self.modalities:
      feats = dataset.features[m]
      key = f"{dataset.name}-{m}-{features_fingerprint({m: feats})}"
      idx, sims = cached_knn(feats, self.knn_k, cache_dir, key, block_size=self.knn_block_size)
      idx = jnp.asarray(idx)
      orig_idx.append(idx)
      # Each modality's original graph is normalised on its own, before the mixing.
      orig_vals.append(sym_normalize(idx, jnp.asarray(sims)))
    context = {
        "adj": self_loop_row_normalized_adjacency(users, items, self.n_users, self.n_items),
        "orig_idx": jnp.stack(orig_idx),  # [M, I, k]
        "orig_vals": jnp.stack(orig_vals),  # [M, I, k]
    }
    if self.freeze_features:
      context["features"] = {m: jnp.asarray(dataset.features[m], jnp.float32)
                             for m in self.modalities}
    return context

  def _graph_inputs(self, context: Context) -> dict[str, object]:
    """The arrays the item graph depends on (params, or context when frozen)."""
    feats = context["features"] if self.freeze_features else {
        m: self.features[m][...] for m in self.modalities}
    return {
        "features": feats,
        "kernels": {m: self.projections[m].kernel[...] for m in self.modalities},
        "biases": {m: self.projections[m].bias[...] for m in self.modalities},
        "modal_weight": self.modal_weight[...],
    }

  def _projected(self, inputs: Mapping[str, object], modalities: tuple[str, ...] | None = None,
                 ids: jax.Array | None = None) -> list[jax.Array]:
    """``[n_items or len(ids), feat_embed_dim]`` per modality (``image_trs`` / ``text_trs``).

    ``modalities`` defaults to all present ones, ``ids`` (rows) to all items.
    """
    out = []
    for m in self.modalities if modalities is None else modalities:
      x = inputs["features"][m]
      x = x if ids is None else x[ids]
      out.append(jnp.matmul(x, inputs["kernels"][m], precision=_HIGHEST) + inputs["biases"][m])
    return out

  def learned_neighbours(self, inputs: Mapping[str, object]) -> jax.Array:
    """``[M, n_items, knn_k]`` kNN ids of the projected features (no gradient)."""
    return jnp.stack([knn_neighbours(z, self.knn_k, block_size=self.knn_block_size)[0]
                      for z in self._projected(inputs)])

  def item_graph(
      self, context: Context, inputs: Mapping[str, object], learned_idx: jax.Array
  ) -> tuple[jax.Array, jax.Array]:
    """LATTICE's ``item_adj`` as ``(idx, vals)``, each ``[n_items, 2 M knn_k]``.

    Differentiable w.r.t. ``inputs`` (the neighbour ids ``learned_idx`` are fixed).
    Columns ``[0, M k)`` are the learned graph, ``[M k, 2 M k)`` the original one.
    """
    weight = jax.nn.softmax(inputs["modal_weight"])
    sims = [gather_similarities(z, learned_idx[j]) for j, z in enumerate(self._projected(inputs))]
    l_idx = jnp.concatenate(list(learned_idx), 1)
    # Mixed first, normalised after: the degrees are those of the weighted sum.
    l_vals = sym_normalize(l_idx, jnp.concatenate([w * s for w, s in zip(weight, sims)], 1))
    o_idx = jnp.concatenate(list(context["orig_idx"]), 1)
    o_vals = jnp.concatenate([w * v for w, v in zip(weight, context["orig_vals"])], 1)
    idx = jnp.concatenate([l_idx, o_idx], 1)
    vals = jnp.concatenate([(1.0 - self.lambda_coeff) * l_vals, self.lambda_coeff * o_vals], 1)
    return idx, vals

  def _snapshot(self) -> dict[str, object]:
    """Copies of the params the graph products depend on (the fingerprint of a graph).

    Every param except the raw feature tables: those only change in the steps that change
    the projections too. Copies, not aliases: the trainer donates the params.
    """
    return {
        "user": jnp.copy(self.user_embedding[...]),
        "item": jnp.copy(self.item_id_embedding[...]),
        "kernels": {m: jnp.copy(self.projections[m].kernel[...]) for m in self.modalities},
        "biases": {m: jnp.copy(self.projections[m].bias[...]) for m in self.modalities},
        "modal_weight": jnp.copy(self.modal_weight[...]),
    }

  def graph_is_fresh(self, context: Context) -> jax.Array:
    """Scalar bool: the params still are those the context's graph was built from.

    In training this is True in the first batch of an epoch only: every optimizer step
    moves the ID tables (their BPR gradient is never all zero), so exact equality marks
    "no step yet".
    """
    now = jax.tree.leaves(self._snapshot())
    then = jax.tree.leaves(context["snapshot"])
    return jnp.all(jnp.stack([jnp.all(a == b) for a, b in zip(now, then)]))

  def _build_graph(self, context: Context) -> dict[str, object]:
    """The graph products of the current params (see :meth:`on_epoch`)."""
    inputs = self._graph_inputs(context)
    learned_idx = self.learned_neighbours(inputs)
    idx, vals = self.item_graph(context, inputs, learned_idx)
    vals = jax.lax.stop_gradient(vals)
    return {
        "learned_idx": learned_idx,
        "item_idx": idx,
        "item_vals": vals,
        # The same graph for the fast constant-matrix product of the later batches.
        "item_adj": neighbour_list_matrix(idx, vals),
        "snapshot": self._snapshot(),
    }

  def _with_graph(self, context: Context) -> Context:
    """``context`` with graph products of the current params, rebuilt only if stale."""
    if "item_adj" not in context:
      return {**context, **self._build_graph(context)}
    kept = {k: context[k] for k in _GRAPH_KEYS}
    # The trainer's after_epoch graph is the next on_epoch's (no step in between): reuse it.
    products = jax.lax.cond(self.graph_is_fresh(context), lambda: kept,
                            lambda: self._build_graph(context))
    return {**context, **products}

  def on_epoch(self, context, key, epoch):
    """The epoch's item graph from the current params (the reference's first batch)."""
    del key, epoch
    return self._with_graph(context)

  def after_epoch(self, context, key, epoch):
    """The evaluation graph from the trained params (the reference's full_sort_predict)."""
    del key, epoch
    return self._with_graph(context)

  # --- forward -------------------------------------------------------------------------

  def _constant_matmul(self, adj: SparseMatrix, x: jax.Array) -> jax.Array:
    """``G @ x`` for the ``[n, n + w]`` CSR graph of :func:`neighbour_list_matrix`."""
    pad = adj.shape[1] - adj.shape[0]
    return spmm(adj, jnp.pad(x, ((0, pad), (0, 0))), method=self.propagation)

  def _propagate_items(self, matmul, x: jax.Array) -> jax.Array:
    """``h = G^{n_layers} x`` for ``G`` given as ``matmul(y) = G @ y``."""
    for _ in range(self.n_layers):
      x = matmul(x)
    return x

  def _train_h(self, context: Context) -> tuple[jax.Array, jax.Array]:
    """``(h [n_items, d], fresh)`` over the epoch's graph, with gradient in its first batch."""
    if "item_adj" not in context:
      raise ValueError("LATTICE's training forward needs the context returned by on_epoch.")
    fresh = self.graph_is_fresh(context)
    idx, adj = context["item_idx"], context["item_adj"]

    def rebuilt(inputs, x):
      # The same params as on_epoch: the same ids and values, now a function of the params.
      vals = self.item_graph(context, inputs, context["learned_idx"])[1]
      return self._propagate_items(lambda y: neighbour_matmul(idx, vals, y), x)

    def detached(inputs, x):
      del inputs
      return self._propagate_items(lambda y: self._constant_matmul(adj, y), x)

    # cond, not where: the projection of the raw features (and its backward) only runs in
    # the one batch per epoch that needs it; the other batches use a (much faster) CSR
    # product with the graph as a constant.
    h = jax.lax.cond(fresh, rebuilt, detached, self._graph_inputs(context),
                     self.item_id_embedding[...])
    return h, fresh

  def _forward(self, context: Context, h: jax.Array,
               item_input: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Final embeddings; ``item_input`` replaces the ID table as the CF input (CCDRec)."""
    h = _normalize_rows(h, eps=1e-12)  # F.normalize(h, p=2, dim=1).
    item_input = self.item_id_embedding[...] if item_input is None else item_input
    if self.cf_model == "mf":
      return self.user_embedding[...], item_input + h
    ego = jnp.concatenate([self.user_embedding[...], item_input], 0)
    out = propagate_layers(context["adj"], ego, self.n_ui_layers,
                           method=self.propagation).mean(0)
    return out[: self.n_users], out[self.n_users :] + h

  def eval_item_graph(self, context: Context) -> jax.Array:
    """``h`` over the graph of the current params, as the reference's full_sort_predict."""
    adj = self._with_graph(context)["item_adj"]
    return self._propagate_items(lambda y: self._constant_matmul(adj, y),
                                 self.item_id_embedding[...])

  def embed(self, context, *, train):
    h = self._train_h(context)[0] if train else self.eval_item_graph(context)
    return self._forward(context, h)

  @staticmethod
  def norm_regularizer(u: jax.Array, p: jax.Array, n: jax.Array, mask: jax.Array) -> jax.Array:
    """``(|u|^2 + |p|^2 + |n|^2) / (2 B)`` over the unmasked rows of ``[B, d]`` arrays.

    Divided by the configured batch size (the padded length), as the reference does
    for its shorter last batch too.
    """
    m = mask[:, None]
    return 0.5 * sum(jnp.sum(jnp.where(m, e * e, 0.0)) for e in (u, p, n)) / u.shape[0]

  def loss(self, context, batch, key):
    del key
    h, fresh = self._train_h(context)
    users, items = self._forward(context, h)
    u, p, n = users[batch.users], items[batch.pos_items], items[batch.neg_items]
    bpr = losses.bpr_loss(jnp.sum(u * p, -1), jnp.sum(u * n, -1), where=batch.mask)
    reg = self.norm_regularizer(u, p, n, batch.mask)
    return bpr + self.reg_weight * reg, {"bpr": bpr, "reg": reg,
                                         "fresh_graph": fresh.astype(jnp.float32)}
