"""Models on the embedded synthetic default, where the features carry planted signal.

  python benchmarks/synthetic_compare.py --models mf lightgcn vbpr freedom \
      --seeds 999 --workdir runs/synthetic

Prints JSON (test metrics at the best valid epoch, mean and std over seeds) and
writes benchmarks/results/synthetic_default.json.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import numpy as np

from jaxrec.train import train_and_evaluate
from jaxrec.train.config import load_config_file

ROOT = pathlib.Path(__file__).resolve().parents[1]
KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def load_config(model: str):
  return load_config_file(ROOT / "configs" / f"{model}.py")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", nargs="+", default=["mf", "lightgcn", "vbpr", "freedom"])
  parser.add_argument("--seeds", nargs="+", type=int, default=[999])
  parser.add_argument("--workdir", default="runs/synthetic")
  parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" /
                                           "synthetic_default.json"))
  args = parser.parse_args()
  out_path = pathlib.Path(args.out)
  table = json.loads(out_path.read_text()) if out_path.exists() else {
      "benchmark": "synthetic_default", "dataset": "synthetic (configs' default)",
      "backend": jax.default_backend(), "models": {}}
  for name in args.models:
    runs = []
    for seed in args.seeds:
      config = load_config(name)
      config.seed = seed
      s = train_and_evaluate(config, pathlib.Path(args.workdir) / f"{name}_seed{seed}")
      runs.append({"seed": seed, "best_epoch": s["best_epoch"], "epochs_run": s["epochs_run"],
                   "train_seconds_per_epoch": s["train_seconds_per_epoch"],
                   **{k: round(s["test"][k], 4) for k in KEYS}})
    table["models"][name] = {
        "runs": runs,
        "mean": {k: round(float(np.mean([r[k] for r in runs])), 4) for k in KEYS},
        "std": {k: round(float(np.std([r[k] for r in runs])), 4) for k in KEYS},
    }
  text = json.dumps(table, indent=2)
  print(text)
  out_path.write_text(text + "\n")


if __name__ == "__main__":
  main()
