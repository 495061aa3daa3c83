"""FREEDOM with DNS / MixGCF negatives (the CCDRec paper's Table 3 baselines)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_freedom import _dataset

from jaxrec import models
from jaxrec.data.batching import Batch
from jaxrec.negatives import uniform_negatives


def _setup(tmp_path, sampler, n_candidates=4):
  ds = _dataset()
  hp = dict(embedding_size=4, feat_embed_dim=4, knn_k=2, dropout=0.5,
            negative_sampler=sampler, n_negative_candidates=n_candidates)
  model = models.create("freedom", ds, hp, rngs=nnx.Rngs(0))
  context = model.on_epoch(model.build_context(ds, cache_dir=str(tmp_path)),
                           jax.random.key(1), 0)
  batch = Batch(users=jnp.arange(5), pos_items=jnp.zeros(5, jnp.int32),
                neg_items=jnp.full(5, 3, jnp.int32), mask=jnp.array([1, 1, 1, 1, 0], bool))
  return ds, model, context, batch


def _candidates(model, context, batch, key):
  k_cand, k_mix = jax.random.split(key)
  users = jnp.broadcast_to(batch.users[:, None], (5, model.n_negative_candidates))
  return np.asarray(uniform_negatives(k_cand, users, context["negative_index"])), k_mix


def _bpr(pos, neg, mask):
  return float(np.mean(-np.log(1 / (1 + np.exp(-(pos - neg))))[mask]))


def test_dns_loss_uses_the_hardest_admissible_candidate(tmp_path):
  ds, model, context, batch = _setup(tmp_path, "dns")
  key = jax.random.key(5)
  loss, _ = model.loss(context, batch, key)
  users, items = (np.asarray(a) for a in model.embed(context, train=True))
  cand, _ = _candidates(model, context, batch, key)
  u = users[np.arange(5)]
  hardest = cand[np.arange(5), np.argmax(np.einsum("bd,bmd->bm", u, items[cand]), 1)]
  for b, i in enumerate(hardest):  # Never one of the user's training items.
    assert i not in ds.train.indices[ds.train.indptr[b]:ds.train.indptr[b + 1]]
  expect = _bpr(np.sum(u * items[0], -1), np.sum(u * items[hardest], -1),
                np.asarray(batch.mask))
  np.testing.assert_allclose(float(loss), expect, rtol=1e-5)


def test_mixgcf_components_sum_to_the_final_item_and_loss_matches_brute_force(tmp_path):
  ds, model, context, batch = _setup(tmp_path, "mixgcf", n_candidates=3)
  key = jax.random.key(6)
  loss, _ = model.loss(context, batch, key)
  users, items = (np.asarray(a) for a in model.embed(context, train=True))
  layers = np.asarray(model.lightgcn_layers(context, model.item_id_embedding[...], train=True))
  h = np.asarray(model.item_graph(context))
  parts = np.concatenate([layers[:, ds.n_users:] / layers.shape[0], h[None]], 0).swapaxes(0, 1)
  np.testing.assert_allclose(parts.sum(1), items, rtol=1e-5, atol=1e-6)
  cand, k_mix = _candidates(model, context, batch, key)
  u = users[:5]
  alpha = np.asarray(jax.random.uniform(k_mix, (5, 1, parts.shape[1], 1)))
  neg = np.zeros_like(u)
  for b in range(5):  # Brute force: per component, the hardest mixed candidate.
    for c in range(parts.shape[1]):
      mixed = [alpha[b, 0, c] * parts[0, c] + (1 - alpha[b, 0, c]) * parts[cand[b, m], c]
               for m in range(3)]
      neg[b] += max(mixed, key=lambda e: float(u[b] @ e))
  expect = _bpr(np.sum(u * items[0], -1), np.sum(u * neg, -1), np.asarray(batch.mask))
  np.testing.assert_allclose(float(loss), expect, rtol=1e-5)


def test_mixgcf_gradient_reaches_the_candidates_through_the_mixture(tmp_path):
  _, model, context, batch = _setup(tmp_path, "mixgcf")
  graphdef, params = nnx.split(model)
  grads = jax.grad(lambda p: nnx.merge(graphdef, p).loss(context, batch, jax.random.key(0))[0])(
      params)
  g = np.asarray(grads["item_id_embedding"][...])
  assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0


def test_unknown_negative_sampler_is_an_error():
  with pytest.raises(ValueError, match="negative_sampler"):
    models.create("freedom", _dataset(), {"negative_sampler": "hard"}, rngs=nnx.Rngs(0))
