"""One entry point from a data config to a :class:`~jaxrec.data.dataset.Dataset`."""

from __future__ import annotations

import dataclasses
import inspect
import logging
import pathlib
from collections.abc import Mapping
from typing import Any

from jaxrec.data.dataset import Dataset
from jaxrec.data.features import load_features
from jaxrec.data.interactions import DataError, read_inter
from jaxrec.data.synthetic import make_synthetic

logger = logging.getLogger(__name__)

# MMRec's file names; a config may name others or drop modalities.
DEFAULT_FEATURE_FILES = {"image": "image_feat.npy", "text": "text_feat.npy"}


def load_dataset(cfg: Mapping[str, Any]) -> Dataset:
  """Loads the dataset a data config names: an MMRec folder, or the synthetic default.

  Keys of ``cfg`` (an ``ml_collections.ConfigDict`` or a mapping; missing keys take the
  defaults shown, other keys are ignored so that the trainer's data options may sit beside
  these):

  * ``path`` (``''``): MMRec folder (or ``.inter`` file); ``''`` means synthetic data.
  * ``name`` (``''``): dataset name; for a folder it also picks ``<name>.inter``.
  * ``inter_file`` (``''``): the ``.inter`` file, relative to ``path``; ``''`` means
    ``<name>.inter`` if it exists, else the folder's only ``*.inter`` file.
  * ``feature_files`` (MMRec's ``image_feat.npy``/``text_feat.npy``): modality -> ``.npy``
    file name in ``path``; missing files are skipped.
  * ``required_modalities`` (``()``): modalities that must be present.
  * ``synthetic`` (``{}``): keyword arguments of :func:`make_synthetic`.

  Args:
    cfg: the data config.

  Returns:
    The dataset, with ``features`` ``{modality: [n_items, d] float32}``.

  Raises:
    DataError: the path does not exist, the ``.inter`` file cannot be found or is
      ambiguous, a file is malformed, a required modality is missing, or ``synthetic``
      has an unknown option.
  """
  path = str(_get(cfg, "path", "") or "")
  name = str(_get(cfg, "name", "") or "")
  required = tuple(_get(cfg, "required_modalities", ()) or ())
  if not path:
    return _load_synthetic(_as_dict(_get(cfg, "synthetic", {})), name, required)

  root = pathlib.Path(path).expanduser()
  if not root.exists():
    raise DataError(f"dataset path {root} does not exist.")
  inter_path = _find_inter(root, name, str(_get(cfg, "inter_file", "") or ""))
  directory = root if root.is_dir() else root.parent
  dataset = read_inter(inter_path, name=name or inter_path.stem)
  feature_files = _get(cfg, "feature_files", None)
  feature_files = DEFAULT_FEATURE_FILES if feature_files is None else _as_dict(feature_files)
  features = load_features(directory, feature_files, dataset.n_items, required=required)
  dataset = dataclasses.replace(dataset, features=features)
  logger.info("%s", _summary(dataset, inter_path))
  return dataset


def _load_synthetic(kwargs: dict[str, Any], name: str, required: tuple[str, ...]) -> Dataset:
  valid = set(inspect.signature(make_synthetic).parameters)
  unknown = sorted(set(kwargs) - valid)
  if unknown:
    raise DataError(
        f"unknown synthetic option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}.")
  if name and "name" not in kwargs:
    kwargs["name"] = name
  dataset = make_synthetic(**kwargs)
  missing = [m for m in required if m not in dataset.features]
  if missing:
    raise DataError(
        f"required modality(ies) {', '.join(map(repr, missing))} not in the synthetic dataset; "
        f"available: {sorted(dataset.features) or 'none'} (set synthetic.image_dim / "
        f"synthetic.text_dim > 0).")
  logger.info("%s", _summary(dataset, None))
  return dataset


def _find_inter(root: pathlib.Path, name: str, inter_file: str) -> pathlib.Path:
  """The ``.inter`` file of a dataset folder (or ``root`` itself if it is a file)."""
  if root.is_file():
    if inter_file:
      raise DataError(f"path {root} is a file, so inter_file={inter_file!r} cannot be used.")
    return root
  if inter_file:
    candidate = root / inter_file
    if not candidate.is_file():
      raise DataError(f"inter_file {candidate} does not exist.")
    return candidate
  if name and (root / f"{name}.inter").is_file():
    return root / f"{name}.inter"
  found = sorted(root.glob("*.inter"))
  if len(found) != 1:
    looked = f"no {name}.inter and " if name else ""
    what = "no *.inter file" if not found else f"{len(found)} *.inter files ({found})"
    raise DataError(
        f"{root}: {looked}{what}; set inter_file (or name) to pick the interactions file.")
  return found[0]


def _get(cfg: Mapping[str, Any], key: str, default: Any) -> Any:
  # ConfigDict and dict both have .get; a ConfigDict field set to None counts as unset.
  value = cfg.get(key, default)
  return default if value is None else value


def _as_dict(value: Any) -> dict[str, Any]:
  if hasattr(value, "to_dict"):  # ml_collections.ConfigDict / FrozenConfigDict.
    value = value.to_dict()
  return dict(value)


def _summary(dataset: Dataset, source: pathlib.Path | None) -> str:
  features = ", ".join(f"{m} {x.shape[1]}-d" for m, x in dataset.features.items()) or "none"
  return (
      f"Dataset {dataset.name!r} ({source or 'synthetic'}): {dataset.n_users} users, "
      f"{dataset.n_items} items, train/valid/test {dataset.train.nnz}/{dataset.valid.nnz}/"
      f"{dataset.test.nnz}; features: {features}.")
