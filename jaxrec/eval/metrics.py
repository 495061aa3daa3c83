"""Per-user top-K ranking metrics with MMRec's definitions (``src/utils/metrics.py``).

Conventions: the leading axis is the user (batch) axis; position ``r - 1`` of a
ranked list holds rank ``r`` (1-based); masks are called ``where``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

METRICS = ("recall", "ndcg", "precision", "map")
DEFAULT_KS = (5, 10, 20, 50)


def metric_keys(ks: Sequence[int] = DEFAULT_KS) -> tuple[str, ...]:
  """Result names ``'<metric>@<k>'``, metric-major like MMRec's result dict.

  Args:
    ks: the cut-offs.

  Returns:
    ``('recall@k0', 'recall@k1', ..., 'map@k_last')``, ``4 * len(ks)`` names.
  """
  return tuple(f"{m}@{k}" for m in METRICS for k in ks)


def topk_metrics(
    hits: jax.typing.ArrayLike,
    n_gt: jax.typing.ArrayLike,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    where: jax.typing.ArrayLike | None = None,
) -> dict[str, jax.Array]:
  r"""Recall, NDCG, Precision and MAP at every ``k`` for each user.

  With :math:`h_r \in \{0, 1\}` the hit at rank :math:`r`, :math:`H_k = \sum_{r \le k} h_r`
  and :math:`G = |GT_u|`:

  .. math::
    \mathrm{Recall@}k = H_k / G, \qquad \mathrm{Precision@}k = H_k / k,

    \mathrm{NDCG@}k = \frac{\sum_{r \le k} h_r / \log_2(r + 1)}
                          {\sum_{r=1}^{\min(G, k)} 1 / \log_2(r + 1)}, \qquad
    \mathrm{MAP@}k = \frac{1}{\min(G, k)} \sum_{r \le k} h_r \frac{H_r}{r}.

  The recall denominator is all of ``G`` (not ``min(G, k)``), as in MMRec.

  Args:
    hits: ``[batch, max_k]`` bool; ``hits[u, r - 1]`` says whether the item that
      user ``u`` ranked ``r``-th is in the user's ground truth.
    n_gt: ``[batch]`` int, ground-truth size ``|GT_u|`` (all of it, not only the
      part that could fit in the top ``max_k``).
    ks: cut-offs, each in ``[1, max_k]``; a Python sequence (static under jit).
    where: optional ``[batch]`` bool; users with ``False`` (e.g. padding) get 0.
      Users with ``n_gt == 0`` also get 0 whatever ``where`` says.

  Returns:
    ``{'recall@k', 'ndcg@k', 'precision@k', 'map@k'}`` for each ``k``, every value
    ``[batch]`` float32; the keys are :func:`metric_keys` (``jax.jit`` returns
    dicts with sorted keys, so do not rely on their order).

  Examples:
    >>> hits = jnp.array([[True, False, True]])
    >>> m = topk_metrics(hits, jnp.array([4]), ks=(1, 3))
    >>> print(f"{m['recall@3'][0]:.4f} {m['map@3'][0]:.4f}")
    0.5000 0.5556
  """
  hits = jnp.asarray(hits)
  n_gt = jnp.asarray(n_gt)
  if hits.ndim != 2 or n_gt.shape != hits.shape[:1]:
    raise ValueError(f"Shape mismatch: hits {hits.shape} must be [batch, max_k] and "
                     f"n_gt {n_gt.shape} must be [batch].")
  max_k = hits.shape[1]
  ks = tuple(int(k) for k in ks)
  if not ks or min(ks) < 1 or max(ks) > max_k:
    raise ValueError(f"Every k must be in [1, {max_k}] (hits.shape[1]); got {ks}.")

  h = hits.astype(jnp.float32)
  ranks = jnp.arange(1, max_k + 1, dtype=jnp.float32)  # [max_k]
  discounts = 1.0 / jnp.log2(ranks + 1.0)  # [max_k]
  # Running sums over ranks: entry r - 1 holds the value over the first r ranks,
  # so one cumsum per quantity serves every k.
  n_hits = jnp.cumsum(h, axis=1)  # [batch, max_k]
  dcg = jnp.cumsum(h * discounts, axis=1)
  sum_prec = jnp.cumsum(h * n_hits / ranks, axis=1)
  ideal = jnp.cumsum(discounts)  # [max_k]; IDCG of a list with r hits up front.

  valid = n_gt > 0
  if where is not None:
    valid = valid & jnp.asarray(where, dtype=bool)
  n_gt_f = jnp.maximum(n_gt, 1).astype(jnp.float32)  # Avoid 0/0 for skipped users.
  zero = jnp.zeros_like(n_gt_f)

  out: dict[str, list[tuple[int, jax.Array]]] = {m: [] for m in METRICS}
  for k in ks:
    cut = jnp.clip(n_gt, 1, k)  # [batch] min(|GT|, k), >= 1 so the gather is in range.
    out["recall"].append((k, n_hits[:, k - 1] / n_gt_f))
    out["ndcg"].append((k, dcg[:, k - 1] / ideal[cut - 1]))
    out["precision"].append((k, n_hits[:, k - 1] / k))
    out["map"].append((k, sum_prec[:, k - 1] / cut.astype(jnp.float32)))
  return {f"{m}@{k}": jnp.where(valid, v, zero) for m in METRICS for k, v in out[m]}
