"""Recommenders, one file per model, resolved by name through the registry."""

from jaxrec.models import ccdrec, freedom, lattice, lightgcn, mf, vbpr  # noqa: F401  (registers)
from jaxrec.models.base import Recommender
from jaxrec.models.registry import create, get, hyperparameters, names, register

__all__ = ["Recommender", "create", "get", "hyperparameters", "names", "register"]
