import doctest
import math

import jax
import numpy as np
import pytest

from jaxrec import diffusion
from jaxrec.diffusion import schedules


def _derived(betas):
  """Every Schedule field from its closed form, in float64 NumPy."""
  b = np.asarray(betas, np.float64)
  a = 1.0 - b
  abar = np.cumprod(a)
  prev = np.concatenate([[1.0], abar[:-1]])
  var = b * (1.0 - prev) / (1.0 - abar)
  return dict(
      betas=b, alphas=a, alphas_cumprod=abar, alphas_cumprod_prev=prev,
      sqrt_alphas_cumprod=np.sqrt(abar), sqrt_one_minus_alphas_cumprod=np.sqrt(1.0 - abar),
      posterior_variance=var,
      posterior_log_variance_clipped=np.log(np.concatenate([var[1:2], var[1:]])),
      posterior_mean_coef1=b * np.sqrt(prev) / (1.0 - abar),
      posterior_mean_coef2=(1.0 - prev) * np.sqrt(a) / (1.0 - abar))


def _assert_schedule(s, betas):
  for name, want in _derived(betas).items():
    got = getattr(s, name)
    assert got.dtype == np.float32 and got.shape == (len(betas),), name
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-7, err_msg=name)


def test_doctests():
  result = doctest.testmod(schedules)
  assert result.failed == 0 and result.attempted > 0


def test_linear_matches_reference_values():
  s = diffusion.make_schedule("linear", 20)
  np.testing.assert_allclose(s.betas[0], 1e-4, rtol=1e-6)
  np.testing.assert_allclose(s.betas[-1], 0.02, rtol=1e-6)
  np.testing.assert_allclose(np.diff(s.betas), (0.02 - 1e-4) / 19, rtol=1e-4)
  # REFERENCE.md D.3: alpha_bar_{T-1} = 0.8168, sqrt = 0.904, sqrt(1 - .) = 0.428.
  np.testing.assert_allclose(s.alphas_cumprod[-1], 0.8168, atol=1e-4)
  np.testing.assert_allclose(s.sqrt_alphas_cumprod[-1], 0.904, atol=1e-3)
  np.testing.assert_allclose(s.sqrt_one_minus_alphas_cumprod[-1], 0.428, atol=1e-3)
  assert s.timesteps == 20
  _assert_schedule(s, np.linspace(1e-4, 0.02, 20))


def test_posterior_constants_direct_formulas():
  s = diffusion.make_schedule("linear", 7, beta_start=0.01, beta_end=0.3)
  b = np.linspace(0.01, 0.3, 7)
  abar = np.cumprod(1 - b)
  for t in range(7):
    prev = 1.0 if t == 0 else abar[t - 1]
    np.testing.assert_allclose(s.alphas_cumprod_prev[t], prev, rtol=1e-6)
    np.testing.assert_allclose(
        s.posterior_variance[t], b[t] * (1 - prev) / (1 - abar[t]), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(
        s.posterior_mean_coef1[t], b[t] * math.sqrt(prev) / (1 - abar[t]), rtol=1e-5)
    np.testing.assert_allclose(
        s.posterior_mean_coef2[t], (1 - prev) * math.sqrt(1 - b[t]) / (1 - abar[t]),
        rtol=1e-5, atol=1e-9)
  # Step 0: the posterior is the point mass x0 (coef1 = 1, coef2 = 0, variance 0).
  assert float(s.posterior_variance[0]) == 0.0
  np.testing.assert_allclose([s.posterior_mean_coef1[0], s.posterior_mean_coef2[0]], [1, 0],
                             atol=1e-6)
  # DDPM's clipping: step 0's log-variance is step 1's; all finite.
  assert np.all(np.isfinite(s.posterior_log_variance_clipped))
  assert s.posterior_log_variance_clipped[0] == s.posterior_log_variance_clipped[1]
  np.testing.assert_allclose(
      s.posterior_log_variance_clipped[1:], np.log(s.posterior_variance[1:]), rtol=1e-5)


def test_cosine_nichol_dhariwal_with_official_clip():
  t_total, s_off = 20, 0.008
  f = lambda u: math.cos((u + s_off) / (1 + s_off) * math.pi / 2) ** 2  # noqa: E731
  want = [min(max(1 - f((i + 1) / t_total) / f(i / t_total), 1e-4), 0.9999)
          for i in range(t_total)]
  s = diffusion.make_schedule("cosine", t_total)
  _assert_schedule(s, want)
  assert np.all(np.diff(s.betas) > 0)  # monotone increasing betas
  assert np.all(np.diff(s.alphas_cumprod) < 0)
  # alpha_bar(1) = 0: the last beta is clipped at 0.9999 (DreamRec/CCDRec's clip).
  np.testing.assert_allclose(s.betas[-1], 0.9999, rtol=1e-7)
  s100 = diffusion.make_schedule("cosine", 100)
  assert np.all(np.diff(s100.betas) >= 0)


def test_sqrt_and_exp_closed_forms():
  t_total = 20
  abar = lambda u: 1 - math.sqrt(u + 1e-4)  # noqa: E731
  want_sqrt = [min(1 - abar((i + 1) / t_total) / abar(i / t_total), 0.999)
               for i in range(t_total)]
  s = diffusion.make_schedule("sqrt", t_total)
  _assert_schedule(s, want_sqrt)
  np.testing.assert_allclose(s.betas[-1], 0.999, rtol=1e-7)

  x = np.linspace(1, 2 * t_total + 1, t_total)
  want_exp = 1 - np.exp(-0.1 / t_total - x * 0.5 * 9.9 / t_total**2)
  s = diffusion.make_schedule("exp", t_total, beta_start=0.5, beta_end=0.6)  # ignored
  _assert_schedule(s, want_exp)
  assert np.all(np.diff(s.betas) > 0)


def test_bad_arguments():
  with pytest.raises(ValueError, match="linear.*cosine.*sqrt.*exp"):
    diffusion.make_schedule("quadratic", 20)
  with pytest.raises(ValueError, match="timesteps"):
    diffusion.make_schedule("linear", 1)
  with pytest.raises(ValueError, match=r"\(0, 1\)"):
    diffusion.make_schedule("linear", 10, beta_start=0.0)
  with pytest.raises(ValueError, match=r"\(0, 1\)"):
    diffusion.schedule_from_betas([0.1, 1.0])


def test_schedule_is_a_pytree():
  s = diffusion.make_schedule("linear", 5)
  assert len(jax.tree.leaves(s)) == 10

  @jax.jit
  def f(sched):
    return sched.betas * sched.timesteps

  np.testing.assert_allclose(f(s), s.betas * 5)
