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


def _has(config: ml_collections.ConfigDict, dotted: str) -> bool:
  node = config
  for part in dotted.split("."):
    if not hasattr(node, "keys") or part not in node:
      return False
    node = node[part]
  return True


def resolve_key(config: ml_collections.ConfigDict, key: str) -> str:
  """``reg_weight`` -> ``model.reg_weight`` when only the model section has it."""
  if _has(config, key):
    return key
  if _has(config, f"model.{key}"):
    return f"model.{key}"
  raise ValueError(f"Unknown grid key {key!r}.")


def parse_grid(items: Sequence[str], config: ml_collections.ConfigDict) -> dict[str, list]:
  """``["reg_weight=0,1e-4", "dropout=0.8,0.9"]`` -> ``{"model.reg_weight": [0, 1e-4], ...}``.

  Values are parsed as JSON (numbers, true/false, quoted strings), else kept as strings.
  """
  grid = {}
  for item in items:
    key, sep, values = item.partition("=")
    if not sep or not values:
      raise ValueError(f"--grid expects KEY=V1,V2,...; got {item!r}.")
    parsed = []
    for v in values.split(","):
      try:
        parsed.append(json.loads(v))
      except json.JSONDecodeError:
        parsed.append(v)
    grid[resolve_key(config, key)] = parsed
  return grid


def set_value(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
  """Sets ``config[dotted]`` (``model.`` optional), keeping a float key a float."""
  dotted = resolve_key(config, dotted)
  *parents, leaf = dotted.split(".")
  node = config
  for p in parents:
    node = node[p]
  node[leaf] = type(node[leaf])(value) if isinstance(node[leaf], float) else value


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
      set_value(run_config, k, v)
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
