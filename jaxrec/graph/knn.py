"""FREEDOM's frozen item-item kNN graphs: per-modality cosine kNN, modality mix, disk cache.

Each modality's graph is built once from the RAW item features (REFERENCE.md §C): cosine
similarity of the L2-normalised rows, the top-``k`` columns of every row (the item itself
included), unweighted edges normalised by ``D^-1/2 A D^-1/2`` with ``D`` the ROW sum. Every row
has exactly ``k`` entries, so every value is ``1/k``: the graph is a row-normalised kNN mean and
is NOT symmetric. The modality graphs are mixed by a weighted sparse sum and cached on disk.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import zipfile
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.graph.sparse import SparseMatrix

logger = logging.getLogger(__name__)

# Bumped when the cache file layout changes, so that old files are rebuilt, not misread.
_CACHE_FORMAT = 1
# Values sampled per array by features_fingerprint: enough to tell data sets apart, cheap to
# gather even from a device array.
_FINGERPRINT_SAMPLES = 1 << 14


def _normalize_rows(features: jax.Array) -> jax.Array:
  """``[n, d]`` rows scaled to unit L2 norm; an all-zero row stays zero (no 0/0 NaN)."""
  norm = jnp.linalg.norm(features, axis=1, keepdims=True)
  safe = jnp.where(norm > 0, norm, 1.0)
  return jnp.where(norm > 0, features / safe, 0.0)


@functools.partial(jax.jit, static_argnames=("block_size", "k"))
def _block_top_k(normed: jax.Array, start: jax.Array, *, block_size: int, k: int) -> jax.Array:
  """Top-``k`` neighbour ids ``[block_size, k]`` of rows ``start : start + block_size``.

  Only a ``[block_size, n]`` similarity block exists at any time. ``start`` is traced, so
  every block reuses one compiled program.
  """
  block = jax.lax.dynamic_slice_in_dim(normed, start, block_size, axis=0)
  # HIGHEST: on GPUs the default f32 matmul may use TF32, whose ~1e-3 error reorders close
  # neighbours; the reference (torch.mm) computes in full f32.
  sim = jnp.matmul(block, normed.T, precision=jax.lax.Precision.HIGHEST)
  return jax.lax.top_k(sim, k)[1]


def knn_graph(
    features: np.ndarray | jax.Array,
    k: int,
    *,
    block_size: int = 1024,
) -> SparseMatrix:
  r"""The normalised cosine kNN graph of the item feature rows (FREEDOM's ``mm_adj``).

  .. math::
    S_{ij} = \frac{x_i \cdot x_j}{\|x_i\| \|x_j\|}, \quad
    A_{ij} = [j \in \mathrm{top}_k(S_{i, :})], \quad
    \hat A_{ij} = d_i^{-1/2} A_{ij} d_j^{-1/2}, \quad d_i = \textstyle\sum_j A_{ij} = k

  so every stored value is ``1/k``. Self-similarity is 1, the maximum, so each item is
  normally its own neighbour (a self loop), as in the reference.

  The similarities are computed on the default device in blocks of ``block_size`` rows by
  one jitted fixed-shape function (``[b, d] x [d, n] -> [b, n] -> lax.top_k``); no dense
  ``n x n`` matrix is ever materialised. The last block is shifted back to end at row ``n``
  (it overlaps its predecessor) so that every block has the same shape.

  NOTE: ties are broken by ``lax.top_k``, which puts the LOWER column index first. So an
  all-zero feature row (whose similarities are all defined as 0, where the reference would
  produce NaN) links to items ``0 .. k-1``, and an item with exact duplicates may list a
  lower-index duplicate instead of itself. MMRec's ``torch.topk`` does not specify its tie
  order. The reference's ``+1e-7`` on the degree is omitted: no degree can be 0 here, and
  for ``k >= 2`` it changes no float32 value (``float32(k + 1e-7) == k``).

  Args:
    features: ``[n_items, d]`` raw features (any float dtype; computed in float32).
    k: neighbours per item, ``1 <= k <= n_items`` (FREEDOM: 10).
    block_size: rows per similarity block (memory ``~ 4 * block_size * n_items`` bytes);
      clipped to ``n_items``. It does not change the result.

  Returns:
    ``[n_items, n_items]`` :class:`SparseMatrix` with ``n_items * k`` entries, all ``1/k``.

  Raises:
    ValueError: on a non-2-D or empty input, non-finite values, or ``k`` / ``block_size``
      out of range.
  """
  x = jnp.asarray(features)
  if x.ndim != 2 or x.shape[0] == 0:
    raise ValueError(f"features must be a non-empty [n_items, d] array: got shape {x.shape}.")
  n = x.shape[0]
  if int(k) != k or not 1 <= k <= n:
    raise ValueError(f"k must be an int in [1, n_items={n}]: got {k!r}.")
  if int(block_size) != block_size or block_size < 1:
    raise ValueError(f"block_size must be a positive int: got {block_size!r}.")
  k, b = int(k), min(int(block_size), n)
  x = x.astype(jnp.float32)
  if not bool(jnp.isfinite(x).all()):
    raise ValueError("features contain NaN or infinite values.")

  normed = _normalize_rows(x)
  neighbours = np.empty((n, k), np.int64)
  starts = list(range(0, n, b))
  starts[-1] = n - b
  # Dispatch every block before reading any back, so the device never waits on the host.
  blocks = [_block_top_k(normed, jnp.int32(s), block_size=b, k=k) for s in starts]
  for s, block in zip(starts, blocks):
    neighbours[s:s + b] = np.asarray(block)

  rows = np.repeat(np.arange(n), k)
  cols = neighbours.reshape(-1)
  degree = np.bincount(rows, minlength=n).astype(np.float64)  # = k for every row.
  values = np.power(degree[rows], -0.5) * np.power(degree[cols], -0.5)
  return SparseMatrix.from_coo(rows, cols, values, (n, n))


def sum_sparse(matrices: list[SparseMatrix], weights: list[float]) -> SparseMatrix:
  """``sum_m weights[m] * matrices[m]`` on the host; the union of the entries.

  Entries present in several matrices add (like a torch/scipy sparse add). Runs in float64
  before the float32 cast of :meth:`SparseMatrix.from_coo`.

  Args:
    matrices: one or more matrices of one shape.
    weights: one scalar per matrix.

  Returns:
    The weighted sum, entries unique and row-sorted.

  Raises:
    ValueError: on an empty list, mismatched lengths or shapes.
  """
  if not matrices or len(matrices) != len(weights):
    raise ValueError(
        f"Need one weight per matrix: got {len(matrices)} matrices, {len(weights)} weights.")
  shape = matrices[0].shape
  if any(m.shape != shape for m in matrices):
    raise ValueError(f"Shape mismatch: got {[m.shape for m in matrices]}.")
  rows = np.concatenate([np.asarray(m.rows) for m in matrices])
  cols = np.concatenate([np.asarray(m.cols) for m in matrices])
  values = np.concatenate([
      float(w) * np.asarray(m.values, np.float64) for m, w in zip(matrices, weights)])
  return SparseMatrix.from_coo(rows, cols, values, shape)


def _effective_weights(
    features: Mapping[str, np.ndarray | jax.Array],
    weights: Mapping[str, float],
) -> dict[str, float]:
  """The modalities to build, with their weights (sorted by name); see mixed_modality_graph."""
  unweighted = sorted(set(features) - set(weights))
  if unweighted:
    raise ValueError(
        f"No weight for modalities {unweighted}; weights are given for {sorted(weights)}.")
  present = sorted(features)
  if not present:
    raise ValueError(f"No features given; expected some of {sorted(weights)}.")
  for name in present:
    if not np.isfinite(float(weights[name])):
      raise ValueError(f"Weight of {name!r} must be finite: got {weights[name]!r}.")
  if len(present) == 1:
    return {present[0]: 1.0}
  # A zero-weight graph only adds explicit zeros: skip its (costly) build.
  effective = {name: float(weights[name]) for name in present if float(weights[name]) != 0.0}
  if not effective:
    raise ValueError(f"All modality weights are zero: {dict(weights)}.")
  return effective


def mixed_modality_graph(
    features: Mapping[str, np.ndarray | jax.Array],
    k: int,
    weights: Mapping[str, float],
    *,
    block_size: int = 1024,
) -> SparseMatrix:
  r"""Weighted sum of the per-modality :func:`knn_graph`\ s (FREEDOM's combined ``mm_adj``).

  .. math::
    \hat A = \textstyle\sum_m w_m \hat A_m

  with entries present in several graphs adding up. FREEDOM uses
  ``weights = {'image': mm_image_weight, 'text': 1 - mm_image_weight}`` (0.1 / 0.9). When
  only ONE of the weighted modalities is present in ``features``, its graph is used alone
  with weight 1 (as FREEDOM does when a feature file is missing). With several, the weights
  are used as given (not renormalised); a modality with weight 0 is skipped.

  Args:
    features: modality name -> ``[n_items, d_m]`` raw features (same ``n_items``).
    k: neighbours per item in each modality graph.
    weights: modality name -> weight; may name modalities absent from ``features``.
    block_size: see :func:`knn_graph`.

  Returns:
    ``[n_items, n_items]`` :class:`SparseMatrix`.

  Raises:
    ValueError: on no features, a modality without a weight, non-finite or all-zero
      weights, mismatched item counts, or invalid features / ``k``.
  """
  effective = _effective_weights(features, weights)
  n_items = {name: np.shape(features[name])[0] for name in effective}
  if len(set(n_items.values())) != 1:
    raise ValueError(f"Modalities disagree on n_items: {n_items}.")
  graphs = [knn_graph(features[name], k, block_size=block_size) for name in effective]
  if len(graphs) == 1 and next(iter(effective.values())) == 1.0:
    return graphs[0]
  return sum_sparse(graphs, list(effective.values()))


def features_fingerprint(features: Mapping[str, np.ndarray | jax.Array]) -> str:
  """A cheap content hash of modality features, to key the graph cache.

  Hashes the sorted modality names, shapes and dtypes plus ~16k values per array taken at
  evenly spaced flat positions (first and last included). Arrays that differ only outside
  those positions collide; that is the price of not reading 100+ MB per call.

  Args:
    features: modality name -> array (NumPy or JAX; a JAX array is sampled on device).

  Returns:
    16 hex characters.
  """
  digest = hashlib.sha256()
  for name in sorted(features):
    array = features[name]
    shape, size = tuple(np.shape(array)), int(np.size(array))
    digest.update(f"{name}|{shape}|{np.dtype(array.dtype).str}|".encode())
    if size:
      positions = np.unique(np.linspace(0, size - 1, min(size, _FINGERPRINT_SAMPLES)).astype(
          np.int64))
      if isinstance(array, jax.Array):
        sample = np.asarray(jnp.ravel(array)[positions])
      else:
        sample = np.ravel(np.asarray(array))[positions]
      digest.update(np.ascontiguousarray(sample).tobytes())
  return digest.hexdigest()[:16]


def _cache_path(cache_dir: str, key: str, k: int, effective: Mapping[str, float]) -> str:
  """``mm_adj_knn{k}_image0.1_text0.9_<sha256(key)[:12]>.npz`` inside ``cache_dir``."""
  parts = "_".join(f"{re.sub(r'[^A-Za-z0-9]', '', name)}{w:g}" for name, w in effective.items())
  key_hash = hashlib.sha256(key.encode()).hexdigest()[:12]
  return os.path.join(cache_dir, f"mm_adj_knn{k}_{parts}_{key_hash}.npz")


def _load_cached(path: str, meta: str) -> SparseMatrix:
  """Reads a cache file; raises on anything unreadable, inconsistent or not ours."""
  with np.load(path, allow_pickle=False) as data:
    if str(data["meta"]) != meta:
      raise ValueError(f"cache metadata {str(data['meta'])!r} does not match {meta!r}")
    shape = tuple(int(s) for s in data["shape"])
    if len(shape) != 2:
      raise ValueError(f"bad shape {shape}")
    # from_coo re-validates lengths and index ranges.
    return SparseMatrix.from_coo(data["rows"], data["cols"], data["values"], shape)


def _save_cached(path: str, meta: str, matrix: SparseMatrix) -> None:
  """Writes atomically: a concurrent reader sees the old file or the whole new one."""
  directory = os.path.dirname(path)
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, suffix=".npz.tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, meta=np.array(meta), shape=np.array(matrix.shape, np.int64),
               rows=np.asarray(matrix.rows), cols=np.asarray(matrix.cols),
               values=np.asarray(matrix.values))
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def cached_mixed_graph(
    features: Mapping[str, np.ndarray | jax.Array],
    k: int,
    weights: Mapping[str, float],
    cache_dir: str | None,
    key: str,
    *,
    block_size: int = 1024,
) -> SparseMatrix:
  """:func:`mixed_modality_graph`, stored on disk and reused (FREEDOM's ``mm_adj_*.pt``).

  The file is ``{cache_dir}/mm_adj_knn{k}_{modality}{weight}..._{sha256(key)[:12]}.npz``
  (e.g. ``mm_adj_knn10_image0.1_text0.9_3f2a...npz``) holding the COO ``rows``, ``cols``,
  ``values`` and ``shape``, named from the modalities actually mixed and their effective
  weights. It is reused when its stored ``(key, k, weights)`` match, and rebuilt (and
  overwritten) when it is missing, unreadable or does not match. Writes are atomic.

  Args:
    features: modality name -> ``[n_items, d_m]`` raw features.
    k: neighbours per item.
    weights: modality name -> weight (see :func:`mixed_modality_graph`).
    cache_dir: directory of the cache, created if needed; ``None`` disables caching.
    key: the data set's identity, e.g. ``f"baby-{n_items}-{features_fingerprint(f)}"``;
      the same key must mean the same features.
    block_size: see :func:`knn_graph`.

  Returns:
    ``[n_items, n_items]`` :class:`SparseMatrix`.

  Raises:
    ValueError: as :func:`mixed_modality_graph`.
  """
  effective = _effective_weights(features, weights)
  path = None
  if cache_dir is not None:
    path = _cache_path(cache_dir, key, int(k), effective)
    meta = json.dumps({"format": _CACHE_FORMAT, "key": key, "k": int(k), "weights": effective},
                      sort_keys=True)
    if os.path.exists(path):
      try:
        matrix = _load_cached(path, meta)
        logger.info("Loaded the mixed kNN graph from %s.", path)
        return matrix
      except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        logger.warning("Rebuilding unreadable kNN graph cache %s (%s).", path, e)

  start = time.perf_counter()
  matrix = mixed_modality_graph(features, k, weights, block_size=block_size)
  jax.block_until_ready(matrix)
  seconds = time.perf_counter() - start
  if path is None:
    logger.info("Built the mixed kNN graph in %.2f s (no cache).", seconds)
  else:
    _save_cached(path, meta, matrix)
    logger.info("Built the mixed kNN graph in %.2f s; saved to %s.", seconds, path)
  return matrix
