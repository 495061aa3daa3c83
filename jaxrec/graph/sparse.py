"""Frozen sparse matrices and sparse-dense matmul (``A @ X``) for graph propagation.

A :class:`SparseMatrix` is a pytree built once on the host: COO entries sorted by row
(CSR order) plus the precomputed CSR of its transpose, so nothing is sorted inside ``jit``.
Pass it to jitted functions as an argument (closed-over arrays are baked into the compiled
program as constants); its ``shape`` is static, so a new shape means a new trace.

:func:`spmm` has two implementations behind one function:

* ``'segment'``: portable (CPU/GPU/TPU), gather + ``jax.ops.segment_sum`` over the
  row-sorted entries, differentiated by plain autodiff (also w.r.t. ``values``).
* ``'sparse'``: ``jax.experimental.sparse.BCSR`` matmul (a native CSR kernel on CPU,
  cuSPARSE on GPU) inside a ``jax.custom_vjp`` whose backward is ``A^T @ g`` with the
  precomputed transposed CSR. The matrix is treated as a constant: its cotangents are zero.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import jraph
import numpy as np
from flax import struct
from jax.experimental import sparse as jsparse

SPMM_METHODS = ("segment", "sparse")

_INT32_MAX = np.iinfo(np.int32).max


@struct.dataclass
class SparseMatrix:
  """A frozen ``[n_rows, n_cols]`` sparse matrix in row-sorted COO/CSR form.

  Entries are unique and sorted lexicographically by ``(row, col)``. Build it with
  :meth:`from_coo` (host NumPy); every field except ``shape`` is a pytree leaf, so the
  matrix can be passed through ``jax.jit``, ``jax.tree_util`` and device placement.

  Attributes:
    rows: ``[nnz]`` int32 row index of each entry, non-decreasing.
    cols: ``[nnz]`` int32 column index of each entry (increasing within a row).
    values: ``[nnz]`` float32 entry values.
    indptr: ``[n_rows + 1]`` int32 CSR row pointer: row ``r`` is ``indptr[r]:indptr[r+1]``.
    perm_t: ``[nnz]`` int32; entry ``k`` of ``A^T`` in its own row-sorted order is entry
      ``perm_t[k]`` of ``A`` (i.e. the entries of ``A`` sorted by ``(col, row)``).
    perm_t_inv: ``[nnz]`` int32 inverse permutation of ``perm_t`` (so that
      ``transpose()`` of a transpose needs no scatter).
    indptr_t: ``[n_cols + 1]`` int32 CSR row pointer of ``A^T``.
    shape: static ``(n_rows, n_cols)``.
  """

  rows: jax.Array
  cols: jax.Array
  values: jax.Array
  indptr: jax.Array
  perm_t: jax.Array
  perm_t_inv: jax.Array
  indptr_t: jax.Array
  shape: tuple[int, int] = struct.field(pytree_node=False)

  @classmethod
  def from_coo(
      cls,
      rows: np.ndarray,
      cols: np.ndarray,
      values: np.ndarray | None,
      shape: tuple[int, int],
  ) -> SparseMatrix:
    """Builds a matrix from (possibly unsorted, possibly duplicated) COO triplets.

    Runs on the host with NumPy; call it once outside ``jit``. Duplicate ``(row, col)``
    pairs are SUMMED (like ``scipy.sparse.coo_matrix.tocsr``); callers that want an edge
    counted once must deduplicate first. Explicit zeros are kept as entries.

    Args:
      rows: ``[nnz]`` integer row indices in ``[0, n_rows)``.
      cols: ``[nnz]`` integer column indices in ``[0, n_cols)``.
      values: ``[nnz]`` entry values, or ``None`` for all ones.
      shape: ``(n_rows, n_cols)``.

    Returns:
      The matrix, entries unique and sorted by ``(row, col)``, values float32.

    Raises:
      ValueError: on mismatched lengths, non-1-D inputs, out-of-range indices, or sizes
        that do not fit int32.
    """
    n_rows, n_cols = (int(s) for s in shape)
    if n_rows < 0 or n_cols < 0 or max(n_rows, n_cols) > _INT32_MAX:
      raise ValueError(f"Invalid shape {tuple(shape)}: need 0 <= n_rows, n_cols < 2**31.")
    rows = np.asarray(rows)
    cols = np.asarray(cols)
    values = np.ones(rows.shape, np.float64) if values is None else np.asarray(values)
    if rows.ndim != 1 or rows.shape != cols.shape or rows.shape != values.shape:
      raise ValueError(
          "rows, cols and values must be 1-D of equal length: got "
          f"{rows.shape}, {cols.shape} and {values.shape}.")
    if rows.size and not (np.issubdtype(rows.dtype, np.integer)
                          and np.issubdtype(cols.dtype, np.integer)):
      raise ValueError(f"rows and cols must be integers: got {rows.dtype} and {cols.dtype}.")
    rows = rows.astype(np.int64)
    cols = cols.astype(np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
      raise ValueError(f"Row index out of range [0, {n_rows}).")
    if cols.size and (cols.min() < 0 or cols.max() >= n_cols):
      raise ValueError(f"Column index out of range [0, {n_cols}).")

    # One int64 key per cell: np.unique sorts by (row, col) and finds duplicates at once.
    keys, inverse = np.unique(rows * n_cols + cols, return_inverse=True)
    if keys.size > _INT32_MAX:
      raise ValueError(f"nnz {keys.size} does not fit int32.")
    summed = np.bincount(inverse.ravel(), weights=values.astype(np.float64),
                         minlength=keys.size)
    u_rows, u_cols = keys // max(n_cols, 1), keys % max(n_cols, 1)

    # Stable sort by column keeps rows increasing within a column: A^T is row-sorted too.
    perm_t = np.argsort(u_cols, kind="stable")
    perm_t_inv = np.empty_like(perm_t)
    perm_t_inv[perm_t] = np.arange(perm_t.size)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(u_rows, minlength=n_rows))])
    indptr_t = np.concatenate([[0], np.cumsum(np.bincount(u_cols, minlength=n_cols))])

    as_i32 = functools.partial(jnp.asarray, dtype=jnp.int32)
    return cls(
        rows=as_i32(u_rows),
        cols=as_i32(u_cols),
        values=jnp.asarray(summed, dtype=jnp.float32),
        indptr=as_i32(indptr),
        perm_t=as_i32(perm_t),
        perm_t_inv=as_i32(perm_t_inv),
        indptr_t=as_i32(indptr_t),
        shape=(n_rows, n_cols),
    )

  @property
  def nnz(self) -> int:
    """Number of stored entries (static)."""
    return self.values.shape[0]

  def transpose(self) -> SparseMatrix:
    """Returns ``A^T`` (``[n_cols, n_rows]``), row-sorted, using gathers only (jit-safe)."""
    return SparseMatrix(
        rows=self.cols[self.perm_t],
        cols=self.rows[self.perm_t],
        values=self.values[self.perm_t],
        indptr=self.indptr_t,
        perm_t=self.perm_t_inv,
        perm_t_inv=self.perm_t,
        indptr_t=self.indptr,
        shape=(self.shape[1], self.shape[0]),
    )

  @property
  def T(self) -> SparseMatrix:
    """Alias of :meth:`transpose`."""
    return self.transpose()

  def to_dense(self) -> jax.Array:
    """Returns the ``[n_rows, n_cols]`` dense matrix (for tests and small graphs)."""
    return jnp.zeros(self.shape, self.values.dtype).at[self.rows, self.cols].add(self.values)


def spmm(matrix: SparseMatrix, x: jax.typing.ArrayLike, *, method: str = "segment") -> jax.Array:
  """Sparse-dense product ``A @ x``.

  Both methods give the same values and the exact gradient w.r.t. ``x``. ``'segment'``
  also differentiates w.r.t. ``matrix.values``; ``'sparse'`` treats the matrix as frozen
  (zero cotangent), which is what graph propagation over fixed graphs needs.

  Args:
    matrix: ``A``, ``[n_rows, n_cols]``.
    x: ``[n_cols]`` or ``[n_cols, ...]`` dense operand (trailing dims are flattened for
      the product and restored).
    method: ``'segment'`` (portable gather + ``segment_sum``) or ``'sparse'``
      (``jax.experimental.sparse`` BCSR matmul with a custom VJP ``g -> A^T @ g``).

  Returns:
    ``[n_rows]`` or ``[n_rows, ...]``, dtype of ``x``.

  Raises:
    ValueError: on an unknown ``method`` or when ``x.shape[0] != n_cols``.
  """
  if method not in SPMM_METHODS:
    raise ValueError(f"Unknown spmm method {method!r}; valid methods: {list(SPMM_METHODS)}.")
  x = jnp.asarray(x)
  n_rows, n_cols = matrix.shape
  if x.ndim == 0 or x.shape[0] != n_cols:
    raise ValueError(f"Shape mismatch: matrix is {matrix.shape}, x is {x.shape}.")
  if not jnp.issubdtype(x.dtype, jnp.inexact):
    x = x.astype(jnp.float32)
  trailing = x.shape[1:]
  x2 = x.reshape(n_cols, -1)
  if method == "segment":
    out = _spmm_segment(matrix, x2)
  else:
    out = _spmm_sparse(matrix, x2)
  return out.reshape((n_rows, *trailing))


def _spmm_segment(matrix: SparseMatrix, x: jax.Array) -> jax.Array:
  """``[n_rows, d]`` = A @ x via gather + sorted segment sum; plain autodiff."""
  messages = x[matrix.cols] * matrix.values[:, None].astype(x.dtype)
  return jax.ops.segment_sum(
      messages, matrix.rows, num_segments=matrix.shape[0], indices_are_sorted=True)


def _bcsr_matmul(matrix: SparseMatrix, x: jax.Array) -> jax.Array:
  """``[n_rows, d]`` = A @ x with ``jax.experimental.sparse.BCSR`` (plain autodiff)."""
  # The native CPU CSR kernel requires data and rhs of one dtype; the values are frozen.
  csr = (matrix.values.astype(x.dtype), matrix.cols, matrix.indptr)
  return jsparse.BCSR(csr, shape=matrix.shape, indices_sorted=True, unique_indices=True) @ x


@jax.custom_vjp
def _spmm_sparse(matrix: SparseMatrix, x: jax.Array) -> jax.Array:
  """``[n_rows, d]`` = A @ x; backward ``A^T @ g`` with the precomputed transposed CSR."""
  return _bcsr_matmul(matrix, x)


def _spmm_sparse_fwd(matrix, x):
  # A linear map's backward needs only the operator, never x.
  return _bcsr_matmul(matrix, x), matrix


def _spmm_sparse_bwd(matrix, g):
  # The TRUE transpose: kNN item graphs are asymmetric, so A @ g would be wrong there.
  # Transposing here (gathers only) keeps forward-only calls, e.g. evaluation, free of it.
  grad_x = _bcsr_matmul(matrix.transpose(), g)
  return None, grad_x  # Frozen matrix: zero cotangents for its values and indices.


_spmm_sparse.defvjp(_spmm_sparse_fwd, _spmm_sparse_bwd)


def as_graphs_tuple(matrix: SparseMatrix) -> jraph.GraphsTuple:
  """Views a square matrix as a single jraph graph (message flows col -> row).

  Args:
    matrix: square ``[n_nodes, n_nodes]`` matrix.

  Returns:
    A ``GraphsTuple`` with ``senders=cols`` ``[nnz]``, ``receivers=rows`` ``[nnz]``
    (receiver-sorted), ``edges=values`` ``[nnz]``, ``n_node=[n_nodes]``, ``n_edge=[nnz]``
    and no node or global features.

  Raises:
    ValueError: if the matrix is not square.
  """
  n_rows, n_cols = matrix.shape
  if n_rows != n_cols:
    raise ValueError(f"A GraphsTuple needs a square matrix: got {matrix.shape}.")
  return jraph.GraphsTuple(
      nodes=None, edges=matrix.values, senders=matrix.cols, receivers=matrix.rows,
      n_node=jnp.asarray([n_rows], jnp.int32), n_edge=jnp.asarray([matrix.nnz], jnp.int32),
      globals=None)
