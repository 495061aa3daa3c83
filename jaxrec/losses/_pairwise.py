"""Pairwise ranking losses over (user, positive, negative) triples."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp


def _safe_reduce(
    loss: jax.Array,
    where: jax.Array | None,
    reduce_fn: Callable[..., jax.Array] | None,
) -> jax.Array:
  if where is not None:
    loss = jnp.where(where, loss, 0.0)  # Zero (not NaN) grads for masked entries.
  if reduce_fn is None:
    return loss
  if reduce_fn is jnp.mean and where is not None:
    return jnp.sum(loss) / jnp.maximum(jnp.sum(where), 1)  # All-masked -> 0.
  return reduce_fn(loss)


def bpr_loss(
    pos_scores: jax.typing.ArrayLike,
    neg_scores: jax.typing.ArrayLike,
    *,
    where: jax.typing.ArrayLike | None = None,
    reduce_fn: Callable[..., jax.Array] | None = jnp.mean,
) -> jax.Array:
  r"""Bayesian Personalized Ranking loss.

  .. math::
    \ell(s^+, s^-) = -\log \sigma(s^+ - s^-) = \mathrm{softplus}(s^- - s^+)

  MMRec's ``BPRLoss`` adds ``1e-10`` inside the log; the softplus form is the
  same function without the floor and stays finite for any score gap.

  Args:
    pos_scores: ``[batch]`` scores of observed (user, item) pairs.
    neg_scores: ``[batch]`` or ``[batch, num_negatives]`` scores of sampled
      negatives; ``pos_scores`` is broadcast over the last axis if needed.
    where: optional boolean mask with the shape of ``neg_scores``; masked
      triples contribute 0 and are excluded from the mean.
    reduce_fn: ``jnp.mean`` (default), ``jnp.sum``, or ``None`` for the
      unreduced ``neg_scores``-shaped loss.

  Returns:
    A scalar, or an array shaped like ``neg_scores`` if ``reduce_fn is None``.

  Examples:
    >>> loss = bpr_loss(jnp.array([2.0, 0.0]), jnp.array([0.0, 2.0]))
    >>> print(f'{loss:.4f}')
    1.1269

  References:
    Rendle et al., BPR: Bayesian Personalized Ranking from Implicit Feedback, 2009.
  """
  pos_scores, neg_scores = jnp.asarray(pos_scores), jnp.asarray(neg_scores)
  if neg_scores.ndim == pos_scores.ndim + 1:
    pos_scores = jnp.broadcast_to(pos_scores[..., None], neg_scores.shape)
  if pos_scores.shape != neg_scores.shape:
    raise ValueError(f"Shape mismatch: got {pos_scores.shape} and {neg_scores.shape}.")
  loss = jax.nn.softplus(neg_scores - pos_scores)
  return _safe_reduce(loss, None if where is None else jnp.asarray(where), reduce_fn)
