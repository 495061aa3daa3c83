"""Negative samplers, on device and vectorised.

Membership tests ("is item j a training positive of user u?") use the train
CSR with a fixed-depth binary search per query: no dense users x items matrix.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


def _row_search(
    indptr: jax.Array, values: jax.Array, rows: jax.Array, x: jax.Array, *, right: bool,
    max_row_length: int | None = None,
) -> jax.Array:
  """Per-query ``searchsorted`` inside CSR row ``rows[b]``; returns global positions.

  ``values`` must be sorted within each row. ``right=False`` gives the first
  position with ``values >= x``, ``right=True`` the first with ``values > x``.
  ``max_row_length`` (static, an upper bound on every row's length) sets the
  search depth; by default it is bounded by ``nnz``.
  """
  lo, hi = indptr[rows], indptr[rows + 1]
  nnz = values.shape[0]
  if nnz == 0:
    return lo

  # The depth is static (from nnz, a shape), so this is a fixed number of
  # elementwise steps over the whole batch.
  def body(_, carry):
    lo, hi = carry
    active = lo < hi
    mid = (lo + hi) // 2
    v = values[jnp.clip(mid, 0, nnz - 1)]
    go_right = (v <= x) if right else (v < x)
    lo = jnp.where(active & go_right, mid + 1, lo)
    hi = jnp.where(active & ~go_right, mid, hi)
    return lo, hi

  longest = nnz if max_row_length is None else min(int(max_row_length), nnz)
  lo, _ = jax.lax.fori_loop(0, int(longest).bit_length() + 1, body, (lo, hi))
  return lo


def csr_contains(
    indptr: jax.Array, indices: jax.Array, rows: jax.Array, cols: jax.Array,
    *, max_row_length: int | None = None,
) -> jax.Array:
  """Whether each ``(rows[b], cols[b])`` is an entry of a CSR matrix.

  Args:
    indptr: ``[n_rows + 1]`` int32 row offsets.
    indices: ``[nnz]`` int32 column ids, sorted within each row.
    rows: ``[...]`` int row ids.
    cols: ``[...]`` int column ids, same shape as ``rows``.
    max_row_length: static upper bound on the rows' lengths (e.g. the largest
      user degree); the binary search then takes ``log2`` of it steps instead
      of ``log2(nnz)``. A smaller bound than the true one gives wrong answers.

  Returns:
    ``[...]`` bool.
  """
  nnz = indices.shape[0]
  if nnz == 0:
    return jnp.zeros(rows.shape, bool)
  pos = _row_search(indptr, indices, rows, cols, right=False, max_row_length=max_row_length)
  return (pos < indptr[rows + 1]) & (indices[jnp.clip(pos, 0, nnz - 1)] == cols)


class ExclusionIndex(NamedTuple):
  """Device arrays for drawing candidates outside each user's positives.

  Attributes:
    candidates: ``[n_candidates]`` int32 sorted item ids to draw from.
    indptr: ``[n_users + 1]`` int32 offsets (the train CSR's).
    shifted: ``[nnz]`` int32; for the k-th (0-based) excluded item of a user,
      its position in ``candidates`` minus k. Non-decreasing within a row.
    n_excluded: ``[n_users]`` int32 excluded candidates per user.
  """

  candidates: jax.Array
  indptr: jax.Array
  shifted: jax.Array
  n_excluded: jax.Array


def exclusion_index(
    indptr: np.ndarray, indices: np.ndarray, candidates: np.ndarray
) -> ExclusionIndex:
  """Builds an :class:`ExclusionIndex` on the host from a user -> items CSR.

  Args:
    indptr: ``[n_users + 1]`` CSR offsets.
    indices: ``[nnz]`` item ids, sorted within each row.
    candidates: ``[n_candidates]`` item ids to draw from (any order; deduplicated).
  """
  candidates = np.unique(np.asarray(candidates)).astype(np.int32)
  indptr = np.asarray(indptr, np.int64)
  indices = np.asarray(indices)
  pos = np.searchsorted(candidates, indices)
  inside = (pos < len(candidates)) & (candidates[np.minimum(pos, len(candidates) - 1)] == indices)
  rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
  # Keep only excluded items that are candidates; rows stay sorted.
  rows, pos = rows[inside], pos[inside]
  new_indptr = np.zeros(len(indptr), np.int64)
  np.cumsum(np.bincount(rows, minlength=len(indptr) - 1), out=new_indptr[1:])
  rank = np.arange(len(pos)) - new_indptr[rows]
  return ExclusionIndex(
      candidates=jnp.asarray(candidates),
      indptr=jnp.asarray(new_indptr.astype(np.int32)),
      shifted=jnp.asarray((pos - rank).astype(np.int32)),
      n_excluded=jnp.asarray(np.diff(new_indptr).astype(np.int32)),
  )


def uniform_negatives(key: jax.Array, users: jax.Array, index: ExclusionIndex) -> jax.Array:
  """One negative per row, uniform over the candidates the user has not interacted with.

  MMRec draws uniformly from the train items and redraws while the draw is a
  training positive of the user; the accepted draw is then uniform over the
  remaining items. This samples that distribution exactly, without rejection:
  draw ``r`` uniform in ``[0, n_free)`` and return the ``r``-th free candidate,
  which is candidate ``r + #{k : shifted_k <= r}`` (one binary search).

  Args:
    key: PRNG key.
    users: ``[...]`` int32 user ids.
    index: from :func:`exclusion_index`.

  Returns:
    ``[...]`` int32 item ids; never a positive of the row's user (a user with
    no free candidate gets the last candidate).
  """
  n_free = index.candidates.shape[0] - index.n_excluded[users]
  u = jax.random.uniform(key, users.shape)
  r = jnp.minimum((u * n_free).astype(jnp.int32), jnp.maximum(n_free - 1, 0))
  count = _row_search(index.indptr, index.shifted, users, r, right=True) - index.indptr[users]
  slot = jnp.minimum(r + count, index.candidates.shape[0] - 1)
  return index.candidates[slot]


def pool_hard_negatives(
    key: jax.Array,
    users: jax.Array,
    pos_items: jax.Array,
    pool: jax.Array,
    train_indptr: jax.Array,
    train_indices: jax.Array,
    *,
    n_candidates: int,
    top_k: int,
    max_row_length: int | None = None,
) -> jax.Array:
  """CCDRec's pool-based hard negatives (CNS, official code's ``sample_neg_items``).

  One candidate set of ``n_candidates`` items, drawn uniformly with replacement
  from all items, is shared by the batch; each row scores the candidates by the
  dot product of its POSITIVE item's pool vector with theirs, excludes the
  user's training items (CSR lookup, no dense users x items matrix), and picks
  one of the ``top_k`` most similar uniformly at random.

  Args:
    key: PRNG key.
    users: ``[batch]`` int32 user ids.
    pos_items: ``[batch]`` int32 positive items.
    pool: ``[n_items, d]`` item vectors the similarity is measured in.
    train_indptr, train_indices: the train CSR (user -> sorted items).
    n_candidates: static candidate-set size (official: int(0.1 * n_items)).
    top_k: static number of most similar candidates to pick from
      (official: int(sample_k * n_candidates)).
    max_row_length: static bound on the users' train degrees: a shorter
      exclusion search (see :func:`csr_contains`).

  Returns:
    ``[batch]`` int32 item ids. Excluded candidates score -inf, so they are
    picked only when fewer than ``top_k`` candidates are admissible.
  """
  if not 1 <= top_k <= n_candidates:
    raise ValueError(f"Need 1 <= top_k <= n_candidates; got {top_k}, {n_candidates}.")
  k_cand, k_pick = jax.random.split(key)
  cand = jax.random.randint(k_cand, (n_candidates,), 0, pool.shape[0], dtype=jnp.int32)
  sim = pool[pos_items] @ pool[cand].T  # [batch, n_candidates]
  seen = csr_contains(train_indptr, train_indices,
                      jnp.broadcast_to(users[:, None], sim.shape),
                      jnp.broadcast_to(cand[None, :], sim.shape),
                      max_row_length=max_row_length)
  sim = jnp.where(seen, -jnp.inf, sim)
  _, top = jax.lax.top_k(sim, top_k)  # [batch, top_k]
  pick = jax.random.randint(k_pick, users.shape, 0, top_k)
  return cand[jnp.take_along_axis(top, pick[:, None], axis=1)[:, 0]]


def curriculum_pool_index(epoch: jax.Array, start: int, step: int, end: int) -> jax.Array:
  """Which pool CCDRec's curriculum uses in ``epoch`` (0-based), official thresholds.

  Returns ``-1`` for epoch 0 (no pool yet: the uniform negative is reused), ``0..3``
  for the pools taken at decreasing noise (epochs 1..start, ..start+step,
  ..start+2*step, ..end), and ``4`` (the model's current item embeddings) after
  ``end``. Jittable (``epoch`` may be traced).
  """
  epoch = jnp.asarray(epoch)
  idx = jnp.where(epoch <= start, 0,
                  jnp.where(epoch <= start + step, 1,
                            jnp.where(epoch <= start + 2 * step, 2,
                                      jnp.where(epoch <= end, 3, 4))))
  return jnp.where(epoch <= 0, -1, idx).astype(jnp.int32)


def dns_negatives(
    key: jax.Array,
    users: jax.Array,
    user_emb: jax.Array,
    item_emb: jax.Array,
    index: ExclusionIndex,
    *,
    n_candidates: int,
) -> jax.Array:
  """DNS (Zhang et al., 2013): the highest-scoring of ``n_candidates`` uniform negatives.

  Args:
    key: PRNG key.
    users: ``[batch]`` int32 user ids.
    user_emb: ``[batch, d]`` the batch users' current embeddings.
    item_emb: ``[n_items, d]`` current item embeddings (used only to rank; wrap
      in ``stop_gradient`` if the choice should carry no gradient).
    index: train exclusion index; candidates are never training positives.
    n_candidates: static candidates per row.

  Returns:
    ``[batch]`` int32 item ids.
  """
  cand = uniform_negatives(
      key, jnp.broadcast_to(users[:, None], users.shape + (n_candidates,)), index)
  scores = jnp.einsum("bd,bmd->bm", user_emb, item_emb[cand])
  return jnp.take_along_axis(cand, jnp.argmax(scores, axis=1)[:, None], axis=1)[:, 0]


def mixgcf_negatives(
    key: jax.Array,
    user_emb: jax.Array,
    pos_layers: jax.Array,
    cand_layers: jax.Array,
    *,
    pool: str = "mean",
) -> jax.Array:
  """MixGCF (Huang et al., KDD 2021): a synthesised hard negative per row.

  Positive mixing: per candidate and layer, ``e'_l = a_l e^+_l + (1 - a_l) e^-_l``
  with ``a_l ~ U(0, 1)`` drawn per (row, layer) and shared by the candidates, as
  the official MixGCF code does. Hop mixing: per layer, the mixed candidate with
  the largest score ``<u, e'_l>``; the chosen layers are pooled (``'mean'``, as
  LightGCN pools layers, or ``'sum'``). ``u`` is one vector per row: with the
  pooled user embedding, ``<u, pool(e')>`` is the negative's final score, and
  the per-layer argmax maximises it over all layer combinations.

  Args:
    key: PRNG key.
    user_emb: ``[batch, d]`` final user embeddings.
    pos_layers: ``[batch, n_layers + 1, d]`` the positive's per-layer embeddings.
    cand_layers: ``[batch, n_candidates, n_layers + 1, d]`` candidates' per-layer
      embeddings (uniform negatives).
    pool: ``'mean'`` or ``'sum'`` over layers.

  Returns:
    ``[batch, d]`` synthesised negative embeddings.
  """
  if pool not in ("mean", "sum"):
    raise ValueError(f"Unknown pool {pool!r}; valid: mean, sum.")
  b, _, n_layers, _ = cand_layers.shape
  alpha = jax.random.uniform(key, (b, 1, n_layers, 1))
  mixed = alpha * pos_layers[:, None] + (1 - alpha) * cand_layers  # [B, M, L+1, d]
  scores = jnp.einsum("bd,bmld->bml", user_emb, mixed)
  best = jnp.argmax(scores, axis=1)  # [B, L+1]
  chosen = jnp.take_along_axis(mixed, best[:, None, :, None], axis=1)[:, 0]  # [B, L+1, d]
  return chosen.mean(1) if pool == "mean" else chosen.sum(1)
