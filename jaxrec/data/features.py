"""Per-item modality features (MMRec's ``image_feat.npy``, ``text_feat.npy``, ...)."""

from __future__ import annotations

import logging
import os
import pathlib
from collections.abc import Mapping, Sequence

import numpy as np

from jaxrec.data.interactions import DataError

logger = logging.getLogger(__name__)


def load_features(
    directory: str | os.PathLike,
    feature_files: Mapping[str, str],
    n_items: int,
    *,
    required: Sequence[str] = (),
) -> dict[str, np.ndarray]:
  """Loads one ``.npy`` matrix per modality; row ``i`` is item ``i``'s feature vector.

  A modality whose file does not exist (or whose file name is ``''``) is skipped with a log
  line, unless it is in ``required``: datasets may have any number of modalities.

  Args:
    directory: folder holding the feature files.
    feature_files: modality name -> file name in ``directory``, e.g.
      ``{'image': 'image_feat.npy', 'text': 'text_feat.npy'}``.
    n_items: number of items of the interactions (max itemID + 1).
    required: modalities that must be present.

  Returns:
    Modality name -> ``[n_items, d]`` float32 array, in ``feature_files`` order.

  Raises:
    DataError: a required modality has no file, or a file is not a readable ``.npy``, not
      2-D, has a row count other than ``n_items`` or holds NaN/inf values.
  """
  directory = pathlib.Path(directory)
  unknown = [m for m in required if m not in feature_files]
  if unknown:
    raise DataError(
        f"required modality(ies) {', '.join(map(repr, unknown))} have no entry in "
        f"feature_files {dict(feature_files)}.")
  features, sources = {}, {}
  for modality, file_name in feature_files.items():
    path = directory / file_name
    if not file_name or not path.is_file():
      if modality in required:
        raise DataError(
            f"required modality {modality!r}: feature file {path} does not exist.")
      logger.info("No %r features: %s does not exist; skipping that modality.", modality, path)
      continue
    try:
      array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
      raise DataError(f"{path}: cannot read {modality!r} features as a .npy array ({e}).") from e
    if not isinstance(array, np.ndarray):  # np.load gives an NpzFile for .npz archives.
      raise DataError(f"{path}: expected a single-array .npy file for {modality!r} features.")
    features[modality], sources[modality] = array, str(path)
  return validate_features(features, n_items, sources=sources)


def validate_features(
    features: Mapping[str, np.ndarray],
    n_items: int,
    *,
    sources: Mapping[str, str] | None = None,
) -> dict[str, np.ndarray]:
  """Checks modality feature matrices and returns them as contiguous float32.

  Args:
    features: modality name -> ``[n_items, d]`` array of any real dtype (baby's
      ``image_feat.npy`` is float16).
    n_items: expected number of rows.
    sources: optional modality -> file name, used in error messages.

  Returns:
    Modality name -> ``[n_items, d]`` float32 array (the input itself when it already is).

  Raises:
    DataError: an array is not real-valued, not 2-D, has no columns, has a row count other
      than ``n_items``, or holds non-finite values (after the float32 cast).
  """
  sources = sources or {}
  out = {}
  for modality, array in features.items():
    where = f"{modality!r} features" + (f" ({sources[modality]})" if modality in sources else "")
    array = np.asarray(array)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
      raise DataError(f"{where}: dtype {array.dtype} is not a real number type.")
    if array.ndim != 2:
      raise DataError(f"{where}: expected a 2-D [n_items, dim] array, got shape {array.shape}.")
    if array.shape[0] != n_items:
      raise DataError(
          f"{where}: {array.shape[0]} rows but the interactions have {n_items} items "
          f"(max itemID + 1); row i must hold item i's features.")
    if array.shape[1] == 0:
      raise DataError(f"{where}: shape {array.shape} has no feature columns.")
    with np.errstate(over="ignore"):  # Overflow to inf is reported just below.
      array = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(array).all():
      bad = ~np.isfinite(array)
      bad_rows = np.flatnonzero(bad.any(axis=1))
      raise DataError(
          f"{where}: {int(bad.sum())} non-finite value(s) (NaN or +-inf as float32) in "
          f"{bad_rows.shape[0]} row(s); first bad row (item id) is {bad_rows[0]}.")
    out[modality] = array
  return out
