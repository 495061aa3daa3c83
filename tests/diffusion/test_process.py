import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec import diffusion
from jaxrec.diffusion import process

T = 20


@pytest.fixture(scope="module")
def sched():
  return diffusion.make_schedule("linear", T)


def test_doctests():
  result = doctest.testmod(process)
  assert result.failed == 0 and result.attempted > 0


def test_q_sample_closed_form_and_broadcasting(sched):
  rng = np.random.default_rng(0)
  x0, eps = rng.normal(size=(2, 3, 4)), rng.normal(size=(2, 3, 4))
  t = np.array([[0, 5, 19], [7, 7, 1]])
  abar = np.asarray(sched.alphas_cumprod, np.float64)[t][..., None]
  want = np.sqrt(abar) * x0 + np.sqrt(1 - abar) * eps
  got = jax.jit(diffusion.q_sample)(sched, x0, t, eps)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  # A scalar step is shared by all rows.
  np.testing.assert_allclose(
      diffusion.q_sample(sched, x0, 5, eps),
      diffusion.q_sample(sched, x0, np.full((2, 3), 5), eps), rtol=1e-6)
  # vmap over the leading axis == batched call.
  v = jax.vmap(diffusion.q_sample, in_axes=(None, 0, 0, 0))(sched, x0, t, eps)
  np.testing.assert_allclose(v, got, rtol=1e-6)
  with pytest.raises(ValueError, match="Shape mismatch"):
    diffusion.q_sample(sched, x0, t, eps[..., :2])


def test_q_sample_statistics(sched):
  n, d = 20000, 4
  x0 = jnp.array([1.0, -2.0, 0.5, 3.0])
  steps = jnp.array([0, 10, 19])
  noise = np.random.default_rng(0).normal(size=(n, 3, d)).astype(np.float32)
  xt = diffusion.q_sample(sched, jnp.broadcast_to(x0, (n, 3, d)),
                          jnp.broadcast_to(steps, (n, 3)), noise)
  abar = np.asarray(sched.alphas_cumprod)[np.asarray(steps)][:, None]
  np.testing.assert_allclose(xt.mean(0), np.sqrt(abar) * np.asarray(x0), atol=0.02)
  np.testing.assert_allclose(xt.var(0), np.broadcast_to(1 - abar, (3, d)), rtol=0.05)


def test_posterior_mean_variance_closed_form(sched):
  rng = np.random.default_rng(1)
  x0h, xt = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
  t = np.array([0, 1, 4, 10, 18, 19])
  b = np.linspace(1e-4, 0.02, T)
  abar = np.cumprod(1 - b)
  prev = np.concatenate([[1.0], abar[:-1]])
  c1 = (b * np.sqrt(prev) / (1 - abar))[t][:, None]
  c2 = ((1 - prev) * np.sqrt(1 - b) / (1 - abar))[t][:, None]
  var = (b * (1 - prev) / (1 - abar))[t][:, None]
  mean, v, logv = jax.jit(diffusion.posterior_mean_variance)(sched, x0h, xt, t)
  np.testing.assert_allclose(mean, c1 * x0h + c2 * xt, rtol=1e-5, atol=1e-6)
  assert v.shape == logv.shape == (6, 1)
  np.testing.assert_allclose(v, var, rtol=1e-5, atol=1e-9)
  assert float(v[0, 0]) == 0.0 and np.all(np.isfinite(logv))
  np.testing.assert_allclose(logv[1:], np.log(var[1:]), rtol=1e-5)
  np.testing.assert_allclose(logv[0], np.log(var[1]), rtol=1e-5)
  with pytest.raises(ValueError, match="Shape mismatch"):
    diffusion.posterior_mean_variance(sched, x0h, xt[:, :2], t)


