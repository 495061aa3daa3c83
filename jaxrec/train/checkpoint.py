"""Orbax checkpoints of the train state: the latest epoch and the best one.

Pytrees are stored as their list of leaves (host numpy) plus JSON metadata,
so any state (``nnx.State``, optax NamedTuples) round-trips through a target
of the same structure without orbax knowing its node types.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:
  """Two orbax managers under ``workdir``: ``checkpoints/`` (latest) and ``best/``."""

  def __init__(self, workdir: str | os.PathLike, *, max_to_keep: int = 1):
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False)
    root = os.path.abspath(os.fspath(workdir))
    self._managers = {
        name: ocp.CheckpointManager(os.path.join(root, sub), options=options)
        for name, sub in (("latest", "checkpoints"), ("best", "best"))
    }

  def save(self, which: str, epoch: int, tree: Any, meta: dict[str, Any]) -> None:
    """Saves ``tree`` (any pytree of arrays) and JSON ``meta`` as ``epoch``."""
    leaves = [np.asarray(x) for x in jax.device_get(jax.tree.leaves(tree))]
    manager = self._managers[which]
    if epoch in manager.all_steps():
      # Left by a run killed after this save but before the epoch's "latest" one:
      # the resumed run recomputes the epoch, so its new state replaces the old.
      manager.delete(epoch)
    manager.save(
        epoch,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave({"leaves": leaves}), meta=ocp.args.JsonSave(meta)),
        force=True,
    )

  def latest_epoch(self, which: str) -> int | None:
    return self._managers[which].latest_step()

  def restore(self, which: str, target: Any) -> tuple[Any, dict[str, Any]] | None:
    """Restores into the structure of ``target``; ``None`` when nothing is saved."""
    manager = self._managers[which]
    epoch = manager.latest_step()
    if epoch is None:
      return None
    leaves, treedef = jax.tree.flatten(target)
    abstract = {"leaves": [np.zeros(np.shape(x), np.asarray(x).dtype) for x in leaves]}
    out = manager.restore(
        epoch,
        args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
    )
    return jax.tree.unflatten(treedef, list(out.state["leaves"])), dict(out.meta)

  def close(self) -> None:
    for m in self._managers.values():
      m.wait_until_finished()
      m.close()
