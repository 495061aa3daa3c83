"""Prints the README's results table (markdown) from benchmarks/results/baby_*.json."""

from __future__ import annotations

import json
import pathlib

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
COLS = ("recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20")


def fmt(v):
  return "" if v is None else f"{v:.4f}"


def main() -> None:
  print("| model | selected (on valid) | best / run epochs | " + " | ".join(
      c.replace("recall", "R").replace("ndcg", "N") for c in COLS) +
        " | target | s/epoch train + eval |")
  print("|" + "---|" * (len(COLS) + 5))
  for path in sorted(RESULTS.glob("baby_*.json")):
    r = json.loads(path.read_text())
    sel = ", ".join(f"{k.split('.')[-1]}={v}" for k, v in r["selected"].items()) or "defaults"
    target = r.get("target", {})
    tgt = ", ".join(f"{k.replace('recall', 'R').replace('ndcg', 'N')} {v}"
                    for k, v in target.items())
    ok = r.get("within_5pct_or_above")
    mark = "" if ok is None else (" (met)" if ok else " (NOT met)")
    print(f"| {r['model']} | {sel} | {r['best_epoch']} / {r['epochs_run']} | " +
          " | ".join(fmt(r["test"].get(c)) for c in COLS) +
          f" | {tgt}{mark} | {r['train_seconds_per_epoch']:.2f} + "
          f"{r['eval_seconds_per_epoch']:.2f} |")


if __name__ == "__main__":
  main()
