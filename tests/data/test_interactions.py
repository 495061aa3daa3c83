import logging
import pathlib
import re
import warnings

import numpy as np
import pytest

from jaxrec.data import DataError, read_inter

BABY = pathlib.Path(__file__).resolve().parents[3] / "shared" / "data" / "baby" / "baby.inter"


def _write(tmp_path, text, name="toy.inter"):
  path = tmp_path / name
  path.write_text(text)
  return path


def _inter(rows, header=("userID", "itemID", "x_label")):
  return "\t".join(header) + "\n" + "".join("\t".join(map(str, r)) + "\n" for r in rows)


def _dense(rows, n_users, n_items, label):
  dense = np.zeros((n_users, n_items), dtype=bool)
  for u, i, x in rows:
    if x == label:
      dense[u, i] = True
  return dense


def test_reads_splits_sizes_and_edges_in_file_order(tmp_path):
  rows = [(0, 3, 0), (0, 1, 0), (0, 2, 1), (1, 0, 0), (1, 4, 2), (2, 1, 0), (0, 5, 2)]
  ds = read_inter(_write(tmp_path, _inter(rows)))
  assert ds.name == "toy"
  assert (ds.n_users, ds.n_items) == (3, 6)
  for label, split in enumerate(("train", "valid", "test")):
    csr = ds.split(split)
    np.testing.assert_array_equal(csr.to_dense(), _dense(rows, 3, 6, label))
    assert csr.indptr.dtype == np.int32 and csr.indices.dtype == np.int32
  np.testing.assert_array_equal(ds.train_edges, [[0, 3], [0, 1], [1, 0], [2, 1]])
  assert ds.train_edges.dtype == np.int32
  assert ds.features == {}
  assert read_inter(tmp_path / "toy.inter", name="other").name == "other"


def test_csr_matches_dense_reference_on_random_file(tmp_path):
  rng = np.random.default_rng(0)
  dense = rng.random((40, 30)) < 0.2
  dense[:, 0] = True  # Every user has a train row, so nothing is filtered.
  users, items = np.nonzero(dense)
  labels = np.where(items == 0, 0, rng.integers(0, 3, users.shape[0]))
  order = rng.permutation(users.shape[0])
  rows = list(zip(users[order], items[order], labels[order]))
  ds = read_inter(_write(tmp_path, _inter(rows)))
  for label, split in enumerate(("train", "valid", "test")):
    csr = ds.split(split)
    np.testing.assert_array_equal(csr.to_dense(), _dense(rows, 40, 30, label))
    assert all(np.all(np.diff(csr.row(u)) > 0) for u in range(csr.n_rows))
    ref = _dense(rows, 40, 30, label)
    np.testing.assert_array_equal(csr.indptr, np.concatenate([[0], np.cumsum(ref.sum(1))]))
    np.testing.assert_array_equal(csr.indices, np.nonzero(ref)[1])
  train = [(u, i) for u, i, x in rows if x == 0]
  np.testing.assert_array_equal(ds.train_edges, train)


def test_column_order_free_extra_columns_and_whitespace(tmp_path):
  text = (
      "rating\tx_label\ttimestamp\titemID\tuserID\n"
      "5.0\t0\t111\t2\t0\n"
      "4.0\t 2 \t112\t 7\t0 \n"
      "\n"  # Blank lines are skipped.
      "3.5\t0\t113\t1\t1\n")
  ds = read_inter(_write(tmp_path, text))
  assert (ds.n_users, ds.n_items) == (2, 8)
  np.testing.assert_array_equal(ds.train_edges, [[0, 2], [1, 1]])
  np.testing.assert_array_equal(ds.test.row(0), [7])


def test_sizes_are_max_ids_over_the_whole_file(tmp_path):
  # User 9 and item 12 only occur in rows that are dropped (cold-start valid / test).
  rows = [(0, 1, 0), (0, 12, 2), (9, 1, 1), (1, 0, 0)]
  ds = read_inter(_write(tmp_path, _inter(rows)))
  assert (ds.n_users, ds.n_items) == (10, 13)
  assert ds.train.n_rows == ds.valid.n_rows == ds.test.n_rows == 10
  assert ds.train.n_cols == 13
  assert ds.valid.nnz == 0


def test_cold_start_valid_test_rows_are_dropped_and_logged(tmp_path, caplog):
  rows = [(0, 0, 0), (0, 1, 1), (1, 2, 1), (1, 3, 2), (2, 0, 2), (3, 1, 0), (3, 2, 2)]
  with caplog.at_level(logging.INFO, logger="jaxrec.data.interactions"):
    ds = read_inter(_write(tmp_path, _inter(rows)))
  assert re.search(r"dropped 3 valid/test row\(s\) of 2 user", caplog.text)
  assert ds.valid.to_coo()[0].tolist() == [0]
  assert ds.test.to_coo()[0].tolist() == [3]
  assert ds.n_users == 4


