"""The reverse (ancestral) chain of CCDRec's DMA inference and NDI pools.

One ``jax.lax.scan`` over the steps ``n = T-1 .. 0``, every item at once; the
outputs of the requested steps come back as one ``[n_snapshots, n_items, d]``
array. The start point and the snapshot steps exist in two readings:

* official code (REFERENCE.md D.6): start ``x_{T-1} = q_sample(x0, T-1)``, the
  current embeddings noised once to the last step; snapshots after steps
  ``int((T-1)*0.75), int((T-1)*0.5), int((T-1)*0.25), 0`` (14, 9, 4, 0 for T=20);
* paper (Sec. 4.3.3 / Eq. 6): pools ``e^{3T/4}, e^{T/2}, e^{T/4}, e^0``. With the
  paper's 1-based steps, the output of 0-based step ``n`` is ``e^n``, so these
  are steps ``3T//4, T//2, T//4, 0`` (15, 10, 5, 0 for T=20): each official pool
  is one reverse step further along (less noisy) than the paper's. The paper
  also mentions starting from noise; :func:`chain_start` offers both starts.

Key schedule (so a step-by-step loop can reproduce the chain): the noise added
after step ``n > 0`` is ``jax.random.normal(jax.random.fold_in(key, n), x.shape)``;
step 0 adds none.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.diffusion.process import posterior_mean_variance, q_sample
from jaxrec.diffusion.schedules import Schedule

# Signature: (x_t [n_items, d], conditions, t [n_items] int32) -> x0_hat [n_items, d].
EstimatorFn = Callable[[jax.Array, Sequence[jax.Array], jax.Array], jax.Array]


def ndi_snapshot_steps(timesteps: int) -> tuple[int, ...]:
  """The official code's NDI snapshot steps ``(int((T-1)*f) for f in .75, .5, .25) + (0,)``.

  Args:
    timesteps: ``T``.

  Returns:
    Four 0-based step indices, noisiest (easiest pool) first: ``(14, 9, 4, 0)``
    for ``T = 20``.
  """
  last = timesteps - 1
  return (int(last * 0.75), int(last * 0.5), int(last * 0.25), 0)


def paper_snapshot_steps(timesteps: int) -> tuple[int, ...]:
  """The paper's NDI pools ``3T/4, T/2, T/4, 0`` as 0-based step indices.

  The output of 0-based reverse step ``n`` is the paper's ``e^n`` (its steps are
  1-based, the start ``e^T`` being the official ``x_{T-1}``), so the pools are
  the outputs of steps ``3T//4, T//2, T//4, 0``: ``(15, 10, 5, 0)`` for ``T = 20``
  versus the official code's ``(14, 9, 4, 0)`` (:func:`ndi_snapshot_steps`).

  Args:
    timesteps: ``T``.

  Returns:
    Four 0-based step indices, noisiest first.
  """
  return (min(3 * timesteps // 4, timesteps - 1), timesteps // 2, timesteps // 4, 0)


def start_from_noised(schedule: Schedule, x0: jax.typing.ArrayLike, key: jax.Array) -> jax.Array:
  """The official chain's start: ``x0`` noised once to the last step ``T - 1``.

  Args:
    schedule: the noise schedule.
    x0: ``[n_items, d]`` (or ``[..., d]``) clean embeddings.
    key: PRNG key of the forward noise.

  Returns:
    ``x_{T-1}``, shaped like ``x0``.
  """
  x0 = jnp.asarray(x0)
  noise = jax.random.normal(key, x0.shape, x0.dtype)
  return q_sample(schedule, x0, jnp.asarray(schedule.timesteps - 1, jnp.int32), noise)


def chain_start(
    schedule: Schedule,
    x0: jax.typing.ArrayLike,
    key: jax.Array,
    *,
    from_noise: bool,
) -> jax.Array:
  """The reverse chain's start point ``x_{T-1}``.

  Args:
    schedule: the noise schedule.
    x0: ``[n_items, d]`` (or ``[..., d]``) clean embeddings.
    key: PRNG key.
    from_noise: ``False``: the official start ``q_sample(x0, T-1)`` (with the
      CCDRec schedule about 90% of the signal survives, so the pools stay close
      to ``x0``); ``True``: pure ``N(0, I)`` noise, ignoring ``x0``'s values.

  Returns:
    ``x_{T-1}``, shaped like ``x0``.
  """
  if from_noise:
    x0 = jnp.asarray(x0)
    return jax.random.normal(key, x0.shape, x0.dtype)
  return start_from_noised(schedule, x0, key)


def reverse_chain(
    estimator_fn: EstimatorFn,
    schedule: Schedule,
    x_start: jax.typing.ArrayLike,
    conditions: Sequence[jax.typing.ArrayLike],
    key: jax.Array,
    *,
    snapshot_steps: Sequence[int],
    stochastic: bool = True,
) -> jax.Array:
  r"""Runs the x0-parameterised reverse chain from ``x_{T-1}`` and keeps snapshots.

  For ``n = T-1, ..., 0`` (one ``lax.scan``, all items at once):

  .. math::
    \hat x_0 = f_\theta(x_n, c, n), \quad
    \mu_n = c^{(1)}_n \hat x_0 + c^{(2)}_n x_n, \quad
    x_{n-1} = \mu_n + \sqrt{\tilde\beta_n}\, z_n \ (n > 0), \qquad x_{-1} = \mu_0

  with :math:`z_n` = ``normal(fold_in(key, n), x.shape)`` when ``stochastic``,
  and :math:`z_n = 0` otherwise (the deterministic posterior-mean chain).

  ``estimator_fn``, ``snapshot_steps`` and ``stochastic`` are static: under
  ``jax.jit`` close over them or mark them static. ``estimator_fn`` may be a
  bound NNX module (e.g. :class:`~jaxrec.diffusion.X0Estimator`; to keep its
  weights out of the compiled constants, ``nnx.merge`` it inside the jitted
  function) or any pure function.

  Args:
    estimator_fn: ``(x_t [n_items, d], conditions, t [n_items] int32) -> x0_hat
      [n_items, d]``.
    schedule: the noise schedule (``T`` steps).
    x_start: ``[n_items, d]`` start ``x_{T-1}`` (see :func:`chain_start`).
    conditions: condition tokens passed through to ``estimator_fn`` unchanged
      (for :class:`X0Estimator`: zero or more ``[n_items, d]`` arrays).
    key: PRNG key of the ancestral noise (unused if not ``stochastic``).
    snapshot_steps: 0-based steps whose OUTPUT is kept, in this order; step 0's
      output is the final sample. Repeats are allowed; e.g.
      :func:`ndi_snapshot_steps` or :func:`paper_snapshot_steps`.
    stochastic: ancestral sampling (the official chain) if ``True``, posterior
      means only if ``False``.

  Returns:
    ``[len(snapshot_steps), n_items, d]`` snapshots.

  Raises:
    ValueError: if a snapshot step is outside ``[0, T)`` or ``x_start`` is not
      ``[n_items, d]``.
  """
  x_start = jnp.asarray(x_start)
  if x_start.ndim != 2:
    raise ValueError(f"x_start must have shape [n_items, d]; got {x_start.shape}.")
  n_steps = schedule.timesteps
  snapshot_steps = tuple(int(s) for s in snapshot_steps)
  bad = [s for s in snapshot_steps if not 0 <= s < n_steps]
  if bad:
    raise ValueError(f"snapshot_steps must lie in [0, {n_steps}); got {bad}.")
  snap_at = jnp.asarray(np.asarray(snapshot_steps, np.int32).reshape(-1))
  n_items = x_start.shape[0]
  conditions = tuple(conditions)

  def step(carry, n):
    x, snaps = carry
    t = jnp.full((n_items,), n, jnp.int32)
    x0_hat = estimator_fn(x, conditions, t)
    mean, var, _ = posterior_mean_variance(schedule, x0_hat, x, t)
    if stochastic:
      z = jax.random.normal(jax.random.fold_in(key, n), x.shape, x.dtype)
      # var[0] is exactly 0, but the branch-free where keeps step 0 noise-free
      # even for a schedule built from rounded constants.
      x_next = jnp.where(n > 0, mean + jnp.sqrt(var) * z, mean)
    else:
      x_next = mean
    x_next = x_next.astype(x.dtype)
    # A select over the small snapshot buffer per step instead of stacking all
    # T outputs: memory stays O(n_snapshots * n_items * d) for any T.
    snaps = jnp.where((snap_at == n)[:, None, None], x_next[None], snaps)
    return (x_next, snaps), None

  snaps0 = jnp.zeros((len(snapshot_steps),) + x_start.shape, x_start.dtype)
  steps = jnp.arange(n_steps - 1, -1, -1, dtype=jnp.int32)
  (_, snaps), _ = jax.lax.scan(step, (x_start, snaps0), steps)
  return snaps
