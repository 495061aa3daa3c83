"""On-device epoch batching: shuffle train edges, cut batches, draw negatives."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrec.negatives import ExclusionIndex, uniform_negatives


class Batch(NamedTuple):
  """BPR triples. Each field ``[batch]`` (or ``[n_batches, batch]`` for an epoch).

  ``mask`` is False on padding rows, which must not change any loss.
  """

  users: jax.Array
  pos_items: jax.Array
  neg_items: jax.Array
  mask: jax.Array


def num_batches(n_edges: int, batch_size: int) -> int:
  """Batches per epoch; the last partial batch is kept (padded)."""
  return -(-n_edges // batch_size)


def epoch_batches(
    key: jax.Array, edges: jax.Array, index: ExclusionIndex, batch_size: int
) -> Batch:
  """All batches of one epoch, MMRec's way, as ``[n_batches, batch_size]`` arrays.

  The train edges are shuffled, cut into consecutive batches of ``batch_size``
  (the last one padded, with ``mask`` False on padding), and every positive
  gets one uniform negative that is never a training positive of its user.

  Args:
    key: PRNG key for this epoch.
    edges: ``[n_edges, 2]`` int32 ``(user, item)`` train pairs.
    index: the train exclusion index (see :func:`jaxrec.negatives.exclusion_index`).
    batch_size: rows per batch (static).

  Returns:
    A :class:`Batch` of ``[n_batches, batch_size]`` arrays.
  """
  n_edges = edges.shape[0]
  n_batches = num_batches(n_edges, batch_size)
  k_perm, k_neg = jax.random.split(key)
  order = jax.random.permutation(k_perm, n_edges)
  pad = n_batches * batch_size - n_edges
  mask = jnp.arange(n_batches * batch_size) < n_edges
  order = jnp.concatenate([order, jnp.zeros(pad, order.dtype)])
  users, pos = edges[order, 0], edges[order, 1]
  neg = uniform_negatives(k_neg, users, index)
  shape = (n_batches, batch_size)
  return Batch(users.reshape(shape), pos.reshape(shape), neg.reshape(shape), mask.reshape(shape))
