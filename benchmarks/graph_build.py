"""Build time of FREEDOM's frozen item-item graph and of one per-epoch edge pruning, at Baby's size.

* ``knn_build_seconds``: :func:`jaxrec.graph.mixed_modality_graph` with k=10 and weights
  image 0.1 / text 0.9 (FREEDOM's defaults) over image [7050, 4096] and text [7050, 384]
  features, after one untimed warm-up build (``knn_build_cold_seconds`` is that first build,
  compilation included). No disk cache.
* ``prune_ms``: median of jitted :func:`jaxrec.graph.prune_edges` with dropout 0.8 on a random
  graph with Baby's user/item/train-edge counts, after warm-up.

Features are random normal unless ``--data`` names a folder with ``image_feat.npy`` and
``text_feat.npy`` (e.g. ``../shared/data/baby``; float16 files are cast to float32). Prints
one JSON line.

  python benchmarks/graph_build.py [--data ../shared/data/baby] [--out results/graph_build.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import jax
import numpy as np

from jaxrec.graph import degree_edge_weights, keep_count, mixed_modality_graph, prune_edges

N_USERS, N_ITEMS, N_EDGES = 19445, 7050, 118551  # Amazon-Baby (MMRec), training edges.
IMAGE_DIM, TEXT_DIM = 4096, 384
KNN_K, IMAGE_WEIGHT, DROPOUT = 10, 0.1, 0.8


def _random_edges(n_users: int, n_items: int, n_edges: int, seed: int):
  """Returns exactly ``n_edges`` distinct uniform (user, item) pairs, ``[n_edges]`` each."""
  rng = np.random.default_rng(seed)
  keys = np.unique(rng.integers(0, n_users * n_items, int(n_edges * 1.01)))
  keys = rng.permutation(keys)[:n_edges]
  return keys // n_items, keys % n_items


def _features(data: pathlib.Path | None, seed: int) -> tuple[dict[str, np.ndarray], str]:
  """``({'image': [I, 4096], 'text': [I, 384]} float32, source name)``."""
  if data is not None:
    feats = {name: np.load(data / f"{name}_feat.npy").astype(np.float32)
             for name in ("image", "text")}
    return feats, str(data)
  rng = np.random.default_rng(seed)
  return {"image": rng.standard_normal((N_ITEMS, IMAGE_DIM), np.float32),
          "text": rng.standard_normal((N_ITEMS, TEXT_DIM), np.float32)}, "random"


def _seconds(fn) -> float:
  start = time.perf_counter()
  jax.block_until_ready(fn())
  return time.perf_counter() - start


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data", type=pathlib.Path, default=None,
                      help="folder with image_feat.npy and text_feat.npy")
  parser.add_argument("--repeats", type=int, default=20, help="prune_edges timing repeats")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", type=pathlib.Path, default=None, help="also write the JSON here")
  args = parser.parse_args()

  features, source = _features(args.data, args.seed)
  weights = {"image": IMAGE_WEIGHT, "text": 1.0 - IMAGE_WEIGHT}
  build = lambda: mixed_modality_graph(features, KNN_K, weights)  # noqa: E731
  cold = _seconds(build)
  warm = _seconds(build)
  graph = build()

  users, items = _random_edges(N_USERS, N_ITEMS, N_EDGES, args.seed)
  edge_weights = jax.device_put(degree_edge_weights(users, items, N_USERS, N_ITEMS))
  users, items = jax.device_put(users.astype(np.int32)), jax.device_put(items.astype(np.int32))
  n_keep = keep_count(N_EDGES, DROPOUT)
  keys = jax.random.split(jax.random.key(args.seed), args.repeats + 1)
  prune = lambda key: prune_edges(  # noqa: E731
      key, users, items, edge_weights, n_keep=n_keep, n_users=N_USERS, n_items=N_ITEMS)
  _seconds(lambda: prune(keys[0]))  # Compile and warm up outside the timed region.
  prune_ms = 1e3 * float(np.median([_seconds(lambda k=k: prune(k)) for k in keys[1:]]))

  result = {
      "benchmark": "graph_build",
      "knn_build_seconds": round(warm, 3),
      "knn_build_cold_seconds": round(cold, 3),
      "prune_ms": round(prune_ms, 3),
      "backend": jax.default_backend(),
      "device": str(jax.devices()[0].device_kind),
      "features": source,
      "n_items": N_ITEMS,
      "knn_k": KNN_K,
      "mixed_nnz": graph.nnz,
      "n_users": N_USERS,
      "n_edges": N_EDGES,
      "n_keep": n_keep,
      "jax": jax.__version__,
      "machine": platform.machine(),
  }
  line = json.dumps(result)
  print(line)
  if args.out is not None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(line + "\n")


if __name__ == "__main__":
  main()
