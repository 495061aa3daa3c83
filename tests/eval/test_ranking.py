import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.data import CSR
from jaxrec.eval import Evaluator
from jaxrec.eval.metrics import METRICS, metric_keys


def _csr(rows_to_items, n_rows, n_cols):
  pairs = [(r, c) for r, cols in rows_to_items.items() for c in cols]
  rows, cols = zip(*pairs) if pairs else ((), ())
  return CSR.from_coo(np.array(rows, np.int64), np.array(cols, np.int64), n_rows, n_cols)


def _d(r):
  return 1.0 / np.log2(r + 1.0)


# Hand case: with item_emb = I, the dot-product scores are user_emb itself.
# user 0: train {0}, valid {5}, test {1, 2, 3, 4}; masking item 0 ranks 1, 3, 5, 2, 4.
# user 1: train {2}, no valid/test ground truth -> skipped.
# user 2: no train, test {3}; ranks 4, 3, then the 0-score ties in id order 0, 1, 2, 5.
_SCORES = np.array([
    [10., 9., 1., 8., 0., 7.],
    [0., 0., 9., 0., 0., 0.],
    [0., 0., 0., 1., 2., 0.],
], np.float32)
_TRAIN = _csr({0: [0], 1: [2]}, 3, 6)
_VALID = _csr({0: [5]}, 3, 6)
_TEST = _csr({0: [1, 2, 3, 4], 2: [3]}, 3, 6)
_EYE = np.eye(6, dtype=np.float32)


def test_hand_computed_test_split():
  ev = Evaluator(_TEST, _TRAIN, ks=(1, 2, 3))
  assert ev.n_users_evaluated == 2 and ev.ks == (1, 2, 3)
  got = ev(jnp.asarray(_SCORES), jnp.asarray(_EYE))
  assert list(got) == list(metric_keys((1, 2, 3)))
  assert all(isinstance(v, float) for v in got.values())
  # Hits: user 0 [1, 1, 0] (valid item 5 is NOT masked, so it takes rank 3),
  # user 2 [0, 1, 0]; |GT| = 4 and 1. The average is over users 0 and 2 only.
  per_user = {
      "recall@1": (1 / 4, 0.0),
      "recall@2": (2 / 4, 1.0),
      "recall@3": (2 / 4, 1.0),
      "precision@1": (1.0, 0.0),
      "precision@2": (1.0, 1 / 2),
      "precision@3": (2 / 3, 1 / 3),
      "ndcg@1": (1.0, 0.0),
      "ndcg@2": (1.0, _d(2) / _d(1)),
      "ndcg@3": ((_d(1) + _d(2)) / (_d(1) + _d(2) + _d(3)), _d(2) / _d(1)),
      "map@1": (1.0, 0.0),
      "map@2": ((1 + 1) / 2, (1 / 2) / 1),
      "map@3": ((1 + 1) / 3, (1 / 2) / 1),
  }
  for key, (u0, u2) in per_user.items():
    np.testing.assert_allclose(got[key], (u0 + u2) / 2, rtol=1e-6, err_msg=key)


def test_only_train_items_masked_for_each_split():
  users, top = Evaluator(_TEST, _TRAIN, ks=(3,)).topk(_SCORES, _EYE, k=3)
  np.testing.assert_array_equal(users, [0, 2])
  np.testing.assert_array_equal(top, [[1, 3, 5], [4, 3, 0]])  # Valid item 5 is ranked.
  # Validating: the test items are not masked either; user 0's valid item is at rank 3.
  ev = Evaluator(_VALID, _TRAIN, ks=(2, 3))
  assert ev.n_users_evaluated == 1
  got = ev(_SCORES, _EYE)
  assert got["recall@2"] == 0.0
  np.testing.assert_allclose(got["recall@3"], 1.0)
  np.testing.assert_allclose(got["ndcg@3"], _d(3) / _d(1), rtol=1e-6)


