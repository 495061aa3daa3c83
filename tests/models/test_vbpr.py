import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrec import models
from jaxrec.data import CSR, Dataset
from jaxrec.data.batching import Batch


def _dataset(modalities=("image", "text")):
  rng = np.random.default_rng(0)
  csr = CSR.from_coo([0, 1, 2], [0, 1, 2], 4, 5)
  feats = {"image": rng.normal(size=(5, 6)).astype(np.float32),
           "text": rng.normal(size=(5, 3)).astype(np.float32)}
  return Dataset("toy", 4, 5, csr, csr, csr, np.array([[0, 0], [1, 1], [2, 2]], np.int32),
                 {m: feats[m] for m in modalities})


def test_vbpr_matches_reference_and_gradients():
  ds = _dataset()
  model = models.create("vbpr", ds, {"embedding_size": 2, "reg_weight": 0.5}, rngs=nnx.Rngs(0))
  context = model.build_context(ds)
  users, items = model.embed(context, train=False)
  assert users.shape == (4, 4) and items.shape == (5, 4)
  assert np.all(np.asarray(model.item_linear.bias[...]) == 0)
  batch = Batch(jnp.array([0, 1, 2]), jnp.array([0, 1, 2]), jnp.array([3, 4, 0]),
                jnp.array([True, True, False]))
  graphdef, params = nnx.split(model)
  loss, grads = jax.value_and_grad(
      lambda p: nnx.merge(graphdef, p).loss(context, batch, jax.random.key(0))[0])(params)
  raw = np.concatenate([ds.features["text"], ds.features["image"]], 1)  # Text first.

  def reference(u_emb, i_emb, w, b):
    items = jnp.concatenate([i_emb, raw @ w + b], 1)
    m = batch.mask
    u, p, n = u_emb[batch.users], items[batch.pos_items], items[batch.neg_items]
    x = jnp.sum(u * p, 1) - jnp.sum(u * n, 1)
    bpr = jnp.sum(jnp.where(m, jax.nn.softplus(-x), 0)) / m.sum()
    reg = sum(jnp.linalg.norm(jnp.where(m[:, None], y, 0)) for y in (u, p, n)) / m.sum()
    return bpr + 0.5 * reg

  args = (params["user_embedding"][...], params["item_embedding"][...],
          params["item_linear"]["kernel"][...], params["item_linear"]["bias"][...])
  want, want_grads = jax.value_and_grad(reference, argnums=(0, 1, 2, 3))(*args)
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  np.testing.assert_allclose(grads["user_embedding"][...], want_grads[0], atol=1e-6)
  np.testing.assert_allclose(grads["item_linear"]["kernel"][...], want_grads[2], atol=1e-6)
  np.testing.assert_allclose(items, jnp.concatenate([args[1], raw @ args[2] + args[3]], 1),
                             atol=1e-5)


def test_vbpr_single_modality_and_none():
  model = models.create("vbpr", _dataset(("image",)), {}, rngs=nnx.Rngs(0))
  assert model.item_linear.kernel[...].shape == (6, 64)
  with pytest.raises(ValueError, match="VBPR needs at least one of the modalities"):
    models.create("vbpr", _dataset(()), {}, rngs=nnx.Rngs(0))
