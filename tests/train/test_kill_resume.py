"""A real SIGKILL mid-run, then the same command again: it resumes and finishes."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
ARGS = [
    "--config", str(ROOT / "configs" / "mf.py"),
    "--config.dataset.synthetic.n_users=300", "--config.dataset.synthetic.n_items=200",
    "--config.dataset.synthetic.image_dim=8", "--config.dataset.synthetic.text_dim=8",
    "--config.epochs=40", "--config.stopping_step=100", "--config.model.embedding_size=8",
    "--config.train_batch_size=64",
]


def _cmd(workdir):
  return [sys.executable, "-c", "from jaxrec.cli import run; run()", "train",
          "--workdir", str(workdir), *ARGS]


def _latest_epoch(workdir):
  ckpt = workdir / "checkpoints"
  steps = [int(p.name) for p in ckpt.iterdir() if p.name.isdigit()] if ckpt.exists() else []
  return max(steps, default=-1)


def test_sigkill_then_rerun_resumes_and_matches(tmp_path):
  env = {**os.environ, "JAX_PLATFORMS": "cpu"}
  full = tmp_path / "full"
  subprocess.run(_cmd(full), check=True, env=env, capture_output=True, timeout=300)

  killed = tmp_path / "killed"
  proc = subprocess.Popen(_cmd(killed), env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  deadline = time.time() + 240
  while _latest_epoch(killed) < 5 and time.time() < deadline and proc.poll() is None:
    time.sleep(0.05)
  assert proc.poll() is None, "run finished before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert not (killed / "summary.json").exists()
  stopped_at = _latest_epoch(killed)
  assert 5 <= stopped_at < 39

  subprocess.run(_cmd(killed), check=True, env=env, capture_output=True, timeout=300)
  a = json.loads((full / "summary.json").read_text())
  b = json.loads((killed / "summary.json").read_text())
  assert b["epochs_run"] == a["epochs_run"] == 40
  assert b["test"] == a["test"] and b["best_epoch"] == a["best_epoch"]
  epochs = [json.loads(line)["epoch"] for line in open(killed / "metrics.jsonl")]
  assert epochs == list(range(40))
