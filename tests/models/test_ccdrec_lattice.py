"""CCDRec on the LATTICE backbone."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_lattice import _dataset

from jaxrec import models
from jaxrec.data.batching import Batch


def _hp(**kw):
  hp = dict(embedding_size=4, feat_embed_dim=4, knn_k=2, timesteps=6)
  hp.update(kw)
  return hp


def _batch():
  return Batch(users=jnp.arange(6), pos_items=jnp.zeros(6, jnp.int32),
               neg_items=jnp.arange(1, 7, dtype=jnp.int32), mask=jnp.arange(6) < 5)


def _context(model, ds, tmp_path, epoch=0):
  return model.on_epoch(model.build_context(ds, cache_dir=str(tmp_path)), jax.random.key(0), epoch)


def test_without_fusion_or_diffusion_it_is_lattice(tmp_path):
  ds = _dataset()
  lattice = models.create("lattice", ds, dict(embedding_size=4, feat_embed_dim=4, knn_k=2),
                          rngs=nnx.Rngs(0))
  ccd = models.create("ccdrec_lattice", ds, _hp(fusion_weight=0.0, diff_weight=0.0,
                                                negative_sampling="uniform"), rngs=nnx.Rngs(0))
  batch = _batch()
  want, _ = lattice.loss(_context(lattice, ds, tmp_path), batch, jax.random.key(1))
  got, parts = ccd.loss(_context(ccd, ds, tmp_path), batch, jax.random.key(1))
  np.testing.assert_allclose(got, want, rtol=1e-6)
  assert float(parts["diffusion"]) > 0  # Computed, weighted 0.


@pytest.mark.parametrize("mode", ["curriculum", "final_pool", "uniform"])
def test_loss_gradients_and_pools(tmp_path, mode):
  ds = _dataset()
  model = models.create("ccdrec_lattice", ds, _hp(negative_sampling=mode), rngs=nnx.Rngs(0))
  base = model.build_context(ds, cache_dir=str(tmp_path))
  graphdef, params = nnx.split(model)
  batch = _batch()
  for epoch in (0, 3):
    ctx = model.after_epoch(model.on_epoch(base, jax.random.key(epoch), epoch),
                            jax.random.key(9), epoch)
    assert ctx["pools"].shape == (4, ds.n_items, 4) and "item_adj" in ctx
    (loss, parts), grads = jax.value_and_grad(
        lambda p, c: nnx.merge(graphdef, p).loss(c, batch, jax.random.key(1)), has_aux=True)(
            params, ctx)
    assert np.isfinite(float(loss))
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    estimator_grads = jax.tree.leaves(grads["estimator"])
    assert sum(float(np.abs(g).sum()) for g in estimator_grads) > 0
    expect = parts["bpr_uniform"] + 0.5 * parts["diffusion"]
    if mode != "uniform":
      expect = 0.2 * parts["bpr_uniform"] + 0.8 * parts["bpr_hard"] + 0.5 * parts["diffusion"]
    np.testing.assert_allclose(loss, expect, rtol=1e-5)
  # Evaluation fuses every item with the final pool; training ignores the pools.
  _, items = model.embed(ctx, train=False)
  other = {**ctx, "pools": ctx["pools"] * 0}
  _, items_other = model.embed(other, train=False)
  assert not np.allclose(items, items_other)
  np.testing.assert_array_equal(model.embed(ctx, train=True)[1], model.embed(other, train=True)[1])


def test_config_file_trains_on_the_synthetic_default(tmp_path, make_config):
  from jaxrec.train import train_and_evaluate
  config = make_config("ccdrec_lattice")
  config.model.feat_embed_dim = config.model.embedding_size
  config.epochs = 2
  summary = train_and_evaluate(config, tmp_path / "run")
  assert summary["epochs_run"] == 2
  assert np.isfinite(summary["test"]["recall@20"])
