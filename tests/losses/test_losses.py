import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from jaxrec import losses
from jaxrec.losses import _pairwise, _regularization


def test_doctests():
  for mod in (_pairwise, _regularization):
    result = doctest.testmod(mod)
    assert result.failed == 0 and result.attempted > 0


def test_bpr_matches_formula():
  rng = np.random.default_rng(0)
  pos, neg = rng.normal(size=8), rng.normal(size=8)
  expected = -np.mean(np.log(1.0 / (1.0 + np.exp(-(pos - neg)))))
  np.testing.assert_allclose(jax.jit(losses.bpr_loss)(pos, neg), expected, rtol=1e-5)
  np.testing.assert_allclose(
      losses.bpr_loss(pos, neg, reduce_fn=jnp.sum), expected * 8, rtol=1e-5)


def test_bpr_stable_for_large_gaps():
  loss = losses.bpr_loss(jnp.array([-1e4, 1e4]), jnp.array([1e4, -1e4]), reduce_fn=None)
  np.testing.assert_allclose(loss, [2e4, 0.0])
  grad = jax.grad(lambda p: losses.bpr_loss(p, jnp.zeros(2)))(jnp.array([-1e4, 1e4]))
  assert np.all(np.isfinite(grad))


def test_bpr_broadcasts_over_negatives():
  pos = jnp.array([1.0, 2.0])
  neg = jnp.array([[0.0, 1.0, 3.0], [2.0, 2.0, -1.0]])
  out = losses.bpr_loss(pos, neg, reduce_fn=None)
  np.testing.assert_allclose(out, jax.nn.softplus(neg - pos[:, None]), rtol=1e-6)


def test_bpr_mask_equals_slice_and_all_masked_is_zero():
  rng = np.random.default_rng(1)
  pos, neg = rng.normal(size=10), rng.normal(size=10)
  where = np.arange(10) < 6
  np.testing.assert_allclose(
      losses.bpr_loss(pos, neg, where=where), losses.bpr_loss(pos[:6], neg[:6]), rtol=1e-6)
  none = np.zeros(10, bool)
  assert float(losses.bpr_loss(pos, neg, where=none)) == 0.0
  g = jax.grad(lambda p: losses.bpr_loss(p, neg, where=none))(jnp.asarray(pos))
  assert np.all(g == 0)


def test_bpr_shape_mismatch():
  with pytest.raises(ValueError, match="Shape mismatch"):
    losses.bpr_loss(jnp.zeros(3), jnp.zeros(4))


def test_bpr_finite_difference_gradients():
  rng = np.random.default_rng(2)
  pos, neg = jnp.asarray(rng.normal(size=5)), jnp.asarray(rng.normal(size=5))
  check_grads(lambda p, n: losses.bpr_loss(p, n), (pos, neg), order=1, modes=["rev"],
              eps=1e-3, atol=1e-2, rtol=1e-2)


def test_emb_loss_is_sum_of_frobenius_norms_over_batch():
  rng = np.random.default_rng(3)
  u, i, j = (rng.normal(size=(4, 3)) for _ in range(3))
  expected = (np.linalg.norm(u) + np.linalg.norm(i) + np.linalg.norm(j)) / 4
  np.testing.assert_allclose(jax.jit(losses.emb_loss)(u, i, j), expected, rtol=1e-5)


def test_emb_loss_mask_and_zero_gradient():
  rng = np.random.default_rng(4)
  u = rng.normal(size=(5, 3))
  where = np.array([True, True, False, True, False])
  np.testing.assert_allclose(
      losses.emb_loss(u, where=where), losses.emb_loss(u[where]), rtol=1e-6)
  g = jax.grad(lambda x: losses.emb_loss(x))(jnp.zeros((2, 3)))
  assert np.all(np.isfinite(g))
  check_grads(lambda x: losses.emb_loss(x), (jnp.asarray(u),), order=1, modes=["rev"],
              eps=1e-3, atol=1e-2, rtol=1e-2)


def test_l2_reg_formula_and_gradient():
  rng = np.random.default_rng(5)
  u, i = rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
  expected = 0.5 * (np.sum(u**2) + np.sum(i**2)) / 4
  np.testing.assert_allclose(losses.l2_reg(u, i), expected, rtol=1e-5)
  g = jax.grad(lambda x: losses.l2_reg(x))(jnp.asarray(u))
  np.testing.assert_allclose(g, u / 4, rtol=1e-5)


def test_regularizer_shape_errors():
  with pytest.raises(ValueError, match="Shape mismatch"):
    losses.emb_loss(jnp.zeros((3, 2)), jnp.zeros((4, 2)))
  with pytest.raises(ValueError, match="Shape mismatch"):
    losses.l2_reg(jnp.zeros((3, 2)), where=jnp.ones(4, bool))
