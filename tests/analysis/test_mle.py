"""Huber maximum likelihood (Besiroglu et al. 2024 §3)."""

import numpy as np
import pytest
from scipy import integrate

from analysis import chinchilla, mle


def test_normaliser_equals_the_integral_of_the_huber_density():
  for delta in (1e-3, 0.5, 1.345):
    dens = lambda x: np.exp(-chinchilla.huber(x, delta))  # noqa: E731
    core, _ = integrate.quad(dens, -delta, delta, epsabs=0, epsrel=1e-12)
    tail, _ = integrate.quad(dens, delta, np.inf, epsabs=0, epsrel=1e-12)
    num = core + 2 * tail
    assert mle.huber_log_normalizer(delta) == pytest.approx(np.log(num),
                                                            rel=1e-9)


def test_nll_gradient_matches_central_differences(epoch_points):
  r = epoch_points
  fg = mle.make_nll(r["N"], r["D"], r["loss"])
  x = np.array([[6.0, 7.5, 0.6, 0.35, 0.36, -3.0],
                [6.2, 7.7, 0.59, 0.347, 0.367, -12.0]])
  _, g = fg(x)
  for j in range(6):
    e = np.zeros(6)
    e[j] = 1e-7
    num = (fg(x + e)[0] - fg(x - e)[0]) / 2e-7
    np.testing.assert_allclose(g[:, j], num, rtol=1e-4, atol=1e-4)


def test_mle_reproduces_besiroglu_estimates(epoch_points):
  # Besiroglu et al. 2024 Table 1 ("our estimates"): E = 1.82, A = 482.01,
  # B = 2085.43, alpha = 0.3478, beta = 0.3658 (printed to 4 decimals).
  r = epoch_points
  out = mle.fit_mle(r["N"], r["D"], r["loss"])
  p = out["params"]
  assert p["A"] == pytest.approx(482.01, abs=0.05)
  assert p["B"] == pytest.approx(2085.43, abs=0.5)
  assert p["E"] == pytest.approx(1.82, abs=5e-3)
  assert p["alpha"] == pytest.approx(0.3478, abs=1e-4)
  assert p["beta"] == pytest.approx(0.3658, abs=1e-4)
  assert out["converged"]
  # With δ = 1e-3 almost every |r/σ| > δ: σ is δ·mean|r| (Laplace limit).
  resid = np.log(chinchilla.predict_loss(p, r["N"], r["D"])) - np.log(r["loss"])
  assert p["sigma"] == pytest.approx(1e-3 * np.mean(np.abs(resid)), rel=1e-3)
