"""Cost of CCDRec's per-epoch pieces at Baby's size: CNS, NDI and the feature tables.

CNS runs inside the jitted training scan, so metrics.jsonl cannot time it on its
own; this times one jitted batch of it and scales by the batches per epoch.
NDI (the reverse chain over all items) is `after_epoch_seconds` in metrics.jsonl
and is timed here too. The third piece is what a CCDRec step pays for its
trainable raw feature tables (``freeze=False`` in the reference; FREEDOM at
reg_weight 0 skips them): the gather + projection of the batch items' 4096-d
image rows with its gradient, and Adam's dense update of the 7050 x 4096 table.
Prints JSON.
"""

from __future__ import annotations

import functools
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrec import diffusion
from jaxrec.data import CSR
from jaxrec.negatives import pool_hard_negatives


def timed(fn, *args, repeats=20):
  jax.block_until_ready(fn(*args))
  t = time.perf_counter()
  for _ in range(repeats):
    out = fn(*args)
  jax.block_until_ready(out)
  return (time.perf_counter() - t) / repeats


def main() -> None:
  n_users, n_items, d, n_train, batch = 19445, 7050, 64, 118551, 512
  rng = np.random.default_rng(0)
  csr = CSR.from_coo(rng.integers(0, n_users, n_train), rng.integers(0, n_items, n_train),
                     n_users, n_items)
  pool = jnp.asarray(rng.normal(size=(n_items, d)).astype(np.float32))
  users = jnp.asarray(rng.integers(0, n_users, batch), jnp.int32)
  pos = jnp.asarray(rng.integers(0, n_items, batch), jnp.int32)
  n_cand = int(0.1 * n_items)
  cns = jax.jit(lambda k: pool_hard_negatives(
      k, users, pos, pool, jnp.asarray(csr.indptr), jnp.asarray(csr.indices),
      n_candidates=n_cand, top_k=int(0.1 * n_cand),
      max_row_length=int(np.diff(csr.indptr).max())))
  cns_s = timed(cns, jax.random.key(0))

  est = diffusion.X0Estimator(d, rngs=__import__("flax").nnx.Rngs(0))
  sched = diffusion.make_schedule("linear", 20)
  conds = [pool, pool * 0.5]

  @jax.jit
  def ndi(key):
    start = diffusion.chain_start(sched, pool, key, from_noise=False)
    return diffusion.reverse_chain(lambda x, c, t: est(x, c, t), sched, start, conds, key,
                                   snapshot_steps=diffusion.ndi_snapshot_steps(20))

  ndi_s = timed(ndi, jax.random.key(1), repeats=5)

  image = jnp.asarray(rng.normal(size=(n_items, 4096)).astype(np.float32))
  w = jnp.asarray(rng.normal(size=(4096, d)).astype(np.float32) / 64)
  rows = jnp.concatenate([pos, jnp.asarray(rng.integers(0, n_items, batch), jnp.int32)])
  tx = optax.adam(5e-4)
  # Ten steps in one donated scan, as the trainer's epoch function runs them.
  steps = 10

  @functools.partial(jax.jit, donate_argnums=(0,), static_argnames="with_adam")
  def table_steps(state, *, with_adam):
    def step(state, _):
      params, opt_state = state
      grads = jax.grad(lambda p: jnp.sum(jnp.tanh(p["image"][rows] @ p["w"])))(params)
      if not with_adam:  # Plain SGD: the gradient's cost without Adam's dense moments.
        return (jax.tree.map(lambda p, g: p - 1e-3 * g, params, grads), opt_state), None
      updates, opt_state = tx.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state), None
    return jax.lax.scan(step, state, None, length=steps)[0]

  def per_step(with_adam):
    params = {"image": image + 0, "w": w + 0}
    state = table_steps((params, tx.init(params)), with_adam=with_adam)
    jax.block_until_ready(state)
    t = time.perf_counter()
    for _ in range(2):
      state = table_steps(state, with_adam=with_adam)
    jax.block_until_ready(state)
    return (time.perf_counter() - t) / (2 * steps)

  project_s, table_s = per_step(False), per_step(True)
  batches = -(-n_train // batch)
  print(json.dumps({
      "benchmark": "ccdrec_parts", "backend": jax.default_backend(),
      "cns_ms_per_batch": round(cns_s * 1e3, 2), "batches_per_epoch": batches,
      "cns_seconds_per_epoch": round(cns_s * batches, 3),
      "ndi_seconds_per_epoch": round(ndi_s, 3),
      "image_table_projection_grad_ms_per_step": round(project_s * 1e3, 2),
      "image_table_with_adam_ms_per_step": round(table_s * 1e3, 2),
      "image_table_seconds_per_epoch": round(table_s * batches, 3),
  }))


if __name__ == "__main__":
  main()
