"""Reading MMRec ``.inter`` files into a :class:`~jaxrec.data.dataset.Dataset`.

An ``.inter`` file is tab-separated text with a header naming the columns. MMRec's own files
have ``userID itemID rating timestamp x_label``; only ``userID``, ``itemID`` and ``x_label``
(0 = train, 1 = valid, 2 = test) are read, in any column order. Ids are already 0-based, so
``n_users = max(userID) + 1`` and ``n_items = max(itemID) + 1`` over the whole file.
"""

from __future__ import annotations

import logging
import os
import pathlib
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from jaxrec.data.dataset import CSR, Dataset

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("userID", "itemID", "x_label")
SPLIT_NAMES = ("train", "valid", "test")  # Index = x_label.
_MAX_ID = np.iinfo(np.int32).max - 1  # So that max id + 1 still fits int32.


class DataError(ValueError):
  """A dataset file or array is missing or malformed; the message says where and why."""


def read_inter(path: str | os.PathLike, *, name: str | None = None) -> Dataset:
  """Reads an MMRec ``.inter`` file.

  Rows are kept in file order. Two clean-ups follow MMRec: valid/test rows of users who have
  no train row are dropped (``filter_out_cod_start_users``; logged), and a (user, item) pair
  that occurs more than once in the file keeps only its first row (with a warning).

  Args:
    path: the ``.inter`` file.
    name: dataset name; defaults to the file stem (``baby`` for ``baby.inter``).

  Returns:
    A :class:`Dataset` without features: ``train``/``valid``/``test`` are
    ``[n_users, n_items]`` CSRs and ``train_edges`` is ``[n_train, 2]`` int32 in file order.

  Raises:
    DataError: the file is missing, empty or has no data rows; the header lacks a required
      column; a row has the wrong number of fields, a non-integer or negative id, or an
      ``x_label`` outside {0, 1, 2}; or no row is in the train split.
  """
  path = pathlib.Path(path)
  users, items, labels, line_numbers = _parse_inter(path)
  n_users = int(users.max()) + 1
  n_items = int(items.max()) + 1

  # Keep the first row of each (user, item) pair: np.unique's return_index is the first
  # occurrence, whatever that row's label.
  keys = users.astype(np.int64) * n_items + items
  _, first = np.unique(keys, return_index=True)
  keep = np.zeros(keys.shape[0], dtype=bool)
  keep[first] = True
  n_duplicates = keys.shape[0] - first.shape[0]
  if n_duplicates:
    j = int(np.flatnonzero(~keep)[0])
    warnings.warn(
        f"{path}: {n_duplicates} duplicate (user, item) row(s) dropped, keeping the first "
        f"occurrence of each pair (first duplicate: line {line_numbers[j]}, user {users[j]}, "
        f"item {items[j]}).",
        stacklevel=2)

  is_train = keep & (labels == 0)
  if not is_train.any():
    raise DataError(f"{path}: the train split is empty (no row with x_label 0).")
  has_train = np.zeros(n_users, dtype=bool)
  has_train[users[is_train]] = True
  cold = keep & (labels != 0) & ~has_train[users]
  if cold.any():
    logger.info(
        "%s: dropped %d valid/test row(s) of %d user(s) without a train row "
        "(MMRec's filter_out_cod_start_users).",
        path, int(cold.sum()), np.unique(users[cold]).shape[0])
  keep &= ~cold

  return dataset_from_arrays(
      users[keep], items[keep], labels[keep], n_users=n_users, n_items=n_items,
      name=path.stem if name is None else name)


def dataset_from_arrays(
    users: np.ndarray,
    items: np.ndarray,
    labels: np.ndarray,
    *,
    n_users: int,
    n_items: int,
    name: str,
    features: Mapping[str, np.ndarray] | None = None,
) -> Dataset:
  """Builds a :class:`Dataset` from clean interaction rows.

  Args:
    users: ``[n]`` user ids in ``[0, n_users)``.
    items: ``[n]`` item ids in ``[0, n_items)``.
    labels: ``[n]`` split labels, 0 = train, 1 = valid, 2 = test.
    n_users: number of users (rows of each CSR).
    n_items: number of items (columns of each CSR).
    name: dataset name.
    features: optional modality -> ``[n_items, d]`` float32 arrays, stored as given.

  Returns:
    The dataset; ``train_edges`` keeps the order of the train rows in ``users``/``items``.
  """
  users = np.asarray(users, dtype=np.int64)
  items = np.asarray(items, dtype=np.int64)
  labels = np.asarray(labels)
  splits = {}
  for label, split in enumerate(SPLIT_NAMES):
    mask = labels == label
    splits[split] = CSR.from_coo(users[mask], items[mask], n_users, n_items)
  train = labels == 0
  train_edges = np.stack([users[train], items[train]], axis=1).astype(np.int32)
  return Dataset(
      name=name, n_users=int(n_users), n_items=int(n_items), train_edges=train_edges,
      features=dict(features or {}), **splits)


