"""Maximum-likelihood fit of L(N, D) with Huber-distributed log residuals.

Besiroglu et al. 2024 (arXiv 2404.10102) §3: the residuals
r_i = LSE(a − α log N_i, b − β log D_i, e) − log L_i follow the density
p(r) = exp(−ρ_δ(r/σ)) / (σ·Z(δ)), with ρ_δ the Huber function and

    Z(δ) = ∫ exp(−ρ_δ(x)) dx = √(2π)·(1 − 2Φ(−δ)) + 2·exp(−δ²/2)/δ

(the Gaussian core over |x| ≤ δ plus two exponential tails). The negative
log-likelihood Σ_i [ρ_δ(r_i/σ) + log σ + log Z(δ)] is minimised over
φ = (a, b, e, α, β, log σ) with BFGS from Chinchilla's unrounded parameters and
log σ = 0. With δ = 1e-3 the fitted σ makes almost every |r/σ| > δ, so the
likelihood is nearly Laplace (L1); its Hessian is not informative, and
intervals come from the bootstrap (``analysis.bootstrap``).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats

from analysis import chinchilla

PARAM_NAMES = chinchilla.PARAM_NAMES + ("log_sigma",)


def huber_log_normalizer(delta: float) -> float:
  """log Z(δ) of the standardized Huber density (see module docstring)."""
  z = (np.sqrt(2 * np.pi) * (1 - 2 * stats.norm.sf(delta))
       + 2 * np.exp(-0.5 * delta ** 2) / delta)
  return float(np.log(z))


def make_nll(n, d, loss, delta: float = chinchilla.HUBER_DELTA,
             weights: np.ndarray | None = None):
  """Vectorised NLL and gradient over rows of φ = (a, b, e, α, β, log σ).

  Args:
    n, d, loss: [k] parameters, tokens, losses (> 0).
    delta: Huber δ of the standardized residual r/σ.
    weights: optional [R, k] per-row point weights (bootstrap counts).

  Returns:
    fun_grad(Φ [m, 6], rows [m] | None) -> (NLL [m], gradient [m, 6]).
  """
  ln = np.log(np.asarray(n, np.float64))
  ld = np.log(np.asarray(d, np.float64))
  ll = np.log(np.asarray(loss, np.float64))
  logz = huber_log_normalizer(delta)
  w_all = None if weights is None else np.asarray(weights, np.float64)

  def fun_grad(phi_mx6, rows=None):
    phi = np.atleast_2d(np.asarray(phi_mx6, np.float64))
    a, b, e, al, be, ls = (col[:, None] for col in phi.T)
    w = (np.ones((1, ln.size)) if w_all is None else
         w_all[np.zeros(phi.shape[0], int) if rows is None else rows])
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
      u1 = a - al * ln
      u2 = b - be * ld
      m = np.maximum(np.maximum(u1, u2), e)
      e1, e2, e3 = np.exp(u1 - m), np.exp(u2 - m), np.exp(e - m)
      s = e1 + e2 + e3
      r = m + np.log(s) - ll
      sigma = np.exp(ls)
      z = r / sigma
      c = np.clip(z, -delta, delta)
      cnt = w.sum(axis=1)
      val = np.sum(w * c * (z - 0.5 * c), axis=1) + cnt * (ls[:, 0] + logz)
      h = w * c / sigma / s
      grad = np.stack([np.sum(h * e1, 1), np.sum(h * e2, 1), np.sum(h * e3, 1),
                       -np.sum(h * e1 * ln, 1), -np.sum(h * e2 * ld, 1),
                       cnt - np.sum(w * c * z, 1)], axis=1)
    return np.where(np.isfinite(val), val, np.inf), grad

  return fun_grad


def phi_start(start: dict | None = None) -> np.ndarray:
  """φ0 from dict A, B, E, alpha, beta (default Chinchilla's), log σ = 0."""
  p0 = chinchilla.CHINCHILLA_PARAMS if start is None else start
  return np.append(chinchilla.theta_from_params(
      p0["A"], p0["B"], p0["E"], p0["alpha"], p0["beta"]), 0.0)


def params_from_phi(phi) -> dict:
  """φ [6] → dict A, B, E, alpha, beta, sigma."""
  out = chinchilla.params_from_theta(np.asarray(phi)[:5])
  out["sigma"] = float(np.exp(phi[5]))
  return out


def fit_mle(n, d, loss, delta: float = chinchilla.HUBER_DELTA,
            start: dict | None = None) -> dict:
  """Huber maximum-likelihood fit (Besiroglu et al. 2024 §3).

  Args:
    n, d, loss: [k] parameters, tokens, final losses (> 0).
    delta: Huber δ.
    start: dict A, B, E, alpha, beta (default Chinchilla's unrounded values);
      log σ starts at 0.

  Returns:
    dict params (A, B, E, alpha, beta, sigma), phi (the 6 fitted numbers),
    nll, converged (gradient small or line search at machine precision),
    message, delta.
  """
  fg = make_nll(n, d, loss, delta)

  def single(phi):
    f, g = fg(phi[None])
    return float(f[0]), g[0]

  with np.errstate(all="ignore"):
    res = optimize.minimize(single, phi_start(start), jac=True, method="BFGS",
                            options=dict(gtol=1e-9, maxiter=5000))
  phi = np.asarray(res.x)
  gmax = float(np.max(np.abs(single(phi)[1])))
  # With σ ≪ |r| the NLL is nearly piecewise linear (Laplace): its minimum
  # sits on kinks where the gradient need not vanish, and BFGS ends with
  # "precision loss". Each point's residual moves the gradient by up to δ/σ,
  # so a gradient below 1e-4·n·δ/σ counts as converged.
  g_scale = np.size(n) * (delta / np.exp(phi[5]) + 1.0)
  rel = gmax / g_scale
  return dict(params=params_from_phi(phi), phi=[float(v) for v in phi],
              nll=float(res.fun), converged=bool(res.success or rel < 1e-4),
              relative_gradient=float(rel), message=str(res.message),
              delta=delta)
