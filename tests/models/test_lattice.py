import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import jaxrec.models.lattice  # noqa: F401  (registers the model)
from jaxrec import models
from jaxrec.data import CSR, Dataset
from jaxrec.data.batching import Batch, num_batches
from jaxrec.train.train import make_epoch_fn, make_train_data

K, LAMBDA, REG = 2, 0.7, 0.3


def _dataset(modalities=("image", "text"), n_users=20, n_items=12):
  rng = np.random.default_rng(0)
  dense = rng.random((n_users, n_items)) < 0.5
  dense[:, 0] = True
  rows, cols = np.nonzero(dense)
  csr = CSR.from_coo(rows, cols, n_users, n_items)
  feats = {"image": np.abs(rng.normal(size=(n_items, 5))).astype(np.float32),
           "text": rng.normal(size=(n_items, 3)).astype(np.float32)}
  feats = {m: feats[m] for m in modalities}
  return Dataset("toy", n_users, n_items, csr, csr, csr,
                 np.stack([rows, cols], 1).astype(np.int32), feats)


def _model(ds, **kw):
  hp = dict(embedding_size=4, feat_embed_dim=4, knn_k=K, lambda_coeff=LAMBDA, reg_weight=REG)
  hp.update(kw)
  return models.create("lattice", ds, hp, rngs=nnx.Rngs(0))


# --- dense NumPy references (float64) ------------------------------------------------------

def _np_knn(x, k):
  """build_knn_neighbourhood(build_sim(x)): top-k cosine similarities, weighted."""
  x = np.asarray(x, np.float64)
  x = x / np.linalg.norm(x, axis=1, keepdims=True)
  sim = x @ x.T
  out = np.zeros_like(sim)
  for i in range(len(x)):
    top = np.argsort(-sim[i], kind="stable")[:k]
    out[i, top] = sim[i, top]
  return out


def _np_norm(a):
  """compute_normalized_laplacian: D^-1/2 A D^-1/2 with D the row sums."""
  d = np.power(a.sum(1), -0.5)
  d[np.isinf(d)] = 0.0
  return d[:, None] * a * d[None, :]


def _np_item_graph(ds, model, params):
  names = model.modalities
  w = np.exp(np.asarray(params["modal_weight"][...], np.float64))
  w = w / w.sum()
  learned = sum(
      w[j] * _np_knn(np.asarray(params["features"][m][...], np.float64)
                     @ np.asarray(params["projections"][m]["kernel"][...], np.float64)
                     + np.asarray(params["projections"][m]["bias"][...], np.float64), K)
      for j, m in enumerate(names))
  original = sum(w[j] * _np_norm(_np_knn(ds.features[m], K)) for j, m in enumerate(names))
  return (1 - LAMBDA) * _np_norm(learned) + LAMBDA * original


def _np_ui_adjacency(ds):
  """get_adj_mat: D^-1 (A + I), D the row sums of A + I."""
  n_u, n = ds.n_users, ds.n_users + ds.n_items
  a = np.eye(n)
  r = ds.train.to_dense().astype(np.float64)
  a[:n_u, n_u:] += r
  a[n_u:, :n_u] += r.T
  return a / a.sum(1, keepdims=True)


def _dense(idx, vals, n):
  return np.asarray(jnp.zeros((n, n)).at[jnp.arange(n)[:, None], idx].add(vals))


def _batch():
  return Batch(users=jnp.array([0, 1, 2, 3, 4, 5]), pos_items=jnp.array([0, 0, 0, 0, 0, 0]),
               neg_items=jnp.array([1, 2, 3, 4, 5, 1]),
               mask=jnp.array([True, True, True, True, True, False]))


@functools.partial(jax.jit, static_argnums=0)
def _on_epoch(graphdef, params, context):
  return nnx.merge(graphdef, params).on_epoch(context, jax.random.key(0), 0)


@functools.partial(jax.jit, static_argnums=(0, 3))
def _embed(graphdef, params, context, train):
  return nnx.merge(graphdef, params).embed(context, train=train)


def _context(ds, model, tmp_path):
  context = model.build_context(ds, cache_dir=str(tmp_path))
  return _on_epoch(*nnx.split(model), context)


# --- tests ---------------------------------------------------------------------------------

@pytest.mark.parametrize("modalities", [("image", "text"), ("text",)])
def test_lattice_item_graph_matches_dense_reference(tmp_path, modalities):
  ds = _dataset(modalities)
  model = _model(ds)
  # Non-uniform modality weights, so that the softmax mix is actually tested.
  model.modal_weight[...] = jnp.arange(len(modalities), dtype=jnp.float32) * 0.8 + 0.5
  ctx = _context(ds, model, tmp_path)
  _, params = nnx.split(model)
  got = _dense(ctx["item_idx"], ctx["item_vals"], ds.n_items)
  np.testing.assert_allclose(got, _np_item_graph(ds, model, params), atol=1e-6)
  np.testing.assert_allclose(ctx["adj"].to_dense(), _np_ui_adjacency(ds), atol=1e-7)
  assert ctx["item_idx"].shape == (ds.n_items, 2 * len(modalities) * K)


