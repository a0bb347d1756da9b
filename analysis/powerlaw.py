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
from scipy import stats


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


E_FLOOR = 1e-6  # E >= E_FLOOR * min(loss): the bound E -> 0, reported as such


def saturating_starts(loss) -> np.ndarray:
  """[16, 3] starts (e, a at the median log C, γ) for ``fit_saturating``.

  E at 0, 50, 80, 95% of the lowest loss × γ in {0.03, 0.1, 0.3, 1}; A such
  that E + A equals the median loss at the median compute.
  """
  loss = np.asarray(loss, np.float64)
  lmin, lmed = np.nanmin(loss), np.nanmedian(loss)
  rows = []
  for frac in (0.0, 0.5, 0.8, 0.95):
    for g in (0.03, 0.1, 0.3, 1.0):
      e = np.log(max(frac * lmin, 1e-3 * lmin))
      rows.append([e, np.log(max(lmed - np.exp(e), 1e-3 * lmed)), g])
  return np.asarray(rows, np.float64)


def fit_saturating_batch(log_c_BxM, log_loss_BxM, weights_BxM, starts_BxSx3,
                         e_min_B, lc0_B, n_iter: int = 400) -> dict:
  """Batched Levenberg–Marquardt for L(C) = E + A·C^(−γ) on log loss.

  Residual r = LSE(e, a − γ·(log C − lc0)) − log L per point, cost
  ½·Σ w·r²; B independent problems (bootstrap resamples, padded with w = 0)
  × S starts advance together; each keeps its best start. Steps solve
  (JᵀWJ + λ·diag(JᵀWJ))·δ = −JᵀWr (Marquardt 1963; Nocedal & Wright 2006
  §10.3), λ ×0.3 after an accepted step, ×10 after a rejected one; e is
  held at or above ``e_min`` (the bound E → 0).

  Args:
    log_c_BxM, log_loss_BxM, weights_BxM: [B, M] natural logs of C and L,
      point weights (0 = absent).
    starts_BxSx3: [B, S, 3] starts (e, a at lc0, γ).
    e_min_B: [B] lower bound of e = log E.
    lc0_B: [B] centring of log C.
    n_iter: LM iterations at most.

  Returns:
    dict x [B, 3] best (e, a, γ), cost [B], rms [B] (root mean square log
    residual over the weighted points).
  """
  lc = np.asarray(log_c_BxM, np.float64)
  ll = np.asarray(log_loss_BxM, np.float64)
  w = np.asarray(weights_BxM, np.float64)
  st = np.asarray(starts_BxSx3, np.float64)
  b, s, _ = st.shape
  rep = lambda v: np.repeat(np.asarray(v), s, axis=0)  # noqa: E731
  lc, ll, w = rep(lc), rep(ll), rep(w)
  e_min, x0c = rep(e_min_B), rep(lc0_B)
  u0 = lc - x0c[:, None]
  x = st.reshape(b * s, 3).copy()
  x[:, 0] = np.maximum(x[:, 0], e_min)

  def rj(xr, rows):
    e, a, g = xr[:, 0:1], xr[:, 1:2], xr[:, 2:3]
    u = a - g * u0[rows]
    m = np.maximum(u, e)
    pu, pe = np.exp(u - m), np.exp(e - m)
    tot = pu + pe
    r = np.where(w[rows] > 0, m + np.log(tot) - ll[rows], 0.0)
    pu, pe = pu / tot, pe / tot
    return r, np.stack([pe, pu, -pu * u0[rows]], axis=2)

  all_rows = np.arange(b * s)
  with np.errstate(all="ignore"):
    r, jac = rj(x, all_rows)
    cost = 0.5 * np.sum(w * r * r, axis=1)
    lam = np.full(b * s, 1e-3)
    active = np.isfinite(cost)
    eye = np.eye(3)
    for _ in range(n_iter):
      idx = np.flatnonzero(active)
      if idx.size == 0:
        break
      ja, ra, wa = jac[idx], r[idx], w[idx]
      jtw = ja * wa[:, :, None]
      h = np.einsum("bmi,bmj->bij", jtw, ja)
      g = np.einsum("bmi,bm->bi", jtw, ra)
      dg = np.einsum("bii->bi", h)
      ridge = 1e-12 * (dg.sum(axis=1) + 1e-300)
      hd = h + (lam[idx, None] * dg + ridge[:, None])[:, :, None] * eye
      step = -np.linalg.solve(hd, g[:, :, None])[:, :, 0]
      xn = x[idx] + step
      xn[:, 0] = np.maximum(xn[:, 0], e_min[idx])
      rn, jn = rj(xn, idx)
      cn = 0.5 * np.sum(wa * rn * rn, axis=1)
      ok = np.isfinite(cn) & (cn <= cost[idx])
      gain = cost[idx] - cn
      acc = idx[ok]
      x[acc], r[acc], jac[acc] = xn[ok], rn[ok], jn[ok]
      lam[idx] = np.where(ok, lam[idx] * 0.3, lam[idx] * 10.0)
      tiny = ok & (gain <= 1e-13 * cost[idx])
      cost[acc] = cn[ok]
      done = tiny | (lam[idx] > 1e10) | (cost[idx] <= 1e-28)
      active[idx[done]] = False
  cost = np.where(np.isfinite(cost), cost, np.inf).reshape(b, s)
  best = np.argmin(cost, axis=1)
  rows = np.arange(b) * s + best
  npts = np.maximum(np.sum(w[rows] > 0, axis=1), 1)
  cb = cost[np.arange(b), best]
  return dict(x=x[rows], cost=cb, rms=np.sqrt(2 * cb / npts))


