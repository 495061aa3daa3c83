"""Models and variants over several seeds: test metrics at the best VALID epoch, mean ± std.

A variant is ``NAME=CONFIG`` or ``NAME=CONFIG:KEY=VALUE,KEY=VALUE`` (CONFIG a file
in configs/ without ``.py``; keys as in ``--config.KEY``, ``model.`` optional):

  python benchmarks/compare.py --seeds 999 1000 1001 \
      --variant freedom=freedom \
      --variant freedom+dma=ccdrec:negative_sampling=uniform \
      --variant ccdrec=ccdrec                       # synthetic default
  python benchmarks/compare.py --data ../shared/data/baby --name baby_ccdrec_ablation ...

Runs live in ``--workdir/<name>/<variant>_seed<seed>`` and are resumed (a finished
run is read back, not retrained), so variants can be added one call at a time.
Prints JSON and merges it into benchmarks/results/<name>.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib

import jax
import numpy as np

from jaxrec.train import train_and_evaluate
from jaxrec.train.config import load_config_file
from jaxrec.train.sweep import parse_grid, set_value

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def parse_variant(spec: str) -> tuple[str, str, list[str]]:
  """``"dma=ccdrec:negative_sampling=uniform"`` -> ``("dma", "ccdrec", [overrides])``."""
  name, sep, rest = spec.partition("=")
  if not sep or not rest:
    raise SystemExit(f"--variant expects NAME=CONFIG[:KEY=VALUE,...]; got {spec!r}.")
  config_name, _, overrides = rest.partition(":")
  return name, config_name, [o for o in overrides.split(",") if o]


def variant_config(config_name: str, overrides: list[str], data: str | None, seed: int):
  config = load_config_file(ROOT / "configs" / f"{config_name}.py")
  for key, values in parse_grid(overrides, config).items():
    if len(values) != 1:
      raise SystemExit(f"A variant takes one value per key; got {key}={values}.")
    set_value(config, key, values[0])
  if data:
    config.dataset.path = data
  config.seed = seed
  return config


def summarize(runs: list[dict]) -> dict:
  return {"runs": runs,
          "mean": {k: round(float(np.mean([r[k] for r in runs])), 4) for k in KEYS},
          "std": {k: round(float(np.std([r[k] for r in runs])), 4) for k in KEYS}}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--variant", action="append", required=True,
                      help="NAME=CONFIG[:KEY=VALUE,...] (repeatable)")
  parser.add_argument("--seeds", nargs="+", type=int, default=[999])
  parser.add_argument("--data", default=None, help="MMRec dataset folder (default: synthetic)")
  parser.add_argument("--name", default="synthetic_default", help="result / run folder name")
  parser.add_argument("--workdir", default="runs/compare")
  args = parser.parse_args()
  logging.basicConfig(level=logging.WARNING)
  out_path = ROOT / "benchmarks" / "results" / f"{args.name}.json"
  for spec in args.variant:
    name, config_name, overrides = parse_variant(spec)
    runs = []
    for seed in args.seeds:
      config = variant_config(config_name, overrides, args.data, seed)
      s = train_and_evaluate(config, pathlib.Path(args.workdir) / args.name / f"{name}_seed{seed}")
      runs.append({"seed": seed, "best_epoch": s["best_epoch"], "epochs_run": s["epochs_run"],
                   "train_seconds_per_epoch": round(s["train_seconds_per_epoch"], 2),
                   **{k: round(s["test"][k], 4) for k in KEYS}})
    # Re-read before merging: other compare.py calls may have added variants meanwhile.
    table = json.loads(out_path.read_text()) if out_path.exists() else {
        "benchmark": "compare", "dataset": args.data or "synthetic (configs' default)",
        "selected_on": "best valid epoch of each run; test metrics reported",
        "backend": jax.default_backend(), "models": {}}
    table["models"][name] = {"config": config_name, "overrides": overrides, **summarize(runs)}
    out_path.write_text(json.dumps(table, indent=2) + "\n")
  print(json.dumps(table, indent=2))


if __name__ == "__main__":
  main()
