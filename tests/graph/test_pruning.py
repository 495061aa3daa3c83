import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.graph import (
    SPMM_METHODS,
    SparseMatrix,
    degree_edge_weights,
    keep_count,
    normalized_bipartite_adjacency,
    prune_edges,
    spmm,
)

FIELDS = ("rows", "cols", "values", "indptr", "perm_t", "perm_t_inv", "indptr_t")
N_USERS, N_ITEMS = 15, 12


def _graph(seed=0, n_edges=60):
  """Distinct (user, item) pairs with skewed popularity: hub and leaf nodes on both sides."""
  rng = np.random.default_rng(seed)
  p = np.outer(1.0 / np.arange(1, N_USERS + 1), 1.0 / np.arange(1, N_ITEMS + 1)).ravel()
  keys = rng.choice(N_USERS * N_ITEMS, n_edges, replace=False, p=p / p.sum())
  return keys // N_ITEMS, keys % N_ITEMS


_prune = functools.partial(prune_edges, n_users=N_USERS, n_items=N_ITEMS)


def _kept_edges(matrix, n_keep):
  """The kept (user, item) pairs, read from the user -> item half of the matrix."""
  rows, cols = np.asarray(matrix.rows), np.asarray(matrix.cols)
  assert np.all(rows[:n_keep] < N_USERS) and np.all(rows[n_keep:] >= N_USERS)
  return rows[:n_keep], cols[:n_keep] - N_USERS


def _dense_renormalised(users, items):
  """D^-1/2 A D^-1/2 of the given edges (degrees on them only), both directions."""
  n = N_USERS + N_ITEMS
  a = np.zeros((n, n))
  a[users, N_USERS + items] = 1.0
  a[N_USERS + items, users] = 1.0
  d = np.power(a.sum(1) + 1e-7, -0.5)
  return d[:, None] * a * d[None, :]


def test_keep_count_matches_reference_truncation():
  assert keep_count(118551, 0.8) == int(118551 * (1.0 - 0.8)) == 23710
  assert keep_count(10, 0.8) == 1  # 10 * 0.19999999999999996, truncated.
  assert keep_count(7, 0.0) == 7 and keep_count(7, 1.0) == 0
  with pytest.raises(ValueError, match="dropout"):
    keep_count(10, 1.5)


def test_degree_edge_weights():
  users, items = np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1])
  w = degree_edge_weights(users, items, 3, 2)
  # d_user = [2, 1, 1], d_item = [1, 3].
  np.testing.assert_allclose(w, 1 / np.sqrt([2 * 1, 2 * 3, 1 * 3, 1 * 3]), rtol=1e-6)
  assert w.dtype == np.float32
  with pytest.raises(ValueError, match="repeated"):
    degree_edge_weights(np.array([0, 0]), np.array([1, 1]), 3, 2)
  with pytest.raises(ValueError, match="out of range"):
    degree_edge_weights(np.array([3]), np.array([1]), 3, 2)


def test_prune_edges_keeps_distinct_real_edges_renormalised_symmetric():
  users, items = _graph()
  weights = degree_edge_weights(users, items, N_USERS, N_ITEMS)
  n_keep = keep_count(users.size, 0.8)
  matrix = _prune(jax.random.key(3), users, items, weights, n_keep)
  assert matrix.shape == (27, 27) and matrix.nnz == 2 * n_keep

  ku, ki = _kept_edges(matrix, n_keep)
  kept = set(zip(ku.tolist(), ki.tolist()))
  assert len(kept) == n_keep
  assert kept <= set(zip(users.tolist(), items.tolist()))

  dense = np.asarray(matrix.to_dense())
  np.testing.assert_allclose(dense, _dense_renormalised(ku, ki), rtol=1e-6)
  np.testing.assert_array_equal(dense, dense.T)
  # Every field, invariants included, equals the host-built matrix of the same entries.
  reference = SparseMatrix.from_coo(np.asarray(matrix.rows), np.asarray(matrix.cols),
                                    np.asarray(matrix.values), matrix.shape)
  for field in FIELDS:
    np.testing.assert_array_equal(np.asarray(getattr(matrix, field)),
                                  np.asarray(getattr(reference, field)), err_msg=field)


def test_prune_edges_keeping_all_edges_is_the_full_normalised_graph():
  users, items = _graph()
  weights = degree_edge_weights(users, items, N_USERS, N_ITEMS)
  matrix = _prune(jax.random.key(0), users, items, weights, users.size)
  full = normalized_bipartite_adjacency(users, items, N_USERS, N_ITEMS)
  for field in FIELDS[:2] + FIELDS[3:]:
    np.testing.assert_array_equal(np.asarray(getattr(matrix, field)),
                                  np.asarray(getattr(full, field)), err_msg=field)
  np.testing.assert_allclose(np.asarray(matrix.values), np.asarray(full.values), rtol=1e-6)


