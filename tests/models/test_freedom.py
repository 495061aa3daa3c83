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
  n_users, n_items = 7, 6
  dense = rng.random((n_users, n_items)) < 0.5
  dense[:, 0] = True
  rows, cols = np.nonzero(dense)
  csr = CSR.from_coo(rows, cols, n_users, n_items)
  feats = {"image": np.abs(rng.normal(size=(n_items, 5))).astype(np.float32),
           "text": rng.normal(size=(n_items, 3)).astype(np.float32)}
  feats = {m: feats[m] for m in modalities}
  return Dataset("toy", n_users, n_items, csr, csr, csr,
                 np.stack([rows, cols], 1).astype(np.int32), feats)


def _dense_knn(x, k):
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  sim = x @ x.T
  out = np.zeros_like(sim)
  for i in range(len(x)):
    out[i, np.argsort(-sim[i], kind="stable")[:k]] = 1.0 / k
  return out


def _model(ds, **kw):
  hp = dict(embedding_size=4, feat_embed_dim=4, knn_k=2, dropout=0.5, reg_weight=0.3)
  hp.update(kw)
  return models.create("freedom", ds, hp, rngs=nnx.Rngs(0))


@pytest.mark.parametrize("propagation", ["segment", "sparse"])
def test_freedom_loss_and_gradients_match_dense_reference(tmp_path, propagation):
  ds = _dataset()
  model = _model(ds, propagation=propagation)
  context = model.build_context(ds, cache_dir=str(tmp_path))
  context = model.on_epoch(context, jax.random.key(1), 0)
  mm = 0.1 * _dense_knn(ds.features["image"], 2) + 0.9 * _dense_knn(ds.features["text"], 2)
  np.testing.assert_allclose(context["mm_adj"].to_dense(), mm, atol=1e-6)
  pruned = np.asarray(context["train_adj"].to_dense())
  n_u = ds.n_users
  kept = pruned[:n_u, n_u:] > 0
  assert kept.sum() == int(len(ds.train_edges) * 0.5)
  deg_u, deg_i = kept.sum(1), kept.sum(0)
  # Renormalised on the kept subgraph: 1/sqrt(d_u' d_i') (+1e-7 as the reference).
  expect = 1.0 / np.sqrt((deg_u[:, None] + 1e-7) * (deg_i[None, :] + 1e-7))
  np.testing.assert_allclose(pruned[:n_u, n_u:], np.where(kept, expect, 0), rtol=1e-5)
  np.testing.assert_allclose(pruned, pruned.T)

  batch = Batch(users=jnp.array([0, 1, 2, 3, 4]), pos_items=jnp.array([0, 0, 0, 0, 0]),
                neg_items=jnp.array([1, 2, 3, 4, 5]),
                mask=jnp.array([True, True, True, True, False]))
  graphdef, params = nnx.split(model)
  loss_fn = lambda p: nnx.merge(graphdef, p).loss(context, batch, jax.random.key(0))[0]  # noqa
  loss, grads = jax.value_and_grad(loss_fn)(params)

  def reference(user, item_id, feats, proj):
    h = jnp.asarray(mm) @ item_id
    ego = jnp.concatenate([user, item_id])
    a = jnp.asarray(pruned)
    final = (ego + a @ ego + a @ a @ ego) / 3
    u_all, i_all = final[:n_u], final[n_u:] + h
    m = batch.mask
    u = u_all[batch.users]

    def bpr(pos, neg):
      x = jnp.sum(u * pos, 1) - jnp.sum(u * neg, 1)
      return jnp.sum(jnp.where(m, -jax.nn.log_sigmoid(x), 0)) / m.sum()

    total = bpr(i_all[batch.pos_items], i_all[batch.neg_items])
    for name in ("image", "text"):
      w, b = proj[name]
      t = feats[name] @ w + b
      total += 0.3 * bpr(t[batch.pos_items], t[batch.neg_items])
    return total

  args = (params["user_embedding"][...], params["item_id_embedding"][...],
          {m: params["features"][m][...] for m in ("image", "text")},
          {m: (params["projections"][m]["kernel"][...], params["projections"][m]["bias"][...])
           for m in ("image", "text")})
  want, want_grads = jax.value_and_grad(reference, argnums=(0, 1, 2, 3))(*args)
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  np.testing.assert_allclose(grads["user_embedding"][...], want_grads[0], atol=1e-6)
  np.testing.assert_allclose(grads["item_id_embedding"][...], want_grads[1], atol=1e-6)
  for m in ("image", "text"):
    np.testing.assert_allclose(grads["features"][m][...], want_grads[2][m], atol=1e-6)
    np.testing.assert_allclose(grads["projections"][m]["kernel"][...], want_grads[3][m][0],
                               atol=1e-6)


def test_freedom_eval_uses_full_graph_and_reg_zero_has_no_feature_params(tmp_path):
  ds = _dataset()
  model = _model(ds, reg_weight=0.0)
  assert not nnx.state(model, nnx.Param).get("features")
  context = model.build_context(ds, cache_dir=str(tmp_path))
  ctx_a = model.on_epoch(context, jax.random.key(0), 0)
  ctx_b = model.on_epoch(context, jax.random.key(1), 1)
  ua, _ = model.embed(ctx_a, train=False)
  ub, _ = model.embed(ctx_b, train=False)
  np.testing.assert_array_equal(ua, ub)  # Evaluation ignores the pruned graph.
  ta, _ = model.embed(ctx_a, train=True)
  tb, _ = model.embed(ctx_b, train=True)
  assert not np.allclose(ta, tb)  # Training uses a fresh pruned graph per epoch.


def test_freedom_single_modality_and_missing_modalities(tmp_path):
  ds = _dataset(("text",))
  model = _model(ds)
  assert model.graph_weights() == {"text": 1.0}
  context = model.build_context(ds, cache_dir=str(tmp_path))
  np.testing.assert_allclose(context["mm_adj"].to_dense(), _dense_knn(ds.features["text"], 2),
                             atol=1e-6)
  with pytest.raises(ValueError, match="FREEDOM needs at least one of the modalities"):
    _model(_dataset(()))
