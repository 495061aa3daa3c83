"""Training loop, early stopping, checkpoints and metric logs."""

from jaxrec.train.train import NonFiniteLossError, evaluate_workdir, train_and_evaluate

__all__ = ["NonFiniteLossError", "evaluate_workdir", "train_and_evaluate"]
