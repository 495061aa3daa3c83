import logging
import os

import jax.numpy as jnp
import numpy as np
import pytest

from jaxrec.graph import (
    cached_mixed_graph,
    features_fingerprint,
    knn_graph,
    mixed_modality_graph,
)
from jaxrec.graph import knn as knn_lib

FIELDS = ("rows", "cols", "values", "indptr", "perm_t", "perm_t_inv", "indptr_t")


def _features(seed=0, n=9, d=4):
  """Small integer features: rows 0 and 1 are identical (exact ties), row 5 is all zero."""
  x = np.random.default_rng(seed).integers(-3, 4, size=(n, d)).astype(np.float32)
  x[1] = x[0]
  x[5] = 0.0
  return x


def _dense_knn(x, k):
  """FREEDOM's kNN graph written densely in float64; ties go to the lower index."""
  x = np.asarray(x, np.float64)
  norm = np.linalg.norm(x, axis=1, keepdims=True)
  normed = np.where(norm > 0, x / np.where(norm > 0, norm, 1.0), 0.0)
  # Rounding makes float32-vs-float64 noise an exact tie, broken like lax.top_k.
  sim = np.round(normed @ normed.T, 6)
  top = np.argsort(-sim, axis=1, kind="stable")[:, :k]
  a = np.zeros_like(sim)
  a[np.arange(len(x))[:, None], top] = 1.0
  d = a.sum(1)
  return a / np.sqrt(d[:, None] * d[None, :])


def _assert_same_matrix(a, b):
  assert a.shape == b.shape
  for field in FIELDS:
    np.testing.assert_array_equal(np.asarray(getattr(a, field)), np.asarray(getattr(b, field)),
                                  err_msg=field)


def test_knn_graph_matches_dense_reference_self_loops_ties_zero_row():
  x, k = _features(), 3
  graph = knn_graph(x, k)
  dense = np.asarray(graph.to_dense())
  assert graph.shape == (9, 9) and graph.nnz == 9 * k
  np.testing.assert_array_equal(dense, _dense_knn(x, k).astype(np.float32))
  np.testing.assert_array_equal(np.asarray(graph.values), np.float32(1 / k))
  np.testing.assert_array_equal(np.diff(np.asarray(graph.indptr)), k)
  # Self loops for every non-zero row (row 1's self-similarity ties with row 0's).
  nonzero = [r for r in range(9) if r != 5]
  assert np.all(dense[nonzero, nonzero] > 0)
  # The zero row has similarity 0 to everything (no NaN): it links to items 0..k-1.
  assert np.all(np.isfinite(dense))
  np.testing.assert_array_equal(np.flatnonzero(dense[5]), np.arange(k))
  assert not np.any(dense[:, 5][nonzero])
  # Exact tie at k=1: rows 0 and 1 both pick item 0, the lower index.
  top1 = np.asarray(knn_graph(x, 1).to_dense())
  assert top1[0, 0] == 1.0 and top1[1, 0] == 1.0 and top1[1, 1] == 0.0
  assert not np.allclose(dense, dense.T)  # kNN graphs are asymmetric.


def test_knn_graph_block_size_invariance_and_device_input():
  x = np.random.default_rng(1).normal(size=(11, 5)).astype(np.float32)
  reference = knn_graph(x, 4, block_size=1000)
  for block_size in (3, 4, 11):
    _assert_same_matrix(knn_graph(x, 4, block_size=block_size), reference)
  _assert_same_matrix(knn_graph(jnp.asarray(x, jnp.float16).astype(jnp.float32), 4), reference)
  np.testing.assert_array_equal(np.asarray(knn_graph(x, 4).to_dense()),
                                _dense_knn(x, 4).astype(np.float32))