def test_posterior_of_forward_sample_has_marginal_moments(sched):
  # With x0_hat = x0, x_t ~ q(x_t | x0) and x_{t-1} ~ q(x_{t-1} | x_t, x0), x_{t-1}
  # must have the forward marginal N(sqrt(abar_{t-1}) x0, 1 - abar_{t-1}).
  x0 = jnp.array([2.0, -1.0, 0.5])
  # Exactly in the noise-free case: c1 + c2 sqrt(abar_t) = sqrt(abar_{t-1}).
  for t in (0, 1, 9, 19):
    xt = diffusion.q_sample(sched, x0, t, jnp.zeros(3))
    mean, _, _ = diffusion.posterior_mean_variance(sched, x0, xt, t)
    prev = 1.0 if t == 0 else float(sched.alphas_cumprod[t - 1])
    np.testing.assert_allclose(mean, np.sqrt(prev) * x0, rtol=1e-5)
  n, t = 20000, 12
  z1, z2 = np.random.default_rng(3).normal(size=(2, n, 3)).astype(np.float32)
  xs = jnp.broadcast_to(x0, (n, 3))
  xt = diffusion.q_sample(sched, xs, t, z1)
  mean, var, _ = diffusion.posterior_mean_variance(sched, xs, xt, t)
  x_prev = mean + jnp.sqrt(var) * z2
  abar_prev = float(sched.alphas_cumprod[t - 1])
  np.testing.assert_allclose(x_prev.mean(0), np.sqrt(abar_prev) * x0, atol=0.01)
  np.testing.assert_allclose(x_prev.var(0), 1 - abar_prev, rtol=0.05)


def test_x0_mse_loss():
  rng = np.random.default_rng(2)
  a, b = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
  np.testing.assert_allclose(jax.jit(diffusion.x0_mse_loss)(a, b), np.mean((a - b) ** 2),
                             rtol=1e-6)
  np.testing.assert_allclose(diffusion.x0_mse_loss(a, b, reduce_fn=jnp.sum),
                             np.sum((a - b) ** 2), rtol=1e-6)
  assert diffusion.x0_mse_loss(a, b, reduce_fn=None).shape == (10, 4)
  where = np.arange(10) < 6
  np.testing.assert_allclose(diffusion.x0_mse_loss(a, b, where=where),
                             diffusion.x0_mse_loss(a[:6], b[:6]), rtol=1e-6)
  unreduced = diffusion.x0_mse_loss(a, b, where=where, reduce_fn=None)
  assert np.all(unreduced[6:] == 0)
  np.testing.assert_allclose(np.sum(unreduced),
                             diffusion.x0_mse_loss(a, b, where=where, reduce_fn=jnp.sum),
                             rtol=1e-6)
  none = np.zeros(10, bool)
  assert float(diffusion.x0_mse_loss(a, b, where=none)) == 0.0
  g = jax.grad(lambda x: diffusion.x0_mse_loss(a, x, where=none))(jnp.asarray(b))
  assert np.all(np.isfinite(g)) and np.all(g == 0)
  # d/dx0_hat of the masked mean: 2 (x0_hat - x0) / (n_kept_rows * d) on kept rows.
  g = jax.jit(jax.grad(lambda x: diffusion.x0_mse_loss(a, x, where=where)))(jnp.asarray(b))
  np.testing.assert_allclose(g, 2 * (b - a) * where[:, None] / (6 * 4), rtol=1e-5, atol=1e-7)
  with pytest.raises(ValueError, match="Shape mismatch"):
    diffusion.x0_mse_loss(a, b[:, :2])
  with pytest.raises(ValueError, match="where"):
    diffusion.x0_mse_loss(a, b, where=where[:5])


def test_antithetic_timesteps():
  f = jax.jit(diffusion.antithetic_timesteps, static_argnums=(1, 2))
  for n in (6, 4001):
    t = f(jax.random.key(n), n, T)
    assert t.shape == (n,) and t.dtype == jnp.int32
    t = np.asarray(t)
    assert np.all((t >= 0) & (t < T))
    first = n // 2 + 1
    np.testing.assert_array_equal(t[first:], T - 1 - t[:n - first])  # entry first+i pairs i
  assert np.bincount(t, minlength=T).min() > 100  # every step is drawn
  empty = jax.eval_shape(lambda: diffusion.antithetic_timesteps(jax.random.key(0), 0, T))
  assert empty.shape == (0,)
  with pytest.raises(ValueError):
    diffusion.antithetic_timesteps(jax.random.key(0), -1, T)
