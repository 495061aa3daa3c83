"""Forward+backward time of 2-layer LightGCN propagation at Amazon-Baby's size.

Times ``jax.jit(jax.grad(loss))`` where ``loss = 0.5 * ||mean(propagate_layers(A, x, 2))||^2``
over the normalized user-item graph, for:

* ``segment``: gather + ``segment_sum``, plain autodiff;
* ``sparse_custom_vjp``: BCSR matmul with the custom VJP ``g -> A^T @ g`` (``method='sparse'``);
* ``sparse_autodiff``: the same BCSR matmul differentiated by JAX's own sparse rules.

The loss is nonlinear on purpose: for a linear loss the forward products are dead code in
the gradient and XLA would drop them. The graph is random (uniform user-item pairs), with
Baby's node counts and edge count. Prints one JSON line; times are medians in ms.

  python benchmarks/propagation.py [--repeats 20] [--out benchmarks/results/propagation.json]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.graph import SparseMatrix, normalized_bipartite_adjacency, propagate_layers
from jaxrec.graph.sparse import _bcsr_matmul

N_USERS, N_ITEMS, N_EDGES = 19445, 7050, 118551  # Amazon-Baby (MMRec), training edges.


def _random_edges(n_users: int, n_items: int, n_edges: int, seed: int):
  """Returns exactly ``n_edges`` distinct uniform (user, item) pairs, ``[n_edges]`` each."""
  rng = np.random.default_rng(seed)
  keys = np.unique(rng.integers(0, n_users * n_items, int(n_edges * 1.01)))
  keys = rng.permutation(keys)[:n_edges]
  return keys // n_items, keys % n_items


def _grad_fn(matmul):
  """jit(grad) of the LightGCN-style loss for one propagation implementation."""

  def loss(adj: SparseMatrix, x: jax.Array) -> jax.Array:
    h1 = matmul(adj, x)
    h2 = matmul(adj, h1)
    return 0.5 * jnp.sum(((x + h1 + h2) / 3.0) ** 2)

  # The graph is an argument, not a closure: closed-over arrays become compiled constants.
  return jax.jit(jax.grad(loss, argnums=1))


def _time_ms(fn, *args, repeats: int) -> float:
  jax.block_until_ready(fn(*args))  # Compile and warm up outside the timed region.
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=20)
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--out", type=pathlib.Path, default=None, help="also write the JSON here")
  args = parser.parse_args()

  users, items = _random_edges(N_USERS, N_ITEMS, N_EDGES, args.seed)
  adj = normalized_bipartite_adjacency(users, items, N_USERS, N_ITEMS)
  x = jax.random.normal(jax.random.key(args.seed), (adj.shape[0], args.dim), jnp.float32)

  # propagate_layers is the library path; the autodiff baseline has no public method.
  fns = {
      "segment": _grad_fn(lambda a, h: propagate_layers(a, h, 1, method="segment")[1]),
      "sparse_custom_vjp": _grad_fn(lambda a, h: propagate_layers(a, h, 1, method="sparse")[1]),
      "sparse_autodiff": _grad_fn(_bcsr_matmul),
  }
  grads = {name: np.asarray(fn(adj, x)) for name, fn in fns.items()}
  max_diff = max(float(np.abs(g - grads["segment"]).max()) for g in grads.values())
  ms = {name: _time_ms(fn, adj, x, repeats=args.repeats) for name, fn in fns.items()}

  result = {
      "benchmark": "propagation_fwd_bwd",
      "backend": jax.default_backend(),
      "device": jax.devices()[0].device_kind,
      "cpu": platform.processor() or platform.machine(),
      "n_nodes": adj.shape[0],
      "nnz": adj.nnz,
      "dim": args.dim,
      "n_layers": 2,
      "repeats": args.repeats,
      "segment_ms": round(ms["segment"], 3),
      "sparse_custom_vjp_ms": round(ms["sparse_custom_vjp"], 3),
      "sparse_autodiff_ms": round(ms["sparse_autodiff"], 3),
      "ratio_autodiff_over_custom": round(ms["sparse_autodiff"] / ms["sparse_custom_vjp"], 2),
      "ratio_segment_over_sparse": round(ms["segment"] / ms["sparse_custom_vjp"], 2),
      "max_abs_grad_diff": max_diff,
  }
  line = json.dumps(result)
  print(line)
  if args.out is not None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(line + "\n")


if __name__ == "__main__":
  main()
