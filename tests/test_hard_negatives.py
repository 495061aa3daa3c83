import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data import CSR
from jaxrec.negatives import curriculum_pool_index, pool_hard_negatives


def test_curriculum_schedule_table_epochs_0_to_40():
  got = [int(curriculum_pool_index(e, 5, 5, 30)) for e in range(41)]
  want = [-1] + [0] * 5 + [1] * 5 + [2] * 5 + [3] * 15 + [4] * 10
  assert got == want
  # Jittable with a traced epoch; sports' commented 5/10/75 setting.
  f = jax.jit(lambda e: curriculum_pool_index(e, 5, 10, 75))
  assert [int(f(e)) for e in (1, 5, 6, 15, 16, 25, 26, 75, 76)] == [0, 0, 1, 1, 2, 2, 3, 3, 4]


def _brute_force(key, users, pos, pool, dense_train, n_cand, top_k):
  """NumPy replay of pool_hard_negatives' draws: the admissible top-k set per row."""
  k_cand, _ = jax.random.split(key)
  cand = np.asarray(jax.random.randint(k_cand, (n_cand,), 0, pool.shape[0], dtype=jnp.int32))
  sim = pool[pos] @ pool[cand].T
  sim = np.where(dense_train[users][:, cand], -np.inf, sim)
  order = np.argsort(-sim, axis=1, kind="stable")[:, :top_k]
  return [set(cand[row]) for row in order], cand


def test_pool_hard_negatives_never_train_positive_and_from_top_k():
  rng = np.random.default_rng(0)
  n_users, n_items, d = 40, 60, 8
  dense = rng.random((n_users, n_items)) < 0.3
  csr = CSR.from_coo(*np.nonzero(dense), n_users, n_items)
  pool = rng.normal(size=(n_items, d)).astype(np.float32)
  users = np.arange(n_users, dtype=np.int32)
  pos = np.array([rng.choice(np.flatnonzero(r)) if r.any() else 0 for r in dense], np.int32)
  fn = jax.jit(pool_hard_negatives, static_argnames=("n_candidates", "top_k", "max_row_length"))
  for s in range(20):
    key = jax.random.key(s)
    got = np.asarray(fn(key, jnp.asarray(users), jnp.asarray(pos), jnp.asarray(pool),
                        jnp.asarray(csr.indptr), jnp.asarray(csr.indices),
                        n_candidates=30, top_k=3))
    allowed, _ = _brute_force(key, users, pos, pool, dense, 30, 3)
    assert not dense[users, got].any()
    assert all(g in a for g, a in zip(got, allowed))
    bounded = fn(key, jnp.asarray(users), jnp.asarray(pos), jnp.asarray(pool),
                 jnp.asarray(csr.indptr), jnp.asarray(csr.indices), n_candidates=30, top_k=3,
                 max_row_length=int(np.diff(csr.indptr).max()))
    np.testing.assert_array_equal(np.asarray(bounded), got)


def test_dns_takes_the_highest_scoring_admissible_candidate():
  from jaxrec.negatives import dns_negatives, exclusion_index, uniform_negatives

  rng = np.random.default_rng(1)
  dense = rng.random((10, 30)) < 0.4
  csr = CSR.from_coo(*np.nonzero(dense), 10, 30)
  index = exclusion_index(csr.indptr, csr.indices, np.arange(30))
  u = rng.normal(size=(10, 4)).astype(np.float32)
  items = rng.normal(size=(30, 4)).astype(np.float32)
  users = jnp.arange(10, dtype=jnp.int32)
  key = jax.random.key(3)
  got = np.asarray(dns_negatives(key, users, jnp.asarray(u), jnp.asarray(items), index,
                                 n_candidates=5))
  cand = np.asarray(uniform_negatives(key, jnp.broadcast_to(users[:, None], (10, 5)), index))
  want = cand[np.arange(10), np.argmax(np.einsum("bd,bmd->bm", u, items[cand]), 1)]
  np.testing.assert_array_equal(got, want)
  assert not dense[np.arange(10), got].any()


def test_mixgcf_matches_brute_force():
  from jaxrec.negatives import mixgcf_negatives

  rng = np.random.default_rng(2)
  b, m, layers, d = 3, 4, 3, 5
  u = rng.normal(size=(b, d)).astype(np.float32)
  pos = rng.normal(size=(b, layers, d)).astype(np.float32)
  cand = rng.normal(size=(b, m, layers, d)).astype(np.float32)
  key = jax.random.key(0)
  got = np.asarray(mixgcf_negatives(key, jnp.asarray(u), jnp.asarray(pos), jnp.asarray(cand)))
  alpha = np.asarray(jax.random.uniform(key, (b, 1, layers, 1)))  # Shared by candidates.
  want = np.zeros((b, d))
  for i in range(b):
    for lyr in range(layers):
      mixed = [alpha[i, 0, lyr] * pos[i, lyr] + (1 - alpha[i, 0, lyr]) * cand[i, j, lyr]
               for j in range(m)]
      want[i] += mixed[int(np.argmax([u[i] @ x for x in mixed]))] / layers
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