def test_ties_go_to_the_lower_item_id():
  # lax.top_k documents it and the evaluator relies on it: among equal scores the
  # lower index comes first (torch.topk leaves this unspecified).
  _, idx = jax.lax.top_k(jnp.array([1.0, 3.0, 3.0, 1.0, 3.0]), 4)
  np.testing.assert_array_equal(idx, [1, 2, 4, 0])
  train = _csr({0: [1, 4]}, 1, 6)
  test = _csr({0: [3]}, 1, 6)
  ev = Evaluator(test, train, ks=(2, 3))
  flat = np.zeros((1, 6), np.float32)  # Every item ties.
  _, top = ev.topk(flat, _EYE, k=6)
  # Unmasked items by id, then the masked (-inf) ones, also by id.
  np.testing.assert_array_equal(top, [[0, 2, 3, 5, 1, 4]])
  got = ev(flat, _EYE)
  assert got["recall@2"] == 0.0 and got["recall@3"] == 1.0


def _random_case(seed, n_users=40, n_items=60, d=8, integer=False):
  rng = np.random.default_rng(seed)
  train = rng.random((n_users, n_items)) < 0.15
  # Ground-truth sizes from 0 (skipped users) to more than max(k) = 50.
  sizes = rng.choice([0, 1, 3, 10, 55], n_users)
  test = np.zeros_like(train)
  for u, s in enumerate(sizes):
    free = np.flatnonzero(~train[u])
    test[u, rng.choice(free, min(s, free.size), replace=False)] = True
  if integer:  # Exact dot products with many ties.
    user_emb = rng.integers(-2, 3, (n_users, d)).astype(np.float32)
    item_emb = rng.integers(-2, 3, (n_items, d)).astype(np.float32)
  else:
    user_emb = rng.normal(size=(n_users, d)).astype(np.float32)
    item_emb = rng.normal(size=(n_items, d)).astype(np.float32)
  to_csr = lambda m: CSR.from_coo(*np.nonzero(m), n_users, n_items)  # noqa: E731
  return to_csr(train), to_csr(test), train, test, user_emb, item_emb


def _reference(train, test, scores, ks):
  """Brute-force MMRec evaluation: stable sort of -scores, training items last."""
  scores = np.where(train, -np.inf, scores.astype(np.float64))
  out = {key: [] for key in metric_keys(ks)}
  users = np.flatnonzero(test.any(axis=1))
  tops = []
  for u in users:
    order = np.argsort(-scores[u], kind="stable")  # Ties: lower id first, like lax.top_k.
    tops.append(order)
    hit = test[u, order]
    n_gt = int(test[u].sum())
    for k in ks:
      ranks = [r for r in range(1, k + 1) if hit[r - 1]]
      idcg = sum(_d(r) for r in range(1, min(n_gt, k) + 1))
      out[f"recall@{k}"].append(len(ranks) / n_gt)
      out[f"ndcg@{k}"].append(sum(_d(r) for r in ranks) / idcg)
      out[f"precision@{k}"].append(len(ranks) / k)
      out[f"map@{k}"].append(sum(hit[:r].sum() / r for r in ranks) / min(n_gt, k))
  return {key: float(np.mean(v)) for key, v in out.items()}, users, np.stack(tops)


@pytest.mark.parametrize("integer", [False, True], ids=["normal", "integer_ties"])
def test_matches_bruteforce_reference(integer):
  ks = (5, 10, 20, 50)
  train_csr, test_csr, train, test, user_emb, item_emb = _random_case(1, integer=integer)
  ev = Evaluator(test_csr, train_csr, ks=ks, batch_size=16)
  assert ev.n_blocks > 1  # Exercises padding of the last block.
  want, users, order = _reference(train, test, user_emb @ item_emb.T, ks)
  got = ev(user_emb, item_emb)
  assert ev.n_users_evaluated == users.size < train.shape[0]
  assert set(got) == set(want)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
  got_users, top = ev.topk(user_emb, item_emb, k=50)
  np.testing.assert_array_equal(got_users, users)
  np.testing.assert_array_equal(top, order[:, :50])


