import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxrec.graph import SPMM_METHODS, SparseMatrix, as_graphs_tuple, spmm


def _random_matrix(n_rows, n_cols, nnz, *, symmetric=False, seed=0):
  """Returns (SparseMatrix, dense float32 NumPy) with duplicates in the COO input."""
  rng = np.random.default_rng(seed)
  rows = rng.integers(0, n_rows, nnz)
  cols = rng.integers(0, n_cols, nnz)
  values = rng.normal(size=nnz)
  if symmetric:
    rows, cols, values = np.r_[rows, cols], np.r_[cols, rows], np.r_[values, values]
  dense = np.zeros((n_rows, n_cols))
  np.add.at(dense, (rows, cols), values)
  return SparseMatrix.from_coo(rows, cols, values, (n_rows, n_cols)), dense.astype(np.float32)


MATRICES = {
    "symmetric": dict(n_rows=9, n_cols=9, nnz=25, symmetric=True),
    "asymmetric_rectangular": dict(n_rows=6, n_cols=11, nnz=30),
}


@pytest.fixture(params=list(MATRICES), ids=list(MATRICES))
def matrix_and_dense(request):
  spec = MATRICES[request.param]
  return _random_matrix(spec["n_rows"], spec["n_cols"], spec["nnz"],
                        symmetric=spec.get("symmetric", False))


def test_from_coo_sorts_sums_duplicates_and_builds_csr():
  a = SparseMatrix.from_coo([2, 0, 2, 0], [1, 3, 1, 0], [1.0, 2.0, 3.0, 4.0], (3, 4))
  assert a.shape == (3, 4) and a.nnz == 3
  np.testing.assert_array_equal(a.rows, [0, 0, 2])
  np.testing.assert_array_equal(a.cols, [0, 3, 1])
  np.testing.assert_array_equal(a.values, [4.0, 2.0, 4.0])  # (2, 1) appears twice: summed.
  np.testing.assert_array_equal(a.indptr, [0, 2, 2, 3])
  assert a.rows.dtype == jnp.int32 and a.cols.dtype == jnp.int32
  assert a.values.dtype == jnp.float32
  ones = SparseMatrix.from_coo([1], [2], None, (3, 4))
  np.testing.assert_array_equal(ones.values, [1.0])


def test_from_coo_rejects_bad_input():
  with pytest.raises(ValueError, match="out of range"):
    SparseMatrix.from_coo([0, 3], [0, 0], [1.0, 1.0], (3, 3))
  with pytest.raises(ValueError, match="out of range"):
    SparseMatrix.from_coo([0], [-1], [1.0], (3, 3))
  with pytest.raises(ValueError, match="equal length"):
    SparseMatrix.from_coo([0, 1], [0], [1.0, 1.0], (3, 3))


def test_dense_and_transpose(matrix_and_dense):
  a, dense = matrix_and_dense
  np.testing.assert_allclose(a.to_dense(), dense, rtol=1e-6, atol=1e-6)
  t = a.transpose()
  assert t.shape == dense.T.shape and t.nnz == a.nnz
  np.testing.assert_allclose(t.to_dense(), dense.T, rtol=1e-6, atol=1e-6)
  # The transpose is itself a valid row-sorted matrix with a consistent CSR.
  keys = np.asarray(t.rows).astype(np.int64) * t.shape[1] + np.asarray(t.cols)
  assert np.all(np.diff(keys) > 0)
  np.testing.assert_array_equal(
      np.diff(t.indptr), np.bincount(np.asarray(t.rows), minlength=t.shape[0]))
  tt = jax.jit(lambda m: m.transpose().transpose())(a)
  for name in ("rows", "cols", "values", "indptr", "perm_t", "perm_t_inv", "indptr_t"):
    np.testing.assert_array_equal(getattr(tt, name), getattr(a, name), err_msg=name)


def test_is_a_pytree_with_static_shape():
  a, _ = _random_matrix(4, 5, 6)
  leaves, treedef = jax.tree_util.tree_flatten(a)
  assert len(leaves) == 7 and all(isinstance(x, jax.Array) for x in leaves)
  assert jax.tree_util.tree_unflatten(treedef, leaves).shape == (4, 5)
  doubled = jax.tree_util.tree_map(lambda x: x, a).replace(values=2 * a.values)
  np.testing.assert_allclose(doubled.to_dense(), 2 * a.to_dense())


