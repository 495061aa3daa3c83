import functools

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
  x0, c1, c2 = np.random.default_rng(0).normal(size=(3, N, D)).astype(np.float32)
  return sched, model, jnp.asarray(x0), (jnp.asarray(c1), jnp.asarray(c2))


# Tests call the chain through jit (also the way it is used): one compiled program
# per configuration instead of eager op-by-op compilation.
@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("snapshot_steps", "stochastic"))
def _chain(estimator_fn, sched, x, conds, key, *, snapshot_steps, stochastic):
  return diffusion.reverse_chain(estimator_fn, sched, x, conds, key,
                                 snapshot_steps=snapshot_steps, stochastic=stochastic)


@functools.partial(jax.jit, static_argnums=(0,))
def _step(estimator_fn, sched, x, conds, key, n, add_noise):
  t = jnp.full((x.shape[0],), n, jnp.int32)
  mean, var, _ = diffusion.posterior_mean_variance(sched, estimator_fn(x, conds, t), x, t)
  z = jax.random.normal(jax.random.fold_in(key, n), x.shape)
  return jnp.where(add_noise, mean + jnp.sqrt(var) * z, mean)


def _loop(estimator_fn, sched, x, conds, key, stochastic):
  """The official p_sample loop, step by step, with the documented key schedule."""
  outs = {}
  for n in reversed(range(sched.timesteps)):
    x = _step(estimator_fn, sched, x, conds, key, n, n > 0 and stochastic)
    outs[n] = x
  return outs


STEPS = (4, 0, 2, 5, 2)  # any order, repeats allowed, includes the first step (T-1)


def test_snapshot_step_readings():
  assert diffusion.ndi_snapshot_steps(20) == (14, 9, 4, 0)
  assert diffusion.paper_snapshot_steps(20) == (15, 10, 5, 0)
  assert diffusion.ndi_snapshot_steps(100) == (74, 49, 24, 0)
  assert diffusion.paper_snapshot_steps(5) == (3, 2, 1, 0)


def test_stochastic_chain_under_jit_equals_step_by_step_loop(setup):
  sched, model, x0, conds = setup
  graphdef, state = nnx.split(model)

  @jax.jit
  def run(state, sched, x_start, conds, key):
    # The module travels as state (no weights baked into the program as constants).
    est = nnx.merge(graphdef, state)
    return diffusion.reverse_chain(est, sched, x_start, conds, key, snapshot_steps=STEPS)

  x_start = diffusion.chain_start(sched, x0, jax.random.key(1), from_noise=False)
  key = jax.random.key(7)
  snaps = run(state, sched, x_start, conds, key)
  assert snaps.shape == (len(STEPS), N, D)
  want = _loop(model, sched, x_start, conds, key, stochastic=True)
  for i, s in enumerate(STEPS):
    np.testing.assert_allclose(snaps[i], want[s], rtol=1e-5, atol=1e-5, err_msg=f"step {s}")
  # The noise matters: another key gives another chain, and so does no noise.
  other = run(state, sched, x_start, conds, jax.random.key(8))
  assert not np.allclose(other[1], snaps[1], atol=1e-4)
  det = _loop(model, sched, x_start, conds, key, stochastic=False)
  assert not np.allclose(det[0], snaps[1], atol=1e-4)


def test_deterministic_chain_equals_loop_without_noise(setup):
  sched, model, x0, conds = setup
  x_start = diffusion.chain_start(sched, x0, jax.random.key(1), from_noise=False)
  snaps = _chain(model, sched, x_start, conds, jax.random.key(7), snapshot_steps=STEPS,
                 stochastic=False)
  want = _loop(model, sched, x_start, conds, jax.random.key(7), stochastic=False)
  for i, s in enumerate(STEPS):
    np.testing.assert_allclose(snaps[i], want[s], rtol=1e-5, atol=1e-5, err_msg=f"step {s}")


def test_pure_function_estimator_recovers_x0_at_step_0(setup):
  # An oracle estimator (x0_hat = the true x0, handed over as the condition): the
  # last posterior (coef1 = 1, coef2 = 0, variance 0) returns x0 exactly although
  # the chain is stochastic, because step 0 adds no noise.
  sched, _, x0, _ = setup
  oracle = lambda x, c, t: c[0]  # noqa: E731
  x_start = diffusion.chain_start(sched, x0, jax.random.key(2), from_noise=True)
  got = _chain(oracle, sched, x_start, (x0,), jax.random.key(0),
               snapshot_steps=tuple(range(T)), stochastic=True)
  want = _loop(oracle, sched, x_start, (x0,), jax.random.key(0), True)
  for s in range(T):
    np.testing.assert_allclose(got[s], want[s], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got[0], x0, rtol=1e-5, atol=1e-5)
  assert not np.allclose(got[1], x0, atol=1e-3)


def test_edge_cases(setup):
  sched, model, x0, conds = setup
  empty = jax.eval_shape(lambda: diffusion.reverse_chain(
      model, sched, x0, conds, jax.random.key(0), snapshot_steps=()))
  assert empty.shape == (0, N, D)
  with pytest.raises(ValueError, match="snapshot_steps"):
    diffusion.reverse_chain(model, sched, x0, conds, jax.random.key(0), snapshot_steps=(T,))
  with pytest.raises(ValueError, match="x_start"):
    diffusion.reverse_chain(model, sched, x0[None], conds, jax.random.key(0),
                            snapshot_steps=(0,))


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
