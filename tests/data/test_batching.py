import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.data import CSR
from jaxrec.data.batching import epoch_batches
from jaxrec.negatives import exclusion_index


def _toy():
  rng = np.random.default_rng(0)
  dense = rng.random((20, 15)) < 0.3
  csr = CSR.from_coo(*np.nonzero(dense), 20, 15)
  edges = np.stack(csr.to_coo(), 1).astype(np.int32)
  index = exclusion_index(csr.indptr, csr.indices, np.unique(csr.indices))
  return dense, jnp.asarray(edges), index


def test_epoch_covers_every_edge_once_with_padding_masked():
  dense, edges, index = _toy()
  b = jax.jit(epoch_batches, static_argnums=3)(jax.random.key(0), edges, index, 16)
  n = edges.shape[0]
  assert b.users.shape == (-(-n // 16), 16)
  m = np.asarray(b.mask).ravel()
  assert m.sum() == n and m[:n].all()
  got = sorted(zip(np.asarray(b.users).ravel()[m], np.asarray(b.pos_items).ravel()[m]))
  assert got == sorted(map(tuple, np.asarray(edges).tolist()))
  assert not dense[np.asarray(b.users).ravel(), np.asarray(b.neg_items).ravel()].any()


def test_epoch_batches_deterministic_per_key():
  _, edges, index = _toy()
  a = epoch_batches(jax.random.key(1), edges, index, 8)
  b = epoch_batches(jax.random.key(1), edges, index, 8)
  c = epoch_batches(jax.random.key(2), edges, index, 8)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)
  assert not np.array_equal(a.users, c.users)