def fit_saturating(c, loss, theta0=None, grid: bool | None = None
                   ) -> tuple[SaturatingPowerLaw, float]:
  """Fits L(C) = E + A·C^(−γ) by least squares on log L.

  log L̂ = LSE(e, a − γ·log C) with E = exp(e), A = exp(a) (the log-sum-exp
  form of Hoffmann et al. 2022 eq. 3 applied to one variable); batched
  Levenberg–Marquardt (``fit_saturating_batch``) from the 16 starts of
  ``saturating_starts`` and/or from ``theta0`` = (e, a, γ). E is bounded
  below by ``E_FLOOR`` × the lowest loss: an estimate there means the data
  show no irreducible loss (``analysis.identify`` flags it).

  Args:
    c: [n] FLOPs (> 0).
    loss: [n] losses in nats (> 0).
    theta0: optional warm start (e, a, γ).
    grid: use the grid of starts (default: only when ``theta0`` is None);
      ``theta0`` with ``grid=True`` tries both (bootstrap resamples).

  Returns:
    (law, rms of log residuals).

  Raises:
    ValueError: with fewer than 4 points (3 parameters), or when no start
      reaches a finite fit.
  """
  c = np.asarray(c, np.float64)
  loss = np.asarray(loss, np.float64)
  if c.size < 4:
    raise ValueError(f"frontier fit needs >= 4 points, got {c.size}")
  lc, ll = np.log(c), np.log(loss)
  lc0 = float(np.median(lc))
  starts = []
  if theta0 is not None:
    e0, a0, g0 = theta0
    starts.append([e0, a0 - g0 * lc0, g0])
  if grid or (grid is None and theta0 is None):
    starts.extend(saturating_starts(loss).tolist())
  res = fit_saturating_batch(lc[None], ll[None], np.ones((1, c.size)),
                             np.asarray(starts)[None],
                             np.array([np.log(E_FLOOR * loss.min())]),
                             np.array([lc0]))
  if not np.isfinite(res["cost"][0]):
    raise ValueError("frontier fit failed from every start")
  e, a, g = res["x"][0]
  law = SaturatingPowerLaw(float(np.exp(e)), float(np.exp(a + g * lc0)),
                           float(g))
  return law, float(res["rms"][0])


def fit_saturating_many(fronts, theta0=None, min_points: int = 4
                        ) -> list[tuple[SaturatingPowerLaw | None, float]]:
  """``fit_saturating`` on many point sets at once (bootstrap resamples).

  Every set is fitted from the grid of ``saturating_starts`` plus
  ``theta0`` (e, a, γ) when given, in one ``fit_saturating_batch`` call.

  Args:
    fronts: list of (c [m_i], loss [m_i]) arrays.
    theta0: optional common warm start (the full-data optimum).
    min_points: sets with fewer points get (None, nan).

  Returns:
    [(law or None, rms)] in the order of ``fronts``.
  """
  out: list = [(None, float("nan"))] * len(fronts)
  use = [i for i, (c, _) in enumerate(fronts) if len(c) >= min_points]
  if not use:
    return out
  m = max(len(fronts[i][0]) for i in use)
  b = len(use)
  lc = np.zeros((b, m))
  ll = np.zeros((b, m))
  w = np.zeros((b, m))
  starts, e_min, lc0 = [], np.empty(b), np.empty(b)
  for j, i in enumerate(use):
    c, loss = (np.asarray(v, np.float64) for v in fronts[i])
    k = c.size
    lc[j, :k], ll[j, :k], w[j, :k] = np.log(c), np.log(loss), 1.0
    lc[j, k:] = lc[j, 0]
    lc0[j] = np.median(np.log(c))
    e_min[j] = np.log(E_FLOOR * loss.min())
    st = saturating_starts(loss)
    if theta0 is not None:
      e0, a0, g0 = theta0
      st = np.vstack([[e0, a0 - g0 * lc0[j], g0], st])
    starts.append(st)
  res = fit_saturating_batch(lc, ll, w, np.stack(starts), e_min, lc0)
  for j, i in enumerate(use):
    if np.isfinite(res["cost"][j]):
      e, a, g = res["x"][j]
      out[i] = (SaturatingPowerLaw(float(np.exp(e)),
                                   float(np.exp(a + g * lc0[j])), float(g)),
                float(res["rms"][j]))
  return out
