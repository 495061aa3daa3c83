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
    indptr: jax.Array, values: jax.Array, rows: jax.Array, x: jax.Array, *, right: bool
) -> jax.Array:
  """Per-query ``searchsorted`` inside CSR row ``rows[b]``; returns global positions.

  ``values`` must be sorted within each row. ``right=False`` gives the first
  position with ``values >= x``, ``right=True`` the first with ``values > x``.
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

  lo, _ = jax.lax.fori_loop(0, int(nnz).bit_length() + 1, body, (lo, hi))
  return lo


def csr_contains(
    indptr: jax.Array, indices: jax.Array, rows: jax.Array, cols: jax.Array
) -> jax.Array:
  """Whether each ``(rows[b], cols[b])`` is an entry of a CSR matrix.

  Args:
    indptr: ``[n_rows + 1]`` int32 row offsets.
    indices: ``[nnz]`` int32 column ids, sorted within each row.
    rows: ``[...]`` int row ids.
    cols: ``[...]`` int column ids, same shape as ``rows``.

  Returns:
    ``[...]`` bool.
  """
  nnz = indices.shape[0]
  if nnz == 0:
    return jnp.zeros(rows.shape, bool)
  pos = _row_search(indptr, indices, rows, cols, right=False)
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
