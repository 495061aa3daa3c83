"""The normalized user-item graph and LightGCN-style multi-layer propagation.

Node convention: user ``u`` is node ``u``; item ``i`` is node ``n_users + i``; the graph has
``n_nodes = n_users + n_items`` nodes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrec.graph.sparse import SparseMatrix, spmm

# MMRec/FREEDOM add this to every degree so that D^-1/2 of an isolated node is finite;
# the node has no entries, so its row and column stay exactly zero (not NaN).
DEGREE_EPS = 1e-7


def normalized_bipartite_adjacency(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
) -> SparseMatrix:
  r"""The symmetric normalized adjacency of the user-item bipartite graph.

  .. math::
    \hat A = D^{-1/2} A D^{-1/2}, \quad
    A = \begin{pmatrix} 0 & R \\ R^T & 0 \end{pmatrix}, \quad
    D_{vv} = \textstyle\sum_w A_{vw} + 10^{-7}

  as in FREEDOM/LightGCN (REFERENCE.md §C): both directions, no self loops, degrees over
  the whole ``(U+I)`` graph, so ``\hat A_{u, U+i} = 1 / \sqrt{d_u d_i}``. A user-item pair
  given more than once is ONE edge (``R`` is binary). Runs on the host (NumPy); build it
  once and pass it to jitted code as an argument.

  Args:
    users: ``[n_edges]`` integer user ids in ``[0, n_users)``.
    items: ``[n_edges]`` integer item ids in ``[0, n_items)``, paired with ``users``.
    n_users: number of users ``U``.
    n_items: number of items ``I``.

  Returns:
    ``[U+I, U+I]`` :class:`SparseMatrix` with ``2 * n_unique_edges`` entries.

  Raises:
    ValueError: on mismatched lengths or out-of-range ids.
  """
  users = np.asarray(users).reshape(-1)
  items = np.asarray(items).reshape(-1)
  if users.shape != items.shape:
    raise ValueError(f"Shape mismatch: got {users.shape} users and {items.shape} items.")
  n_users, n_items = int(n_users), int(n_items)
  users = users.astype(np.int64)
  items = items.astype(np.int64)
  if users.size and (users.min() < 0 or users.max() >= n_users):
    raise ValueError(f"User id out of range [0, {n_users}).")
  if items.size and (items.min() < 0 or items.max() >= n_items):
    raise ValueError(f"Item id out of range [0, {n_items}).")

  pairs = np.unique(users * n_items + items)
  users, items = pairs // max(n_items, 1), pairs % max(n_items, 1)
  item_nodes = n_users + items
  n_nodes = n_users + n_items
  degree = np.bincount(users, minlength=n_nodes) + np.bincount(item_nodes, minlength=n_nodes)
  inv_sqrt = np.power(degree + DEGREE_EPS, -0.5)
  weight = inv_sqrt[users] * inv_sqrt[item_nodes]
  return SparseMatrix.from_coo(
      rows=np.concatenate([users, item_nodes]),
      cols=np.concatenate([item_nodes, users]),
      values=np.concatenate([weight, weight]),
      shape=(n_nodes, n_nodes),
  )


def propagate_layers(
    adj: SparseMatrix,
    x0: jax.typing.ArrayLike,
    n_layers: int,
    *,
    method: str = "segment",
) -> jax.Array:
  """Repeated propagation ``[x0, A x0, A^2 x0, ...]`` (LightGCN without the mean).

  A Python loop (unrolled at trace time) rather than ``lax.scan``: ``n_layers`` is tiny and
  static, every layer's output is kept anyway (so scan would save no memory), and unrolling
  lets XLA fuse the stacking and the caller's mean with the last products.

  Args:
    adj: square ``[n_nodes, n_nodes]`` propagation matrix.
    x0: ``[n_nodes, d]`` layer-0 embeddings.
    n_layers: number of propagation steps ``L >= 0`` (static Python int).
    method: :func:`jaxrec.graph.spmm` method, ``'segment'`` or ``'sparse'``.

  Returns:
    ``[L + 1, n_nodes, d]``; LightGCN's output is ``.mean(0)``.

  Raises:
    ValueError: on a negative ``n_layers``, a non-square ``adj`` or a shape mismatch.
  """
  if int(n_layers) != n_layers or n_layers < 0:
    raise ValueError(f"n_layers must be a non-negative int: got {n_layers!r}.")
  if adj.shape[0] != adj.shape[1]:
    raise ValueError(f"propagate_layers needs a square matrix: got {adj.shape}.")
  layers = [jnp.asarray(x0)]
  for _ in range(int(n_layers)):
    layers.append(spmm(adj, layers[-1], method=method))
  return jnp.stack(layers)
