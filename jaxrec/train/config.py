"""The configuration schema shared by every model config (``configs/*.py``)."""

from __future__ import annotations

import importlib.util
import os
import pathlib
from collections.abc import Mapping
from typing import Any

import ml_collections

from jaxrec import models

METRIC_NAMES = ("recall", "ndcg", "precision", "map")


def base_config() -> ml_collections.ConfigDict:
  """All keys except the model section, with MMRec's defaults (overall.yaml)."""
  config = ml_collections.ConfigDict()
  config.model_name = ""
  config.seed = 999

  # Data section. An empty path selects the embedded synthetic dataset.
  config.dataset = ml_collections.ConfigDict()
  config.dataset.path = ""
  config.dataset.name = ""
  config.dataset.inter_file = ""
  config.dataset.feature_files = ml_collections.ConfigDict(
      {"image": "image_feat.npy", "text": "text_feat.npy"})
  config.dataset.required_modalities = ()
  # Derived data (kNN item graphs); '' = $JAXREC_CACHE_DIR or ~/.cache/jaxrec.
  config.dataset.cache_dir = ""
  # Keyword arguments of jaxrec.data.make_synthetic (the embedded default).
  config.dataset.synthetic = ml_collections.ConfigDict(dict(
      n_users=2000, n_items=1000, mean_interactions=24.0, n_factors=16, popularity_skew=1.0,
      temperature=0.5, image_dim=4096, text_dim=384, image_noise=4.0, text_noise=1.0, seed=0))

  # Model section: keyword arguments of the registered model class.
  config.model = ml_collections.ConfigDict()

  # Optimizer section (Adam, constant learning rate as MMRec's [1.0, 50]).
  config.learning_rate = 1e-3
  # MMRec's LambdaLR: lr * a ** (epoch / b) with (a, b); (1.0, 50) is constant.
  config.learning_rate_scheduler = (1.0, 50)
  config.train_batch_size = 2048

  # Loop and evaluation section (epochs everywhere).
  config.epochs = 1000
  config.stopping_step = 20
  config.valid_metric = "recall@20"
  config.topk = (5, 10, 20, 50)
  config.eval_batch_size = 4096
  config.checkpoint_every_epochs = 1
  return config


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in d.items():
    if isinstance(v, Mapping | ml_collections.ConfigDict):
      if k in ("feature_files", "synthetic"):  # Free-form sub-dicts.
        out[prefix + k] = dict(v)
        continue
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[prefix + k] = v
  return out


def load_config_file(path: str | os.PathLike, arg: str | None = None) -> ml_collections.ConfigDict:
  """``get_config()`` of a ``configs/*.py`` file, loaded by path (as ``--config`` does)."""
  path = pathlib.Path(path)
  spec = importlib.util.spec_from_file_location(f"jaxrec_config_{path.stem}", path)
  if spec is None or spec.loader is None:
    raise FileNotFoundError(f"Cannot load config file {path}.")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if arg is None else module.get_config(arg)


def flat_keys(config: ml_collections.ConfigDict | Mapping[str, Any]) -> list[str]:
  """Dotted names of every settable key, e.g. ``model.reg_weight``."""
  d = config.to_dict() if hasattr(config, "to_dict") else dict(config)

  def walk(d, prefix):
    for k, v in d.items():
      if isinstance(v, Mapping):
        yield from walk(v, f"{prefix}{k}.")
      else:
        yield prefix + k

  return sorted(walk(d, ""))


def validate_config(config: ml_collections.ConfigDict | Mapping[str, Any]) -> None:
  """Raises ``ValueError`` naming any unknown key and listing the valid ones."""
  given = _flatten(config.to_dict() if hasattr(config, "to_dict") else config)
  base = _flatten(base_config().to_dict())
  model_keys = {f"model.{k}" for k in models.hyperparameters(config["model_name"])}
  valid = set(base) | model_keys
  unknown = sorted(k for k in given if k not in valid and not k.startswith("model."))
  if unknown:
    raise ValueError(
        f"Unknown config key(s): {', '.join(unknown)}; valid keys: {', '.join(sorted(valid))}.")
  unknown_model = sorted(k for k in given if k.startswith("model.") and k not in model_keys)
  if unknown_model:
    raise ValueError(
        f"Unknown config key(s) for model {config['model_name']!r}: {', '.join(unknown_model)}; "
        f"valid keys: {', '.join(sorted(model_keys))}.")
  if config["valid_metric"] not in {f"{m}@{k}" for m in METRIC_NAMES for k in config["topk"]}:
    raise ValueError(
        f"valid_metric {config['valid_metric']!r} is not one of {METRIC_NAMES} at topk "
        f"{tuple(config['topk'])} (e.g. 'recall@20').")
