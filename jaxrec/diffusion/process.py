"""Forward process, posterior and training-time helpers of an x0-predicting DDPM.

Axis conventions: the last axis of ``x`` is the feature axis ``d``; all leading
axes are batch axes, and a timestep array ``t`` has the leading shape
(``x.shape[:-1]``, or anything broadcastable to it, e.g. a scalar). Steps are
0-based, ``0 <= t < T``; out-of-range ``t`` cannot be checked under ``jit`` and is
clamped by the gather, so keep it in range.

Everything is a pure function of arrays and a :class:`~jaxrec.diffusion.Schedule`
(usable under ``jit``, ``vmap`` and ``grad``).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jaxrec.diffusion.schedules import Schedule


def _at(coef: jax.Array, t: jax.Array, ndim: int) -> jax.Array:
  """``coef[t]`` with trailing singleton axes so it broadcasts against ``[..., d]``."""
  out = jnp.take(coef, t, mode="clip")
  return out.reshape(out.shape + (1,) * (ndim - out.ndim))


def _check_same_shape(a: jax.Array, b: jax.Array, names: str) -> None:
  if a.shape != b.shape:
    raise ValueError(f"Shape mismatch ({names}): got {a.shape} and {b.shape}.")


def q_sample(
    schedule: Schedule,
    x0: jax.typing.ArrayLike,
    t: jax.typing.ArrayLike,
    noise: jax.typing.ArrayLike,
) -> jax.Array:
  r"""Samples the forward process :math:`q(x_t \mid x_0)` by reparameterisation.

  .. math::
    x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1 - \bar\alpha_t}\, \epsilon

  Args:
    schedule: the noise schedule.
    x0: ``[..., d]`` clean inputs.
    t: ``[...]`` integer steps in ``[0, T)`` (or a scalar shared by all rows).
    noise: ``[..., d]`` standard-normal draws :math:`\epsilon`.

  Returns:
    ``[..., d]`` noised inputs :math:`x_t`.

  Examples:
    >>> from jaxrec.diffusion import make_schedule
    >>> s = make_schedule('linear', 20)
    >>> x = q_sample(s, jnp.ones((2, 3)), jnp.array([0, 19]), jnp.zeros((2, 3)))
    >>> print(f'{float(x[1, 0]):.4f}')  # sqrt(alpha_bar_19)
    0.9038
  """
  x0, noise, t = jnp.asarray(x0), jnp.asarray(noise), jnp.asarray(t)
  _check_same_shape(x0, noise, "x0, noise")
  return (_at(schedule.sqrt_alphas_cumprod, t, x0.ndim) * x0
          + _at(schedule.sqrt_one_minus_alphas_cumprod, t, x0.ndim) * noise)


def posterior_mean_variance(
    schedule: Schedule,
    x0_hat: jax.typing.ArrayLike,
    x_t: jax.typing.ArrayLike,
    t: jax.typing.ArrayLike,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  r"""Mean and variance of the posterior :math:`q(x_{t-1} \mid x_t, \hat x_0)`.

  With an x0-estimator this is the reverse step :math:`p_\theta(x_{t-1} \mid x_t)`
  of the official CCDRec code (the paper's Eq. 3 writes the epsilon-form mean
  instead; see REFERENCE.md D.10).

  .. math::
    \mu = c^{(1)}_t \hat x_0 + c^{(2)}_t x_t, \qquad
    \sigma^2 = \beta_t \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t}

  Args:
    schedule: the noise schedule.
    x0_hat: ``[..., d]`` estimate of :math:`x_0`.
    x_t: ``[..., d]`` current noised inputs.
    t: ``[...]`` integer steps in ``[0, T)`` (or a scalar).

  Returns:
    ``(mean, variance, log_variance)``: ``mean`` is ``[..., d]``; ``variance``
    and ``log_variance`` (the DDPM-clipped log, finite at ``t = 0``) are
    ``[..., 1]``, broadcastable against ``mean``. ``variance`` is exactly 0 at
    ``t = 0``.
  """
  x0_hat, x_t, t = jnp.asarray(x0_hat), jnp.asarray(x_t), jnp.asarray(t)
  _check_same_shape(x0_hat, x_t, "x0_hat, x_t")
  n = x_t.ndim
  mean = (_at(schedule.posterior_mean_coef1, t, n) * x0_hat
          + _at(schedule.posterior_mean_coef2, t, n) * x_t)
  return (mean, _at(schedule.posterior_variance, t, n),
          _at(schedule.posterior_log_variance_clipped, t, n))


def x0_mse_loss(
    x0: jax.typing.ArrayLike,
    x0_hat: jax.typing.ArrayLike,
    *,
    where: jax.typing.ArrayLike | None = None,
    reduce_fn: Callable[..., jax.Array] | None = jnp.mean,
) -> jax.Array:
  r"""The diffusion loss of an x0-estimator: squared error, averaged over elements.

  .. math::
    \mathcal{L}_{dm} = \frac{1}{N d} \sum_{i=1}^{N} \lVert x_{0,i} - \hat x_{0,i} \rVert^2

  With ``reduce_fn=jnp.mean`` and no mask this is PyTorch's
  ``F.mse_loss(x0, x0_hat)`` (mean over ALL elements, rows and features), the
  official CCDRec loss.

  Args:
    x0: ``[..., d]`` targets.
    x0_hat: ``[..., d]`` estimates.
    where: optional boolean ``[...]`` row mask; masked rows contribute 0 and
      are excluded from the mean's denominator (an all-masked mean is 0).
    reduce_fn: ``jnp.mean`` (default), ``jnp.sum``, or ``None`` for the
      element-wise ``[..., d]`` loss (masked rows zeroed).

  Returns:
    A scalar, or ``[..., d]`` if ``reduce_fn is None``.

  Examples:
    >>> loss = x0_mse_loss(jnp.zeros((2, 2)), jnp.array([[1.0, 1.0], [0.0, 2.0]]))
    >>> print(f'{loss:.4f}')
    1.5000
  """
  x0, x0_hat = jnp.asarray(x0), jnp.asarray(x0_hat)
  _check_same_shape(x0, x0_hat, "x0, x0_hat")
  loss = jnp.square(x0_hat - x0)
  if where is not None:
    where = jnp.asarray(where)
    if where.shape != x0.shape[:-1]:
      raise ValueError(
          f"Shape mismatch: where must have shape {x0.shape[:-1]} (the rows of x0); "
          f"got {where.shape}.")
    where = jnp.broadcast_to(where[..., None], loss.shape)
    loss = jnp.where(where, loss, 0.0)  # Zero (not NaN) grads for masked rows.
  if reduce_fn is None:
    return loss
  if reduce_fn is jnp.mean and where is not None:
    return jnp.sum(loss) / jnp.maximum(jnp.sum(where), 1)  # All-masked -> 0.
  return reduce_fn(loss)


def antithetic_timesteps(key: jax.Array, n: int, timesteps: int) -> jax.Array:
  r"""Training steps drawn in antithetic pairs :math:`(t, T - 1 - t)`.

  Draws :math:`\lfloor n/2 \rfloor + 1` steps uniformly from
  :math:`\{0, \dots, T-1\}`, appends their partners :math:`T - 1 - t` and keeps
  the first ``n`` (``ccdrec.calculate_loss``, after DiffuRec/DreamRec), so entry
  ``n//2 + 1 + i`` is the partner of entry ``i``: a batch sees about as many
  low-noise as high-noise steps, which lowers the variance of the loss estimate.
  (For ``n = 2`` the truncation leaves no pair, exactly as the official code.)

  Args:
    key: a PRNG key.
    n: static number of steps to return (e.g. the number of batch rows).
    timesteps: ``T``.

  Returns:
    ``[n]`` int32 steps in ``[0, T)``.

  Examples:
    >>> t = antithetic_timesteps(jax.random.key(0), 6, 20)  # 4 draws + 2 partners
    >>> bool(jnp.all(t[:2] + t[4:] == 19))
    True
  """
  if n < 0:
    raise ValueError(f"n must be >= 0; got {n}.")
  if timesteps < 1:
    raise ValueError(f"timesteps must be >= 1; got {timesteps}.")
  t = jax.random.randint(key, (n // 2 + 1,), 0, timesteps, dtype=jnp.int32)
  return jnp.concatenate([t, timesteps - 1 - t])[:n]
