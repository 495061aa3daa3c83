"""FREEDOM's degree-sensitive edge pruning, resampled on device at the start of every epoch.

Each training edge ``(u, i)`` gets the weight ``1 / sqrt(d_u d_i)`` (degrees in the full train
graph, :func:`degree_edge_weights`, host, once). Every epoch, :func:`prune_edges` keeps
``keep_count(E, dropout)`` edges sampled WITHOUT replacement with probability proportional to
that weight (``torch.multinomial``), so edges between low-degree nodes survive more often,
and renormalises the kept subgraph into the symmetric ``[(U+I), (U+I)]`` propagation matrix
(REFERENCE.md §C). :func:`prune_edges` is jittable with static shapes.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.graph.adjacency import DEGREE_EPS
from jaxrec.graph.sparse import SparseMatrix


def keep_count(n_edges: int, dropout: float) -> int:
  """Number of edges kept by pruning: ``int(n_edges * (1 - dropout))``, as the reference.

  The float product is truncated exactly like FREEDOM's, so e.g. ``keep_count(10, 0.8)`` is
  1, not 2 (``1 - 0.8 == 0.19999999999999996``).

  Args:
    n_edges: number of training edges ``E``.
    dropout: fraction of edges to drop, in ``[0, 1]`` (FREEDOM grid: 0.8, 0.9).

  Returns:
    ``n_keep``, a Python int in ``[0, n_edges]``.

  Raises:
    ValueError: on a negative ``n_edges`` or ``dropout`` outside ``[0, 1]``.
  """
  if int(n_edges) != n_edges or n_edges < 0:
    raise ValueError(f"n_edges must be a non-negative int: got {n_edges!r}.")
  if not 0.0 <= dropout <= 1.0:
    raise ValueError(f"dropout must be in [0, 1]: got {dropout!r}.")
  return int(int(n_edges) * (1.0 - float(dropout)))


def degree_edge_weights(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
) -> np.ndarray:
  r"""Sampling weight of every training edge, ``1 / sqrt(d_u d_i)``.

  .. math::
    w_{ui} = (d_u + 10^{-7})^{-1/2} (d_i + 10^{-7})^{-1/2}

  with ``d_u``, ``d_i`` the user and item degrees in the given (full train) graph, as
  FREEDOM's ``_normalize_adj_m``. Runs on the host, once.

  Args:
    users: ``[n_edges]`` integer user ids in ``[0, n_users)``.
    items: ``[n_edges]`` integer item ids in ``[0, n_items)``, paired with ``users``.
    n_users: number of users ``U``.
    n_items: number of items ``I``.

  Returns:
    ``[n_edges]`` float32 weights, aligned with the input edges.

  Raises:
    ValueError: on mismatched lengths, out-of-range ids or a repeated ``(user, item)`` pair
      (:func:`prune_edges` needs distinct edges: a pair kept twice would be a duplicate entry).
  """
  users = np.asarray(users).reshape(-1).astype(np.int64)
  items = np.asarray(items).reshape(-1).astype(np.int64)
  if users.shape != items.shape:
    raise ValueError(f"Shape mismatch: got {users.shape} users and {items.shape} items.")
  n_users, n_items = int(n_users), int(n_items)
  if users.size and (users.min() < 0 or users.max() >= n_users):
    raise ValueError(f"User id out of range [0, {n_users}).")
  if items.size and (items.min() < 0 or items.max() >= n_items):
    raise ValueError(f"Item id out of range [0, {n_items}).")
  n_unique = np.unique(users * n_items + items).size
  if n_unique != users.size:
    raise ValueError(
        f"{users.size - n_unique} repeated (user, item) pairs: deduplicate the edges first.")
  d_user = np.bincount(users, minlength=n_users) + DEGREE_EPS
  d_item = np.bincount(items, minlength=n_items) + DEGREE_EPS
  return (np.power(d_user[users], -0.5) * np.power(d_item[items], -0.5)).astype(np.float32)


def _inverse_permutation(perm: jax.Array) -> jax.Array:
  """``inv`` with ``inv[perm[k]] = k`` (one scatter, no sort)."""
  return jnp.zeros_like(perm).at[perm].set(jnp.arange(perm.shape[0], dtype=perm.dtype))


@functools.partial(jax.jit, static_argnames=("n_keep", "n_users", "n_items"))
def prune_edges(
    key: jax.Array,
    users: jax.Array,
    items: jax.Array,
    weights: jax.Array,
    n_keep: int,
    n_users: int,
    n_items: int,
) -> SparseMatrix:
  r"""Samples ``n_keep`` edges by weight and returns their renormalised symmetric adjacency.

  Sampling: ``n_keep`` distinct edges WITHOUT replacement, edge ``e`` drawn with probability
  proportional to ``weights[e]`` among the edges not yet drawn (``torch.multinomial``
  semantics), by the Gumbel-top-k trick: the ``n_keep`` largest ``log(w_e) + G_e``, with
  ``G_e`` i.i.d. standard Gumbel, are distributed exactly as that sequential draw
  (Vieira, 2014; Kool et al., 2019). A zero weight is never drawn while positive ones remain.

  Renormalisation, on the kept subgraph only (degrees ``d'``), both directions:

  .. math::
    \hat A_{u, U+i} = \hat A_{U+i, u} = (d'_u + 10^{-7})^{-1/2} (d'_i + 10^{-7})^{-1/2}

  Every :class:`SparseMatrix` field is built here with sorts, cumsums and scatters, so the
  result works with both :func:`jaxrec.graph.spmm` methods. ``n_keep = E`` gives exactly
  :func:`jaxrec.graph.normalized_bipartite_adjacency` of all edges.

  Args:
    key: PRNG key; the same key gives the same graph.
    users: ``[E]`` int user ids in ``[0, n_users)``.
    items: ``[E]`` int item ids in ``[0, n_items)``. The ``(user, item)`` pairs must be
      distinct (checked by :func:`degree_edge_weights`, not here).
    weights: ``[E]`` non-negative sampling weights, e.g. :func:`degree_edge_weights`.
    n_keep: static number of edges kept, ``1 <= n_keep <= E`` (see :func:`keep_count`).
    n_users: static ``U``.
    n_items: static ``I``.

  Returns:
    ``[U+I, U+I]`` symmetric :class:`SparseMatrix` with ``2 * n_keep`` entries; user ``u`` is
    node ``u``, item ``i`` is node ``U + i``.

  Raises:
    ValueError: (at trace time) on non-1-D or mismatched inputs or ``n_keep`` out of range.
  """
  users, items, weights = jnp.asarray(users), jnp.asarray(items), jnp.asarray(weights)
  if users.ndim != 1 or users.shape != items.shape or users.shape != weights.shape:
    raise ValueError(
        "users, items and weights must be 1-D of equal length: got "
        f"{users.shape}, {items.shape} and {weights.shape}.")
  n_edges = users.shape[0]
  if not 1 <= n_keep <= n_edges:
    raise ValueError(f"n_keep must be in [1, n_edges={n_edges}]: got {n_keep}.")
  n_nodes = n_users + n_items

  # Gumbel-top-k: one top_k replaces n_keep sequential categorical draws.
  gumbel = jax.random.gumbel(key, (n_edges,), jnp.float32)
  scores = jnp.log(weights.astype(jnp.float32)) + gumbel
  kept = jax.lax.top_k(scores, n_keep)[1]
  u = users[kept].astype(jnp.int32)
  i = items[kept].astype(jnp.int32)

  ones = jnp.ones((n_keep,), jnp.int32)
  d_user = jax.ops.segment_sum(ones, u, num_segments=n_users)
  d_item = jax.ops.segment_sum(ones, i, num_segments=n_items)
  values = (jax.lax.rsqrt(d_user[u].astype(jnp.float32) + DEGREE_EPS)
            * jax.lax.rsqrt(d_item[i].astype(jnp.float32) + DEGREE_EPS))

  # Every user node precedes every item node, so the row-sorted entries are: the user -> item
  # entries sorted by (u, i), then the item -> user entries sorted by (i, u). Two-key sorts
  # rather than one u * I + i key, which could overflow int32.
  edge_ids = jnp.arange(n_keep, dtype=jnp.int32)
  by_user = jax.lax.sort((u, i, edge_ids), num_keys=2)[2]
  by_item = jax.lax.sort((i, u, edge_ids), num_keys=2)[2]
  rows = jnp.concatenate([u[by_user], n_users + i[by_item]])
  cols = jnp.concatenate([n_users + i[by_user], u[by_item]])
  all_values = jnp.concatenate([values[by_user], values[by_item]])
  indptr = jnp.concatenate([
      jnp.zeros((1,), jnp.int32), jnp.cumsum(jnp.concatenate([d_user, d_item]))]).astype(
          jnp.int32)

  # The matrix is symmetric, so A^T has A's rows in A's order, and its k-th entry is the
  # mirror (c, r) of A's k-th entry (r, c): the other direction of the same edge. Mirroring
  # is an involution, so perm_t is its own inverse.
  position_by_user = _inverse_permutation(by_user)
  position_by_item = _inverse_permutation(by_item)
  perm_t = jnp.concatenate([n_keep + position_by_item[by_user], position_by_user[by_item]])
  return SparseMatrix(
      rows=rows,
      cols=cols,
      values=all_values,
      indptr=indptr,
      perm_t=perm_t,
      perm_t_inv=perm_t,
      indptr_t=indptr,
      shape=(n_nodes, n_nodes),
  )
