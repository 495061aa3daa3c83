import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrec import diffusion
from jaxrec.diffusion import estimator


def _np_ln(h):
  return (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5)


def _np_softmax(z):
  e = np.exp(z - z.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def _np_forward(model, x_t, conds, t):
  """The estimator written out in NumPy from its parameters, token by token.

  For the defaults this is the official ``selfAttention``: non-affine LN, one
  head, softmax(q k^T / sqrt(d)) v, no residual, mean over the tokens.
  """
  get = lambda lin: np.asarray(lin.kernel[...], np.float64)  # noqa: E731
  bias = lambda lin: np.asarray(lin.bias[...], np.float64)  # noqa: E731
  d, k = model.dim, model.temb_dim
  half = k // 2
  freqs = np.exp(-np.arange(half) * math.log(10000.0) / (half - 1))
  temb = np.concatenate([np.sin(t[:, None] * freqs), np.cos(t[:, None] * freqs)], -1)
  if model.time_proj is not None:
    temb = temb @ get(model.time_proj) + bias(model.time_proj)
  h = np.stack([x_t, *conds, temb], axis=1).astype(np.float64)  # [B, n, d]
  for layer in model.layers:
    nh = layer.n_heads
    y = _np_ln(h)
    q, kk, v = (y @ get(w) for w in (layer.w_q, layer.w_k, layer.w_v))
    heads = []
    for j in range(nh):
      sl = slice(j * d // nh, (j + 1) * d // nh)
      a = _np_softmax(q[..., sl] @ np.swapaxes(kk[..., sl], -1, -2) / math.sqrt(d // nh))
      heads.append(a @ v[..., sl])
    o = np.concatenate(heads, -1)
    if layer.w_o is not None:
      o = o @ get(layer.w_o)
    h = h + o if layer.residual else o
    if layer.ff_in is not None:
      z = _np_ln(h) @ get(layer.ff_in) + bias(layer.ff_in)
      z = 0.5 * z * (1 + np.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z**3)))  # gelu
      f = z @ get(layer.ff_out) + bias(layer.ff_out)
      h = h + f if layer.residual else f
  return h.mean(1)


# One compiled program per input signature is far cheaper on CPU than eager mode,
# which compiles every primitive for every new shape.
_apply = nnx.jit(lambda model, x, conds, t: model(x, conds, t))


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
  want = _np_forward(model, x, [c1, c2], t)
  np.testing.assert_allclose(model(x, [c1, c2], t), want, rtol=1e-4, atol=1e-5)  # eager
  np.testing.assert_allclose(_apply(model, x, (c1, c2), t), want, rtol=1e-4, atol=1e-5)


def test_output_shapes_for_leading_dims_and_conditions():
  d = 8
  model = diffusion.X0Estimator(d, rngs=nnx.Rngs(1))
  lead = (2, 4)
  rng = np.random.default_rng(1)
  x = rng.normal(size=lead + (d,)).astype(np.float32)
  for n_cond in (0, 1, 2):
    conds = tuple(rng.normal(size=lead + (d,)).astype(np.float32) for _ in range(n_cond))
    out = _apply(model, x, conds, jnp.full(lead, 3))
    assert out.shape == lead + (d,) and np.all(np.isfinite(out))
    assert model.tokens(x, conds, 3).shape == lead + (n_cond + 2, d)
  # A scalar step is broadcast: the same tokens as that step for every row.
  np.testing.assert_allclose(model.tokens(x, conds, 3), model.tokens(x, conds, jnp.full(lead, 3)))


def test_condition_permutation_invariance_and_sensitivity():
  d, b = 8, 4
  model = diffusion.X0Estimator(d, rngs=nnx.Rngs(2))
  rng = np.random.default_rng(0)
  x, c1, c2, c3, other = (rng.normal(size=(b, d)).astype(np.float32) for _ in range(5))
  t = jnp.array([0, 3, 9, 19])
  base = _apply(model, x, (c1, c2, c3), t)
  for perm in ((c2, c1, c3), (c3, c2, c1), (c2, c3, c1)):
    np.testing.assert_allclose(_apply(model, x, perm, t), base, rtol=1e-5, atol=1e-6)
  assert not np.allclose(_apply(model, x + c1, (c1, c2, c3), t), base, atol=1e-3)
  # (Not a rescaled c1: the LayerNorm makes every token scale- and shift-invariant.)
  assert not np.allclose(_apply(model, x, (other, c2, c3), t), base, atol=1e-3)
  assert not np.allclose(_apply(model, x, (c1, c2, c3), t + 1), base, atol=1e-4)


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
  opts = dict(n_heads=2, residual=True, feed_forward=True, ff_mult=2, timesteps_embedding_dim=6)
  model = diffusion.X0Estimator(d, rngs=nnx.Rngs(4), n_layers=2, **opts)
  params = _params(model)
  per_layer = 4 * d * d + (d * 2 * d + 2 * d) + (2 * d * d + d)  # qkvo + ff_in + ff_out
  assert sum(v.size for v in params.values()) == 2 * per_layer + (6 * d + d)
  x, c = np.random.default_rng(5).normal(size=(2, b, d)).astype(np.float32)
  t = jnp.arange(b)
  out = _apply(model, x, (c,), t)
  assert out.shape == (b, d)
  np.testing.assert_allclose(out, _np_forward(model, x, [c], np.asarray(t)), rtol=1e-4,
                             atol=1e-5)
  # Multi-head, residual, no feed-forward: the last layer pools before W_v.
  mh = diffusion.X0Estimator(d, rngs=nnx.Rngs(5), n_layers=2, n_heads=2, residual=True)
  np.testing.assert_allclose(_apply(mh, x, (c,), t), _np_forward(mh, x, [c], np.asarray(t)),
                             rtol=1e-4, atol=1e-5)

  # Every parameter of every option gets a finite gradient (one layer keeps the
  # backward program small).
  one = diffusion.X0Estimator(d, rngs=nnx.Rngs(4), n_layers=1, **opts)
  grads = nnx.jit(nnx.grad(lambda m: diffusion.x0_mse_loss(x, m(x, (c,), t))))(one)
  leaves = jax.tree.leaves(grads)
  assert len(leaves) == len(_params(one)) == 10
  assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in leaves)


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