def test_duplicates_keep_the_first_occurrence_with_a_warning(tmp_path):
  rows = [(0, 1, 0), (0, 2, 0), (0, 1, 2), (1, 1, 1), (1, 0, 0), (1, 1, 0), (0, 2, 0)]
  with pytest.warns(UserWarning, match=r"3 duplicate \(user, item\) row.*line 4"):
    ds = read_inter(_write(tmp_path, _inter(rows)))
  np.testing.assert_array_equal(ds.train_edges, [[0, 1], [0, 2], [1, 0]])
  assert ds.test.nnz == 0  # (0, 1) was first seen as train.
  np.testing.assert_array_equal(ds.valid.row(1), [1])  # (1, 1) was first seen as valid.


def test_no_warning_without_duplicates(tmp_path):
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    read_inter(_write(tmp_path, _inter([(0, 0, 0), (0, 1, 2)])))


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("", r"toy\.inter: file is empty"),
        ("\n  \n", r"toy\.inter: file is empty"),
        ("userID\titemID\tx_label\n", r"toy\.inter: no data rows after the header"),
        ("userID\titemID\trating\n0\t1\t5\n",
         r"toy\.inter line 1: header lacks required column\(s\) x_label; "
         r"found \['userID', 'itemID', 'rating'\]"),
        ("user\titem\tx_label\n0\t1\t0\n", r"line 1: .*userID, itemID"),
        ("userID\titemID\tx_label\n0\t1\t0\n0\t2\n",
         r"toy\.inter line 3: expected 3 tab-separated fields .* found 2"),
        ("userID\titemID\tx_label\n0\t1\t0\n0\t2\t0\t9\n", r"toy\.inter line 3: .*found 4"),
        ("userID\titemID\tx_label\n0\t1\t0\n\n0\tx3\t0\n",
         r"toy\.inter line 4: itemID 'x3' is not a non-negative integer"),
        ("userID\titemID\tx_label\n-1\t1\t0\n",
         r"toy\.inter line 2: userID '-1' is not a non-negative integer"),
        ("userID\titemID\tx_label\n0\t1.0\t0\n", r"line 2: itemID '1\.0' is not"),
        ("userID\titemID\tx_label\n0\t1\t0\n0\t\t0\n", r"line 3: itemID '' is not"),
        ("userID\titemID\tx_label\n0\t99999999999\t0\n", r"line 2: itemID '99999999999'"),
        ("userID\titemID\tx_label\n0\t1\t0\n1\t1\t3\n",
         r"toy\.inter line 3: x_label '3' is not 0 \(train\), 1 \(valid\) or 2 \(test\)"),
        ("userID\titemID\tx_label\n0\t1\tvalid\n", r"line 2: x_label 'valid' is not 0"),
        ("userID\titemID\tx_label\n0\t1\t1\n0\t2\t2\n",
         r"toy\.inter: the train split is empty"),
    ],
)
def test_reader_errors_name_file_and_line(tmp_path, text, pattern):
  with pytest.raises(DataError, match=pattern):
    read_inter(_write(tmp_path, text))


def test_error_reports_the_earliest_bad_line_and_counts_others(tmp_path):
  text = _inter([(0, 1, 0), (0, 2, 7), ("u", 3, 0), (1, "y", 0)])
  with pytest.raises(DataError, match=r"line 3: x_label '7' is not 0") as err:
    read_inter(_write(tmp_path, text))
  assert isinstance(err.value, ValueError)


def test_missing_file_and_directory(tmp_path):
  with pytest.raises(DataError, match=r"nope\.inter: no such file"):
    read_inter(tmp_path / "nope.inter")
  with pytest.raises(DataError, match="is a directory"):
    read_inter(tmp_path)


def test_whitespace_separated_file_is_accepted(tmp_path):
  ds = read_inter(_write(tmp_path, "userID itemID x_label\n0 1 0\n0  2 2\n"))
  np.testing.assert_array_equal(ds.test.row(0), [2])


@pytest.mark.skipif(not BABY.exists(), reason="needs ../shared/data/baby (not in a clone)")
def test_baby_inter():
  ds = read_inter(BABY)
  assert ds.name == "baby"
  assert (ds.n_users, ds.n_items) == (19445, 7050)
  assert (ds.train.nnz, ds.valid.nnz, ds.test.nnz) == (118551, 20559, 21682)
  assert ds.train_edges.shape == (118551, 2)
