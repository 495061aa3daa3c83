"""Full-ranking evaluation with MMRec's protocol, in fixed-shape jitted user blocks.

For every user with ground truth in the evaluated split: score all items, mask the
user's TRAINING items only (MMRec never masks validation items when testing, nor test
items when validating), take the top ``max(ks)`` with :func:`jax.lax.top_k`, and
average :func:`~jaxrec.eval.metrics.topk_metrics` over those users.

All per-block inputs are built once on the host and padded to common shapes, so one
compiled program serves every block of every call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data.dataset import CSR
from jaxrec.eval.metrics import DEFAULT_KS, metric_keys, topk_metrics

ScoreFn = Callable[[Any, Any], jax.Array]
# Signature: (user_rows [B, d] (or a pytree of [B, ...]), item_emb) -> scores [B, n_items].

# Masked (training) items get -inf rather than MMRec's -1e10: it ranks them below any
# finite score whatever its scale or dtype (-1e10 overflows to -inf in float16 and could
# tie with very negative scores). Whenever every score is > -1e10, as in practice, the
# ranking is identical to MMRec's.
MASK_VALUE = -jnp.inf


def dot_scores(user_rows: jax.Array, item_emb: jax.Array) -> jax.Array:
  """Default ``score_fn``: ``[B, d] @ [n_items, d]^T -> [B, n_items]``."""
  return user_rows @ item_emb.T


class _Block(NamedTuple):
  """Device inputs of one user block; every block of an evaluator has equal shapes.

  COO pairs are (row in block, item); padding pairs use row ``B`` (out of range) so a
  ``mode='drop'`` scatter ignores them.
  """

  users: jax.Array  # [B] int32 user ids; padding rows reuse a real id and are invalid.
  valid: jax.Array  # [B] bool
  n_gt: jax.Array  # [n_splits, B] int32 |GT_u| per split (0: not evaluated there)
  train_rows: jax.Array  # [max_train_nnz] int32
  train_cols: jax.Array  # [max_train_nnz] int32
  gt_rows: jax.Array  # [n_splits, max_gt_nnz] int32
  gt_cols: jax.Array  # [n_splits, max_gt_nnz] int32


def _rows_coo(csr: CSR, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """``(row_in_block, col)`` of the entries of ``csr`` rows ``users``, row-major."""
  starts = csr.indptr[users].astype(np.int64)
  lengths = (csr.indptr[users + 1] - csr.indptr[users]).astype(np.int64)
  rows = np.repeat(np.arange(users.shape[0], dtype=np.int32), lengths)
  # Position of each output entry in csr.indices: its row's start + rank within the row.
  out_starts = np.cumsum(lengths) - lengths
  pos = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(starts - out_starts, lengths)
  return rows, csr.indices[pos].astype(np.int32)


def _pad(a: np.ndarray, size: int, fill: int) -> np.ndarray:
  return np.concatenate([a, np.full(size - a.shape[0], fill, dtype=np.int32)])


def _masked_scores(score_fn: ScoreFn, user_emb: Any, item_emb: Any, block: _Block,
                   n_items: int) -> jax.Array:
  """``[B, n_items]`` scores with the block users' training items set to ``MASK_VALUE``."""
  rows = jax.tree.map(lambda x: x[block.users], user_emb)
  scores = score_fn(rows, item_emb)
  expected = (block.users.shape[0], n_items)
  if scores.shape != expected:
    raise ValueError(f"score_fn returned shape {scores.shape}; expected {expected} "
                     "([batch, n_items]).")
  return scores.at[block.train_rows, block.train_cols].set(MASK_VALUE, mode="drop")


