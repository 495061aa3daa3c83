import doctest
import time

import numpy as np
import pytest

from jaxrec.data import make_synthetic, mmrec_split_counts, synthetic

SMALL = dict(n_users=150, n_items=80, mean_interactions=12, image_dim=24, text_dim=12)


@pytest.fixture(scope="module")
def default():
  start = time.perf_counter()
  ds = make_synthetic()
  # The spec is < 2 s; the bound here is looser because test machines are shared.
  assert time.perf_counter() - start < 6.0
  return ds


def _factors(seed=0, n_users=2000, n_items=1000, n_factors=16, popularity_skew=1.0):
  return synthetic._planted_factors(
      seed=seed, n_users=n_users, n_items=n_items, n_factors=n_factors,
      popularity_skew=popularity_skew)


def _mmrec_reference(n):
  # preprocessing/1splitting.ipynb, written out per user.
  if n < 10:
    return n - 2, 1, 1
  n_vt = int(0.2 * n)
  return n - n_vt, n_vt // 2, n_vt - n_vt // 2


def test_doctests():
  result = doctest.testmod(synthetic)
  assert result.failed == 0 and result.attempted > 0


def test_mmrec_split_counts_matches_the_rule():
  n = np.arange(3, 500)
  got = np.stack(mmrec_split_counts(n), axis=1)
  np.testing.assert_array_equal(got, [_mmrec_reference(int(k)) for k in n])
  assert [c.tolist() for c in mmrec_split_counts(np.array([15, 9]))] == [[12, 7], [1, 1], [2, 1]]
  with pytest.raises(ValueError, match="at least 3"):
    mmrec_split_counts(np.array([5, 2]))


def test_default_shapes_and_split_rule(default):
  ds = default
  assert (ds.name, ds.n_users, ds.n_items) == ("synthetic", 2000, 1000)
  assert ds.features["image"].shape == (1000, 4096)
  assert ds.features["text"].shape == (1000, 384)
  assert all(x.dtype == np.float32 for x in ds.features.values())
  assert ds.features["image"].min() >= 0.0
  np.testing.assert_allclose(np.linalg.norm(ds.features["text"], axis=1), 1.0, rtol=1e-5)
  n_train, n_valid, n_test = (ds.split(s).row_lengths() for s in ("train", "valid", "test"))
  n = n_train + n_valid + n_test
  assert n.min() >= 5 and n.max() <= 999
  assert 20 <= n.mean() <= 28
  for got, want in zip((n_train, n_valid, n_test), mmrec_split_counts(n)):
    np.testing.assert_array_equal(got, want)
  # Splits are disjoint and train_edges lists exactly the train CSR.
  dense = [ds.split(s).to_dense() for s in ("train", "valid", "test")]
  assert not (dense[0] & dense[1]).any() and not (dense[0] & dense[2]).any()
  assert not (dense[1] & dense[2]).any()
  assert ds.train_edges.dtype == np.int32 and ds.train_edges.shape == (ds.train.nnz, 2)
  np.testing.assert_array_equal(np.sort(ds.train_edges[:, 0]), ds.train.to_coo()[0])
  assert dense[0][ds.train_edges[:, 0], ds.train_edges[:, 1]].all()


def test_deterministic_given_seed():
  a, b, c = make_synthetic(**SMALL), make_synthetic(**SMALL), make_synthetic(**SMALL, seed=1)
  for split in ("train", "valid", "test"):
    np.testing.assert_array_equal(a.split(split).indptr, b.split(split).indptr)
    np.testing.assert_array_equal(a.split(split).indices, b.split(split).indices)
  np.testing.assert_array_equal(a.train_edges, b.train_edges)
  for m in ("image", "text"):
    np.testing.assert_array_equal(a.features[m], b.features[m])
    assert not np.array_equal(a.features[m], c.features[m])
  assert not np.array_equal(a.train.to_dense(), c.train.to_dense())


def test_dims_zero_drop_modalities_without_changing_interactions():
  full = make_synthetic(**SMALL)
  ids_only = make_synthetic(**{**SMALL, "image_dim": 0, "text_dim": 0}, name="ids")
  assert ids_only.features == {} and ids_only.name == "ids"
  assert list(make_synthetic(**{**SMALL, "image_dim": 0}).features) == ["text"]
  np.testing.assert_array_equal(full.train_edges, ids_only.train_edges)
  np.testing.assert_array_equal(full.test.indices, ids_only.test.indices)


def test_interaction_cap_and_minimum_on_tiny_catalogue():
  ds = make_synthetic(n_users=30, n_items=7, mean_interactions=40, image_dim=0, text_dim=3)
  n = ds.train.row_lengths() + ds.valid.row_lengths() + ds.test.row_lengths()
  assert n.min() >= 5 and n.max() == 6


def test_popularity_skew_concentrates_interactions():
  def top_share(skew):
    ds = make_synthetic(**{**SMALL, "n_users": 400}, popularity_skew=skew)
    pop = np.sort(np.bincount(ds.train.indices, minlength=ds.n_items))[::-1]
    return pop[: ds.n_items // 10].sum() / pop.sum()
  assert top_share(1.0) > 1.5 * top_share(0.0)


def test_text_neighbours_recover_item_factor_neighbours(default):
  _, item_factors, _ = _factors()
  unit = item_factors / np.linalg.norm(item_factors, axis=1, keepdims=True)
  factor_cos = unit @ unit.T

  def neighbour_factor_cos(x):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return factor_cos[np.arange(x.shape[0]), sim.argmax(1)].mean()

  random_pairs = np.random.default_rng(0).integers(0, 1000, (2, 5000))
  random_cos = factor_cos[random_pairs[0], random_pairs[1]].mean()
  text = neighbour_factor_cos(default.features["text"])
  image = neighbour_factor_cos(default.features["image"])
  assert abs(random_cos) < 0.05
  assert text > random_cos + 0.5
  # The image modality is the weaker (noisier) signal, but still far above chance.
  assert random_cos + 0.25 < image < text


def test_held_out_items_rank_high_under_planted_factors(default):
  user_factors, item_factors, _ = _factors()
  scores = user_factors @ item_factors.T  # [n_users, n_items]
  users, items = default.test.to_coo()
  percentile = (scores[users] > scores[users, items][:, None]).mean(axis=1)
  assert percentile.mean() < 0.35


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(n_items=5), "n_items=5 must be >= 6"),
        (dict(mean_interactions=3), "mean_interactions=3 must be >= 5"),
        (dict(text_dim=-1), "text_dim=-1 must be >= 0"),
        (dict(temperature=0.0), "temperature=0.0 must be > 0"),
    ],
)
def test_bad_arguments(kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    make_synthetic(**{**SMALL, **kwargs})
