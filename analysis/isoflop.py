"""Chinchilla Approach 2: isoFLOP parabolas in log N, then N_opt ∝ C^a.

Hoffmann et al. 2022 §3.2: for each compute budget, fit a parabola to final
loss as a function of log N, take its minimum as N_opt(C) (and the matching
D_opt), then fit power laws N_opt ∝ C^a and D_opt ∝ C^b across budgets.
A budget whose parabola has no interior minimum, or whose curvature is not
clearly positive (lower end of its 95% Student-t interval ≤ 0), is flagged and
left out of the power laws, never silently fitted.

The parabola fit is robust to one outlier: start from the best leave-one-out
least-squares fit, then iterate Huber reweighting (k = 1.345,
scale = 1.4826·MAD; Huber 1964, Holland & Welsch 1977).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from analysis import powerlaw

HUBER_K = 1.345
MIN_POINTS = 4


def group_budgets(c, budget=None, grid_decades: float = 0.1, nominal=None,
                  tolerance_decades: float = 0.08
                  ) -> tuple[np.ndarray, np.ndarray, str]:
  """Assigns each run to an isoFLOP budget.

  Args:
    c: [n] FLOPs of each run.
    budget: optional [n] nominal budget per run (the sweep's ``budget``
      column); used when any value is finite and positive (runs with a
      missing budget then join none).
    grid_decades: otherwise, runs whose log10 C rounds to the same multiple of
      this spacing form one budget (0.1 decade separates 6e18/1e19/3e19/…).
    nominal: optional list of budgets (FLOPs); a run joins the nearest one
      within ``tolerance_decades`` in log10 C, else no budget (label −1).
      Takes precedence over ``grid_decades`` (not over ``budget``).
    tolerance_decades: see ``nominal`` (0.08 ≈ ×/÷ 1.2).

  Returns:
    (labels [n] int, −1 = no budget; budget_flops [G] per label; method
    string). Budget FLOPs are the nominal budget, or the geometric mean of
    the group's C.
  """
  c = np.asarray(c, np.float64)
  if nominal is not None and len(nominal) and budget is None:
    nom = np.sort(np.asarray(nominal, np.float64))
    dist = np.abs(np.log10(c)[:, None] - np.log10(nom)[None, :])
    labels = np.argmin(dist, axis=1)
    labels[dist[np.arange(c.size), labels] > tolerance_decades] = -1
    return labels, nom, (f"nearest of {nom.size} given budgets within "
                         f"{tolerance_decades:g} decade")
  if budget is not None:
    b = np.asarray(budget, np.float64)
    ok = np.isfinite(b) & (b > 0)
    if ok.any():  # runs without a budget (e.g. not isoFLOP runs) join none
      values, inv = np.unique(b[ok], return_inverse=True)
      labels = np.full(b.size, -1, dtype=np.int64)
      labels[ok] = inv
      return labels, values, "budget column"
  key = np.round(np.log10(c) / grid_decades).astype(np.int64)
  keys, labels = np.unique(key, return_inverse=True)
  values = np.array([np.exp(np.mean(np.log(c[labels == g])))
                     for g in range(keys.size)])
  return labels, values, f"log10 C rounded to {grid_decades:g} decade"


def _wls(x, y, w):
  """Weighted LS parabola y = c0 + c1 x + c2 x²; returns coef [3], XᵀWX."""
  xm = np.stack([np.ones_like(x), x, x * x], axis=1)
  xtw = xm.T * w
  a = xtw @ xm
  return np.linalg.solve(a, xtw @ y), a


@dataclasses.dataclass
class Parabola:
  """Robust fit loss = c0 + c1·u + c2·u², u = ln N − x0.

  Attributes:
    coef: [3] (c0, c1, c2), loss in nats.
    x0: centring of ln N.
    c2_se: standard error of c2.
    dof: residual degrees of freedom.
    weights: [n] final robustness weights (an outlier gets < 1).
  """

  coef: np.ndarray
  x0: float
  c2_se: float
  dof: int
  weights: np.ndarray

  def __call__(self, n) -> np.ndarray:
    u = np.log(np.asarray(n, np.float64)) - self.x0
    return self.coef[0] + self.coef[1] * u + self.coef[2] * u * u

  @property
  def log_n_opt(self) -> float:
    """ln N at the vertex (−c1/(2c2) + x0)."""
    return float(self.x0 - self.coef[1] / (2.0 * self.coef[2]))


def fit_parabola(n, loss, counts=None, n_iter: int = 30) -> Parabola:
  """Robust parabola of loss in ln N (see module docstring).

  Args:
    n: [k] parameters (> 0), k ≥ 3.
    loss: [k] final losses (nats).
    counts: optional [k] multiplicities (bootstrap resamples).
    n_iter: Huber reweighting iterations.

  Raises:
    ValueError: with fewer than 3 distinct N.
  """
  x = np.log(np.asarray(n, np.float64))
  y = np.asarray(loss, np.float64)
  cnt = np.ones_like(x) if counts is None else np.asarray(counts, np.float64)
  if np.unique(x).size < 3:
    raise ValueError("a parabola needs at least 3 distinct N")
  x0 = float(np.sum(cnt * x) / np.sum(cnt))
  u = x - x0
  coef, _ = _wls(u, y, cnt)
  if x.size >= 5 and np.unique(x).size >= 4:  # best leave-one-out start
    best = None
    for i in range(x.size):
      keep = np.arange(x.size) != i
      if np.unique(u[keep]).size < 3:
        continue
      ci, _ = _wls(u[keep], y[keep], cnt[keep])
      r = y[keep] - (ci[0] + ci[1] * u[keep] + ci[2] * u[keep] ** 2)
      ss = np.sum(cnt[keep] * r * r)
      if best is None or ss < best[0]:
        best = (ss, ci)
    coef = best[1]
  rw = np.ones_like(x)
  for _ in range(n_iter):
    r = y - (coef[0] + coef[1] * u + coef[2] * u * u)
    scale = 1.4826 * np.median(np.abs(r - np.median(r)))
    scale = max(scale, 1e-9 * max(np.abs(y).max(), 1.0))
    ar = np.abs(r)
    rw = np.where(ar <= HUBER_K * scale, 1.0, HUBER_K * scale / np.maximum(
        ar, 1e-300))
    new, _ = _wls(u, y, cnt * rw)
    if np.allclose(new, coef, rtol=1e-12, atol=1e-15):
      coef = new
      break
    coef = new
  w = cnt * rw
  _, a = _wls(u, y, w)
  r = y - (coef[0] + coef[1] * u + coef[2] * u * u)
  dof = int(round(cnt.sum())) - 3
  if dof > 0:
    s2 = np.sum(w * r * r) / dof
    cov = s2 * np.linalg.inv(a)
    c2_se = float(np.sqrt(max(cov[2, 2], 0.0)))
  else:
    c2_se = float("nan")
  return Parabola(coef, x0, c2_se, dof, rw)


def _budget_fit(n, d, loss, counts=None) -> tuple[Parabola | None, dict]:
  """Fits one budget; returns (parabola or None, json with flags)."""
  info: dict = dict(n_points=int(n.size if counts is None else counts.sum()),
                    flags=[])
  if n.size < MIN_POINTS or np.unique(n).size < 3:
    info["flags"].append(f"too few points: need >= {MIN_POINTS} runs at >= 3 "
                         "sizes")
    return None, info
  par = fit_parabola(n, loss, counts)
  c2 = float(par.coef[2])
  info.update(curvature=c2, curvature_se=par.c2_se)
  if c2 <= 0:
    info["flags"].append(f"curvature not positive (c2 = {c2:.3g})")
  else:
    t = stats.t.ppf(0.975, par.dof) if par.dof > 0 else np.inf
    if not (np.isfinite(par.c2_se) and c2 - t * par.c2_se > 0):
      info["flags"].append(f"curvature not clearly positive (c2 = {c2:.3g} ± "
                           f"{par.c2_se:.3g}, 95% interval includes 0)")
    xv = par.log_n_opt
    lx = np.log(n)
    if not (lx.min() < xv < lx.max()):
      info["flags"].append(
          f"no interior minimum: vertex at N = {np.exp(xv):.4g} outside the "
          f"sampled range [{n.min():.4g}, {n.max():.4g}]")
  if not info["flags"]:
    xv = par.log_n_opt
    lx, ld = np.log(n), np.log(d)
    slope, icpt = np.polyfit(lx, ld, 1)  # log D is ~linear in log N at fixed C
    info.update(N_opt=float(np.exp(xv)), D_opt=float(np.exp(icpt + slope * xv)),
                loss_min=float(par(np.exp(xv))))
  return par, info


def fit_approach2(n, d, c, loss, budget=None, grid_decades: float = 0.1,
                  counts=None, nominal=None) -> dict:
  """Approach 2 over all budgets.

  Args:
    n, d, c, loss: [k] per-run parameters, tokens, FLOPs and final loss.
    budget: optional [k] nominal isoFLOP budget per run.
    grid_decades: log grid for grouping when ``budget`` is absent.
    counts: optional [k] multiplicities (bootstrap).
    nominal: optional list of budgets to group around (``group_budgets``).

  Returns:
    dict with ``budgets`` (per budget: flops, n_points, flags, included,
    N_opt, D_opt, loss_min, curvature, parabola), ``grouping``, ``a`` and
    ``b`` (PowerLawFit json or None), ``warnings``, ``identifiable`` and the
    parabolas (key ``_parabolas``, not JSON) for plotting.
  """
  n, d, c, loss = (np.asarray(v, np.float64) for v in (n, d, c, loss))
  cnt = None if counts is None else np.asarray(counts, np.float64)
  if cnt is not None:
    keep = cnt > 0
    n, d, c, loss, cnt = n[keep], d[keep], c[keep], loss[keep], cnt[keep]
    budget = None if budget is None else np.asarray(budget)[keep]
  labels, values, method = group_budgets(c, budget, grid_decades, nominal)
  budgets, parabolas = [], {}
  for g, cb in enumerate(values):
    m = labels == g
    par, info = _budget_fit(n[m], d[m], loss[m],
                            None if cnt is None else cnt[m])
    info["flops"] = float(cb)
    info["included"] = not info["flags"]
    if par is not None:
      info["parabola"] = dict(c0=float(par.coef[0]), c1=float(par.coef[1]),
                              c2=float(par.coef[2]), x0=par.x0)
      parabolas[float(cb)] = par
    budgets.append(info)
  inc = [b for b in budgets if b["included"]]
  out = dict(grouping=method, budgets=budgets, a=None, b=None, warnings=[],
             identifiable=False, unassigned=int(np.sum(labels < 0)),
             _parabolas=parabolas)
  flagged = [b for b in budgets if not b["included"]]
  if flagged:
    out["warnings"].append(f"{len(flagged)} of {len(budgets)} budgets flagged "
                           "and left out (see budgets[].flags)")
  if len(inc) < 2:
    out["warnings"].append(f"not identifiable: {len(inc)} usable "
                           "budget(s), need >= 2 with an interior minimum")
    return out
  cs = np.array([b["flops"] for b in inc])
  fa = powerlaw.fit_power_law(cs, [b["N_opt"] for b in inc])
  fb = powerlaw.fit_power_law(cs, [b["D_opt"] for b in inc])
  out.update(a=fa.to_json(), b=fb.to_json(), identifiable=True,
             _fits=dict(a=fa, b=fb))
  if len(inc) < 3:
    out["warnings"].append("only 2 usable budgets: the exponents "
                           "have no residual error estimate")
  return out
