"""The conditional x0-estimator of CCDRec's DMA: attention over modality tokens.

Per row (an item), the tokens are ``[x_t, *conditions, sinusoidal_embedding(t)]``,
each ``[d]``; the estimator attends over them and mean-pools to ``x0_hat [d]``.

The default configuration is exactly the official ``diffusion.selfAttention``
(REFERENCE.md D.4): one single-head attention layer, LayerNorm without affine
parameters, no residual, no feed-forward, no dropout, Xavier-normal ``W_q, W_k,
W_v`` without bias. Depth, heads, residual connections and a feed-forward block
(the paper's "Transformer" reading) are options.

There are no positional embeddings, so every configuration is invariant to the
order of the tokens: the model tells ``x_t`` from a condition only by content.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

# PyTorch's ``xavier_normal_`` draws from an untruncated normal; flax's
# ``xavier_normal`` truncates at 2 sigma, so spell the initializer out.
xavier_normal = nnx.initializers.variance_scaling(1.0, "fan_avg", "normal")


def sinusoidal_embedding(t: jax.typing.ArrayLike, dim: int) -> jax.Array:
  r"""DDPM/fairseq sinusoidal step embedding (sin half first).

  .. math::
    \omega_k = \exp\!\Big(-\frac{k \ln 10000}{h - 1}\Big),\ k = 0..h-1,\ h = \lfloor d/2 \rfloor,
    \qquad e(t) = [\sin(t\,\omega),\ \cos(t\,\omega)]

  An odd ``dim`` gets one trailing zero, as the official code pads.

  Args:
    t: ``[...]`` 0-based integer (or float) steps.
    dim: embedding size ``d >= 4`` (``h - 1`` must be positive).

  Returns:
    ``[..., dim]`` float32 embeddings.

  Examples:
    >>> e = sinusoidal_embedding(jnp.array([0, 3]), 8)
    >>> e.shape, [float(v) for v in e[0]]
    ((2, 8), [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
  """
  if dim < 4:
    raise ValueError(f"dim must be >= 4 (the frequency ladder divides by dim//2 - 1); got {dim}.")
  half = dim // 2
  freqs = jnp.exp(jnp.arange(half, dtype=jnp.float32) * -(math.log(10000.0) / (half - 1)))
  args = jnp.asarray(t, jnp.float32)[..., None] * freqs
  emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
  if dim % 2:
    emb = jnp.pad(emb, [(0, 0)] * (emb.ndim - 1) + [(0, 1)])
  return emb


def _layer_norm(x: jax.Array, eps: float = 1e-5) -> jax.Array:
  # torch.nn.LayerNorm(elementwise_affine=False): biased variance, no parameters.
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
  return (x - mean) * jax.lax.rsqrt(var + eps)


class _Block(nnx.Module):
  """One attention layer (+ optional feed-forward) over ``[..., n_tokens, d]``."""

  def __init__(self, dim: int, *, rngs: nnx.Rngs, n_heads: int, residual: bool,
               feed_forward: bool, ff_mult: int):
    self.n_heads, self.residual = n_heads, residual

    def linear(i, o, bias=False):
      return nnx.Linear(i, o, use_bias=bias, kernel_init=xavier_normal,
                        bias_init=nnx.initializers.zeros, rngs=rngs)

    self.w_q, self.w_k, self.w_v = linear(dim, dim), linear(dim, dim), linear(dim, dim)
    # One head's output needs no mixing; several heads get the usual W_o.
    self.w_o = linear(dim, dim) if n_heads > 1 else None
    if feed_forward:
      self.ff_in, self.ff_out = linear(dim, ff_mult * dim, True), linear(ff_mult * dim, dim, True)
    else:
      self.ff_in = self.ff_out = None

  def __call__(self, x: jax.Array, *, pool: bool = False) -> jax.Array:
    """``[..., n, d]`` tokens -> ``[..., n, d]`` tokens, or their mean ``[..., d]`` if ``pool``."""
    *lead, n, d = x.shape
    nh, hd = self.n_heads, d // self.n_heads
    h = _layer_norm(x)
    w_q, w_k = self.w_q.kernel[...], self.w_k.kernel[...]
    if nh == 1:
      # q k^T = h (W_q W_k^T) h^T: one [d, d] projection of the tokens instead of
      # two (the projections are most of the cost of the reverse chain).
      logits = jnp.einsum("...qc,...kc->...qk", h @ (w_q @ w_k.T), h)[..., None, :, :]
    else:
      q, k = (h @ w_q).reshape(*lead, n, nh, hd), (h @ w_k).reshape(*lead, n, nh, hd)
      logits = jnp.einsum("...qhc,...khc->...hqk", q, k)
    attn = jax.nn.softmax(logits * (hd ** -0.5), axis=-1)  # [..., heads, n, n]
    # A (h W_v) = (A h) W_v, and what follows the softmax is linear up to the
    # feed-forward block, so a pooling layer averages before projecting: W_v then
    # multiplies one row per item instead of n tokens.
    ah = jnp.einsum("...hqk,...kc->...hqc", attn, h)  # [..., heads, n, d]
    w_v = self.w_v.kernel[...].reshape(d, nh, hd)
    early_pool = pool and self.ff_in is None
    if early_pool:
      out = jnp.einsum("...hc,chd->...hd", jnp.mean(ah, axis=-2), w_v).reshape(*lead, d)
      x = jnp.mean(x, axis=-2)
    else:
      out = jnp.einsum("...hqc,chd->...qhd", ah, w_v).reshape(*lead, n, d)
    if self.w_o is not None:
      out = self.w_o(out)
    x = x + out if self.residual else out
    if self.ff_in is not None:
      f = self.ff_out(jax.nn.gelu(self.ff_in(_layer_norm(x))))
      x = x + f if self.residual else f
    return jnp.mean(x, axis=-2) if pool and not early_pool else x


class X0Estimator(nnx.Module):
  r"""Conditional estimator :math:`f_\theta(x_t, t, c_1, \dots, c_m) \approx x_0`.

  Reference form (the defaults), per row:

  .. math::
    H = \mathrm{LN}([x_t; c_1; \dots; c_m; e(t)]) \in \mathbb{R}^{(m+2) \times d},\quad
    \hat x_0 = \mathrm{mean}_{\text{tokens}}\,
      \mathrm{softmax}\!\Big(\frac{H W_q (H W_k)^\top}{\sqrt d}\Big) H W_v

  with LN non-affine (eps 1e-5) and :math:`W_{q,k,v}` ``[d, d]`` Xavier-normal,
  no bias: ``3 d^2`` parameters in all.

  Options: ``n_layers`` stacks layers (each layer's output tokens feed the
  next; mean pooling after the last); ``n_heads`` splits ``d`` into heads with
  scale :math:`1/\sqrt{d/h}` and adds an output projection ``W_o`` when
  ``n_heads > 1``; ``residual`` adds each sub-block's input to its output;
  ``feed_forward`` adds a per-token ``Linear(d, ff_mult d) - GELU -
  Linear(ff_mult d, d)`` after attention (pre-LN, also non-affine);
  ``timesteps_embedding_dim`` = ``k`` computes the sinusoid at width ``k`` and
  maps it to ``d`` with a learned ``Linear(k, d)`` (``None``: the sinusoid at
  width ``d`` is the token itself, as in the official code).

  Any number of condition tokens works, including none (a dataset without
  modality features, or with one).

  The arithmetic is regrouped for speed, not changed: with one head the logits
  are :math:`H (W_q W_k^\top) H^\top` (one token projection instead of two), and a
  last layer without feed-forward pools before multiplying by :math:`W_v`. The
  parameters are still :math:`W_q, W_k, W_v` and the output matches the formula
  above to float32 rounding (tested against a NumPy transcription).

  Args:
    dim: token width ``d`` (the embedding size).
    rngs: initialisation RNGs.
    n_layers: number of attention layers, >= 1.
    n_heads: attention heads; must divide ``dim``.
    residual: residual connections around attention (and feed-forward).
    feed_forward: add a feed-forward block to each layer.
    ff_mult: hidden width multiplier of the feed-forward block.
    timesteps_embedding_dim: width of the sinusoid before a learned
      projection, or ``None`` for no projection.

  Example:
    >>> model = X0Estimator(8, rngs=nnx.Rngs(0))
    >>> x0_hat = model(jnp.ones((4, 8)), [jnp.zeros((4, 8))], jnp.arange(4))
    >>> x0_hat.shape
    (4, 8)
  """

  def __init__(
      self,
      dim: int,
      *,
      rngs: nnx.Rngs,
      n_layers: int = 1,
      n_heads: int = 1,
      residual: bool = False,
      feed_forward: bool = False,
      ff_mult: int = 4,
      timesteps_embedding_dim: int | None = None,
  ):
    if n_layers < 1:
      raise ValueError(f"n_layers must be >= 1; got {n_layers}.")
    if n_heads < 1 or dim % n_heads:
      raise ValueError(f"n_heads must be >= 1 and divide dim={dim}; got {n_heads}.")
    if feed_forward and ff_mult < 1:
      raise ValueError(f"ff_mult must be >= 1; got {ff_mult}.")
    temb_dim = dim if timesteps_embedding_dim is None else int(timesteps_embedding_dim)
    if temb_dim < 4:
      raise ValueError(f"the timestep embedding needs width >= 4; got {temb_dim}.")
    self.dim, self.temb_dim = dim, temb_dim
    self.layers = nnx.List([
        _Block(dim, rngs=rngs, n_heads=n_heads, residual=residual,
               feed_forward=feed_forward, ff_mult=ff_mult)
        for _ in range(n_layers)])
    self.time_proj = (
        None if timesteps_embedding_dim is None else
        nnx.Linear(temb_dim, dim, kernel_init=xavier_normal,
                   bias_init=nnx.initializers.zeros, rngs=rngs))

  def tokens(
      self,
      x_t: jax.typing.ArrayLike,
      conditions: Sequence[jax.typing.ArrayLike],
      t: jax.typing.ArrayLike,
  ) -> jax.Array:
    """Stacks ``[x_t, *conditions, step embedding]`` to ``[..., m + 2, d]``."""
    x_t = jnp.asarray(x_t)
    if x_t.ndim < 1 or x_t.shape[-1] != self.dim:
      raise ValueError(f"x_t must have shape [..., {self.dim}]; got {x_t.shape}.")
    toks = [x_t]
    for i, c in enumerate(conditions):
      c = jnp.asarray(c)
      if c.shape != x_t.shape:
        raise ValueError(
            f"Shape mismatch: conditions[{i}] has shape {c.shape}, x_t has {x_t.shape}.")
      toks.append(c.astype(x_t.dtype))
    temb = sinusoidal_embedding(t, self.temb_dim)
    if self.time_proj is not None:
      temb = self.time_proj(temb)
    # A scalar t (one step for all rows, as in the reverse chain) is broadcast.
    toks.append(jnp.broadcast_to(temb, x_t.shape).astype(x_t.dtype))
    return jnp.stack(toks, axis=-2)

  def __call__(
      self,
      x_t: jax.typing.ArrayLike,
      conditions: Sequence[jax.typing.ArrayLike],
      t: jax.typing.ArrayLike,
  ) -> jax.Array:
    """Estimates ``x0``.

    Args:
      x_t: ``[..., d]`` noised inputs.
      conditions: zero or more ``[..., d]`` condition tokens (e.g. projected
        text and image features of the same items).
      t: ``[...]`` 0-based integer steps, or a scalar for all rows.

    Returns:
      ``[..., d]`` estimates of ``x0``.
    """
    h = self.tokens(x_t, conditions, t)
    last = len(self.layers) - 1
    for i, layer in enumerate(self.layers):
      h = layer(h, pool=i == last)  # The last layer mean-pools over the tokens.
    return h
