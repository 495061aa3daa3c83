import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrec import models
from jaxrec.data import CSR, Dataset
from jaxrec.data.batching import Batch


def _dataset():
  rng = np.random.default_rng(0)
  dense = rng.random((6, 5)) < 0.5
  dense[:, 0] = True
  rows, cols = np.nonzero(dense)
  csr = CSR.from_coo(rows, cols, 6, 5)
  empty = CSR.from_coo(np.zeros(0, int), np.zeros(0, int), 6, 5)
  return Dataset("toy", 6, 5, csr, empty, empty, np.stack([rows, cols], 1).astype(np.int32)), dense


def _batch():
  return Batch(users=jnp.array([0, 1, 2, 3]), pos_items=jnp.array([0, 0, 0, 0]),
               neg_items=jnp.array([1, 2, 3, 4]), mask=jnp.array([True, True, True, False]))


def _reference_loss(u_final, i_final, u_ego, i_ego, b, reg_weight):
  m = np.asarray(b.mask)
  u, p, n = u_final[b.users][m], i_final[b.pos_items][m], i_final[b.neg_items][m]
  bpr = np.mean(np.log1p(np.exp(-(np.sum(u * p, 1) - np.sum(u * n, 1)))))
  reg = sum(np.linalg.norm(x) for x in
            (u_ego[b.users][m], i_ego[b.pos_items][m], i_ego[b.neg_items][m])) / m.sum()
  return bpr + reg_weight * reg


def test_xavier_uniform_bound_matches_torch():
  ds, _ = _dataset()
  model = models.create("lightgcn", ds, {"embedding_size": 64}, rngs=nnx.Rngs(0))
  bound = np.sqrt(6 / (6 + 64))
  w = np.asarray(model.user_embedding[...])
  assert w.shape == (6, 64) and np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound


def test_mf_loss_matches_reference():
  ds, _ = _dataset()
  model = models.create("mf", ds, {"embedding_size": 4, "reg_weight": 0.1}, rngs=nnx.Rngs(0))
  b = _batch()
  loss, parts = model.loss({}, b, jax.random.key(0))
  u, i = np.asarray(model.user_embedding[...]), np.asarray(model.item_embedding[...])
  np.testing.assert_allclose(loss, _reference_loss(u, i, u, i, b, 0.1), rtol=1e-5)


@pytest.mark.parametrize("propagation", ["segment", "sparse"])
def test_lightgcn_embeddings_and_gradients_match_dense(propagation):
  ds, dense = _dataset()
  model = models.create("lightgcn", ds, {"embedding_size": 4, "reg_weight": 0.1, "n_layers": 2,
                                         "propagation": propagation}, rngs=nnx.Rngs(0))
  context = model.build_context(ds)
  a = np.zeros((11, 11))
  a[:6, 6:] = dense
  a[6:, :6] = dense.T
  d = a.sum(1)
  norm = a / np.sqrt(np.outer(d, d) + 1e-7) * (np.outer(d, d) > 0)
  u0, i0 = np.asarray(model.user_embedding[...]), np.asarray(model.item_embedding[...])
  e0 = np.concatenate([u0, i0])
  final = (e0 + norm @ e0 + norm @ norm @ e0) / 3
  users, items = model.embed(context, train=False)
  np.testing.assert_allclose(users, final[:6], atol=1e-5)
  np.testing.assert_allclose(items, final[6:], atol=1e-5)

  b = _batch()
  graphdef, params = nnx.split(model)
  loss, grads = jax.value_and_grad(
      lambda p: nnx.merge(graphdef, p).loss(context, b, jax.random.key(0))[0])(params)

  def ref(e0):
    final = (e0 + norm @ e0 + norm @ norm @ e0) / 3
    return _reference_loss(final[:6], final[6:], e0[:6], e0[6:], b, 0.1)

  np.testing.assert_allclose(loss, ref(e0), rtol=1e-5)
  ref_grad = jax.grad(lambda e: _jnp_ref(e, jnp.asarray(norm), b, 0.1))(jnp.asarray(e0))
  np.testing.assert_allclose(grads["user_embedding"][...], ref_grad[:6], atol=1e-5)
  np.testing.assert_allclose(grads["item_embedding"][...], ref_grad[6:], atol=1e-5)


def _jnp_ref(e0, norm, b, reg_weight):
  final = (e0 + norm @ e0 + norm @ norm @ e0) / 3
  m = b.mask
  u, p, n = final[b.users], final[6 + b.pos_items], final[6 + b.neg_items]
  x = jnp.sum(u * p, 1) - jnp.sum(u * n, 1)
  bpr = jnp.sum(jnp.where(m, jax.nn.softplus(-x), 0)) / m.sum()
  reg = sum(jnp.linalg.norm(jnp.where(m[:, None], y, 0)) for y in
            (e0[b.users], e0[6 + b.pos_items], e0[6 + b.neg_items])) / m.sum()
  return bpr + reg_weight * reg


def test_registry_errors():
  ds, _ = _dataset()
  with pytest.raises(ValueError, match="Unknown model 'nope'; valid models: .*lightgcn"):
    models.get("nope")
  with pytest.raises(ValueError, match="model.n_layer.*valid keys:.*model.n_layers"):
    models.create("lightgcn", ds, {"n_layer": 3}, rngs=nnx.Rngs(0))
  with pytest.raises(KeyError, match="already registered"):
    models.register("mf")(type("Other", (), {}))


def test_mf_uses_xavier_normal_like_mmrec():
  ds, _ = _dataset()
  big = Dataset("big", 3000, 2000, *[CSR.from_coo([0], [0], 3000, 2000)] * 3,
                np.zeros((1, 2), np.int32))
  del ds
  w = np.asarray(models.create("mf", big, {}, rngs=nnx.Rngs(0)).item_embedding[...])
  np.testing.assert_allclose(w.std(), np.sqrt(2 / (2000 + 64)), rtol=0.03)
  assert np.abs(w).max() > np.sqrt(6 / (2000 + 64))  # Unbounded, unlike the uniform init.
