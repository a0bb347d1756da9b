"""Data-constrained scaling: the effective-data law of Muennighoff et al. 2023.

Muennighoff et al. 2023 (arXiv 2305.16264) §3, eq. (5): training D tokens drawn
from U_D unique tokens repeats the data R_D = D/U_D − 1 times; repeated tokens
are worth less, decaying with constant R*_D:

    D' = U_D + U_D·R*_D·(1 − exp(−R_D/R*_D)),

and parameters beyond those compute-optimal for U_D are worth less likewise:
U_N = min(N, N_opt(U_D)), R_N = N/U_N − 1,

    N' = U_N + U_N·R*_N·(1 − exp(−R_N/R*_N)),
    L(N, D, U_D) = E + A/N'^α + B/D'^β.

N_opt(U_D) is the compute-optimal size for a run of U_D tokens under the base
law (closed form, ``allocation.closed_form``: N = G·(G·D)^(a/b)). The fit
follows the paper's stages: the base (E, A, B, α, β) by Approach 3 on
single-epoch runs (or given), then log R*_N and log R*_D by the same Huber
(δ = 1e-3) objective on log loss, summed, from a grid of starts; then, when
the base was fitted, all seven together on every run. The paper's
values are R*_N = 5.3 and R*_D = 15.4 with E = 1.87, A = 521, B = 1488,
α = β = 0.353.
"""

from __future__ import annotations

import itertools

import numpy as np
from scipy import optimize

from analysis import allocation, chinchilla

PUBLISHED = dict(E=1.87, A=521.0, B=1488.0, alpha=0.353, beta=0.353,
                 R_N_star=5.3, R_D_star=15.4)


def n_opt_for_tokens(base: dict, d) -> np.ndarray:
  """Compute-optimal N for a run of D tokens under the base law (C = 6ND)."""
  cf = allocation.closed_form(base)
  g, a, b = cf["G"], cf["a"], cf["b"]
  return g * (g * np.asarray(d, np.float64)) ** (a / b)


def effective(n, d, unique, base: dict, r_n_star: float, r_d_star: float
              ) -> tuple[np.ndarray, np.ndarray]:
  """(N', D') of Muennighoff et al. eq. (5); arrays broadcast together."""
  n, d, u = (np.asarray(v, np.float64) for v in (n, d, unique))
  r_d = np.maximum(d / u - 1.0, 0.0)
  d_eff = u + u * r_d_star * (-np.expm1(-r_d / r_d_star))
  u_n = np.minimum(n, n_opt_for_tokens(base, u))
  r_n = np.maximum(n / u_n - 1.0, 0.0)
  n_eff = u_n + u_n * r_n_star * (-np.expm1(-r_n / r_n_star))
  return n_eff, d_eff


def predict_loss(n, d, unique, base: dict, r_n_star: float,
                 r_d_star: float) -> np.ndarray:
  """L(N, D, U_D) in nats (Muennighoff et al. 2023 eq. 5)."""
  n_eff, d_eff = effective(n, d, unique, base, r_n_star, r_d_star)
  return chinchilla.predict_loss(base, n_eff, d_eff)


def _objective(log_r, n, d, u, loss, base, delta, weights):
  pred = predict_loss(n, d, u, base, np.exp(log_r[0]), np.exp(log_r[1]))
  r = np.log(pred) - np.log(loss)
  return float(np.sum(weights * chinchilla.huber(r, delta)))


def fit_decay(n, d, unique, loss, base: dict, *,
              delta: float = chinchilla.HUBER_DELTA, weights=None,
              start=None) -> dict:
  """Fits R*_N and R*_D with the base law fixed (stage 2).

  Args:
    n, d, unique, loss: [k] parameters, tokens, unique tokens, losses (> 0).
    base: dict A, B, E, alpha, beta.
    delta: Huber δ on log loss.
    weights: optional [k] point weights (bootstrap counts).
    start: optional (R*_N, R*_D) warm start, or a list of such starts;
      default a grid of starts.

  Returns:
    dict R_N_star, R_D_star, objective, warnings.
  """
  n, d, u, loss = (np.asarray(v, np.float64) for v in (n, d, unique, loss))
  w = np.ones_like(n) if weights is None else np.asarray(weights, np.float64)
  if start is None:
    grid = [np.log(s) for s in itertools.product((1.0, 10.0, 100.0),
                                                 (1.0, 10.0, 100.0))]
  else:
    st = np.atleast_2d(np.asarray(start, np.float64))
    grid = [np.log(row) for row in st]
  best = None
  with np.errstate(all="ignore"):
    for x0 in grid:
      res = optimize.minimize(_objective, np.asarray(x0, np.float64),
                              args=(n, d, u, loss, base, delta, w),
                              method="Nelder-Mead",
                              options=dict(xatol=1e-8, fatol=1e-15,
                                           maxiter=4000))
      if best is None or res.fun < best.fun:
        best = res
  r_n, r_d = np.exp(best.x)
  warnings = []
  if not np.any((d / u > 1.0 + 1e-9) & (w > 0)):
    warnings.append("no repeated-data runs (all D <= U_D): R*_D is not "
                    "identifiable")
  if not np.any((n > n_opt_for_tokens(base, u)) & (w > 0)):
    warnings.append("no run has N above N_opt(U_D): R*_N is not identifiable")
  for name, v in (("R_N_star", r_n), ("R_D_star", r_d)):
    if v > 1e4 or v < 1e-3:
      warnings.append(f"{name} = {v:.3g} ran to an extreme: repetition has no "
                      "measurable effect in this data (not identifiable)")
  return dict(R_N_star=float(r_n), R_D_star=float(r_d),
              objective=float(best.fun), warnings=warnings)


