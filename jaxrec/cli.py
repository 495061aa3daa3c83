"""``jaxrec train | evaluate``: a thin command line over :mod:`jaxrec.train`.

  jaxrec train --config configs/lightgcn.py --workdir runs/lgcn \
      [--config.dataset.path=PATH] [--config.any.key=value]
  jaxrec evaluate --workdir runs/lgcn [--export-topk top50.npz]
"""

from __future__ import annotations

import json
import logging
import sys

from absl import flags
from ml_collections import config_flags

_COMMANDS = ("train", "evaluate", "sweep")


def _flags(argv: list[str]) -> flags.FlagValues:
  # A fresh FlagValues per call: absl keeps parsed values across calls otherwise.
  fv = flags.FlagValues()
  config_flags.DEFINE_config_file(
      "config", None, "Path to a configs/*.py file.", lock_config=True, flag_values=fv,
      sys_argv=argv)
  flags.DEFINE_string("workdir", None, "Run directory (created; resumed if it holds a run).",
                      flag_values=fv)
  flags.DEFINE_string("export_topk", None,
                      "evaluate: write test users' top-k items to this .npz.", flag_values=fv)
  flags.DEFINE_multi_string("grid", [], "sweep: KEY=V1,V2,... (repeatable).", flag_values=fv)
  return fv


def _usage() -> str:
  return (f"usage: jaxrec {{{'|'.join(_COMMANDS)}}} [flags]\n"
          "  jaxrec train --config configs/lightgcn.py [--workdir DIR] [--config.KEY=VALUE]\n"
          "  jaxrec evaluate --workdir DIR [--export-topk FILE.npz]\n"
          "  jaxrec sweep --config configs/freedom.py --grid reg_weight=0,1e-4 "
          "--grid dropout=0.8,0.9 [--workdir DIR]")


def _valid_keys_hint(args: list[str]) -> str:
  """Lists the config's keys when an override names an unknown one."""
  path = None
  for i, a in enumerate(args):
    if a == "--config" and i + 1 < len(args):
      path = args[i + 1]
    elif a.startswith("--config="):
      path = a.split("=", 1)[1]
  if path is None:
    return ""
  from jaxrec.train.config import flat_keys, load_config_file

  try:
    config = load_config_file(path)
  except Exception:  # noqa: BLE001  (the hint is best-effort; the error is reported anyway)
    return ""

  return "\nvalid keys: " + ", ".join(flat_keys(config))


def main(argv: list[str]) -> int:
  if len(argv) < 2 or argv[1] not in _COMMANDS:
    print(_usage(), file=sys.stderr)
    return 2
  command = argv[1]
  rest = [a.replace("--export-topk", "--export_topk", 1) for a in argv[2:]]
  fv = _flags(argv[:1] + rest)
  try:
    fv(argv[:1] + rest)
  except (flags.Error, AttributeError, KeyError) as e:
    print(f"jaxrec {command}: {e}{_valid_keys_hint(rest)}", file=sys.stderr)
    return 2
  logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

  from jaxrec.train import evaluate_workdir, train_and_evaluate  # Heavy imports after parsing.

  try:
    if command in ("train", "sweep"):
      if fv.config is None:
        print(f"jaxrec {command}: --config is required (e.g. configs/lightgcn.py).",
              file=sys.stderr)
        return 2
      config = fv.config
      workdir = fv.workdir or f"runs/{config.model_name}_{config.dataset.name or 'synthetic'}"
    if command == "sweep":
      from jaxrec.train.sweep import parse_grid, sweep

      result = sweep(config, parse_grid(fv.grid, config), workdir + "/sweep")
      print(json.dumps({"selected_on": f"valid {result['metric']}",
                        "selected": result["selected"]["point"],
                        "test": result["selected"]["test"]}, indent=2))
      print(f"Table in {workdir}/sweep/sweep.json")
    elif command == "train":
      summary = train_and_evaluate(config, workdir)
      print(json.dumps({k: summary[k] for k in ("model", "dataset", "best_epoch", "epochs_run",
                                               "valid", "test")}, indent=2))
      print(f"Results in {workdir}/summary.json")
    else:
      if not fv.workdir:
        print("jaxrec evaluate: --workdir is required.", file=sys.stderr)
        return 2
      result = evaluate_workdir(fv.workdir, export_topk=fv.export_topk)
      print(json.dumps(result, indent=2))
  except (ValueError, FileNotFoundError, RuntimeError) as e:
    print(f"jaxrec {command}: error: {e}", file=sys.stderr)
    return 1
  return 0


def run() -> None:
  """Console-script entry point."""
  sys.exit(main(sys.argv))