@pytest.mark.parametrize("method", SPMM_METHODS)
def test_spmm_on_pruned_matrix_matches_dense_under_jit(method):
  users, items = _graph()
  weights = jnp.asarray(degree_edge_weights(users, items, N_USERS, N_ITEMS))
  users, items = jnp.asarray(users, jnp.int32), jnp.asarray(items, jnp.int32)
  n_keep = keep_count(users.size, 0.7)
  x = jnp.asarray(np.random.default_rng(1).normal(size=(27, 3)), jnp.float32)

  def loss(x, key, dense=None):
    a = _prune(key, users, items, weights, n_keep)
    h = a.to_dense() @ x if dense else spmm(a, x, method=method)
    return 0.5 * jnp.sum(jnp.sin(h) ** 2), h

  key = jax.random.key(5)
  (value, h), grad = jax.jit(jax.value_and_grad(loss, has_aux=True))(x, key)
  (value_ref, h_ref), grad_ref = jax.value_and_grad(loss, has_aux=True)(x, key, True)
  np.testing.assert_allclose(h, h_ref, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(value, value_ref, rtol=1e-5)
  np.testing.assert_allclose(grad, grad_ref, rtol=1e-5, atol=1e-6)


def test_prune_edges_deterministic_per_key():
  users, items = _graph()
  weights = degree_edge_weights(users, items, N_USERS, N_ITEMS)
  a = _prune(jax.random.key(1), users, items, weights, 12)
  b = _prune(jax.random.key(1), users, items, weights, 12)
  c = _prune(jax.random.key(2), users, items, weights, 12)
  for field in FIELDS:
    np.testing.assert_array_equal(np.asarray(getattr(a, field)), np.asarray(getattr(b, field)))
  assert set(zip(*_kept_edges(a, 12))) != set(zip(*_kept_edges(c, 12)))


def test_prune_edges_rejects_bad_shapes():
  users, items = _graph()
  weights = degree_edge_weights(users, items, N_USERS, N_ITEMS)
  with pytest.raises(ValueError, match="n_keep"):
    _prune(jax.random.key(0), users, items, weights, users.size + 1)
  with pytest.raises(ValueError, match="equal length"):
    _prune(jax.random.key(0), users, items[:-1], weights, 3)


def test_sampling_frequencies_match_weighted_sampling_without_replacement():
  users, items = _graph()
  n_edges = users.size
  weights = degree_edge_weights(users, items, N_USERS, N_ITEMS)
  n_keep = keep_count(n_edges, 0.8)
  edge_id = np.full((N_USERS, N_ITEMS), -1)
  edge_id[users, items] = np.arange(n_edges)

  draws = 4000
  keys = jax.random.split(jax.random.key(0), draws)
  matrices = jax.jit(jax.vmap(lambda k: _prune(k, users, items, weights, n_keep)))(keys)
  rows = np.asarray(matrices.rows)[:, :n_keep]
  cols = np.asarray(matrices.cols)[:, :n_keep] - N_USERS
  kept = edge_id[rows, cols]
  assert np.all(kept >= 0)
  assert all(len(set(r)) == n_keep for r in kept.tolist())  # Never an edge twice.
  freq = np.bincount(kept.ravel(), minlength=n_edges) / draws

  rng = np.random.default_rng(0)
  p = weights / weights.sum()
  ref_draws = 20000
  ref = np.bincount(np.concatenate(
      [rng.choice(n_edges, n_keep, replace=False, p=p) for _ in range(ref_draws)]),
      minlength=n_edges) / ref_draws
  # Inclusion rates have standard errors <= 0.008 (4000 draws) and 0.004 (20000 draws).
  np.testing.assert_allclose(freq, ref, atol=0.04)

  order = np.argsort(weights)
  quarter = n_edges // 4
  low, high = freq[order[:quarter]].mean(), freq[order[-quarter:]].mean()
  # Low weight = high-degree endpoints: pruned more often.
  assert high > 2 * low and high - low > 0.1


def test_inclusion_probabilities_are_exact_sequential_sampling_on_a_tiny_graph():
  # Five disjoint edges with weights 1..16, keep 2: P(a then b) = p_a p_b / (1 - p_a).
  users = items = np.arange(5)
  weights = np.array([1.0, 2.0, 4.0, 8.0, 16.0], np.float32)
  p = weights / weights.sum()
  exact = np.array([
      sum(p[a] * p[b] / (1 - p[a]) + p[b] * p[a] / (1 - p[b]) for b in range(5) if b != a)
      for a in range(5)])
  draws = 10000
  keys = jax.random.split(jax.random.key(1), draws)
  matrices = jax.jit(jax.vmap(lambda k: _prune(k, users, items, weights, 2)))(keys)
  kept = np.asarray(matrices.rows)[:, :2]  # User id == edge id here.
  assert np.all(kept[:, 0] != kept[:, 1])
  freq = np.bincount(kept.ravel(), minlength=5) / draws
  # Standard errors <= 0.005; independent draws (2 * p, capped at 1) would miss by > 0.1.
  np.testing.assert_allclose(freq, exact, atol=0.02)
  assert np.abs(np.minimum(2 * p, 1) - exact).max() > 0.1
