"""Power laws: y = k·x^p (Kaplan form, N_opt ∝ C^a) and L(C) = E + A·C^(−γ).

One code path serves every pure power law in the analysis: Kaplan et al. 2020
(arXiv 2001.08361) eqs. 1.1–1.3 write L(N) = (N_c/N)^α_N, which is
``PowerLaw.kaplan(N_c, α_N)``; the compute-optimal allocations N_opt = G·(C/6)^a
(Hoffmann et al. 2022 eq. 4) are ``PowerLaw`` objects too, and Approaches 1–2
fit ``PowerLaw`` by least squares in log–log space.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import optimize, stats


@dataclasses.dataclass(frozen=True)
class PowerLaw:
  """y = coef · x^exponent.

  Attributes:
    coef: multiplier k (units of y per unit of x^exponent).
    exponent: p.
  """

  coef: float
  exponent: float

  @classmethod
  def kaplan(cls, x_c: float, alpha: float) -> "PowerLaw":
    """Kaplan et al. 2020 eq. 1.1 form y = (x_c/x)^α = x_c^α · x^(−α)."""
    return cls(float(x_c) ** float(alpha), -float(alpha))

  def __call__(self, x) -> np.ndarray:
    """Evaluates at x (array-like, > 0)."""
    return self.coef * np.asarray(x, np.float64) ** self.exponent

  def inverse(self, y) -> np.ndarray:
    """x such that coef·x^exponent = y."""
    return (np.asarray(y, np.float64) / self.coef) ** (1.0 / self.exponent)


@dataclasses.dataclass
class PowerLawFit:
  """Least-squares fit of log y = log k + p·log x.

  Attributes:
    law: the fitted PowerLaw.
    exponent_se, log_coef_se: standard errors (nan with < 3 points).
    n_points: points used.
    r2: coefficient of determination in log space.
  """

  law: PowerLaw
  exponent_se: float
  log_coef_se: float
  n_points: int
  r2: float

  def exponent_ci(self, level: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the exponent (nan with < 3 points)."""
    if self.n_points < 3 or not np.isfinite(self.exponent_se):
      return (float("nan"), float("nan"))
    t = stats.t.ppf(0.5 + level / 2, self.n_points - 2)
    p = self.law.exponent
    return (p - t * self.exponent_se, p + t * self.exponent_se)

  def to_json(self) -> dict:
    """JSON-ready dict of the fields."""
    lo, hi = self.exponent_ci()
    return dict(coef=self.law.coef, exponent=self.law.exponent,
                exponent_se=_nan_none(self.exponent_se),
                exponent_ci_t95=[_nan_none(lo), _nan_none(hi)],
                log_coef_se=_nan_none(self.log_coef_se),
                n_points=self.n_points, r2=_nan_none(self.r2))


def _nan_none(v):
  v = float(v)
  return v if np.isfinite(v) else None


def fit_power_law(x, y, weights=None) -> PowerLawFit:
  """Fits y = k·x^p by (weighted) least squares on (log x, log y).

  Args:
    x: [n] positive abscissae (e.g. FLOPs).
    y: [n] positive ordinates (e.g. N_opt).
    weights: optional [n] non-negative weights.

  Raises:
    ValueError: with fewer than 2 distinct x, or non-positive values.
  """
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if x.shape != y.shape:
    raise ValueError(f"x and y shapes differ: {x.shape} vs {y.shape}")
  if not (np.all(x > 0) and np.all(y > 0)):
    raise ValueError("power-law fit needs x > 0 and y > 0")
  if np.unique(x).size < 2:
    raise ValueError("power-law fit needs at least 2 distinct x values")
  w = np.ones_like(x) if weights is None else np.asarray(weights, np.float64)
  lx, ly = np.log(x), np.log(y)
  sw = w.sum()
  mx, my = (w * lx).sum() / sw, (w * ly).sum() / sw
  sxx = (w * (lx - mx) ** 2).sum()
  p = (w * (lx - mx) * (ly - my)).sum() / sxx
  logk = my - p * mx
  resid = ly - logk - p * lx
  n = x.size
  ss_tot = (w * (ly - my) ** 2).sum()
  r2 = 1.0 - (w * resid ** 2).sum() / ss_tot if ss_tot > 0 else float("nan")
  if n > 2:
    # Effective sample size keeps the weighted SE honest (Kish 1965).
    n_eff = sw ** 2 / (w ** 2).sum()
    s2 = (w * resid ** 2).sum() / sw * n_eff / max(n_eff - 2, 1e-9)
    se_p = np.sqrt(s2 / sxx * sw / n_eff)
    se_k = np.sqrt(s2 * (1.0 / n_eff + mx ** 2 / sxx * sw / n_eff))
  else:
    se_p = se_k = float("nan")
  return PowerLawFit(PowerLaw(float(np.exp(logk)), float(p)), float(se_p),
                     float(se_k), int(n), float(r2))