@pytest.mark.parametrize("method", SPMM_METHODS)
def test_spmm_value_and_grad_match_dense_under_jit(matrix_and_dense, method):
  a, dense = matrix_and_dense
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(a.shape[1], 3)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(a.shape[0], 3)), jnp.float32)

  def loss(m, x):
    return jnp.sum(jnp.sin(spmm(m, x, method=method)) * w)

  def dense_loss(x):
    return jnp.sum(jnp.sin(jnp.asarray(dense) @ x) * w)

  # The matrix is an argument of the jitted function, never a closed-over constant.
  value, grad = jax.jit(jax.value_and_grad(loss, argnums=1))(a, x)
  np.testing.assert_allclose(jax.jit(lambda m, x: spmm(m, x, method=method))(a, x),
                             dense @ np.asarray(x), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(value, dense_loss(x), rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(grad, jax.grad(dense_loss)(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", SPMM_METHODS)
def test_spmm_keeps_trailing_dims(method):
  a, dense = _random_matrix(5, 4, 8)
  x = jnp.arange(4 * 2 * 3, dtype=jnp.float32).reshape(4, 2, 3)
  got = spmm(a, x, method=method)
  assert got.shape == (5, 2, 3)
  np.testing.assert_allclose(got, np.einsum("ij,jkl->ikl", dense, x), rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(spmm(a, x[:, 0, 0], method=method), dense @ x[:, 0, 0],
                             rtol=1e-5, atol=1e-4)


def test_sparse_path_check_grads():
  a, _ = _random_matrix(6, 7, 15, seed=3)
  x = jnp.asarray(np.random.default_rng(4).normal(size=(7, 2)), jnp.float32)
  check_grads(lambda x: jnp.tanh(spmm(a, x, method="sparse")), (x,), order=1, modes=["rev"],
              atol=1e-2, rtol=1e-2)


def test_matrix_gradients_segment_exact_sparse_frozen():
  a, _ = _random_matrix(4, 5, 9, seed=5)
  x = jnp.asarray(np.random.default_rng(6).normal(size=(5, 2)), jnp.float32)

  def loss(values, method):
    return jnp.sum(spmm(a.replace(values=values), x, method=method) ** 2)

  def dense_loss(values):
    return jnp.sum((a.replace(values=values).to_dense() @ x) ** 2)

  np.testing.assert_allclose(jax.grad(loss)(a.values, "segment"), jax.grad(dense_loss)(a.values),
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(jax.grad(loss)(a.values, "sparse"), np.zeros(a.nnz))


def test_empty_rows_and_empty_matrix():
  a = SparseMatrix.from_coo([2], [0], [3.0], (4, 2))
  empty = SparseMatrix.from_coo(np.zeros(0, int), np.zeros(0, int), np.zeros(0), (3, 2))
  x = jnp.ones((2, 2))
  for method in SPMM_METHODS:
    np.testing.assert_array_equal(spmm(a, x, method=method), [[0, 0], [0, 0], [3, 3], [0, 0]])
    np.testing.assert_array_equal(spmm(empty, x, method=method), np.zeros((3, 2)))


def test_errors():
  a, _ = _random_matrix(3, 4, 5)
  with pytest.raises(ValueError, match=r"valid methods: \['segment', 'sparse'\]"):
    spmm(a, jnp.ones((4, 2)), method="dense")
  with pytest.raises(ValueError, match="Shape mismatch"):
    spmm(a, jnp.ones((3, 2)))
  with pytest.raises(ValueError, match="square"):
    as_graphs_tuple(a)


def test_as_graphs_tuple():
  a, _ = _random_matrix(5, 5, 7)
  g = as_graphs_tuple(a)
  np.testing.assert_array_equal(g.senders, a.cols)
  np.testing.assert_array_equal(g.receivers, a.rows)
  np.testing.assert_array_equal(g.edges, a.values)
  np.testing.assert_array_equal(g.n_node, [5])
  np.testing.assert_array_equal(g.n_edge, [a.nnz])