def test_batch_size_invariance_and_single_compile():
  train_csr, test_csr, *_, user_emb, item_emb = _random_case(2)
  n_traces = []

  def counting_dot(rows, items):
    n_traces.append(1)  # Runs at trace time only.
    return rows @ items.T

  small = Evaluator(test_csr, train_csr, batch_size=2, score_fn=counting_dot)
  large = Evaluator(test_csr, train_csr, batch_size=1000)
  assert small.n_blocks == -(-small.n_users_evaluated // 2) > 10
  assert large.n_blocks == 1 and large.batch_size == large.n_users_evaluated
  a, b = small(user_emb, item_emb), large(user_emb, item_emb)
  small(user_emb, item_emb)
  assert len(n_traces) == 1  # One program for every block and call.
  for key in a:
    np.testing.assert_allclose(a[key], b[key], rtol=1e-6, atol=1e-7, err_msg=key)
  for x, y in zip(small.topk(user_emb, item_emb, k=7), large.topk(user_emb, item_emb, k=7)):
    np.testing.assert_array_equal(x, y)


def test_custom_score_fn():
  train_csr, test_csr, train, test, user_emb, item_emb = _random_case(3)

  def neg_sq_dist(rows, items):
    return -jnp.sum((rows[:, None, :] - items[None, :, :]) ** 2, axis=-1)

  ev = Evaluator(test_csr, train_csr, ks=(5, 20), score_fn=neg_sq_dist)
  scores = -((user_emb[:, None, :] - item_emb[None]) ** 2).sum(-1)
  want, users, order = _reference(train, test, scores, (5, 20))
  got = ev(user_emb, item_emb)
  for key in want:
    np.testing.assert_allclose(got[key], want[key], rtol=1e-5, err_msg=key)
  users_out, top = ev.topk(user_emb, item_emb, k=3)
  assert top.shape == (users.size, 3) and top.dtype == np.int32
  np.testing.assert_array_equal(top, order[:, :3])


def test_no_ground_truth_and_bad_inputs():
  empty = _csr({}, 3, 6)
  ev = Evaluator(empty, _TRAIN, ks=(2,))
  assert ev.n_users_evaluated == 0
  assert ev(_SCORES, _EYE) == {f"{m}@2": 0.0 for m in METRICS}
  users, top = ev.topk(_SCORES, _EYE, k=2)
  assert users.shape == (0,) and top.shape == (0, 2)
  with pytest.raises(ValueError, match="k must be in"):
    Evaluator(_TEST, _TRAIN, ks=(7,))
  with pytest.raises(ValueError, match="Shape mismatch"):
    Evaluator(_TEST, _csr({}, 3, 5))
  ev = Evaluator(_TEST, _TRAIN, ks=(2,))
  with pytest.raises(ValueError, match="user_emb has 2 rows"):
    ev(_SCORES[:2], _EYE)
  with pytest.raises(ValueError, match="score_fn returned shape"):
    ev(_SCORES, _EYE[:5])
  with pytest.raises(ValueError, match="k must be in"):
    ev.topk(_SCORES, _EYE, k=0)


def test_several_splits_share_one_ranking_and_match_one_at_a_time():
  train_csr, test_csr, train, test, user_emb, item_emb = _random_case(3)
  # A second split with other users (some only there, some in both).
  rng = np.random.default_rng(7)
  other = np.zeros_like(test)
  for u in rng.choice(train.shape[0], train.shape[0] // 2, replace=False):
    free = np.flatnonzero(~train[u] & ~test[u])
    other[u, rng.choice(free, min(2, free.size), replace=False)] = True
  other_csr = CSR.from_coo(*np.nonzero(other), *other.shape)
  both = Evaluator({"valid": other_csr, "test": test_csr}, train_csr, batch_size=16)
  got = both(user_emb, item_emb)
  assert set(got) == {"valid", "test"}
  for name, csr in (("valid", other_csr), ("test", test_csr)):
    alone = Evaluator(csr, train_csr, batch_size=16)(user_emb, item_emb)
    for key in alone:
      np.testing.assert_allclose(got[name][key], alone[key], rtol=1e-6, err_msg=key)
  assert both.n_users_evaluated == int((test | other).any(1).sum())
