"""Host-side containers for an interaction dataset: per-user CSR splits and features."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class CSR:
  """A compressed sparse row matrix of 0/1 entries (user -> items), all int32.

  Attributes:
    indptr: ``[n_rows + 1]`` row offsets into ``indices``.
    indices: ``[nnz]`` column ids, sorted ascending within each row, unique.
    n_cols: number of columns (items).
  """

  indptr: np.ndarray
  indices: np.ndarray
  n_cols: int

  @property
  def n_rows(self) -> int:
    return int(self.indptr.shape[0] - 1)

  @property
  def nnz(self) -> int:
    return int(self.indices.shape[0])

  def row(self, r: int) -> np.ndarray:
    """Column ids of row ``r``, ``[row_nnz]``."""
    return self.indices[self.indptr[r]:self.indptr[r + 1]]

  def row_lengths(self) -> np.ndarray:
    """``[n_rows]`` number of entries per row."""
    return np.diff(self.indptr).astype(np.int32)

  def nonempty_rows(self) -> np.ndarray:
    """``[n]`` ids of rows with at least one entry, ascending."""
    return np.flatnonzero(self.row_lengths() > 0).astype(np.int32)

  def to_coo(self) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(rows, cols)``, each ``[nnz]`` int32, in row-major order."""
    rows = np.repeat(np.arange(self.n_rows, dtype=np.int32), self.row_lengths())
    return rows, self.indices.astype(np.int32)

  def to_dense(self) -> np.ndarray:
    """``[n_rows, n_cols]`` bool; for tests and small data only."""
    dense = np.zeros((self.n_rows, self.n_cols), dtype=bool)
    rows, cols = self.to_coo()
    dense[rows, cols] = True
    return dense

  @classmethod
  def from_coo(cls, rows: np.ndarray, cols: np.ndarray, n_rows: int, n_cols: int) -> CSR:
    """Builds a CSR from (row, col) pairs; duplicate pairs are kept once."""
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    keys = np.unique(rows * n_cols + cols)
    rows_u, cols_u = keys // n_cols, keys % n_cols
    indptr = np.zeros(n_rows + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows_u, minlength=n_rows), out=indptr[1:])
    return cls(indptr=indptr, indices=cols_u.astype(np.int32), n_cols=int(n_cols))


@dataclasses.dataclass(frozen=True)
class Dataset:
  """An implicit-feedback dataset split MMRec's way.

  Attributes:
    name: dataset name (used in logs and ``summary.json``).
    n_users: max user id + 1 over all splits.
    n_items: max item id + 1 over all splits.
    train, valid, test: ``[n_users, n_items]`` CSR of each split.
    train_edges: ``[n_train, 2]`` int32 ``(user, item)`` pairs of the train split,
      in file order (duplicates removed).
    features: modality name -> ``[n_items, d]`` float32 feature matrix.
  """

  name: str
  n_users: int
  n_items: int
  train: CSR
  valid: CSR
  test: CSR
  train_edges: np.ndarray
  features: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def train_items(self) -> np.ndarray:
    """``[n]`` sorted ids of items that occur in the train split (negative pool)."""
    return np.unique(self.train.indices).astype(np.int32)

  def split(self, name: str) -> CSR:
    if name not in ("train", "valid", "test"):
      raise ValueError(f"Unknown split {name!r}; expected 'train', 'valid' or 'test'.")
    return getattr(self, name)