def fit_data_constrained(n, d, unique, loss, base: dict | None = None,
                         delta: float = chinchilla.HUBER_DELTA,
                         joint: bool | None = None) -> dict:
  """Staged fit of Muennighoff et al. 2023 eq. (5).

  Stage 1: the base law by Approach 3 on single-epoch runs (D ≤ U_D), unless
  given; stage 2: R*_N, R*_D with the base fixed (``fit_decay``); stage 3
  (``joint``, default when the base was fitted): all seven parameters
  refitted together on every run from there (Nelder–Mead).

  Args:
    n, d, unique, loss: [k] parameters, tokens, unique tokens, losses.
    base: dict A, B, E, alpha, beta to hold fixed; None fits it.
    delta: Huber δ.
    joint: run stage 3 (default: only when the base was fitted).

  Returns:
    dict base (params and how obtained), R_N_star, R_D_star, objective,
    n_points, n_single_epoch, warnings.

  Raises:
    ValueError: when the base must be fitted and fewer than 5 single-epoch
      runs exist.
  """
  n, d, u, loss = (np.asarray(v, np.float64) for v in (n, d, unique, loss))
  single = d <= u * (1.0 + 1e-9)
  warnings: list = []
  if joint is None:
    joint = base is None
  if base is None:
    if single.sum() < 5:
      raise ValueError(f"only {int(single.sum())} single-epoch runs: give the "
                       "base law (E, A, B, alpha, beta) or add runs with "
                       "D <= unique tokens")
    fit = chinchilla.fit_approach3(n[single], d[single], loss[single])
    base = fit.params
    base_src = f"Approach 3 on {int(single.sum())} single-epoch runs"
    warnings += [f"base law: {w}" for w in fit.warnings]
  else:
    base = {k: float(base[k]) for k in ("A", "B", "E", "alpha", "beta")}
    base_src = "given"
  dec = fit_decay(n, d, u, loss, base, delta=delta)
  if joint:
    base, dec = _joint(n, d, u, loss, base, dec, delta)
    base_src += ", then all 7 parameters refitted jointly on every run"
  return dict(base=dict(params=base, source=base_src),
              R_N_star=dec["R_N_star"], R_D_star=dec["R_D_star"],
              objective=dec["objective"], n_points=int(n.size),
              n_single_epoch=int(single.sum()),
              warnings=warnings + dec["warnings"])


def _joint(n, d, u, loss, base, dec, delta):
  """Stage 3: (a, b, e, α, β, log R*_N, log R*_D) together, Nelder–Mead.

  Single-epoch runs with more parameters than N_opt(U_D) do not follow the
  base law (their N' < N), so the stage-1 base is biased when such runs
  exist; refitting all seven numbers on every run removes that bias.
  """
  ll = np.log(loss)

  def objective(x):
    if not (x[3] > 0 and x[4] > 0):
      return np.inf
    p = chinchilla.params_from_theta(x[:5])
    with np.errstate(all="ignore"):
      pred = predict_loss(n, d, u, p, np.exp(x[5]), np.exp(x[6]))
      v = float(np.sum(chinchilla.huber(np.log(pred) - ll, delta)))
    return v if np.isfinite(v) else np.inf

  x0 = np.r_[chinchilla.theta_from_params(**{k: base[k] for k in (
      "A", "B", "E", "alpha", "beta")}), np.log(dec["R_N_star"]),
             np.log(dec["R_D_star"])]
  res = optimize.minimize(objective, x0, method="Nelder-Mead",
                          options=dict(xatol=1e-9, fatol=1e-15, maxiter=40000,
                                       maxfev=40000, adaptive=True))
  if not res.fun < dec["objective"]:
    return base, dec
  out = dict(dec, R_N_star=float(np.exp(res.x[5])),
             R_D_star=float(np.exp(res.x[6])), objective=float(res.fun))
  return chinchilla.params_from_theta(res.x[:5]), out
