"""Grid search over config values, selecting on VALIDATION (never on test).

MMRec and the CCDRec code pick the best grid point by its test score; jaxrec
selects by ``config.valid_metric`` at each run's best valid epoch and reports
that point's test metrics.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ml_collections

from jaxrec.train.train import train_and_evaluate


def _set(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
  *parents, leaf = dotted.split(".")
  node = config
  for p in parents:
    node = node[p]
  if leaf not in node:
    raise ValueError(f"Unknown grid key {dotted!r}.")
  node[leaf] = value


def run_name(point: Mapping[str, Any]) -> str:
  return ",".join(f"{k.split('.')[-1]}={v}" for k, v in point.items()) or "default"


def sweep(
    config: ml_collections.ConfigDict,
    grid: Mapping[str, Sequence[Any]],
    workdir: str | os.PathLike,
) -> dict[str, Any]:
  """Trains every combination of ``grid`` (dotted config keys -> values).

  Each run gets ``workdir/<key=value,...>/`` (resumable like any run); the
  table goes to ``workdir/sweep.json``.

  Returns:
    ``{"metric", "runs": [{"point", "workdir", "best_epoch", "valid", "test"}],
    "selected": <the run with the highest valid metric>}``.
  """
  workdir = Path(workdir)
  keys = list(grid)
  runs = []
  for values in itertools.product(*(grid[k] for k in keys)):
    point = dict(zip(keys, values))
    run_config = copy.deepcopy(config)
    for k, v in point.items():
      _set(run_config, k, v)
    run_dir = workdir / run_name(point)
    summary = train_and_evaluate(run_config, run_dir)
    runs.append({"point": point, "workdir": str(run_dir), "best_epoch": summary["best_epoch"],
                 "epochs_run": summary["epochs_run"],
                 "train_seconds_per_epoch": summary["train_seconds_per_epoch"],
                 "eval_seconds": summary["eval_seconds"],
                 "valid": summary["valid"], "test": summary["test"]})
  metric = config.valid_metric
  # Ties on the (4-decimal) valid metric go to the earlier grid point.
  selected = max(runs, key=lambda r: round(r["valid"].get(metric, float("-inf")), 4))
  result = {"metric": metric, "selected_on": "valid", "grid": {k: list(v) for k, v in
                                                               grid.items()},
            "runs": runs, "selected": selected}
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "sweep.json").write_text(json.dumps(result, indent=2))
  return result
