"""Per-epoch JSONL metrics log that survives a resume."""

from __future__ import annotations

import json
import os
from typing import Any


class MetricsLog:
  """Appends one JSON object per epoch to ``path``.

  On resume, rows for epochs after the restored checkpoint (written by a run
  that was killed before it could checkpoint them) are dropped, so the log
  holds each epoch exactly once.
  """

  def __init__(self, path: str | os.PathLike, *, keep_through_epoch: int):
    self.path = os.fspath(path)
    rows = read_metrics(self.path) if os.path.exists(self.path) else []
    rows = [r for r in rows if r.get("epoch", -1) <= keep_through_epoch]
    with open(self.path, "w") as f:
      for r in rows:
        f.write(json.dumps(r) + "\n")

  def write(self, row: dict[str, Any]) -> None:
    with open(self.path, "a") as f:
      f.write(json.dumps(row) + "\n")


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
  """Rows of a ``metrics.jsonl``; a torn last line (killed mid-write) is skipped."""
  rows = []
  with open(path) as f:
    for line in f:
      try:
        rows.append(json.loads(line))
      except json.JSONDecodeError:
        continue
  return rows
