"""Checkpointer: round trip, and a step left by a killed run is replaced, not an error."""

import numpy as np

from jaxrec.train.checkpoint import Checkpointer


def _tree(x):
  return {"a": np.full((2, 3), x, np.float32), "b": [np.arange(4) + int(x)]}


def test_round_trip_and_latest_epoch(tmp_path):
  ckpt = Checkpointer(tmp_path)
  assert ckpt.restore("latest", _tree(0)) is None
  ckpt.save("latest", 3, _tree(3.0), {"epoch": 3})
  tree, meta = ckpt.restore("latest", _tree(0))
  ckpt.close()
  np.testing.assert_array_equal(tree["a"], _tree(3.0)["a"])
  np.testing.assert_array_equal(tree["b"][0], np.arange(4) + 3)
  assert meta == {"epoch": 3} and ckpt.latest_epoch("latest") == 3


def test_resaving_a_step_left_by_a_killed_run_replaces_it(tmp_path):
  # The trainer saves "best" before "latest": a kill between the two leaves best/6
  # while latest stays at 5, and the resumed run saves best/6 again.
  first = Checkpointer(tmp_path)
  first.save("latest", 5, _tree(5.0), {"epoch": 5})
  first.save("best", 6, _tree(6.0), {"epoch": 6})
  del first  # killed: never closed

  resumed = Checkpointer(tmp_path)
  assert resumed.latest_epoch("latest") == 5
  resumed.save("best", 6, _tree(60.0), {"epoch": 6, "again": True})
  tree, meta = resumed.restore("best", _tree(0))
  resumed.close()
  assert meta["again"] and float(tree["a"][0, 0]) == 60.0
