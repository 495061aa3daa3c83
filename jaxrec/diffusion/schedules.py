"""Noise schedules of a discrete DDPM with ``T`` steps indexed ``0 .. T-1``.

All per-step constants are precomputed once, on the host in float64, and stored
as float32 ``[T]`` arrays in a :class:`Schedule` pytree, so jitted code only
gathers from them.

The named schedules are those of the official CCDRec code
(``Yimeng-yang/CCDRec:CCDRec_code/CCDRec/src/models/diffusion_ver15.py``,
``linear_beta_schedule`` / ``cosine_beta_schedule`` / ``exp_beta_schedule`` /
``betas_for_alpha_bar`` and the ``beta_sche`` dispatch in ``diffusion.__init__``),
which are copied verbatim from DreamRec (``YangZhengyi98/DreamRec:DreamRec.py``).
Only ``'linear'`` reads ``beta_start``/``beta_end``; the other three have their
own constants hard-coded there, and so do they here.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class Schedule:
  r"""Per-step constants of a DDPM, each a float32 ``[T]`` array.

  With :math:`\alpha_t = 1 - \beta_t`, :math:`\bar\alpha_t = \prod_{s \le t} \alpha_s`
  and :math:`\bar\alpha_{-1} := 1`:

  .. math::
    q(x_t \mid x_0) = \mathcal{N}(\sqrt{\bar\alpha_t}\, x_0,\ (1 - \bar\alpha_t) I)

    q(x_{t-1} \mid x_t, x_0) = \mathcal{N}(c^{(1)}_t x_0 + c^{(2)}_t x_t,\
        \tilde\beta_t I), \quad
    \tilde\beta_t = \beta_t \frac{1 - \bar\alpha_{t-1}}{1 - \bar\alpha_t},\
    c^{(1)}_t = \frac{\beta_t \sqrt{\bar\alpha_{t-1}}}{1 - \bar\alpha_t},\
    c^{(2)}_t = \frac{(1 - \bar\alpha_{t-1}) \sqrt{\alpha_t}}{1 - \bar\alpha_t}

  It is a pytree (``flax.struct.dataclass``): pass it to jitted functions as an
  argument; ``T`` is static through the arrays' shape.

  Attributes:
    betas: :math:`\beta_t`.
    alphas: :math:`\alpha_t = 1 - \beta_t`.
    alphas_cumprod: :math:`\bar\alpha_t`.
    alphas_cumprod_prev: :math:`\bar\alpha_{t-1}`, with :math:`\bar\alpha_{-1} = 1`.
    sqrt_alphas_cumprod: :math:`\sqrt{\bar\alpha_t}`.
    sqrt_one_minus_alphas_cumprod: :math:`\sqrt{1 - \bar\alpha_t}`.
    posterior_variance: :math:`\tilde\beta_t` (exactly 0 at ``t = 0``).
    posterior_log_variance_clipped: :math:`\log\tilde\beta_t` with step 0 replaced
      by step 1's, as in DDPM, because :math:`\log 0` is not finite.
    posterior_mean_coef1: :math:`c^{(1)}_t`, the weight of :math:`x_0`.
    posterior_mean_coef2: :math:`c^{(2)}_t`, the weight of :math:`x_t`.
  """

  betas: jax.Array
  alphas: jax.Array
  alphas_cumprod: jax.Array
  alphas_cumprod_prev: jax.Array
  sqrt_alphas_cumprod: jax.Array
  sqrt_one_minus_alphas_cumprod: jax.Array
  posterior_variance: jax.Array
  posterior_log_variance_clipped: jax.Array
  posterior_mean_coef1: jax.Array
  posterior_mean_coef2: jax.Array

  @property
  def timesteps(self) -> int:
    """``T``, the number of steps (static: read from the arrays' shape)."""
    return self.betas.shape[-1]


def schedule_from_betas(betas: np.ndarray | jax.typing.ArrayLike) -> Schedule:
  """Builds a :class:`Schedule` from any ``[T]`` beta sequence.

  Args:
    betas: ``[T]`` concrete (not traced) values in ``(0, 1)``, ``T >= 2``.

  Returns:
    The schedule; every field is a float32 ``[T]`` array.

  Raises:
    ValueError: if ``betas`` is not 1-D with ``T >= 2`` or has values outside
      ``(0, 1)``.
  """
  b = np.asarray(betas, dtype=np.float64)
  if b.ndim != 1 or b.shape[0] < 2:
    # T = 1 leaves no step 1 to stand in for the log of the zero variance at step 0.
    raise ValueError(f"betas must have shape [T] with T >= 2; got shape {b.shape}.")
  if not np.all(np.isfinite(b)) or np.any(b <= 0.0) or np.any(b >= 1.0):
    raise ValueError(
        f"betas must lie in (0, 1); got min {b.min()!r}, max {b.max()!r}.")
  alphas = 1.0 - b
  abar = np.cumprod(alphas)
  abar_prev = np.concatenate([[1.0], abar[:-1]])
  post_var = b * (1.0 - abar_prev) / (1.0 - abar)
  post_log_var = np.log(np.concatenate([post_var[1:2], post_var[1:]]))
  f32 = lambda a: jnp.asarray(a, dtype=jnp.float32)  # noqa: E731
  return Schedule(
      betas=f32(b),
      alphas=f32(alphas),
      alphas_cumprod=f32(abar),
      alphas_cumprod_prev=f32(abar_prev),
      sqrt_alphas_cumprod=f32(np.sqrt(abar)),
      sqrt_one_minus_alphas_cumprod=f32(np.sqrt(1.0 - abar)),
      posterior_variance=f32(post_var),
      posterior_log_variance_clipped=f32(post_log_var),
      posterior_mean_coef1=f32(b * np.sqrt(abar_prev) / (1.0 - abar)),
      posterior_mean_coef2=f32((1.0 - abar_prev) * np.sqrt(alphas) / (1.0 - abar)),
  )


def _linear_betas(timesteps: int, beta_start: float, beta_end: float) -> np.ndarray:
  return np.linspace(beta_start, beta_end, timesteps)


def _cosine_betas(timesteps: int, s: float = 0.008) -> np.ndarray:
  # Nichol & Dhariwal's alpha-bar, but clipped to [1e-4, 0.9999] as DreamRec/CCDRec
  # do (the improved-DDPM code clips to [0, 0.999]); for small T only the last
  # beta (which would be ~1) is affected.
  x = np.linspace(0, timesteps, timesteps + 1)
  abar = np.cos(((x / timesteps) + s) / (1 + s) * math.pi * 0.5) ** 2
  abar = abar / abar[0]
  return np.clip(1.0 - abar[1:] / abar[:-1], 0.0001, 0.9999)


def _exp_betas(timesteps: int, beta_min: float = 0.1, beta_max: float = 10.0) -> np.ndarray:
  # The VP-SDE's beta(t) = beta_min + t (beta_max - beta_min) discretised at the
  # points x = linspace(1, 2T + 1, T) exactly as DreamRec/CCDRec write it.
  x = np.linspace(1, 2 * timesteps + 1, timesteps)
  return 1.0 - np.exp(
      -beta_min / timesteps - x * 0.5 * (beta_max - beta_min) / (timesteps * timesteps))


def _sqrt_betas(timesteps: int, max_beta: float = 0.999) -> np.ndarray:
  # Diffusion-LM's sqrt schedule through improved-DDPM's betas_for_alpha_bar.
  # alpha_bar(1) = 1 - sqrt(1.0001) < 0, so the last beta is always max_beta.
  def alpha_bar(t):
    return 1.0 - np.sqrt(t + 0.0001)

  t1 = np.arange(timesteps) / timesteps
  t2 = (np.arange(timesteps) + 1) / timesteps
  return np.minimum(1.0 - alpha_bar(t2) / alpha_bar(t1), max_beta)


SCHEDULES = ("linear", "cosine", "sqrt", "exp")


def make_schedule(
    name: str,
    timesteps: int,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
) -> Schedule:
  r"""Builds one of the named beta schedules of the official CCDRec code.

  * ``'linear'``: :math:`\beta_t` = ``linspace(beta_start, beta_end, T)``
    (CCDRec's setting: ``T = 20``, ``1e-4 .. 0.02``, giving
    :math:`\bar\alpha_{T-1} \approx 0.8168`).
  * ``'cosine'``: Nichol & Dhariwal (2021) with :math:`s = 0.008`,
    :math:`\bar\alpha(u) = \cos^2\!\big(\frac{u + s}{1 + s}\frac{\pi}{2}\big)`,
    :math:`\beta_t = 1 - \bar\alpha(\frac{t+1}{T}) / \bar\alpha(\frac{t}{T})`,
    clipped to ``[1e-4, 0.9999]`` (the CCDRec/DreamRec clip; improved-DDPM
    uses 0.999).
  * ``'sqrt'``: Li et al. (Diffusion-LM, 2022),
    :math:`\bar\alpha(u) = 1 - \sqrt{u + 10^{-4}}`, same ratio rule, each
    :math:`\beta_t` capped at 0.999.
  * ``'exp'``: DreamRec's discretised VP-SDE,
    :math:`\beta_t = 1 - \exp\!\big(-\frac{\beta_{min}}{T} - x_t
    \frac{\beta_{max} - \beta_{min}}{2 T^2}\big)` with
    :math:`x` = ``linspace(1, 2T + 1, T)``, :math:`\beta_{min} = 0.1`,
    :math:`\beta_{max} = 10`. (Despite the name it is not an exponential ramp.)

  ``beta_start`` and ``beta_end`` are used by ``'linear'`` only, as in the
  official code.

  Args:
    name: one of ``'linear'``, ``'cosine'``, ``'sqrt'``, ``'exp'``.
    timesteps: ``T >= 2``.
    beta_start: first beta of ``'linear'``.
    beta_end: last beta of ``'linear'``.

  Returns:
    The :class:`Schedule` with float32 ``[T]`` fields.

  Raises:
    ValueError: for an unknown ``name``, ``timesteps < 2`` or betas outside
      ``(0, 1)``.

  Examples:
    >>> s = make_schedule('linear', 20)
    >>> print(f'{float(s.alphas_cumprod[-1]):.4f}')
    0.8168
  """
  if not isinstance(timesteps, (int, np.integer)) or timesteps < 2:
    raise ValueError(f"timesteps must be an int >= 2; got {timesteps!r}.")
  timesteps = int(timesteps)
  if name == "linear":
    betas = _linear_betas(timesteps, beta_start, beta_end)
  elif name == "cosine":
    betas = _cosine_betas(timesteps)
  elif name == "sqrt":
    betas = _sqrt_betas(timesteps)
  elif name == "exp":
    betas = _exp_betas(timesteps)
  else:
    raise ValueError(f"Unknown schedule {name!r}; valid names are {list(SCHEDULES)}.")
  return schedule_from_betas(betas)
