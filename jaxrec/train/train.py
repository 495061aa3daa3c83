"""``train_and_evaluate(config, workdir)``: the MMRec training protocol in JAX.

Per epoch: ``on_epoch`` (per-epoch context products) -> one jitted scan over
all batches (shuffle, negatives, BPR steps) -> full-ranking evaluation of valid
and test -> early stopping on ``config.valid_metric`` -> checkpoints (latest,
best) and one ``metrics.jsonl`` row. A workdir that already holds a run is
resumed from its latest checkpoint; PRNG keys are ``fold_in(seed, epoch)`` so a
resumed run reproduces the uninterrupted one exactly.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import tqdm
from flax import nnx

from jaxrec import models
from jaxrec.data import Dataset, load_dataset
from jaxrec.data.batching import Batch, epoch_batches, num_batches
from jaxrec.eval import Evaluator
from jaxrec.negatives import ExclusionIndex, exclusion_index
from jaxrec.train.checkpoint import Checkpointer
from jaxrec.train.config import base_config, validate_config
from jaxrec.train.early_stopping import EarlyStopping
from jaxrec.train.metrics_log import MetricsLog

log = logging.getLogger("jaxrec")


class NonFiniteLossError(RuntimeError):
  """Training produced a NaN/inf loss; the last good checkpoint is kept."""


class TrainData(NamedTuple):
  """Device arrays the epoch function samples from."""

  edges: jax.Array  # [n_train, 2] int32 (user, item)
  index: ExclusionIndex  # train positives per user, negatives drawn from train items


def make_train_data(dataset: Dataset) -> TrainData:
  index = exclusion_index(dataset.train.indptr, dataset.train.indices, dataset.train_items())
  return TrainData(jnp.asarray(dataset.train_edges, jnp.int32), index)


def make_epoch_fn(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, batch_size: int):
  """Returns jitted ``(state, context, data, key) -> (state, metrics)`` for one epoch.

  ``state = {"params": nnx.State, "opt_state": ...}`` is donated. The whole
  epoch (shuffle, negatives, every step) is one ``lax.scan``: one dispatch.
  """

  def step(context, carry, inputs):
    params, opt_state = carry
    batch, key = inputs

    def loss_fn(p):
      return nnx.merge(graphdef, p).loss(context, batch, key)

    (loss, parts), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return (params, opt_state), {"loss": loss, **parts}

  @functools.partial(jax.jit, donate_argnums=(0,))
  def epoch_fn(state, context, data: TrainData, key):
    k_batch, k_steps = jax.random.split(key)
    batches = epoch_batches(k_batch, data.edges, data.index, batch_size)
    keys = jax.random.split(k_steps, batches.users.shape[0])
    (params, opt_state), per_step = jax.lax.scan(
        functools.partial(step, context), (state["params"], state["opt_state"]), (batches, keys))
    metrics = {k: jnp.mean(v) for k, v in per_step.items()}
    metrics["all_finite"] = jnp.all(jnp.isfinite(per_step["loss"]))
    return {"params": params, "opt_state": opt_state}, metrics

  return epoch_fn


def learning_rate(config: ml_collections.ConfigDict, steps_per_epoch: int):
  """MMRec's LambdaLR as an optax schedule: ``lr * a ** (epoch / b)``; a float when a == 1."""
  a, b = (float(v) for v in config.learning_rate_scheduler)
  lr = float(config.learning_rate)
  if a == 1.0:
    return lr  # Constant: keeps the optimizer state free of a schedule counter.

  def schedule(count):
    epoch = (count // steps_per_epoch).astype(jnp.float32)
    return lr * a ** (epoch / b)

  return schedule


def make_optimizer(config: ml_collections.ConfigDict, steps_per_epoch: int):
  """Adam (no weight decay, no clipping), as MMRec's trainer."""
  return optax.adam(learning_rate(config, steps_per_epoch))


def _model_fns(graphdef: nnx.GraphDef):
  @jax.jit
  def on_epoch(params, context, key, epoch):
    return nnx.merge(graphdef, params).on_epoch(context, key, epoch)

  @jax.jit
  def after_epoch(params, context, key, epoch):
    return nnx.merge(graphdef, params).after_epoch(context, key, epoch)

  @jax.jit
  def embed(params, context):
    return nnx.merge(graphdef, params).embed(context, train=False)

  @jax.jit
  def sampling_probe(params, context, batch, key):
    return nnx.merge(graphdef, params).sampling_probe(context, batch, key)

  return on_epoch, after_epoch, embed, sampling_probe


def _probe_batch(data: TrainData, batch_size: int) -> Batch:
  """A fixed full batch of real triples (negatives = positives: only shapes matter)."""
  edges = data.edges[:batch_size]
  edges = jnp.pad(edges, ((0, batch_size - edges.shape[0]), (0, 0)))
  return Batch(edges[:, 0], edges[:, 1], edges[:, 1], jnp.ones((batch_size,), bool))


def _sampling_seconds(probe, params, context, batch: Batch, n_batches: int) -> float:
  """Seconds of the model's own negative sampling in an epoch: one timed call x batches."""
  key = jax.random.key(0)
  jax.block_until_ready(probe(params, context, batch, key))  # Compiled (once) outside the timing.
  t0 = time.perf_counter()
  jax.block_until_ready(probe(params, context, batch, key))
  return (time.perf_counter() - t0) * n_batches


def epoch_keys(seed: int, epoch: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """``(on_epoch, train, after_epoch)`` keys of an epoch: a function of (seed, epoch) only."""
  key = jax.random.fold_in(jax.random.key(seed), epoch)
  k_epoch, k_train = jax.random.split(key)
  return k_epoch, k_train, jax.random.fold_in(key, 7)


def _config_dict(config: ml_collections.ConfigDict | dict) -> dict[str, Any]:
  d = config.to_dict() if hasattr(config, "to_dict") else dict(config)
  return json.loads(json.dumps(d, default=list))  # Tuples -> lists, as JSON stores them.


def _config_diff(old: dict[str, Any], new: dict[str, Any], defaults: dict[str, Any],
                 prefix: str = "") -> list[str]:
  """Differences between a saved and a new config.

  A key the saved config lacks (added to jaxrec after that run started) is not
  a difference when the new config leaves it at its default.
  """
  out = []
  for k in sorted(set(old) | set(new)):
    va, vb, vd = old.get(k), new.get(k), (defaults or {}).get(k)
    if isinstance(va, dict) and isinstance(vb, dict):
      out += _config_diff(va, vb, vd if isinstance(vd, dict) else {}, f"{prefix}{k}.")
    elif k not in old and vb == vd:
      continue
    elif va != vb:
      out.append(f"{prefix}{k}: {va!r} -> {vb!r}")
  return out


class Setup(NamedTuple):
  dataset: Dataset
  graphdef: nnx.GraphDef
  params: nnx.State
  context: dict[str, Any]
  context_seconds: float  # Host-side graph building (e.g. kNN graphs), once per run.


def setup(config: ml_collections.ConfigDict) -> Setup:
  """Loads the data and builds the model and its static context (host side, once)."""
  validate_config(config)
  model_cls = models.get(config.model_name)
  data_cfg = dict(config.dataset.to_dict() if hasattr(config.dataset, "to_dict")
                  else config.dataset)
  data_cfg["required_modalities"] = tuple(
      dict.fromkeys(tuple(data_cfg.get("required_modalities", ())) +
                    tuple(model_cls.required_modalities)))
  dataset = load_dataset(data_cfg)
  model = models.create(config.model_name, dataset, config.model,
                        rngs=nnx.Rngs(params=config.seed))
  cache_dir = (config.dataset.get("cache_dir") or os.environ.get("JAXREC_CACHE_DIR")
               or os.path.join(os.path.expanduser("~"), ".cache", "jaxrec"))
  t0 = time.perf_counter()
  context = model.build_context(dataset, cache_dir=cache_dir)
  jax.block_until_ready(context)
  context_seconds = time.perf_counter() - t0
  log.info("Built the model context (graphs) in %.2fs.", context_seconds)
  graphdef, params = nnx.split(model)
  return Setup(dataset, graphdef, params, context, context_seconds)


def _evaluator(dataset: Dataset, config) -> Evaluator:
  """Valid and test ranked once per evaluation: both mask the same train items."""
  return Evaluator({"valid": dataset.valid, "test": dataset.test}, dataset.train,
                   ks=tuple(config.topk), batch_size=config.eval_batch_size)


def _as_floats(metrics: dict[str, float]) -> dict[str, float]:
  return {k: float(v) for k, v in sorted(metrics.items())}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike) -> dict:
  """Trains ``config.model_name`` with early stopping; returns the summary dict.

  Writes ``config.json``, ``metrics.jsonl``, ``checkpoints/`` (latest),
  ``best/`` (best valid epoch) and ``summary.json`` into ``workdir``.
  """
  workdir = Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  cfg_dict = _config_dict(config)
  cfg_path = workdir / "config.json"
  if cfg_path.exists():
    defaults = _config_dict(base_config())
    defaults["model"] = _config_dict(models.hyperparameters(config.model_name))
    diff = _config_diff(json.loads(cfg_path.read_text()), cfg_dict, defaults)
    if diff:
      raise ValueError(
          f"{workdir} holds a run with a different config ({'; '.join(diff)}); "
          "use a new --workdir, or delete this one to start over.")

  t_setup = time.perf_counter()
  ds, graphdef, params, context, context_seconds = setup(config)
  cfg_path.write_text(json.dumps(cfg_dict, indent=2))
  tx = make_optimizer(config, num_batches(len(ds.train_edges), config.train_batch_size))
  state = {"params": params, "opt_state": tx.init(params)}
  data = make_train_data(ds)
  epoch_fn = make_epoch_fn(graphdef, tx, config.train_batch_size)
  on_epoch, after_epoch, embed, sampling_probe = _model_fns(graphdef)
  probe_batch = _probe_batch(data, config.train_batch_size)
  n_batches = num_batches(len(ds.train_edges), config.train_batch_size)
  # Whether the model samples its own negatives is static: decided once, by tracing.
  has_probe = jax.eval_shape(sampling_probe, params, context, probe_batch,
                             jax.random.key(0)) is not None
  evaluator = _evaluator(ds, config)
  setup_seconds = time.perf_counter() - t_setup
  log.info("%s on %s: %d users, %d items, %d train edges, %d batches/epoch (setup %.1fs)",
           config.model_name, ds.name, ds.n_users, ds.n_items, len(ds.train_edges),
           num_batches(len(ds.train_edges), config.train_batch_size), setup_seconds)

  ckpt = Checkpointer(workdir)
  stopper = EarlyStopping(metric=config.valid_metric, stopping_step=config.stopping_step)
  start, timings = 0, {"train": [], "eval": [], "on_epoch": []}
  restored = ckpt.restore("latest", state)
  if restored is not None:
    state = jax.tree.map(jnp.asarray, restored[0])
    meta = restored[1]
    start = meta["epoch"] + 1
    stopper = EarlyStopping.from_dict(meta["early_stopping"])
    timings = meta["timings"]
    log.info("Resumed %s from epoch %d (best epoch %d).", workdir, meta["epoch"],
             stopper.best_epoch)
  metrics_log = MetricsLog(workdir / "metrics.jsonl", keep_through_epoch=start - 1)
  if start > 0:  # Recompute what the last finished epoch carried over (e.g. CCDRec's pools).
    k_epoch, _, k_after = epoch_keys(config.seed, start - 1)
    context = after_epoch(state["params"],
                          on_epoch(state["params"], context, k_epoch, start - 1),
                          k_after, start - 1)

  epochs = range(start, config.epochs)
  bar = tqdm.tqdm(epochs, initial=start, total=config.epochs, desc=config.model_name,
                  disable=None, dynamic_ncols=True)
  epoch = start - 1
  for epoch in bar:
    if stopper.stopped:
      break
    k_epoch, k_train, k_after = epoch_keys(config.seed, epoch)

    t0 = time.perf_counter()
    epoch_context = on_epoch(state["params"], context, k_epoch, epoch)
    jax.block_until_ready(epoch_context)
    t1 = time.perf_counter()
    state, train_metrics = epoch_fn(state, epoch_context, data, k_train)
    train_metrics = jax.device_get(train_metrics)
    t2 = time.perf_counter()
    if not train_metrics.pop("all_finite"):
      raise NonFiniteLossError(
          f"Non-finite loss in epoch {epoch} (mean loss {train_metrics['loss']}); stopped. "
          f"The last good checkpoint (epoch {ckpt.latest_epoch('latest')}) is kept in {workdir}.")

    t_after = time.perf_counter()
    context = after_epoch(state["params"], epoch_context, k_after, epoch)
    jax.block_until_ready(context)
    after_seconds = time.perf_counter() - t_after
    t_probe = time.perf_counter()
    sampling_seconds = (_sampling_seconds(sampling_probe, state["params"], epoch_context,
                                          probe_batch, n_batches) if has_probe else None)
    probe_seconds = time.perf_counter() - t_probe
    users, items = embed(state["params"], context)
    results = evaluator(users, items)
    valid, test = results["valid"], results["test"]
    t3 = time.perf_counter()
    improved = stopper.update(epoch, valid, test)
    timings["train"].append(t2 - t0)
    timings.setdefault("on_epoch", []).append(t1 - t0)
    eval_seconds = t3 - t2 - after_seconds - probe_seconds
    timings["eval"].append(eval_seconds)

    row = {
        "epoch": epoch,
        **{f"train/{k}": float(v) for k, v in train_metrics.items()},
        "valid": _as_floats(valid),
        "test": _as_floats(test),
        "on_epoch_seconds": t1 - t0,
        "after_epoch_seconds": after_seconds,
        "train_seconds": t2 - t0,
        "eval_seconds": eval_seconds,
        "best_epoch": stopper.best_epoch,
    }
    if sampling_seconds is not None:
      # Part of train_seconds (fused in the epoch's scan), timed apart on one batch.
      row["negative_sampling_seconds"] = sampling_seconds
    metrics_log.write(row)
    meta = {"epoch": epoch, "early_stopping": stopper.to_dict(), "timings": timings}
    if improved:
      ckpt.save("best", epoch, state["params"], meta)
    is_last = stopper.stopped or epoch == config.epochs - 1
    if epoch % config.checkpoint_every_epochs == 0 or is_last:
      ckpt.save("latest", epoch, state, meta)
    bar.set_postfix(loss=f"{row['train/loss']:.4f}",
                    valid=f"{valid[config.valid_metric]:.4f}", best=stopper.best_epoch)
  bar.close()
  ckpt.close()

  summary = {
      "model": config.model_name,
      "dataset": ds.name,
      "best_epoch": stopper.best_epoch,
      "epochs_run": len(timings["train"]),
      "stopped_early": stopper.stopped,
      "valid": stopper.best_valid,
      "test": stopper.best_test,
      "train_seconds_per_epoch": float(np.mean(timings["train"])) if timings["train"] else None,
      "eval_seconds": float(np.mean(timings["eval"])) if timings["eval"] else None,
      "setup_seconds": setup_seconds,
      "context_build_seconds": context_seconds,
      "on_epoch_seconds": float(np.mean(timings["on_epoch"])) if timings.get("on_epoch") else None,
      "backend": jax.default_backend(),
      "devices": len(jax.devices()),
      "n_users": ds.n_users,
      "n_items": ds.n_items,
      "config": cfg_dict,
  }
  (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
  log.info("Best epoch %d: test %s", stopper.best_epoch,
           {k: round(v, 4) for k, v in stopper.best_test.items() if k.endswith(("@10", "@20"))})
  return summary


def evaluate_workdir(workdir: str | os.PathLike, *, export_topk: str | None = None) -> dict:
  """Re-evaluates the best checkpoint of a finished (or running) ``workdir``.

  Returns ``{"epoch", "valid", "test"}``; with ``export_topk``, writes an
  ``.npz`` with ``users`` ``[n]`` and ``topk`` ``[n, max(topk)]`` for every
  evaluated test user.
  """
  workdir = Path(workdir)
  cfg_path = workdir / "config.json"
  if not cfg_path.exists():
    raise FileNotFoundError(f"{workdir} holds no run (no config.json).")
  config = ml_collections.ConfigDict(json.loads(cfg_path.read_text()))
  config.topk = tuple(config.topk)
  config.dataset.required_modalities = tuple(config.dataset.required_modalities)
  ds, graphdef, params, context, _ = setup(config)
  ckpt = Checkpointer(workdir)
  restored = ckpt.restore("best", params)
  ckpt.close()
  if restored is None:
    raise FileNotFoundError(f"{workdir} holds no best checkpoint yet.")
  params = jax.tree.map(jnp.asarray, restored[0])
  epoch = restored[1]["epoch"]
  on_epoch, after_epoch, embed, _ = _model_fns(graphdef)
  k_epoch, _, k_after = epoch_keys(config.seed, epoch)
  # The best epoch's evaluation context, recomputed from its parameters and keys.
  context = after_epoch(params, on_epoch(params, context, k_epoch, epoch), k_after, epoch)
  users, items = embed(params, context)
  result = {"epoch": epoch, **_evaluator(ds, config)(users, items)}
  if export_topk:
    test_only = Evaluator(ds.test, ds.train, ks=tuple(config.topk),
                          batch_size=config.eval_batch_size)
    ids, top = test_only.topk(users, items, k=max(config.topk))
    np.savez(export_topk, users=ids, topk=top)
  return result


__all__ = ["NonFiniteLossError", "evaluate_workdir", "setup", "train_and_evaluate",
           "make_epoch_fn"]