def test_lattice_shapes_cache_and_eval_rebuild(tmp_path):
  ds = _dataset()
  model = _model(ds)
  ctx = _context(ds, model, tmp_path)
  graphdef, params = nnx.split(model)
  users, items = _embed(graphdef, params, ctx, True)
  assert users.shape == (ds.n_users, 4) and items.shape == (ds.n_items, 4)
  # Evaluation rebuilds from the same params here, so it equals the training forward.
  eu, ei = _embed(graphdef, params, ctx, False)
  np.testing.assert_allclose(eu, users, atol=1e-6)
  np.testing.assert_allclose(ei, items, atol=1e-6)
  # The CSR copy of the graph: the same matrix, each (row, col) once, rows sorted.
  adj = ctx["item_adj"]
  w = ctx["item_idx"].shape[1]
  np.testing.assert_allclose(np.asarray(adj.to_dense())[:, :ds.n_items],
                             _dense(ctx["item_idx"], ctx["item_vals"], ds.n_items), atol=1e-7)
  np.testing.assert_array_equal(np.asarray(adj.to_dense())[:, ds.n_items:], 0.0)
  keys = np.asarray(adj.rows, np.int64) * (ds.n_items + w) + np.asarray(adj.cols)
  assert np.all(np.diff(keys) > 0)
  assert len(np.unique(np.asarray(ctx["item_idx"])[0])) < w  # Duplicates were merged.
  assert len([f for f in os.listdir(tmp_path) if f.startswith("lattice_knn")]) == 2
  again = model.build_context(ds, cache_dir=str(tmp_path))  # From the cache.
  np.testing.assert_array_equal(again["orig_idx"], ctx["orig_idx"])
  np.testing.assert_allclose(again["orig_vals"], ctx["orig_vals"])
  mu, mi = _model(ds, cf_model="mf").embed(ctx, train=False)
  assert mu.shape == (ds.n_users, 4) and mi.shape == (ds.n_items, 4)


def _dense_reference(ds, model, batch, graph=None):
  """Plain dense JAX LATTICE loss; ``graph=None`` rebuilds the item graph from the params."""
  names = model.modalities
  orig = [jnp.asarray(_np_norm(_np_knn(ds.features[m], K)), jnp.float32) for m in names]
  adj = jnp.asarray(_np_ui_adjacency(ds), jnp.float32)
  n_u, n_i = ds.n_users, ds.n_items

  def knn(z):
    zn = z / jnp.linalg.norm(z, axis=1, keepdims=True)
    vals, idx = jax.lax.top_k(zn @ zn.T, K)
    return jnp.zeros((n_i, n_i)).at[jnp.arange(n_i)[:, None], idx].set(vals)

  def norm(a):
    d = a.sum(1) ** -0.5
    return d[:, None] * a * d[None, :]

  def loss(user, item, feats, kernels, biases, modal_weight):
    if graph is None:
      w = jax.nn.softmax(modal_weight)
      learned = sum(w[j] * knn(feats[m] @ kernels[m] + biases[m]) for j, m in enumerate(names))
      g = (1 - LAMBDA) * norm(learned) + LAMBDA * sum(w[j] * orig[j] for j in range(len(names)))
    else:
      g = graph
    h = g @ item
    h = h / jnp.linalg.norm(h, axis=1, keepdims=True)
    ego = jnp.concatenate([user, item])
    final = (ego + adj @ ego + adj @ adj @ ego) / 3
    u_all, i_all = final[:n_u], final[n_u:] + h
    m = batch.mask
    u, p, n = u_all[batch.users], i_all[batch.pos_items], i_all[batch.neg_items]
    x = jnp.sum(u * p, 1) - jnp.sum(u * n, 1)
    bpr = jnp.sum(jnp.where(m, -jax.nn.log_sigmoid(x), 0)) / m.sum()
    reg = sum(jnp.sum(jnp.where(m[:, None], e ** 2, 0)) for e in (u, p, n)) / 2 / len(m)
    return bpr + REG * reg

  return loss


def _args(params, names):
  return (params["user_embedding"][...], params["item_id_embedding"][...],
          {m: params["features"][m][...] for m in names},
          {m: params["projections"][m]["kernel"][...] for m in names},
          {m: params["projections"][m]["bias"][...] for m in names},
          params["modal_weight"][...])


@functools.partial(jax.jit, static_argnums=0)
def _value_and_grad(graphdef, params, ctx, batch):
  def loss_fn(p):
    return nnx.merge(graphdef, p).loss(ctx, batch, jax.random.key(0))

  return jax.value_and_grad(loss_fn, has_aux=True)(params)


def _model_grads(model, ctx, batch):
  graphdef, params = nnx.split(model)
  (loss, parts), grads = _value_and_grad(graphdef, params, ctx, batch)
  return loss, parts, _args(grads, model.modalities), params


