"""Prints the README's results tables (markdown) from benchmarks/results/*.json.

  python benchmarks/results_table.py                      # reproduce_baby.py runs
  python benchmarks/results_table.py --compare baby_compare synthetic_default
"""

from __future__ import annotations

import argparse
import json
import pathlib

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
COLS = ("recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20")
SEED_COLS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def fmt(v):
  return "" if v is None else f"{v:.4f}"


def short(metric: str) -> str:
  return metric.replace("recall", "R").replace("ndcg", "N")


def reproduce_table() -> None:
  print("| model | selected (on valid) | best / run epochs | " +
        " | ".join(short(c) for c in COLS) + " | target | s/epoch train + eval |")
  print("|" + "---|" * (len(COLS) + 5))
  for path in sorted(RESULTS.glob("baby_*.json")):
    r = json.loads(path.read_text())
    if r.get("benchmark") != "reproduce_baby":
      continue
    sel = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in r["selected"].items()) or "defaults"
    tgt = ", ".join(f"{short(k)} {v}" for k, v in r.get("target", {}).items())
    ok = r.get("within_5pct_or_above")
    mark = "" if ok is None else (" (met)" if ok else " (NOT met)")
    print(f"| {r['model']} | {sel} | {r['best_epoch']} / {r['epochs_run']} | " +
          " | ".join(fmt(r["test"].get(c)) for c in COLS) +
          f" | {tgt}{mark} | {r['train_seconds_per_epoch']:.2f} + "
          f"{r['eval_seconds_per_epoch']:.2f} |")


def compare_table(name: str) -> None:
  """Mean ± std over seeds per variant of a benchmarks/compare.py result."""
  r = json.loads((RESULTS / f"{name}.json").read_text())
  print(f"{name} ({r['dataset']}):\n")
  print("| variant | seeds | best epochs | " + " | ".join(short(c) for c in SEED_COLS) +
        " | s/epoch train |")
  print("|" + "---|" * (len(SEED_COLS) + 4))
  for variant, v in r["models"].items():
    runs = v["runs"]
    cells = [f"{v['mean'][c]:.4f} ± {v['std'][c]:.4f}" if len(runs) > 1 else fmt(v["mean"][c])
             for c in SEED_COLS]
    seeds = ", ".join(str(x["seed"]) for x in runs)
    epochs = ", ".join(str(x["best_epoch"]) for x in runs)
    secs = sum(x["train_seconds_per_epoch"] for x in runs) / len(runs)
    print(f"| {variant} | {seeds} | {epochs} | " + " | ".join(cells) + f" | {secs:.2f} |")
  print()


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--compare", nargs="*", default=None,
                      help="result names of benchmarks/compare.py runs")
  args = parser.parse_args()
  if args.compare is None:
    reproduce_table()
  for name in args.compare or ():
    compare_table(name)


if __name__ == "__main__":
  main()
