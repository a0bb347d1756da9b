"""Chinchilla Approach 2: isoFLOP parabolas in log N, then N_opt ∝ C^a.

Hoffmann et al. 2022 §3.2: for each compute budget, fit a parabola to final
loss as a function of log N, take its minimum as N_opt(C) (and the matching
D_opt), then fit power laws N_opt ∝ C^a and D_opt ∝ C^b across budgets.
A budget whose parabola has no interior minimum, or whose curvature is not
clearly positive (lower end of its 95% Student-t interval ≤ 0), is flagged and
left out of the power laws, never silently fitted.

The parabola fit is robust to one outlier: start from the best leave-one-out
least-squares fit, then iterate Huber reweighting (k = 1.345,
scale = 1.4826·MAD; Huber 1964, Holland & Welsch 1977). The final weights are
returned per run (``budgets[].runs``), drawn on the isoFLOP plot and stated in
the report: with 5–8 runs per budget the MAD scale is small and a run that
the parabola does not pass through, the budget's best included, can be
down-weighted. ``robust=False`` fits plain least squares (for comparison).

Each budget's compute is its nominal value (budget column or given budgets)
or the geometric mean of its runs' C; ``flops_at="vertex"`` instead reads C
at the vertex from a log-linear fit of log C on log N within the budget (for
FLOP counts under which a budget's runs differ in C, such as 6ND when the
runs were matched on another count).
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


def fit_parabola(n, loss, counts=None, n_iter: int = 30,
                 robust: bool = True) -> Parabola:
  """Robust parabola of loss in ln N (see module docstring).

  Args:
    n: [k] parameters (> 0), k ≥ 3.
    loss: [k] final losses (nats).
    counts: optional [k] multiplicities (bootstrap resamples).
    n_iter: Huber reweighting iterations.
    robust: False = weighted least squares only (weights = counts).

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
  if not robust:
    n_iter = 0
  if robust and x.size >= 5 and np.unique(x).size >= 4:  # leave-one-out start
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
    if np.all(np.abs(new - coef) <= 1e-15 + 1e-12 * np.abs(coef)):
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


def _budget_fit(n, d, loss, counts=None, robust: bool = True, c=None,
                flops_at: str = "budget") -> tuple[Parabola | None, dict]:
  """Fits one budget; returns (parabola or None, json with flags)."""
  info: dict = dict(n_points=int(n.size if counts is None else counts.sum()),
                    flags=[])
  if n.size < MIN_POINTS or np.unique(n).size < 3:
    info["flags"].append(f"too few points: need >= {MIN_POINTS} runs at >= 3 "
                         "sizes")
    return None, info
  par = fit_parabola(n, loss, counts, robust=robust)
  c2 = float(par.coef[2])
  best = int(np.argmin(loss))
  info.update(curvature=c2, curvature_se=par.c2_se,
              runs=[dict(N=float(ni), loss=float(li), weight=float(wi))
                    for ni, li, wi in zip(n, loss, par.weights)],
              best_run_weight=float(par.weights[best]))
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
    if flops_at == "vertex" and c is not None:
      cs, ci = np.polyfit(lx, np.log(c), 1)
      info["flops_vertex"] = float(np.exp(ci + cs * xv))
  return par, info


def fit_approach2(n, d, c, loss, budget=None, grid_decades: float = 0.1,
                  counts=None, nominal=None, robust: bool = True,
                  flops_at: str = "budget", labels=None) -> dict:
  """Approach 2 over all budgets.

  Args:
    n, d, c, loss: [k] per-run parameters, tokens, FLOPs and final loss.
    budget: optional [k] nominal isoFLOP budget per run.
    grid_decades: log grid for grouping when ``budget`` is absent.
    counts: optional [k] multiplicities (bootstrap).
    nominal: optional list of budgets to group around (``group_budgets``).
    robust: Huber-reweighted parabolas (default) or plain least squares.
    flops_at: "budget" (the budget's C) or "vertex" (C at the vertex, see
      the module docstring) as the abscissa of the power laws.
    labels: optional ([k] int labels, [G] budget FLOPs) that replace the
      grouping (e.g. the sweep's budgets kept under another FLOP count).

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
    if labels is not None:
      labels = (np.asarray(labels[0])[keep], labels[1])
  if labels is None:
    labels, values, method = group_budgets(c, budget, grid_decades, nominal)
  else:
    labels, values = np.asarray(labels[0]), np.asarray(labels[1])
    method = "given groups"
  if flops_at not in ("budget", "vertex"):
    raise ValueError(f"flops_at must be 'budget' or 'vertex', got "
                     f"{flops_at!r}")
  budgets, parabolas = [], {}
  for g, cb in enumerate(values):
    m = labels == g
    par, info = _budget_fit(n[m], d[m], loss[m],
                            None if cnt is None else cnt[m], robust, c[m],
                            flops_at)
    info["flops"] = float(info.pop("flops_vertex", cb))
    info["budget_flops"] = float(cb)
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
  if np.unique(cs).size < 2:
    out["warnings"].append("not identifiable: the usable budgets share one "
                           "compute value")
    return out
  fa = powerlaw.fit_power_law(cs, [b["N_opt"] for b in inc])
  fb = powerlaw.fit_power_law(cs, [b["D_opt"] for b in inc])
  out.update(a=fa.to_json(), b=fb.to_json(), identifiable=True,
             _fits=dict(a=fa, b=fb))
  if len(inc) < 3:
    out["warnings"].append("only 2 usable budgets: the exponents "
                           "have no residual error estimate")
  return out
