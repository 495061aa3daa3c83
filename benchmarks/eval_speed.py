"""Times one full-ranking MMRec evaluation at Amazon Baby's size on random data.

PYTHONPATH=. python benchmarks/eval_speed.py [--batch-size 4096] [--dim 64] [--repeats 3]
(or ``pip install -e .`` first).

Prints one JSON line; ``seconds`` is the best of ``--repeats`` timed evaluations,
each after a warm-up call that compiles the block function.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from jaxrec.data.dataset import CSR
from jaxrec.eval import Evaluator

# Amazon Baby as MMRec preprocesses it.
N_USERS, N_ITEMS = 19445, 7050
N_TRAIN, N_TEST = 118_551, 21_044


def make_splits(seed: int = 0) -> tuple[CSR, CSR]:
  """Random ``(train, test)`` CSRs with Baby's shape and roughly its nnz.

  Every user gets one test item (as the per-user 8:1:1 split gives) so all users are
  evaluated, plus random extra pairs; train pairs that collide with test are dropped.
  """
  rng = np.random.default_rng(seed)
  n_extra = N_TEST - N_USERS
  test_rows = np.concatenate([np.arange(N_USERS), rng.integers(0, N_USERS, n_extra)])
  test_cols = rng.integers(0, N_ITEMS, test_rows.shape[0])
  test = CSR.from_coo(test_rows, test_cols, N_USERS, N_ITEMS)
  train_rows = rng.integers(0, N_USERS, N_TRAIN)
  train_cols = rng.integers(0, N_ITEMS, N_TRAIN)
  keep = ~test.to_dense()[train_rows, train_cols]
  train = CSR.from_coo(train_rows[keep], train_cols[keep], N_USERS, N_ITEMS)
  return train, test


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch-size", type=int, default=4096)
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()

  train, test = make_splits()
  t0 = time.perf_counter()
  evaluator = Evaluator(test, train, batch_size=args.batch_size)
  build_s = time.perf_counter() - t0
  key_u, key_i = jax.random.split(jax.random.key(0))
  user_emb = jax.random.normal(key_u, (N_USERS, args.dim))
  item_emb = jax.random.normal(key_i, (N_ITEMS, args.dim))

  t0 = time.perf_counter()
  evaluator(user_emb, item_emb)  # Compiles; __call__ returns host floats, so it has synced.
  first_s = time.perf_counter() - t0
  times = []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    evaluator(user_emb, item_emb)
    times.append(time.perf_counter() - t0)
  seconds = min(times)
  print(json.dumps({
      "benchmark": "eval_full_ranking",
      "n_users": evaluator.n_users_evaluated,
      "n_items": N_ITEMS,
      "train_nnz": train.nnz,
      "test_nnz": test.nnz,
      "dim": args.dim,
      "batch_size": evaluator.batch_size,
      "seconds": round(seconds, 4),
      "users_per_second": round(evaluator.n_users_evaluated / seconds, 1),
      "first_call_seconds": round(first_s, 4),
      "build_seconds": round(build_s, 4),
      "backend": jax.default_backend(),
  }))


if __name__ == "__main__":
  main()
