"""The model contract shared by every recommender in jaxrec."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from jaxrec import losses
from jaxrec.data import Dataset
from jaxrec.data.batching import Batch

Context = dict[str, Any]


class Recommender(nnx.Module):
  """A model scored by the dot product of final user and item embeddings.

  Subclasses implement :meth:`embed` and :meth:`loss`; graph models also
  :meth:`build_context`, per-epoch models :meth:`on_epoch`. Everything a
  jitted function needs besides parameters (graphs, features, per-epoch
  products) lives in the ``context`` pytree and is passed as an argument.
  """

  #: Modalities (feature names) the model cannot run without.
  required_modalities: tuple[str, ...] = ()

  def build_context(self, dataset: Dataset, *, cache_dir: str | None = None) -> Context:
    """Host-side, once: static device arrays the jitted functions receive.

    ``cache_dir`` is where expensive derived data (e.g. kNN graphs) may be cached.
    """
    del dataset, cache_dir
    return {}

  def on_epoch(self, context: Context, key: jax.Array, epoch: jax.Array) -> Context:
    """Per-epoch products (pruned graphs, pools); the default changes nothing."""
    del key, epoch
    return context

  def after_epoch(self, context: Context, key: jax.Array, epoch: jax.Array) -> Context:
    """Products made after an epoch's training, before its evaluation (CCDRec's pools).

    The returned context is also the next epoch's input to :meth:`on_epoch`, so
    it may carry products from one epoch to the next; on resume the trainer
    recomputes it from the restored parameters and the same key.
    """
    del key, epoch
    return context

  def sampling_probe(self, context: Context, batch: Batch, key: jax.Array) -> jax.Array | None:
    """The model's own per-batch negative sampling alone, for timing it (CCDRec's CNS).

    The trainer times one call per epoch and reports it, times the number of
    batches, as ``negative_sampling_seconds`` in ``metrics.jsonl`` (the sampling
    itself runs fused inside the jitted epoch, where it cannot be timed apart).
    ``None`` (the default): the negatives are the batching's uniform ones.
    """
    del context, batch, key
    return None

  def embed(self, context: Context, *, train: bool) -> tuple[jax.Array, jax.Array]:
    """Returns final ``([n_users, d], [n_items, d])`` embeddings."""
    raise NotImplementedError

  def loss(
      self, context: Context, batch: Batch, key: jax.Array
  ) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Returns ``(loss, parts)`` for one ``[batch]`` of triples."""
    raise NotImplementedError


_INITS = {"xavier_uniform": nnx.initializers.xavier_uniform,
          "xavier_normal": nnx.initializers.xavier_normal}


def present_modalities(dataset: Dataset, order: tuple[str, ...], model: str) -> tuple[str, ...]:
  """The modalities of ``order`` the dataset has, in that order; an error if none."""
  present = tuple(m for m in order if m in dataset.features)
  if not present:
    raise ValueError(
        f"{model} needs at least one of the modalities {order}; dataset "
        f"{dataset.name!r} has {sorted(dataset.features) or 'none'}.")
  return present


def xavier_table(key: jax.Array, n: int, d: int, init: str = "xavier_uniform") -> jax.Array:
  """``[n, d]`` table initialised like torch's ``xavier_uniform_`` / ``xavier_normal_``.

  Uniform bound ``sqrt(6 / (n + d))``; normal std ``sqrt(2 / (n + d))``.
  """
  if init not in _INITS:
    raise ValueError(f"Unknown init {init!r}; valid: {', '.join(sorted(_INITS))}.")
  return _INITS[init]()(key, (n, d), jnp.float32)


class IDEmbeddingModel(Recommender):
  """User and item ID tables trained with BPR + ``reg_weight`` * MMRec's EmbLoss.

  The regulariser acts on the batch's ego (layer-0) embeddings, as in MMRec's
  BPR-MF and LightGCN.
  """

  def __init__(
      self,
      dataset: Dataset,
      *,
      rngs: nnx.Rngs,
      embedding_size: int = 64,
      reg_weight: float = 0.0,
      init: str = "xavier_uniform",
  ):
    self.n_users, self.n_items = dataset.n_users, dataset.n_items
    self.reg_weight = float(reg_weight)
    self.user_embedding = nnx.Param(
        xavier_table(rngs.params(), self.n_users, embedding_size, init))
    self.item_embedding = nnx.Param(
        xavier_table(rngs.params(), self.n_items, embedding_size, init))

  def loss(self, context, batch, key):
    del key
    users, items = self.embed(context, train=True)
    u, p, n = users[batch.users], items[batch.pos_items], items[batch.neg_items]
    bpr = losses.bpr_loss(jnp.sum(u * p, -1), jnp.sum(u * n, -1), where=batch.mask)
    reg = losses.emb_loss(
        self.user_embedding[...][batch.users],
        self.item_embedding[...][batch.pos_items],
        self.item_embedding[...][batch.neg_items],
        where=batch.mask,
    )
    return bpr + self.reg_weight * reg, {"bpr": bpr, "reg": reg}