def _parse_inter(path: pathlib.Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """Returns ``(users, items, labels, line_numbers)``, each ``[n_rows]``, of a ``.inter``."""
  if not path.exists():
    raise DataError(f"{path}: no such file; expected an MMRec .inter file.")
  if path.is_dir():
    raise DataError(f"{path} is a directory; expected an MMRec .inter file.")
  try:
    # utf-8-sig: files written by some spreadsheet tools start with a byte-order mark.
    lines = path.read_text(encoding="utf-8-sig").splitlines()
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f"{path}: cannot read as UTF-8 text ({e}).") from e

  # Blank lines are skipped (as pandas does) but still count for line numbers.
  nonblank = [i for i, line in enumerate(lines) if line.strip()]
  if not nonblank:
    raise DataError(
        f"{path}: file is empty; expected a tab-separated header naming "
        f"{', '.join(REQUIRED_COLUMNS)} followed by one row per interaction.")
  header_index, data_indices = nonblank[0], nonblank[1:]
  header = lines[header_index]
  # MMRec writes tabs; a header without any tab is taken as whitespace-separated so that
  # hand-written files with spaces also load.
  sep = "\t" if "\t" in header else None
  columns = [c.strip() for c in header.split(sep)]
  missing = [c for c in REQUIRED_COLUMNS if c not in columns]
  if missing:
    raise DataError(
        f"{path} line {header_index + 1}: header lacks required column(s) "
        f"{', '.join(missing)}; found {columns}. Expected a header naming at least "
        f"{', '.join(REQUIRED_COLUMNS)}.")
  repeated = [c for c in REQUIRED_COLUMNS if columns.count(c) > 1]
  if repeated:
    raise DataError(
        f"{path} line {header_index + 1}: column(s) {', '.join(repeated)} appear more than "
        f"once in the header {columns}.")
  if not data_indices:
    raise DataError(f"{path}: no data rows after the header (line {header_index + 1}).")

  line_numbers = np.asarray(data_indices, dtype=np.int64) + 1
  rows = [lines[i].split(sep) for i in data_indices]
  n_fields = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
  bad = np.flatnonzero(n_fields != len(columns))
  if bad.size:
    j = int(bad[0])
    raise DataError(
        f"{path} line {line_numbers[j]}: expected {len(columns)} "
        f"{'tab' if sep else 'whitespace'}-separated fields ({', '.join(columns)}) as in the "
        f"header, found {n_fields[j]}{_more(bad.size)}.")

  parsed, errors = {}, []
  for column in REQUIRED_COLUMNS:
    k = columns.index(column)
    values, error = _parse_column([row[k] for row in rows], column, line_numbers)
    parsed[column] = values
    if error is not None:
      errors.append(error)
  if errors:
    # Report the earliest bad line over all columns: it is where a user would look first.
    raise DataError(f"{path} line {min(errors)[0]}: {min(errors)[1]}")
  return parsed["userID"], parsed["itemID"], parsed["x_label"], line_numbers


def _parse_column(
    fields: Sequence[str], column: str, line_numbers: np.ndarray,
) -> tuple[np.ndarray, tuple[int, str] | None]:
  """Parses ``[n]`` id or label strings to int32; returns ``(values, (line, message))``."""
  strings = np.char.strip(np.asarray(fields, dtype=str))
  # isdecimal rejects '-1', '+1', '1.0', '' and '1_0' up front, so the int cast below only
  # sees plain digit strings (and can fail only by overflow).
  ok = np.char.isdecimal(strings)
  # Over 10 digits cannot fit int32; checking the length keeps the int64 cast from overflowing.
  ok &= np.char.str_len(strings) <= 10
  values = np.zeros(strings.shape[0], dtype=np.int64)
  values[ok] = strings[ok].astype(np.int64)
  if column == "x_label":
    ok &= values <= 2
  else:
    ok &= values <= _MAX_ID
  bad = np.flatnonzero(~ok)
  if not bad.size:
    return values.astype(np.int32), None
  j = int(bad[0])
  if column == "x_label":
    what = "is not 0 (train), 1 (valid) or 2 (test)"
  else:
    what = f"is not a non-negative integer below {_MAX_ID + 1}"
  return values, (int(line_numbers[j]), f"{column} {fields[j]!r} {what}{_more(bad.size)}.")


def _more(n_bad: int) -> str:
  return f" (and {n_bad - 1} more such row(s))" if n_bad > 1 else ""
