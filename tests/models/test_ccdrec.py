import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrec import diffusion, models
from jaxrec.data import make_synthetic
from jaxrec.data.batching import Batch


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  ds = make_synthetic(n_users=60, n_items=40, mean_interactions=8, image_dim=12, text_dim=6)
  cache = str(tmp_path_factory.mktemp("cache"))
  return ds, cache


def _model(ds, **kw):
  hp = dict(embedding_size=8, feat_embed_dim=8, knn_k=3, timesteps=6)
  hp.update(kw)
  return models.create("ccdrec", ds, hp, rngs=nnx.Rngs(0))


def _batch(ds, n=16):
  e = ds.train_edges[:n]
  rng = np.random.default_rng(0)
  return Batch(jnp.asarray(e[:, 0]), jnp.asarray(e[:, 1]),
               jnp.asarray(rng.integers(0, ds.n_items, n), jnp.int32),
               jnp.asarray(np.arange(n) < n - 2))


def test_pools_are_the_reverse_chain_and_feed_evaluation(setup):
  ds, cache = setup
  model = _model(ds)
  ctx = model.on_epoch(model.build_context(ds, cache_dir=cache), jax.random.key(0), 0)
  key = jax.random.key(5)
  ctx = model.after_epoch(ctx, key, 0)
  assert ctx["pools"].shape == (4, ds.n_items, 8)
  k_start, k_chain = jax.random.split(key)
  x0 = model.item_id_embedding[...]
  conds = [model.projected(m) for m in ("text", "image")]
  start = diffusion.chain_start(ctx["schedule"], x0, k_start, from_noise=False)
  want = diffusion.reverse_chain(lambda x, c, t: model.estimator(x, c, t), ctx["schedule"],
                                 start, conds, k_chain, snapshot_steps=(3, 2, 1, 0))
  np.testing.assert_allclose(ctx["pools"], want, atol=1e-6)
  users, items = model.embed(ctx, train=False)
  other = {**ctx, "pools": ctx["pools"] * 0}
  _, items_other = model.embed(other, train=False)
  assert not np.allclose(items, items_other)  # Evaluation fuses the final pool.
  _, t1 = model.embed(ctx, train=True)
  _, t2 = model.embed(other, train=True)
  np.testing.assert_array_equal(t1, t2)


@pytest.mark.parametrize("mode", ["curriculum", "final_pool", "uniform"])
def test_loss_parts_by_epoch_and_mode(setup, mode):
  ds, cache = setup
  model = _model(ds, negative_sampling=mode)
  base = model.build_context(ds, cache_dir=cache)
  batch = _batch(ds)
  graphdef, params = nnx.split(model)

  @jax.jit
  def loss_and_grad(p, ctx):
    return jax.value_and_grad(
        lambda p: nnx.merge(graphdef, p).loss(ctx, batch, jax.random.key(1)), has_aux=True)(p)

  for epoch in (0, 3, 35):
    ctx = model.after_epoch(model.on_epoch(base, jax.random.key(epoch), epoch),
                            jax.random.key(9), epoch)
    (loss, parts), grads = loss_and_grad(params, ctx)
    assert np.isfinite(float(loss))
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    if mode == "uniform":
      assert "bpr_hard" not in parts
      np.testing.assert_allclose(loss, parts["bpr_uniform"] + 0.5 * parts["diffusion"],
                                 rtol=1e-5)
    elif epoch == 0:  # No pool yet: the hard negative is the uniform one.
      np.testing.assert_allclose(parts["bpr_hard"], parts["bpr_uniform"], rtol=1e-6)
    else:
      want = 0.2 * parts["bpr_uniform"] + 0.8 * parts["bpr_hard"] + 0.5 * parts["diffusion"]
      np.testing.assert_allclose(loss, want, rtol=1e-5)
  # The estimator and the (trainable) feature tables learn through the diffusion loss.
  est = [g for g in jax.tree.leaves(grads["estimator"])]
  assert est and all(float(jnp.abs(g).sum()) > 0 for g in est)
  assert float(jnp.abs(grads["features"]["text"][...]).sum()) > 0


def test_config_errors(setup):
  ds, _ = setup
  with pytest.raises(ValueError, match="negative_sampling"):
    _model(ds, negative_sampling="nope")
  with pytest.raises(ValueError, match="feat_embed_dim == embedding_size"):
    _model(ds, feat_embed_dim=4)


@pytest.mark.parametrize("key,value,message", [
    ("candidate_fraction", 0.0, r"candidate_fraction must lie in \(0.0, 1.0\]"),
    ("candidate_fraction", 1.5, "candidate_fraction"),
    ("sample_k", 0.0, "sample_k"),
    ("fusion_weight", -0.1, r"fusion_weight must lie in \[0.0, 1.0\]"),
    ("omega", 2.0, "omega"),
    ("diff_weight", -1.0, "diff_weight"),
    ("timesteps", 1, r"timesteps must lie in \[2, inf\)"),
    ("curriculum_step", 0, "curriculum_step"),
    ("curriculum_end", 2, "curriculum_end"),
    ("estimator_heads", 0, "estimator_heads"),
])
def test_out_of_range_options_are_named(setup, key, value, message):
  ds, _ = setup
  with pytest.raises(ValueError, match=message):
    _model(ds, **{key: value})
  _model(ds, **{key: {"candidate_fraction": 1.0, "sample_k": 1.0, "fusion_weight": 0.0,
                      "omega": 1.0, "diff_weight": 0.0, "timesteps": 2,
                      "curriculum_step": 1, "curriculum_end": 5,
                      "estimator_heads": 1}[key]})  # The bound itself is accepted.