def _assert_trees_close(got, want, atol):
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(g, w, atol=atol, rtol=1e-4)


def test_lattice_loss_and_gradients_match_dense_reference(tmp_path):
  ds = _dataset()
  model = _model(ds)
  model.modal_weight[...] = jnp.array([0.2, 0.9])
  ctx = _context(ds, model, tmp_path)
  batch = _batch()

  # First batch of the epoch: params == on_epoch's, gradient flows through the graph.
  loss, parts, grads, params = _model_grads(model, ctx, batch)
  assert parts["fresh_graph"] == 1.0
  ref = _dense_reference(ds, model, batch)
  want, want_grads = jax.jit(jax.value_and_grad(ref, argnums=tuple(range(6))))(
      *_args(params, model.modalities))
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  _assert_trees_close(grads, want_grads, atol=1e-5)
  for g in jax.tree.leaves(grads[2:]):  # Features, projections and modal weights.
    assert np.abs(g).max() > 0

  # A later batch: the ID tables moved, the epoch's graph is a constant (.detach()).
  graph = jnp.asarray(_dense(ctx["item_idx"], ctx["item_vals"], ds.n_items))
  model.user_embedding[...] = model.user_embedding[...] * 1.1
  loss, parts, grads, params = _model_grads(model, ctx, batch)
  assert parts["fresh_graph"] == 0.0
  ref = _dense_reference(ds, model, batch, graph=graph)
  want, want_grads = jax.jit(jax.value_and_grad(ref, argnums=tuple(range(6))))(
      *_args(params, model.modalities))
  np.testing.assert_allclose(loss, want, rtol=1e-5)
  _assert_trees_close(grads, want_grads, atol=1e-5)
  for g in jax.tree.leaves(grads[2:]):
    np.testing.assert_array_equal(g, 0.0)


def test_lattice_on_epoch_rebuilds_graph_when_params_change(tmp_path):
  ds = _dataset()
  model = _model(ds)
  ctx0 = _context(ds, model, tmp_path)
  kept = _on_epoch(*nnx.split(model), ctx0)  # Same params: the graph is reused as is.
  np.testing.assert_array_equal(kept["item_vals"], ctx0["item_vals"])
  kernel = model.projections["image"].kernel
  kernel[...] = jax.random.normal(jax.random.key(3), kernel.shape)
  ctx1 = _on_epoch(*nnx.split(model), ctx0)
  assert not np.array_equal(ctx0["learned_idx"], ctx1["learned_idx"])
  _, params = nnx.split(model)
  np.testing.assert_allclose(_dense(ctx1["item_idx"], ctx1["item_vals"], ds.n_items),
                             _np_item_graph(ds, model, params), atol=1e-6)
  # Evaluation uses the graph of the current params, whatever context it is given.
  np.testing.assert_allclose(_embed(*nnx.split(model), ctx0, False)[1],
                             _embed(*nnx.split(model), ctx1, True)[1], atol=1e-6)


@functools.partial(jax.jit, static_argnums=0)
def _after_epoch(graphdef, params, context):
  return nnx.merge(graphdef, params).after_epoch(context, jax.random.key(0), 0)


def test_lattice_graph_gets_gradient_in_exactly_one_batch_per_epoch(tmp_path):
  ds = _dataset()
  model = _model(ds)
  graphdef, params = nnx.split(model)
  ctx = model.build_context(ds, cache_dir=str(tmp_path))
  tx = optax.adam(1e-3)
  batch_size = 8
  epoch_fn = make_epoch_fn(graphdef, tx, batch_size)
  state = {"params": params, "opt_state": tx.init(params)}
  data = make_train_data(ds)
  n = num_batches(len(ds.train_edges), batch_size)
  for epoch in range(2):  # As the trainer: on_epoch -> epoch -> after_epoch -> on_epoch ...
    epoch_ctx = _on_epoch(graphdef, state["params"], ctx)
    state, metrics = epoch_fn(state, epoch_ctx, data, jax.random.key(epoch))
    np.testing.assert_allclose(metrics["fresh_graph"], 1.0 / n, rtol=1e-6)
    ctx = _after_epoch(graphdef, state["params"], epoch_ctx)
    # The trained params' graph, as if built from scratch.
    scratch = _on_epoch(graphdef, state["params"], model.build_context(ds, cache_dir=str(tmp_path)))
    np.testing.assert_array_equal(ctx["learned_idx"], scratch["learned_idx"])
    np.testing.assert_allclose(ctx["item_vals"], scratch["item_vals"], atol=1e-7)
    assert not np.array_equal(ctx["item_vals"], epoch_ctx["item_vals"])


def test_lattice_missing_modalities_and_bad_options():
  with pytest.raises(ValueError, match="LATTICE needs at least one of the modalities"):
    _model(_dataset(()))
  with pytest.raises(ValueError, match="cf_model"):
    _model(_dataset(), cf_model="ngcf")
  with pytest.raises(ValueError, match="knn_k"):
    _model(_dataset(), knn_k=13)