def test_knn_graph_rejects_bad_input():
  x = _features()
  with pytest.raises(ValueError, match="k must be"):
    knn_graph(x, 10)
  with pytest.raises(ValueError, match="NaN"):
    knn_graph(np.where(np.eye(9, 4) > 0, np.nan, x), 2)
  with pytest.raises(ValueError, match="n_items, d"):
    knn_graph(x[0], 2)
  with pytest.raises(ValueError, match="block_size"):
    knn_graph(x, 2, block_size=0)


def test_mixed_modality_graph_weighted_union_and_single_modality():
  image, text = _features(0), _features(2, d=6)
  weights = {"image": 0.3, "text": 0.7}
  mixed = mixed_modality_graph({"image": image, "text": text}, 3, weights)
  expected = 0.3 * _dense_knn(image, 3) + 0.7 * _dense_knn(text, 3)
  np.testing.assert_allclose(np.asarray(mixed.to_dense()), expected, rtol=1e-6)
  # Self loops are in both graphs: those entries add up to (0.3 + 0.7) / k.
  overlap = (_dense_knn(image, 3) > 0) & (_dense_knn(text, 3) > 0)
  assert overlap.sum() > 9 and mixed.nnz == np.count_nonzero(expected)
  np.testing.assert_allclose(np.asarray(mixed.to_dense())[overlap], 1 / 3, rtol=1e-6)

  # Only one of the weighted modalities present: its graph alone, weight 1.
  alone = mixed_modality_graph({"text": text}, 3, weights)
  _assert_same_matrix(alone, knn_graph(text, 3))
  with pytest.raises(ValueError, match="No weight"):
    mixed_modality_graph({"audio": text}, 3, weights)
  with pytest.raises(ValueError, match="disagree on n_items"):
    mixed_modality_graph({"image": image, "text": text[:5]}, 3, weights)


def test_features_fingerprint():
  x, y = _features(0), _features(2, d=6)
  fp = features_fingerprint({"image": x, "text": y})
  assert fp == features_fingerprint({"text": y, "image": jnp.asarray(x)})
  assert len(fp) == 16
  changed = x.copy()
  changed[-1, -1] += 1.0  # The last value is always sampled.
  assert fp != features_fingerprint({"image": changed, "text": y})
  assert fp != features_fingerprint({"image": x, "txt": y})


def test_cached_mixed_graph_builds_then_loads_and_rebuilds_corrupt(tmp_path, monkeypatch, caplog):
  features = {"image": _features(0), "text": _features(2, d=6)}
  weights = {"image": 0.1, "text": 0.9}
  key = f"toy-9-{features_fingerprint(features)}"
  caplog.set_level(logging.INFO, logger=knn_lib.__name__)

  built = cached_mixed_graph(features, 3, weights, str(tmp_path), key)
  (path,) = tmp_path.iterdir()
  assert path.name.startswith("mm_adj_knn3_image0.1_text0.9_") and path.suffix == ".npz"
  assert "Built" in caplog.text

  def no_build(*args, **kwargs):
    raise AssertionError("the cached graph was rebuilt")

  caplog.clear()
  with monkeypatch.context() as m:
    m.setattr(knn_lib, "mixed_modality_graph", no_build)
    loaded = cached_mixed_graph(features, 3, weights, str(tmp_path), key)
  assert "Loaded" in caplog.text
  _assert_same_matrix(loaded, built)
  # Another k or key is another file.
  other = cached_mixed_graph(features, 2, weights, str(tmp_path), key)
  assert 9 * 2 <= other.nnz <= 2 * 9 * 2
  assert len(os.listdir(tmp_path)) == 2

  path.write_bytes(b"not a zip file")
  caplog.clear()
  rebuilt = cached_mixed_graph(features, 3, weights, str(tmp_path), key)
  assert "Rebuilding" in caplog.text
  _assert_same_matrix(rebuilt, built)
  caplog.clear()
  cached_mixed_graph(features, 3, weights, str(tmp_path), key)
  assert "Loaded" in caplog.text  # The rebuilt file is valid again.

  _assert_same_matrix(cached_mixed_graph(features, 3, weights, None, key), built)
