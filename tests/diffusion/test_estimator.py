import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrec import diffusion
from jaxrec.diffusion import estimator


def _np_reference(x_t, conds, t, wq, wk, wv):
  """The official selfAttention in NumPy: non-affine LN, 1 head, no residual, mean."""
  d = x_t.shape[-1]
  half = d // 2
  freqs = np.exp(-np.arange(half) * math.log(10000.0) / (half - 1))
  temb = np.concatenate([np.sin(t[:, None] * freqs), np.cos(t[:, None] * freqs)], -1)
  h = np.stack([x_t, *conds, temb], axis=1)  # [B, n, d]
  h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)
  q, k, v = h @ wq, h @ wk, h @ wv
  logits = q @ np.swapaxes(k, -1, -2) / math.sqrt(d)
  a = np.exp(logits - logits.max(-1, keepdims=True))
  a /= a.sum(-1, keepdims=True)
  return (a @ v).mean(1)


def _params(model):
  return {jax.tree_util.keystr(p).removesuffix(".value"): v for p, v in
          jax.tree_util.tree_leaves_with_path(nnx.state(model, nnx.Param))}


def test_doctests():
  result = doctest.testmod(estimator)
  assert result.failed == 0 and result.attempted > 0


def test_sinusoidal_embedding_formula():
  t = np.array([[0, 1], [7, 19]])
  e = diffusion.sinusoidal_embedding(t, 10)
  assert e.shape == (2, 2, 10)
  freqs = np.exp(-np.arange(5) * np.log(10000.0) / 4)
  want = np.concatenate([np.sin(t[..., None] * freqs), np.cos(t[..., None] * freqs)], -1)
  np.testing.assert_allclose(e, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(e[0, 0], [0] * 5 + [1] * 5)  # t = 0: sin half first
  odd = diffusion.sinusoidal_embedding(np.array([3]), 9)
  np.testing.assert_allclose(odd[0, :8], diffusion.sinusoidal_embedding(np.array([3]), 8)[0])
  assert odd[0, 8] == 0.0
  with pytest.raises(ValueError, match="dim"):
    diffusion.sinusoidal_embedding(np.array([1]), 3)


def test_reference_form_matches_numpy():
  d, b = 8, 4
  model = diffusion.X0Estimator(d, rngs=nnx.Rngs(0))
  rng = np.random.default_rng(0)
  x, c1, c2 = (rng.normal(size=(b, d)).astype(np.float32) for _ in range(3))
  t = np.arange(b)
  layer = model.layers[0]
  want = _np_reference(x, [c1, c2], t, np.asarray(layer.w_q.kernel[...]),
                       np.asarray(layer.w_k.kernel[...]), np.asarray(layer.w_v.kernel[...]))
  np.testing.assert_allclose(model(x, [c1, c2], t), want, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(nnx.jit(lambda m, *a: m(*a))(model, x, (c1, c2), t), want,
                             rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n_cond", [0, 1, 2])
def test_output_shapes_for_leading_dims_and_conditions(n_cond):
  d = 8
  model = diffusion.X0Estimator(d, rngs=nnx.Rngs(1))
  for lead in [(4,), (2, 4)]:
    x = jnp.ones(lead + (d,))
    conds = [jnp.full(lead + (d,), float(i)) for i in range(n_cond)]
    out = model(x, conds, jnp.zeros(lead, jnp.int32))
    assert out.shape == lead + (d,) and np.all(np.isfinite(out))
    assert model.tokens(x, conds, 3).shape == lead + (n_cond + 2, d)
    # A scalar step equals the same step for every row.
    np.testing.assert_allclose(model(x, conds, 3), model(x, conds, jnp.full(lead, 3)),
                               rtol=1e-6)


def test_condition_permutation_invariance_and_sensitivity():
  d, b = 8, 4
  model = diffusion.X0Estimator(d, rngs=nnx.Rngs(2))
  keys = jax.random.split(jax.random.key(0), 5)
  x, c1, c2, c3, other = (jax.random.normal(k, (b, d)) for k in keys)
  t = jnp.array([0, 3, 9, 19])
  base = model(x, [c1, c2, c3], t)
  for perm in ([c2, c1, c3], [c3, c2, c1], [c2, c3, c1]):
    np.testing.assert_allclose(model(x, perm, t), base, rtol=1e-5, atol=1e-6)
  assert not np.allclose(model(x + 1.0 * c1, [c1, c2, c3], t), base, atol=1e-3)
  # (Not a rescaled c1: the LayerNorm makes every token scale- and shift-invariant.)
  assert not np.allclose(model(x, [other, c2, c3], t), base, atol=1e-3)
  assert not np.allclose(model(x, [c1, c2, c3], t + 1), base, atol=1e-4)


def test_default_has_only_qkv_params_with_xavier_normal_init():
  d = 64
  model = diffusion.X0Estimator(d, rngs=nnx.Rngs(3))
  params = _params(model)
  assert sorted(params) == sorted(
      f"['layers'][0]['{w}']['kernel']" for w in ("w_k", "w_q", "w_v"))
  assert all(v.shape == (d, d) for v in params.values())
  assert sum(v.size for v in params.values()) == 3 * d * d  # no LayerNorm params
  w = np.concatenate([np.ravel(v) for v in params.values()])
  std = math.sqrt(2.0 / (d + d))
  np.testing.assert_allclose(w.std(), std, rtol=0.03)
  assert abs(w.mean()) < 0.01
  # PyTorch's xavier_normal_ is untruncated: flax's truncated variant never exceeds
  # ~2.27 std, a plain normal does about 1.2% of the time beyond 2.5 std.
  assert np.mean(np.abs(w) > 2.5 * std) > 0.005


def test_options_shapes_params_and_grads():
  d, b = 8, 4
  model = diffusion.X0Estimator(d, rngs=nnx.Rngs(4), n_layers=2, n_heads=2, residual=True,
                                feed_forward=True, ff_mult=2, timesteps_embedding_dim=6)
  params = _params(model)
  per_layer = 4 * d * d + (d * 2 * d + 2 * d) + (2 * d * d + d)  # qkvo + ff_in + ff_out
  assert sum(v.size for v in params.values()) == 2 * per_layer + (6 * d + d)
  x, c = jnp.ones((b, d)), jnp.arange(b * d, dtype=jnp.float32).reshape(b, d) / 10
  t = jnp.array([0, 1, 2, 3])
  assert model(x, [c], t).shape == (b, d)

  def loss(m):
    return diffusion.x0_mse_loss(x, m(x, [c], t))

  grads = nnx.jit(nnx.grad(loss))(model)
  leaves = jax.tree.leaves(grads)
  assert len(leaves) == len(params)
  assert all(np.all(np.isfinite(g)) for g in leaves)
  # Each layer's output tokens feed the next: layer 2 changes the result.
  one = diffusion.X0Estimator(d, rngs=nnx.Rngs(4), n_layers=1, n_heads=2, residual=True,
                              feed_forward=True, ff_mult=2, timesteps_embedding_dim=6)
  assert not np.allclose(one(x, [c], t), model(x, [c], t), atol=1e-4)


def test_bad_arguments():
  with pytest.raises(ValueError, match="n_heads"):
    diffusion.X0Estimator(8, rngs=nnx.Rngs(0), n_heads=3)
  with pytest.raises(ValueError, match="n_layers"):
    diffusion.X0Estimator(8, rngs=nnx.Rngs(0), n_layers=0)
  model = diffusion.X0Estimator(8, rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match=r"conditions\[1\]"):
    model(jnp.ones((2, 8)), [jnp.ones((2, 8)), jnp.ones((3, 8))], jnp.zeros(2, jnp.int32))
  with pytest.raises(ValueError, match="x_t"):
    model(jnp.ones((2, 4)), [], jnp.zeros(2, jnp.int32))
