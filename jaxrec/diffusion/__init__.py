"""Discrete DDPM building blocks for CCDRec's DMA/NDI (and other diffusion recommenders).

Self-contained: depends only on jax, numpy and flax, not on the rest of jaxrec.

* :mod:`~jaxrec.diffusion.schedules`: :class:`Schedule`, :func:`make_schedule`.
* :mod:`~jaxrec.diffusion.process`: :func:`q_sample`, :func:`posterior_mean_variance`,
  :func:`x0_mse_loss`, :func:`antithetic_timesteps`.
* :mod:`~jaxrec.diffusion.estimator`: :class:`X0Estimator`, :func:`sinusoidal_embedding`.
* :mod:`~jaxrec.diffusion.chain`: :func:`reverse_chain`, :func:`chain_start`, snapshot steps.

Steps are 0-based (``0 .. T-1``) everywhere; the last axis is the feature axis.
"""

from jaxrec.diffusion.chain import (
    EstimatorFn,
    chain_start,
    ndi_snapshot_steps,
    paper_snapshot_steps,
    reverse_chain,
    start_from_noised,
)
from jaxrec.diffusion.estimator import X0Estimator, sinusoidal_embedding
from jaxrec.diffusion.process import (
    antithetic_timesteps,
    posterior_mean_variance,
    q_sample,
    x0_mse_loss,
)
from jaxrec.diffusion.schedules import SCHEDULES, Schedule, make_schedule, schedule_from_betas

__all__ = [
    "SCHEDULES",
    "EstimatorFn",
    "Schedule",
    "X0Estimator",
    "antithetic_timesteps",
    "chain_start",
    "make_schedule",
    "ndi_snapshot_steps",
    "paper_snapshot_steps",
    "posterior_mean_variance",
    "q_sample",
    "reverse_chain",
    "schedule_from_betas",
    "sinusoidal_embedding",
    "start_from_noised",
    "x0_mse_loss",
]
