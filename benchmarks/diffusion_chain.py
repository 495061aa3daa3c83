"""Times CCDRec's per-epoch reverse diffusion chain at Amazon Baby's size.

One jitted call = start ``q_sample(x0, T-1)`` + the full stochastic reverse chain
(T = 20, linear 1e-4..0.02) over all 7050 items x 64 with 2 condition tokens
(text, image) through the reference :class:`jaxrec.diffusion.X0Estimator`,
keeping the 4 NDI snapshots (steps 14, 9, 4, 0). ``ms`` is the median of
``--repeats`` timed calls after one warm-up call (compilation excluded;
``compile_ms`` is the warm-up). Random inputs; prints one JSON line.

  PYTHONPATH=. python benchmarks/diffusion_chain.py [--n-items 7050] [--dim 64] \
      [--timesteps 20] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
from flax import nnx

from jaxrec import diffusion


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n-items", type=int, default=7050)
  parser.add_argument("--dim", type=int, default=64)
  parser.add_argument("--timesteps", type=int, default=20)
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()

  sched = diffusion.make_schedule("linear", args.timesteps)
  model = diffusion.X0Estimator(args.dim, rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  steps = diffusion.ndi_snapshot_steps(args.timesteps)
  k_x, k_t, k_v = jax.random.split(jax.random.key(0), 3)
  shape = (args.n_items, args.dim)
  x0 = jax.random.normal(k_x, shape)
  conds = (jax.random.normal(k_t, shape), jax.random.normal(k_v, shape))

  @jax.jit
  def sample(state, sched, x0, conds, key):
    est = nnx.merge(graphdef, state)
    k_start, k_chain = jax.random.split(key)
    x_start = diffusion.chain_start(sched, x0, k_start, from_noise=False)
    return diffusion.reverse_chain(est, sched, x_start, conds, k_chain, snapshot_steps=steps)

  t0 = time.perf_counter()
  sample(state, sched, x0, conds, jax.random.key(1)).block_until_ready()
  compile_ms = 1e3 * (time.perf_counter() - t0)
  times = []
  for i in range(args.repeats):
    key = jax.random.key(2 + i)
    t0 = time.perf_counter()
    sample(state, sched, x0, conds, key).block_until_ready()
    times.append(1e3 * (time.perf_counter() - t0))
  print(json.dumps({
      "benchmark": "diffusion_reverse_chain",
      "n_items": args.n_items,
      "dim": args.dim,
      "n_conditions": len(conds),
      "timesteps": args.timesteps,
      "n_snapshots": len(steps),
      "ms": round(statistics.median(times), 3),
      "min_ms": round(min(times), 3),
      "compile_ms": round(compile_ms, 1),
      "repeats": args.repeats,
      "backend": jax.default_backend(),
      "device": str(jax.devices()[0].device_kind),
  }))


if __name__ == "__main__":
  main()
