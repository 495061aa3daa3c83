import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.eval import metrics as metrics_lib
from jaxrec.eval.metrics import metric_keys, topk_metrics

_jit_metrics = jax.jit(topk_metrics, static_argnames="ks")


def _d(r):
  """Discount of 1-based rank r."""
  return 1.0 / np.log2(r + 1.0)


def _reference(hits_row, n_gt, k):
  """MMRec's four metrics for one user, straight from the definitions."""
  if n_gt == 0:
    return dict(recall=0.0, ndcg=0.0, precision=0.0, map=0.0)
  hit_ranks = [r for r in range(1, k + 1) if hits_row[r - 1]]
  n_hits = len(hit_ranks)
  dcg = sum(_d(r) for r in hit_ranks)
  idcg = sum(_d(r) for r in range(1, min(n_gt, k) + 1))
  ap = sum(sum(hits_row[:r]) / r for r in hit_ranks)
  return dict(recall=n_hits / n_gt, ndcg=dcg / idcg, precision=n_hits / k,
              map=ap / min(n_gt, k))


def test_hand_computed_more_and_fewer_gt_than_k():
  hits = jnp.array([
      [True, False, True, False],  # |GT| = 5 > every k.
      [False, True, False, False],  # |GT| = 1 < every k.
  ])
  m = _jit_metrics(hits, jnp.array([5, 1]), ks=(2, 4))
  expected = {
      # User 0: hits at ranks 1 and 3.
      "recall@2": [1 / 5, 1.0],
      "recall@4": [2 / 5, 1.0],
      "precision@2": [1 / 2, 1 / 2],
      "precision@4": [2 / 4, 1 / 4],
      # IDCG over min(|GT|, k) ranks: 2 and 4 for user 0, 1 for user 1.
      "ndcg@2": [_d(1) / (_d(1) + _d(2)), _d(2) / _d(1)],
      "ndcg@4": [(_d(1) + _d(3)) / (_d(1) + _d(2) + _d(3) + _d(4)), _d(2) / _d(1)],
      # MAP: Precision@r summed over hit ranks r <= k, over min(|GT|, k).
      "map@2": [(1 / 1) / 2, (1 / 2) / 1],
      "map@4": [(1 / 1 + 2 / 3) / 4, (1 / 2) / 1],
  }
  assert sorted(m) == sorted(metric_keys((2, 4)))
  for key, want in expected.items():
    np.testing.assert_allclose(m[key], want, rtol=1e-6, err_msg=key)


def test_recall_denominator_is_all_gt_not_min():
  hits = jnp.ones((1, 3), dtype=bool)
  m = topk_metrics(hits, jnp.array([10]), ks=(3,))
  np.testing.assert_allclose(m["recall@3"], [0.3])
  np.testing.assert_allclose(m["ndcg@3"], [1.0])  # All of the first min(10, 3) ranks hit.
  np.testing.assert_allclose(m["map@3"], [1.0])


def test_masked_and_empty_users_are_zero():
  hits = jnp.ones((3, 2), dtype=bool)
  m = topk_metrics(hits, jnp.array([2, 0, 2]), ks=(1, 2), where=jnp.array([True, True, False]))
  for key, v in m.items():
    assert v.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(v)[1:], [0.0, 0.0], err_msg=key)
    assert np.isfinite(np.asarray(v)).all()
  np.testing.assert_allclose(m["recall@2"][0], 1.0)


def test_matches_bruteforce_on_random_hits():
  rng = np.random.default_rng(0)
  batch, max_k, ks = 64, 50, (5, 10, 20, 50)
  n_gt = rng.integers(0, 70, batch)
  hits = rng.random((batch, max_k)) < 0.2
  # Never more hits than ground truth, as in a real ranking.
  hits &= np.cumsum(hits, axis=1) <= n_gt[:, None]
  m = _jit_metrics(jnp.asarray(hits), jnp.asarray(n_gt), ks=ks)
  for k in ks:
    ref = [_reference(hits[u], int(n_gt[u]), k) for u in range(batch)]
    for name in metrics_lib.METRICS:
      np.testing.assert_allclose(m[f"{name}@{k}"], [r[name] for r in ref], rtol=1e-5,
                                 atol=1e-7, err_msg=f"{name}@{k}")


def test_invalid_inputs_raise():
  with pytest.raises(ValueError, match="k must be in"):
    topk_metrics(jnp.zeros((2, 3), bool), jnp.ones(2, jnp.int32), ks=(5,))
  with pytest.raises(ValueError, match="Shape mismatch"):
    topk_metrics(jnp.zeros((2, 3), bool), jnp.ones(3, jnp.int32), ks=(1,))


def test_doctests():
  result = doctest.testmod(metrics_lib)
  assert result.attempted > 0 and result.failed == 0
