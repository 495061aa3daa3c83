import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.graph import SPMM_METHODS, normalized_bipartite_adjacency, propagate_layers

N_USERS, N_ITEMS = 3, 4
# Item 3 has no interaction; (0, 1) is given twice and must count once.
USERS = np.array([0, 0, 1, 2, 2, 0])
ITEMS = np.array([0, 1, 1, 2, 0, 1])


def _dense_reference():
  """D^-1/2 A D^-1/2 written out densely, as MMRec/FREEDOM build it."""
  r = np.zeros((N_USERS, N_ITEMS))
  r[USERS, ITEMS] = 1.0
  n = N_USERS + N_ITEMS
  a = np.zeros((n, n))
  a[:N_USERS, N_USERS:] = r
  a[N_USERS:, :N_USERS] = r.T
  d = np.power(a.sum(1) + 1e-7, -0.5)
  return d[:, None] * a * d[None, :]


def test_matches_dense_reference_symmetric_no_self_loops_isolated_zero():
  adj = normalized_bipartite_adjacency(USERS, ITEMS, N_USERS, N_ITEMS)
  dense = np.asarray(adj.to_dense())
  expected = _dense_reference()
  assert adj.shape == (7, 7) and adj.nnz == 2 * 5
  np.testing.assert_allclose(dense, expected, rtol=1e-6)
  np.testing.assert_array_equal(dense, dense.T)
  assert np.all(np.diag(dense) == 0) and not np.any(np.asarray(adj.rows) == np.asarray(adj.cols))
  assert np.all(np.isfinite(dense))
  isolated = N_USERS + 3
  assert not dense[isolated].any() and not dense[:, isolated].any()
  # Spot check one entry by hand: d_user0 = 2, d_item1 = 2.
  np.testing.assert_allclose(dense[0, N_USERS + 1], 1 / np.sqrt(2 * 2), rtol=1e-6)


def test_rejects_out_of_range_ids():
  with pytest.raises(ValueError, match="Item id out of range"):
    normalized_bipartite_adjacency(np.array([0]), np.array([N_ITEMS]), N_USERS, N_ITEMS)
  with pytest.raises(ValueError, match="Shape mismatch"):
    normalized_bipartite_adjacency(np.array([0, 1]), np.array([0]), N_USERS, N_ITEMS)


@pytest.mark.parametrize("method", SPMM_METHODS)
def test_propagate_layers_matches_dense_powers_value_and_grad(method):
  adj = normalized_bipartite_adjacency(USERS, ITEMS, N_USERS, N_ITEMS)
  a = jnp.asarray(_dense_reference(), jnp.float32)
  x0 = jnp.asarray(np.random.default_rng(0).normal(size=(7, 3)), jnp.float32)

  out = jax.jit(propagate_layers, static_argnums=2, static_argnames="method")(
      adj, x0, 3, method=method)
  assert out.shape == (4, 7, 3)
  expected = np.stack([np.linalg.matrix_power(np.asarray(a), k) @ x0 for k in range(4)])
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)

  def loss(x):
    return jnp.sum(jnp.cos(propagate_layers(adj, x, 2, method=method).mean(0)))

  def dense_loss(x):
    return jnp.sum(jnp.cos((x + a @ x + a @ (a @ x)) / 3))

  np.testing.assert_allclose(jax.grad(loss)(x0), jax.grad(dense_loss)(x0), rtol=1e-5, atol=1e-6)


def test_propagate_layers_zero_layers_and_errors():
  adj = normalized_bipartite_adjacency(USERS, ITEMS, N_USERS, N_ITEMS)
  x0 = jnp.ones((7, 2))
  np.testing.assert_array_equal(propagate_layers(adj, x0, 0), x0[None])
  with pytest.raises(ValueError, match="non-negative"):
    propagate_layers(adj, x0, -1)
  with pytest.raises(ValueError, match="valid methods"):
    propagate_layers(adj, x0, 1, method="csr")
