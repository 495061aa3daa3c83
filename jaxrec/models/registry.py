"""Model registry: config names -> classes (big_vision-style, fail loudly)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from flax import nnx

_MODELS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
  """Class decorator registering a model under ``name`` (duplicates are errors)."""

  def wrap(cls: type) -> type:
    if name in _MODELS:
      raise KeyError(f"Model {name!r} is already registered ({_MODELS[name].__name__}).")
    _MODELS[name] = cls
    return cls

  return wrap


def names() -> list[str]:
  return sorted(_MODELS)


def get(name: str) -> type:
  """The model class registered as ``name``."""
  if name not in _MODELS:
    raise ValueError(f"Unknown model {name!r}; valid models: {', '.join(names())}.")
  return _MODELS[name]


def hyperparameters(name: str) -> dict[str, Any]:
  """Keyword hyper-parameters of a model with their defaults.

  They are the keyword-only parameters of the class's ``__init__``, or, for a
  model composed of parts (CCDRec on a backbone), of every callable in its
  ``hyperparameter_sources`` minus its ``excluded_hyperparameters``.
  """
  cls = get(name)
  sources = getattr(cls, "hyperparameter_sources", None) or (cls.__init__,)
  excluded = set(getattr(cls, "excluded_hyperparameters", ())) | {"rngs"}
  out = {}
  for source in sources:
    for p in inspect.signature(source).parameters.values():
      if p.kind is p.KEYWORD_ONLY and p.name not in excluded:
        out[p.name] = p.default
  return out


def create(name: str, dataset: Any, kwargs: Mapping[str, Any], *, rngs: nnx.Rngs) -> Any:
  """Instantiates model ``name``; unknown keyword arguments list the valid ones."""
  valid = hyperparameters(name)
  unknown = sorted(set(kwargs) - set(valid))
  if unknown:
    raise ValueError(
        f"Unknown config key(s) for model {name!r}: {', '.join(f'model.{k}' for k in unknown)}; "
        f"valid keys: {', '.join(f'model.{k}' for k in sorted(valid))}.")
  return get(name)(dataset, rngs=rngs, **dict(kwargs))
