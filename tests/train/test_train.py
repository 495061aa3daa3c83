import json

import numpy as np
import pytest

from jaxrec.train import NonFiniteLossError, evaluate_workdir, train_and_evaluate
from jaxrec.train.metrics_log import read_metrics

KS = (5, 10, 20, 50)
SUMMARY_TEST_KEYS = {f"{m}@{k}" for m in ("recall", "ndcg", "precision", "map") for k in KS}


@pytest.mark.parametrize("model", ["mf", "lightgcn"])
def test_end_to_end_learns_and_writes_outputs(make_config, tmp_path, model):
  config = make_config(model)
  config.epochs = 12
  config.learning_rate = 1e-2
  summary = train_and_evaluate(config, tmp_path)
  on_disk = json.loads((tmp_path / "summary.json").read_text())
  assert on_disk["model"] == model and on_disk["dataset"] == "synthetic"
  assert SUMMARY_TEST_KEYS <= set(on_disk["test"]) and "recall@20" in on_disk["valid"]
  for key in ("best_epoch", "epochs_run", "train_seconds_per_epoch", "eval_seconds", "config"):
    assert key in on_disk
  rows = read_metrics(tmp_path / "metrics.jsonl")
  assert [r["epoch"] for r in rows] == list(range(12))
  assert {"train/loss", "train/bpr", "train/reg", "train_seconds", "eval_seconds"} <= set(rows[0])
  # It learned: loss went down and the best test recall beats random ranking by far
  # (random Recall@20 is about 20 / 200 = 0.1 of the GT).
  assert rows[-1]["train/loss"] < rows[0]["train/loss"]
  assert summary["test"]["recall@20"] > 0.2
  assert summary["test"] == rows[summary["best_epoch"]]["test"]


def test_same_seed_same_metrics_and_different_seed_differs(make_config, tmp_path):
  a = train_and_evaluate(make_config(), tmp_path / "a")
  b = train_and_evaluate(make_config(), tmp_path / "b")
  assert a["test"] == b["test"] and a["valid"] == b["valid"]
  config = make_config()
  config.seed = 1
  c = train_and_evaluate(config, tmp_path / "c")
  assert c["test"] != a["test"]


@pytest.mark.parametrize("model,epochs,kill_at", [("lightgcn", 6, 3), ("ccdrec", 3, 2)])
def test_killed_run_resumes_and_matches_uninterrupted(make_config, tmp_path, monkeypatch,
                                                      model, epochs, kill_at):
  # CCDRec carries its NDI pools from one epoch to the next: resuming must recompute them.
  config = make_config(model)
  config.epochs = epochs
  if model == "ccdrec":
    config.model.feat_embed_dim = config.model.embedding_size
  full = train_and_evaluate(config, tmp_path / "full")

  from jaxrec.train import early_stopping

  original = early_stopping.EarlyStopping.update

  def dying_update(self, epoch, valid, test):
    if epoch == kill_at:
      raise KeyboardInterrupt("killed")
    return original(self, epoch, valid, test)

  monkeypatch.setattr(early_stopping.EarlyStopping, "update", dying_update)
  with pytest.raises(KeyboardInterrupt):
    train_and_evaluate(config, tmp_path / "resumed")
  assert not (tmp_path / "resumed" / "summary.json").exists()
  monkeypatch.setattr(early_stopping.EarlyStopping, "update", original)
  resumed = train_and_evaluate(config, tmp_path / "resumed")
  assert resumed["test"] == full["test"] and resumed["best_epoch"] == full["best_epoch"]
  rows = read_metrics(tmp_path / "resumed" / "metrics.jsonl")
  assert [r["epoch"] for r in rows] == list(range(epochs))
  full_rows = read_metrics(tmp_path / "full" / "metrics.jsonl")
  assert [r["valid"] for r in rows] == [r["valid"] for r in full_rows]
  # CNS (CCDRec's own sampler) is timed apart from the NDI regeneration; uniform
  # negatives are part of the batching and have no separate figure.
  for r in full_rows:
    assert r["after_epoch_seconds"] > 0
    if model == "ccdrec":
      assert 0 < r["negative_sampling_seconds"] < r["train_seconds"]
    else:
      assert "negative_sampling_seconds" not in r


