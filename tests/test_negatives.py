import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data import CSR
from jaxrec.negatives import csr_contains, exclusion_index, uniform_negatives


def _random_csr(rng, n_rows, n_cols, density):
  dense = rng.random((n_rows, n_cols)) < density
  return CSR.from_coo(*np.nonzero(dense), n_rows, n_cols), dense


def test_csr_contains_matches_dense():
  rng = np.random.default_rng(0)
  _, dense = _random_csr(rng, 37, 53, 0.2)
  dense[5] = False  # An empty row.
  dense[6] = True  # A full row.
  csr = CSR.from_coo(*np.nonzero(dense), 37, 53)
  rows, cols = np.meshgrid(np.arange(37), np.arange(53), indexing="ij")
  longest = int(np.diff(csr.indptr).max())
  assert longest == 53
  # The search depth from the longest row (53: full row) or from nnz gives the same answer.
  for bound in (None, longest):
    got = jax.jit(csr_contains, static_argnames="max_row_length")(
        jnp.asarray(csr.indptr), jnp.asarray(csr.indices), jnp.asarray(rows),
        jnp.asarray(cols), max_row_length=bound)
    np.testing.assert_array_equal(np.asarray(got), dense)


def test_csr_contains_with_short_rows_and_a_tight_bound():
  rng = np.random.default_rng(3)
  _, dense = _random_csr(rng, 200, 500, 0.01)
  dense[7, [0, 1, 2, 499]] = True
  csr = CSR.from_coo(*np.nonzero(dense), 200, 500)
  rows, cols = np.meshgrid(np.arange(200), np.arange(500), indexing="ij")
  longest = int(np.diff(csr.indptr).max())
  assert longest < 20 and len(csr.indices) > 500
  got = csr_contains(jnp.asarray(csr.indptr), jnp.asarray(csr.indices), jnp.asarray(rows),
                     jnp.asarray(cols), max_row_length=longest)
  np.testing.assert_array_equal(np.asarray(got), dense)


def test_uniform_negatives_never_positive_over_many_draws():
  rng = np.random.default_rng(1)
  n_users, n_items = 50, 30
  _, dense = _random_csr(rng, n_users, n_items, 0.5)
  dense[0, :28], dense[0, 28:] = True, False  # Only two admissible items.
  dense[1] = False  # A user with none excluded.
  csr = CSR.from_coo(*np.nonzero(dense), n_users, n_items)
  index = exclusion_index(csr.indptr, csr.indices, np.arange(n_items))
  users = jnp.asarray(np.repeat(np.arange(n_users), 400), jnp.int32)
  sample = jax.jit(uniform_negatives)
  seen = np.zeros((n_users, n_items), bool)
  for s in range(5):
    neg = np.asarray(sample(jax.random.key(s), users, index))
    assert not dense[np.asarray(users), neg].any()
    seen[np.asarray(users), neg] = True
  assert set(np.flatnonzero(seen[0])) == {28, 29}
  assert seen[1].all()
  # Every admissible (user, item) pair shows up: nothing is biased away.
  assert (seen == ~dense).mean() > 0.99


def test_uniform_negatives_restricted_to_candidates():
  # Candidates = items present in train; item 5 never appears as a negative.
  csr = CSR.from_coo(np.array([0, 0, 1]), np.array([0, 3, 1]), 2, 6)
  index = exclusion_index(csr.indptr, csr.indices, np.array([4, 0, 1, 2, 3]))
  users = jnp.asarray(np.repeat([0, 1], 30000), jnp.int32)
  neg = np.asarray(uniform_negatives(jax.random.key(0), users, index))
  f0 = np.bincount(neg[:30000], minlength=6) / 30000
  f1 = np.bincount(neg[30000:], minlength=6) / 30000
  np.testing.assert_allclose(f0, [0, 1 / 3, 1 / 3, 0, 1 / 3, 0], atol=0.015)
  np.testing.assert_allclose(f1, [0.25, 0, 0.25, 0.25, 0.25, 0], atol=0.015)


def test_uniform_negatives_are_deterministic():
  csr = CSR.from_coo(np.array([0, 0]), np.array([0, 1]), 1, 6)
  index = exclusion_index(csr.indptr, csr.indices, np.arange(6))
  users = jnp.zeros(1000, jnp.int32)
  a = uniform_negatives(jax.random.key(3), users, index)
  b = uniform_negatives(jax.random.key(3), users, index)
  c = uniform_negatives(jax.random.key(4), users, index)
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)