class Evaluator:
  """Full-ranking top-K evaluator of one split, or of several sharing one ranking.

  Build once (host work: CSR -> padded per-block COO on device), then call with the
  current embeddings every evaluation. Given a mapping of splits (e.g. valid and
  test), every user is scored and ranked once and each split's metrics are computed
  from that ranking: both splits mask the same training items, so the rankings are
  the same as evaluating them one at a time.

  Attributes:
    ks: the cut-offs, e.g. ``(5, 10, 20, 50)``; the ranking keeps ``max(ks)`` items.
    users: ``[n_users_evaluated]`` int32 ids of the evaluated users, ascending.
    n_users_evaluated: users with at least one ground-truth item in the split (in any
      of the splits); users without any are skipped (neither scored nor counted).
    split_names: the mapping's keys, or ``None`` for a single split.
    batch_size: users per block, ``min(batch_size, n_users_evaluated)``.
    n_blocks: number of blocks per evaluation.

  Example::

    evaluator = Evaluator(dataset.test, dataset.train)
    results = evaluator(user_emb, item_emb)  # {'recall@20': 0.0712, ...}
  """

  def __init__(
      self,
      split: CSR | Mapping[str, CSR],
      train: CSR,
      *,
      ks: Sequence[int] = DEFAULT_KS,
      batch_size: int = 4096,
      score_fn: ScoreFn = dot_scores,
  ) -> None:
    """Precomputes the device-side blocks.

    Args:
      split: ``[n_users, n_items]`` ground truth of the evaluated split (valid or test),
        or a mapping name -> such CSR to evaluate several splits with one ranking.
      train: ``[n_users, n_items]`` training interactions; exactly these are masked.
      ks: cut-offs, each in ``[1, n_items]``.
      batch_size: users per block; bounds the ``[batch_size, n_items]`` score matrix.
      score_fn: ``(user_rows [B, d], item_emb) -> [B, n_items]`` scores; the default is
        the dot product. Called at trace time only, and must be jittable.
    """
    self.split_names = tuple(split) if isinstance(split, Mapping) else None
    splits = tuple(split.values()) if isinstance(split, Mapping) else (split,)
    if not splits:
      raise ValueError("Expected at least one split.")
    for sp in splits:
      if sp.n_rows != train.n_rows or sp.n_cols != train.n_cols:
        raise ValueError(f"Shape mismatch: split is {sp.n_rows}x{sp.n_cols}, "
                         f"train is {train.n_rows}x{train.n_cols}.")
    split = splits[0]
    self.ks = tuple(int(k) for k in ks)
    if not self.ks or min(self.ks) < 1 or max(self.ks) > split.n_cols:
      raise ValueError(f"Every k must be in [1, n_items={split.n_cols}]; got {self.ks}.")
    if batch_size < 1:
      raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
    self.n_users = split.n_rows
    self.n_items = split.n_cols
    self.max_k = max(self.ks)
    self.keys = metric_keys(self.ks)
    self.users = np.unique(np.concatenate([sp.nonempty_rows() for sp in splits]))
    self.users = self.users.astype(np.int32)
    self.n_users_evaluated = int(self.users.shape[0])
    self._split_users = [int(sp.nonempty_rows().shape[0]) for sp in splits]
    self.batch_size = max(1, min(int(batch_size), self.n_users_evaluated))
    self._score_fn = score_fn
    self._blocks = self._build_blocks(splits, train)
    self.n_blocks = len(self._blocks)
    # One jit per evaluator: score_fn and ks are fixed here, shapes are equal across
    # blocks, so each compiles once (per embedding shape/dtype).
    self._block_sums = jax.jit(self._block_sums_impl)
    self._block_topk = jax.jit(self._block_topk_impl, static_argnums=3)

  def _build_blocks(self, splits: Sequence[CSR], train: CSR) -> list[_Block]:
    b = self.batch_size
    host = []
    for start in range(0, self.n_users_evaluated, b):
      users = self.users[start:start + b]
      host.append((users, _rows_coo(train, users), [_rows_coo(sp, users) for sp in splits]))
    # Pad every block's COO to the largest block's nnz (>= 1 to avoid empty arrays).
    max_train = max([1] + [t[0].shape[0] for _, t, _ in host])
    max_gt = max([1] + [g[0].shape[0] for _, _, gs in host for g in gs])
    n_gt_all = [sp.row_lengths() for sp in splits]
    blocks = []
    for users, (t_rows, t_cols), gts in host:
      n = users.shape[0]
      padded_users = _pad(users, b, int(users[0]))
      valid = np.arange(b) < n
      blocks.append(_Block(
          users=jnp.asarray(padded_users),
          valid=jnp.asarray(valid),
          n_gt=jnp.asarray(np.stack([np.where(valid, g[padded_users], 0).astype(np.int32)
                                     for g in n_gt_all])),
          train_rows=jnp.asarray(_pad(t_rows, max_train, b)),
          train_cols=jnp.asarray(_pad(t_cols, max_train, 0)),
          gt_rows=jnp.asarray(np.stack([_pad(r, max_gt, b) for r, _ in gts])),
          gt_cols=jnp.asarray(np.stack([_pad(c, max_gt, 0) for _, c in gts])),
      ))
    return blocks

  def _block_sums_impl(self, user_emb: Any, item_emb: Any,
                       block: _Block) -> list[dict[str, jax.Array]]:
    scores = _masked_scores(self._score_fn, user_emb, item_emb, block, self.n_items)
    _, top = jax.lax.top_k(scores, self.max_k)  # [B, max_k]; ties -> lower item id first.
    out = []
    for s in range(block.n_gt.shape[0]):  # A handful of splits, static.
      gt = jnp.zeros(scores.shape, dtype=bool)
      gt = gt.at[block.gt_rows[s], block.gt_cols[s]].set(True, mode="drop")
      hits = jnp.take_along_axis(gt, top, axis=1)
      n_gt = block.n_gt[s]
      per_user = topk_metrics(hits, n_gt, ks=self.ks, where=block.valid & (n_gt > 0))
      out.append({key: jnp.sum(v) for key, v in per_user.items()})
    return out

  def _block_topk_impl(self, user_emb: Any, item_emb: Any, block: _Block, k: int) -> jax.Array:
    scores = _masked_scores(self._score_fn, user_emb, item_emb, block, self.n_items)
    return jax.lax.top_k(scores, k)[1]

  def _check_users(self, user_emb: Any) -> None:
    # x[users] clamps out-of-range ids under jit; fail loudly instead.
    for leaf in jax.tree.leaves(user_emb):
      if leaf.shape[0] < self.n_users:
        raise ValueError(f"user_emb has {leaf.shape[0]} rows; the split has "
                         f"{self.n_users} users.")

  def __call__(self, user_emb: jax.Array, item_emb: jax.Array) -> dict[str, Any]:
    """Evaluates all blocks and averages each metric over the evaluated users.

    Args:
      user_emb: ``[n_users, d]`` user representations (or a pytree of ``[n_users, ...]``
        arrays, as ``score_fn`` expects).
      item_emb: ``[n_items, d]`` item representations (anything ``score_fn`` takes).

    Returns:
      ``{'recall@5': ..., ..., 'map@50': ...}`` Python floats, keys ordered metric-major
      as in MMRec; all 0.0 if the split has no ground truth. With a mapping of splits,
      ``{name: {...}}`` for each split.
    """
    self._check_users(user_emb)
    sums = [self._block_sums(user_emb, item_emb, block) for block in self._blocks]
    # Fetch all per-block float32 sums at once; the cross-block sum is done in float64.
    sums = jax.device_get(sums)
    results = []
    for s, n_users in enumerate(self._split_users):
      denom = max(n_users, 1)
      results.append({key: float(np.sum([b[s][key] for b in sums], dtype=np.float64)) / denom
                      for key in self.keys})
    if self.split_names is None:
      return results[0]
    return dict(zip(self.split_names, results))

  def topk(self, user_emb: jax.Array, item_emb: jax.Array,
           k: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` recommended items of every evaluated user (training items excluded).

    Args:
      user_emb: ``[n_users, d]`` as for ``__call__``.
      item_emb: ``[n_items, d]`` as for ``__call__``.
      k: list length, in ``[1, n_items]``.

    Returns:
      ``(users, items)``: ``[n_users_evaluated]`` int32 user ids (ascending) and
      ``[n_users_evaluated, k]`` int32 item ids, best first (ties: lower id first).
    """
    if not 1 <= k <= self.n_items:
      raise ValueError(f"k must be in [1, n_items={self.n_items}]; got {k}.")
    self._check_users(user_emb)
    tops = [self._block_topk(user_emb, item_emb, block, int(k)) for block in self._blocks]
    items = np.concatenate(jax.device_get(tops)) if tops else np.zeros((0, k), np.int32)
    return self.users.copy(), items[:self.n_users_evaluated].astype(np.int32)
