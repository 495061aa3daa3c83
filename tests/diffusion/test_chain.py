import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxrec import diffusion

T, N, D = 6, 4, 8


@pytest.fixture(scope="module")
def setup():
  sched = diffusion.make_schedule("linear", T, beta_start=0.01, beta_end=0.2)
  model = diffusion.X0Estimator(D, rngs=nnx.Rngs(0))
  k0, k1, k2 = jax.random.split(jax.random.key(0), 3)
  x0 = jax.random.normal(k0, (N, D))
  conds = (jax.random.normal(k1, (N, D)), jax.random.normal(k2, (N, D)))
  return sched, model, x0, conds


def _loop(estimator_fn, sched, x, conds, key, stochastic):
  """The official p_sample loop, step by step, with the documented key schedule."""
  outs = {}
  for n in reversed(range(sched.timesteps)):
    t = jnp.full((x.shape[0],), n, jnp.int32)
    mean, var, _ = diffusion.posterior_mean_variance(sched, estimator_fn(x, conds, t), x, t)
    if n > 0 and stochastic:
      x = mean + jnp.sqrt(var) * jax.random.normal(jax.random.fold_in(key, n), x.shape)
    else:
      x = mean
    outs[n] = x
  return outs


def test_snapshot_step_readings():
  assert diffusion.ndi_snapshot_steps(20) == (14, 9, 4, 0)
  assert diffusion.paper_snapshot_steps(20) == (15, 10, 5, 0)
  assert diffusion.ndi_snapshot_steps(100) == (74, 49, 24, 0)
  assert diffusion.paper_snapshot_steps(5) == (3, 2, 1, 0)


@pytest.mark.parametrize("stochastic", [True, False])
def test_chain_equals_step_by_step_loop(setup, stochastic):
  sched, model, x0, conds = setup
  key = jax.random.key(7)
  x_start = diffusion.chain_start(sched, x0, jax.random.key(1), from_noise=False)
  steps = (4, 0, 2, 5, 2)  # any order, repeats allowed, includes the first step
  snaps = diffusion.reverse_chain(model, sched, x_start, conds, key, snapshot_steps=steps,
                                  stochastic=stochastic)
  assert snaps.shape == (len(steps), N, D)
  want = _loop(model, sched, x_start, conds, key, stochastic)
  for i, s in enumerate(steps):
    np.testing.assert_allclose(snaps[i], want[s], rtol=1e-5, atol=1e-5, err_msg=f"step {s}")
  if stochastic:  # the noise matters, and a different key gives a different chain
    other = diffusion.reverse_chain(model, sched, x_start, conds, jax.random.key(8),
                                    snapshot_steps=steps)
    assert not np.allclose(other[0], snaps[0], atol=1e-4)
    det = _loop(model, sched, x_start, conds, key, stochastic=False)
    assert not np.allclose(det[0], snaps[1], atol=1e-4)


def test_chain_under_jit_with_split_module(setup):
  sched, model, x0, conds = setup
  graphdef, state = nnx.split(model)
  steps = diffusion.ndi_snapshot_steps(T)

  @jax.jit
  def run(state, sched, x0, conds, key):
    est = nnx.merge(graphdef, state)
    k_start, k_chain = jax.random.split(key)
    x_start = diffusion.chain_start(sched, x0, k_start, from_noise=False)
    return diffusion.reverse_chain(est, sched, x_start, conds, k_chain, snapshot_steps=steps)

  key = jax.random.key(3)
  got = run(state, sched, x0, conds, key)
  k_start, k_chain = jax.random.split(key)
  x_start = diffusion.chain_start(sched, x0, k_start, from_noise=False)
  eager = diffusion.reverse_chain(model, sched, x_start, conds, k_chain, snapshot_steps=steps)
  np.testing.assert_allclose(got, eager, rtol=1e-5, atol=1e-5)
  assert got.shape == (4, N, D)


def test_oracle_estimator_recovers_x0_at_step_0(setup):
  # With x0_hat = x0 the last posterior (coef1 = 1, coef2 = 0, variance 0) returns
  # x0 exactly, noise or not: step 0 adds no noise.
  sched, _, x0, _ = setup
  oracle = lambda x, c, t: x0  # noqa: E731
  x_start = diffusion.chain_start(sched, x0, jax.random.key(2), from_noise=True)
  for stochastic in (True, False):
    out = diffusion.reverse_chain(oracle, sched, x_start, (), jax.random.key(5),
                                  snapshot_steps=(0,), stochastic=stochastic)
    np.testing.assert_allclose(out[0], x0, rtol=1e-5, atol=1e-5)


def test_pure_function_estimator_and_edge_cases(setup):
  sched, _, x0, conds = setup
  fn = lambda x, c, t: 0.5 * x + c[0] + t[:, None] * 0.01  # noqa: E731
  got = diffusion.reverse_chain(fn, sched, x0, conds, jax.random.key(0),
                                snapshot_steps=tuple(range(T)))
  want = _loop(fn, sched, x0, conds, jax.random.key(0), True)
  for s in range(T):
    np.testing.assert_allclose(got[s], want[s], rtol=1e-5, atol=1e-5)
  empty = diffusion.reverse_chain(fn, sched, x0, conds, jax.random.key(0), snapshot_steps=())
  assert empty.shape == (0, N, D)
  with pytest.raises(ValueError, match="snapshot_steps"):
    diffusion.reverse_chain(fn, sched, x0, conds, jax.random.key(0), snapshot_steps=(T,))
  with pytest.raises(ValueError, match="x_start"):
    diffusion.reverse_chain(fn, sched, x0[None], conds, jax.random.key(0), snapshot_steps=(0,))


def test_chain_start(setup):
  sched, _, x0, _ = setup
  key = jax.random.key(11)
  noised = diffusion.chain_start(sched, x0, key, from_noise=False)
  want = diffusion.q_sample(sched, x0, jnp.full((N,), T - 1), jax.random.normal(key, x0.shape))
  np.testing.assert_allclose(noised, want, rtol=1e-6)
  np.testing.assert_allclose(diffusion.start_from_noised(sched, x0, key), noised)
  pure = diffusion.chain_start(sched, x0, key, from_noise=True)
  np.testing.assert_allclose(pure, jax.random.normal(key, x0.shape))
  np.testing.assert_allclose(diffusion.chain_start(sched, 3 * x0, key, from_noise=True), pure)