def test_kill_between_best_and_latest_checkpoint_resumes(make_config, tmp_path, monkeypatch):
  # The trainer saves "best" before "latest": a kill in between leaves best/<epoch>
  # one epoch ahead of latest, and the resumed run saves that best epoch again.
  config = make_config()
  full = train_and_evaluate(config, tmp_path / "full")
  from jaxrec.train import checkpoint

  original = checkpoint.Checkpointer.save

  def dying_save(self, which, epoch, tree, meta):
    if which == "latest" and epoch == 2:
      raise KeyboardInterrupt("killed")
    return original(self, which, epoch, tree, meta)

  monkeypatch.setattr(checkpoint.Checkpointer, "save", dying_save)
  with pytest.raises(KeyboardInterrupt):
    train_and_evaluate(config, tmp_path / "resumed")
  assert (tmp_path / "resumed" / "best" / "2").is_dir()
  assert not (tmp_path / "resumed" / "checkpoints" / "2").exists()
  monkeypatch.setattr(checkpoint.Checkpointer, "save", original)
  resumed = train_and_evaluate(config, tmp_path / "resumed")
  assert resumed["test"] == full["test"] and resumed["best_epoch"] == full["best_epoch"]
  assert evaluate_workdir(tmp_path / "resumed")["epoch"] == full["best_epoch"]


def test_finished_run_reruns_as_noop_and_evaluate_matches(make_config, tmp_path):
  config = make_config()
  first = train_and_evaluate(config, tmp_path)
  again = train_and_evaluate(config, tmp_path)
  assert again["test"] == first["test"] and again["epochs_run"] == first["epochs_run"]
  result = evaluate_workdir(tmp_path, export_topk=str(tmp_path / "top.npz"))
  assert result["epoch"] == first["best_epoch"]
  for k, v in first["test"].items():
    assert result["test"][k] == pytest.approx(v, abs=1e-6)
  top = np.load(tmp_path / "top.npz")
  assert top["topk"].shape == (top["users"].shape[0], 50)
  assert len(np.unique(top["topk"][0])) == 50


def test_changed_config_in_existing_workdir_is_an_error(make_config, tmp_path):
  train_and_evaluate(make_config(), tmp_path)
  config = make_config()
  config.learning_rate = 0.5
  with pytest.raises(ValueError, match="learning_rate"):
    train_and_evaluate(config, tmp_path)


def test_non_finite_loss_stops_with_message(make_config, tmp_path, monkeypatch):
  import jax.numpy as jnp

  from jaxrec import losses

  original = losses.bpr_loss
  monkeypatch.setattr(losses, "bpr_loss", lambda *a, **k: original(*a, **k) * jnp.nan)
  with pytest.raises(NonFiniteLossError, match="Non-finite loss in epoch 0"):
    train_and_evaluate(make_config(), tmp_path)
  assert not (tmp_path / "summary.json").exists()


def test_unknown_config_keys_list_valid_ones(make_config, tmp_path):
  config = make_config()
  config.unlock()
  config.model.n_layer = 3
  with pytest.raises(ValueError, match=r"model\.n_layer.*valid keys:.*model\.n_layers"):
    train_and_evaluate(config, tmp_path)
  config = make_config()
  config.unlock()
  config.learning_rat = 3
  with pytest.raises(ValueError, match=r"learning_rat.*valid keys:.*learning_rate"):
    train_and_evaluate(config, tmp_path)


def test_lr_decay_follows_mmrec_lambda_lr(make_config):
  import jax.numpy as jnp

  from jaxrec.train.train import learning_rate

  config = make_config()
  assert learning_rate(config, 10) == config.learning_rate  # (1.0, 50): constant.
  config.learning_rate_scheduler = (0.96, 50)
  schedule = learning_rate(config, steps_per_epoch=10)
  steps = np.arange(1200)
  got = np.array([float(schedule(jnp.int32(s))) for s in steps[::37]])
  want = config.learning_rate * 0.96 ** ((steps[::37] // 10) / 50)
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_resume_accepts_keys_added_later_at_their_defaults(make_config, tmp_path):
  first = train_and_evaluate(make_config(), tmp_path)
  saved = json.loads((tmp_path / "config.json").read_text())
  del saved["learning_rate_scheduler"], saved["model"]["init"]  # As written by an older jaxrec.
  (tmp_path / "config.json").write_text(json.dumps(saved))
  assert train_and_evaluate(make_config(), tmp_path)["test"] == first["test"]
