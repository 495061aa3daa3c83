"""MMRec's early stopping on a validation metric."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class EarlyStopping:
  """Tracks the best validation epoch, MMRec's ``early_stopping`` rule.

  An epoch improves when its metric, rounded to 4 decimals, is strictly
  greater than the best so far; training stops once ``counter`` exceeds
  ``stopping_step`` (i.e. after ``stopping_step + 1`` epochs without
  improvement). The reported result is the test metrics of the best epoch.
  """

  metric: str = "recall@20"
  stopping_step: int = 20
  best_score: float = float("-inf")
  best_epoch: int = -1
  counter: int = 0
  stopped: bool = False
  best_valid: dict[str, float] = dataclasses.field(default_factory=dict)
  best_test: dict[str, float] = dataclasses.field(default_factory=dict)

  def update(self, epoch: int, valid: dict[str, float], test: dict[str, float]) -> bool:
    """Records one epoch; returns whether it is the new best."""
    score = round(float(valid[self.metric]), 4)
    if score > self.best_score:
      self.best_score, self.best_epoch, self.counter = score, epoch, 0
      self.best_valid, self.best_test = dict(valid), dict(test)
      return True
    self.counter += 1
    if self.counter > self.stopping_step:
      self.stopped = True
    return False

  def to_dict(self) -> dict[str, Any]:
    d = dataclasses.asdict(self)
    if d["best_score"] == float("-inf"):
      d["best_score"] = None  # JSON has no -inf.
    return d

  @classmethod
  def from_dict(cls, d: dict[str, Any]) -> EarlyStopping:
    d = dict(d)
    if d.get("best_score") is None:
      d["best_score"] = float("-inf")
    return cls(**d)