@dataclasses.dataclass(frozen=True)
class SaturatingPowerLaw:
  """L(C) = E + A·C^(−γ): loss versus compute on the compute-optimal frontier.

  Attributes:
    E: irreducible loss (nats).
    A: scale (nats · FLOPs^γ).
    gamma: exponent γ.
  """

  E: float
  A: float
  gamma: float

  def __call__(self, c) -> np.ndarray:
    return self.E + self.A * np.asarray(c, np.float64) ** (-self.gamma)

  def to_json(self) -> dict:
    """JSON-ready dict of the fields."""
    return dict(E=self.E, A=self.A, gamma=self.gamma)


def fit_saturating(c, loss, theta0=None) -> tuple[SaturatingPowerLaw, float]:
  """Fits L(C) = E + A·C^(−γ) by least squares on log L.

  log L̂ = LSE(e, a − γ·log C) with E = exp(e), A = exp(a) (the log-sum-exp
  form of Hoffmann et al. 2022 eq. 3 applied to one variable); MINPACK
  Levenberg–Marquardt from a small grid of γ and E starts (or from ``theta0``
  = (e, a, γ) only, for bootstrap warm starts).

  Args:
    c: [n] FLOPs (> 0).
    loss: [n] losses in nats (> 0).
    theta0: optional warm start (e, a, γ).

  Returns:
    (law, rms of log residuals).

  Raises:
    ValueError: with fewer than 4 points (3 parameters).
  """
  c = np.asarray(c, np.float64)
  loss = np.asarray(loss, np.float64)
  if c.size < 4:
    raise ValueError(f"frontier fit needs >= 4 points, got {c.size}")
  lc, ll = np.log(c), np.log(loss)
  lc0 = np.median(lc)

  def resid(th):
    e, a, g = th
    u = a - g * (lc - lc0)
    m = np.maximum(u, e)
    return m + np.log(np.exp(u - m) + np.exp(e - m)) - ll

  if theta0 is not None:
    e0, a0, g0 = theta0
    starts = [np.array([e0, a0 - g0 * lc0, g0])]
  else:
    starts = []
    lmin, lmed = loss.min(), np.median(loss)
    for frac in (0.0, 0.5, 0.8, 0.95):
      for g in (0.03, 0.1, 0.3, 1.0):
        e = np.log(max(frac * lmin, 1e-3 * lmin))
        starts.append(np.array([e, np.log(max(lmed - np.exp(e), 1e-3 * lmed)),
                                g]))
  best = None
  with np.errstate(all="ignore"):
    for th in starts:
      try:
        res = optimize.least_squares(resid, th, method="lm", xtol=1e-14,
                                     ftol=1e-14, gtol=1e-14, max_nfev=20000)
      except (ValueError, FloatingPointError):
        continue
      better = best is None or res.cost < best.cost
      if np.all(np.isfinite(res.fun)) and better:
        best = res
  if best is None:
    raise ValueError("frontier fit failed from every start")
  e, a, g = best.x
  law = SaturatingPowerLaw(float(np.exp(e)), float(np.exp(a + g * lc0)),
                           float(g))
  return law, float(np.sqrt(np.mean(best.fun ** 2)))
