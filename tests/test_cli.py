import json
import pathlib

import pytest

from jaxrec import cli

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"
TINY = [
    "--config.dataset.synthetic.n_users=200", "--config.dataset.synthetic.n_items=120",
    "--config.dataset.synthetic.image_dim=8", "--config.dataset.synthetic.text_dim=8",
    "--config.epochs=2", "--config.model.embedding_size=8", "--config.train_batch_size=512",
]


def test_train_then_evaluate_with_export(tmp_path, capsys):
  work = tmp_path / "run"
  rc = cli.main(["jaxrec", "train", "--config", str(CONFIGS / "lightgcn.py"),
                 "--workdir", str(work), "--config.model.n_layers=1", *TINY])
  assert rc == 0
  summary = json.loads((work / "summary.json").read_text())
  assert summary["config"]["model"]["n_layers"] == 1 and summary["epochs_run"] == 2
  rc = cli.main(["jaxrec", "evaluate", "--workdir", str(work),
                 "--export-topk", str(tmp_path / "top.npz")])
  assert rc == 0 and (tmp_path / "top.npz").exists()
  assert '"test"' in capsys.readouterr().out


@pytest.mark.parametrize("flag", ["--config.model.n_layer=3", "--config.learning_rat=1"])
def test_unknown_key_is_a_clear_error(tmp_path, capsys, flag):
  rc = cli.main(["jaxrec", "train", "--config", str(CONFIGS / "lightgcn.py"),
                 "--workdir", str(tmp_path), flag])
  assert rc == 2
  err = capsys.readouterr().err
  assert flag.split("=")[0].removeprefix("--config.") in err
  assert "valid keys:" in err and "model.n_layers" in err and "learning_rate" in err


def test_usage_errors(capsys, tmp_path):
  assert cli.main(["jaxrec"]) == 2
  assert cli.main(["jaxrec", "fly"]) == 2
  assert cli.main(["jaxrec", "evaluate", "--workdir", str(tmp_path / "none")]) == 1
  assert "no config.json" in capsys.readouterr().err


def test_sweep_command_selects_on_valid(tmp_path, capsys):
  rc = cli.main(["jaxrec", "sweep", "--config", str(CONFIGS / "mf.py"), "--workdir",
                 str(tmp_path), "--grid", "reg_weight=0,0.1", *TINY])
  assert rc == 0
  table = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
  assert [r["point"] for r in table["runs"]] == [{"model.reg_weight": 0},
                                                 {"model.reg_weight": 0.1}]
  assert '"selected_on": "valid recall@20"' in capsys.readouterr().out
  assert cli.main(["jaxrec", "sweep", "--config", str(CONFIGS / "mf.py"), "--workdir",
                   str(tmp_path), "--grid", "nope=1"]) == 1
