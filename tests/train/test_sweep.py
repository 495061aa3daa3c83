import json

import pytest

from jaxrec.train.sweep import sweep


def test_sweep_selects_on_valid_and_writes_table(make_config, tmp_path):
  config = make_config("mf")
  config.epochs = 2
  result = sweep(config, {"model.reg_weight": [0.0, 0.1], "learning_rate": [1e-2]}, tmp_path)
  assert len(result["runs"]) == 2
  best_valid = max(round(r["valid"]["recall@20"], 4) for r in result["runs"])
  assert round(result["selected"]["valid"]["recall@20"], 4) == best_valid
  on_disk = json.loads((tmp_path / "sweep.json").read_text())
  assert on_disk["selected_on"] == "valid"
  assert (tmp_path / "reg_weight=0.1,learning_rate=0.01" / "summary.json").exists()


def test_sweep_unknown_key(make_config, tmp_path):
  with pytest.raises(ValueError, match="Unknown grid key 'model.nope'"):
    sweep(make_config("mf"), {"model.nope": [1]}, tmp_path)
