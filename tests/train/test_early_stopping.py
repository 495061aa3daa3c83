from jaxrec.train.early_stopping import EarlyStopping


def test_strict_improvement_after_rounding_and_patience():
  s = EarlyStopping(metric="recall@20", stopping_step=2)
  scores = [0.1, 0.12, 0.12004, 0.11, 0.1201, 0.119, 0.118, 0.117, 0.2]
  improved = []
  for e, v in enumerate(scores):
    if s.stopped:
      break
    improved.append(s.update(e, {"recall@20": v}, {"recall@20": v / 2}))
  # 0.12004 rounds to 0.1200 (not better); 0.1201 is better; then 3 bad epochs stop it.
  assert improved == [True, True, False, False, True, False, False, False]
  assert s.stopped and s.best_epoch == 4
  assert s.best_test == {"recall@20": 0.1201 / 2}


def test_round_trip_through_dict():
  s = EarlyStopping(stopping_step=5)
  assert EarlyStopping.from_dict(s.to_dict()) == s
  s.update(0, {"recall@20": 0.3}, {"recall@20": 0.2})
  assert EarlyStopping.from_dict(s.to_dict()) == s
