"""Embedding regularizers, normalised per example like MMRec's."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _masked_rows(
    embeddings: tuple[jax.typing.ArrayLike, ...], where: jax.typing.ArrayLike | None
) -> tuple[list[jax.Array], jax.Array]:
  if not embeddings:
    raise ValueError("Expected at least one embedding array.")
  arrays = [jnp.asarray(e) for e in embeddings]
  n = arrays[0].shape[0]
  for e in arrays:
    if e.ndim != 2 or e.shape[0] != n:
      raise ValueError(
          f"Shape mismatch: expected [{n}, d] arrays, got {[a.shape for a in arrays]}.")
  if where is None:
    return arrays, jnp.asarray(n, jnp.float32)
  where = jnp.asarray(where, bool)
  if where.shape != (n,):
    raise ValueError(f"Shape mismatch: where has shape {where.shape}, expected ({n},).")
  arrays = [jnp.where(where[:, None], e, 0.0) for e in arrays]
  return arrays, jnp.maximum(jnp.sum(where), 1).astype(jnp.float32)


def _frobenius(x: jax.Array) -> jax.Array:
  # sqrt'(0) is infinite; the double-where keeps the gradient at an all-zero
  # input (e.g. an all-masked batch) at 0 instead of NaN.
  sq = jnp.sum(x * x)
  safe = jnp.where(sq > 0, sq, 1.0)
  return jnp.where(sq > 0, jnp.sqrt(safe), 0.0)


def emb_loss(
    *embeddings: jax.typing.ArrayLike, where: jax.typing.ArrayLike | None = None
) -> jax.Array:
  r"""MMRec's ``EmbLoss``: sum of Frobenius norms (not squared) over batch size.

  .. math::
    \frac{1}{B} \sum_k \lVert E_k \rVert_F

  This is the ``reg_loss`` of MMRec's BPR-MF, LightGCN and VBPR, applied to the
  batch's ego (layer-0) embeddings of users, positives and negatives.

  Args:
    *embeddings: one or more ``[batch, d_k]`` arrays.
    where: optional ``[batch]`` bool mask; masked rows are zeroed and the
      divisor is the number of unmasked rows.

  Returns:
    A scalar.

  Examples:
    >>> print(f"{emb_loss(jnp.array([[3.0, 4.0], [0.0, 0.0]])):.2f}")
    2.50
  """
  arrays, n = _masked_rows(embeddings, where)
  return sum(_frobenius(e) for e in arrays) / n


def l2_reg(
    *embeddings: jax.typing.ArrayLike, where: jax.typing.ArrayLike | None = None
) -> jax.Array:
  r"""Squared L2 penalty per example, as in LightGCN's official code.

  .. math::
    \frac{1}{2B} \sum_k \lVert E_k \rVert_F^2

  Args:
    *embeddings: one or more ``[batch, d_k]`` arrays.
    where: optional ``[batch]`` bool mask; masked rows are zeroed and the
      divisor is the number of unmasked rows.

  Returns:
    A scalar.

  Examples:
    >>> print(f"{l2_reg(jnp.array([[3.0, 4.0], [0.0, 0.0]])):.2f}")
    6.25
  """
  arrays, n = _masked_rows(embeddings, where)
  return 0.5 * sum(jnp.sum(e * e) for e in arrays) / n
