"""Fitted hyperparameter rules: the best learning rate (or batch) per size,
then a power law in N (or C), with intervals and grid-edge flags.

For one model size and one hyperparameter h (peak learning rate, or batch in
tokens) swept on a grid (``lr_sweep``, ``batch_sweep``):

1. profile: the loss at each tried value is the best over that value's runs
   (other swept hyperparameters, seeds);
2. the best tried value is *on the grid's edge* when it is the smallest or
   the largest value tried, or when no finished run lies beyond it (the runs
   there diverged): the optimum may lie outside the grid, so the size gets
   no estimate, only a bound, and is left out of the law;
3. otherwise a parabola y = c0 + c1·u + c2·u² in u = log2 h, least squares
   on the best value and up to ``window`` tried values either side, gives
   h* = 2^(−c1 / 2c2) (as DeepSeek-AI 2024 §3.1 and Porian et al. 2024 §4
   read optima off loss-versus-hyperparameter curves). Its interval is the
   delta-method one from the parabola's covariance, Student-t with n − 3
   degrees of freedom (none with 3 points). A curvature whose interval
   reaches 0, or a vertex outside the fitted values, is not identifiable.

Across sizes: h*(x) = coef · x^exponent by least squares in log–log space
(``powerlaw.fit_power_law``) on the identifiable sizes, x = N or C; its
Student-t interval, and a bootstrap one: runs are resampled within each size
and every step refitted (percentile intervals, with the count of resamples
that succeeded). Pure numpy; no training code.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from analysis import bootstrap
from analysis import powerlaw

WINDOW = 2
LEVEL = 0.95
# The rule file a sweep loads (experiments.hparams.FittedRule reads it).
RULE_SCHEMA = "scaling.hparams.rule/1"


def profile(h, loss) -> tuple[np.ndarray, np.ndarray]:
  """(distinct h ascending, the lowest finite loss at each) of one size."""
  h = np.asarray(h, np.float64)
  loss = np.asarray(loss, np.float64)
  ok = np.isfinite(loss) & np.isfinite(h) & (h > 0)
  values = np.unique(h[ok])
  best = np.array([loss[ok][h[ok] == v].min() for v in values])
  return values, best


def fit_optimum(h, loss, grid=None, window: int = WINDOW,
                level: float = LEVEL) -> dict:
  """The best value of one hyperparameter for one size (module docstring).

  Args:
    h: [n] hyperparameter value of each run (> 0; learning rate or batch
      tokens).
    loss: [n] final loss of each run (nats); NaN for a run that diverged or
      failed.
    grid: every value tried, finished or not (default ``h``): its ends are
      the grid's edges.
    window: tried values used either side of the best one.
    level: interval coverage.

  Returns:
    dict ``value`` (h*, or the best tried value when not fitted),
    ``best_tried``, ``edge`` (None, "low" or "high"), ``fitted``,
    ``identifiable``, ``reasons``, ``ci`` ([lo, hi] or None), ``log2_se``,
    ``curvature`` (c2, nats per octave²) and its ``curvature_ci``,
    ``n_points``, ``window`` ([lo, hi] values fitted), ``grid`` ([min, max]).
  """
  values, best = profile(h, loss)
  grid = np.asarray(h if grid is None else grid, np.float64)
  grid = grid[np.isfinite(grid) & (grid > 0)]
  out = dict(value=None, best_tried=None, edge=None, fitted=False,
             identifiable=False, reasons=[], ci=None, log2_se=None,
             curvature=None, curvature_ci=None, n_points=int(values.size),
             window=None, grid=[float(grid.min()), float(grid.max())]
             if grid.size else None)
  if values.size == 0:
    out["reasons"].append("no finished run")
    return out
  j = int(np.argmin(best))
  out["value"] = out["best_tried"] = float(values[j])
  if values[j] <= grid.min():
    out["edge"] = "low"
    out["reasons"].append(f"best value {values[j]:.4g} is the smallest tried: "
                          "the optimum may lie below the grid")
  elif values[j] >= grid.max():
    out["edge"] = "high"
    out["reasons"].append(f"best value {values[j]:.4g} is the largest tried: "
                          "the optimum may lie above the grid")
  elif j == values.size - 1 or j == 0:
    out["edge"] = "high" if j == values.size - 1 else "low"
    out["reasons"].append(
        f"best value {values[j]:.4g} has no finished run "
        f"{'above' if j else 'below'} it (those runs diverged or failed)")
  if out["edge"]:
    return out
  lo, hi = max(0, j - window), min(values.size, j + window + 1)
  u = np.log2(values[lo:hi])
  y = best[lo:hi]
  u0 = float(np.log2(values[j]))
  x = np.stack([np.ones_like(u), u - u0, (u - u0) ** 2], axis=1)
  coef, *_ = np.linalg.lstsq(x, y, rcond=None)
  c1, c2 = float(coef[1]), float(coef[2])
  dof = u.size - 3
  out.update(fitted=True, n_points=int(u.size), curvature=c2,
             window=[float(values[lo]), float(values[hi - 1])])
  if c2 <= 0:
    out["reasons"].append(f"curvature {c2:.3g} is not positive")
    return out
  u_opt = u0 - c1 / (2.0 * c2)
  out["value"] = float(2.0 ** u_opt)
  if not u.min() <= u_opt <= u.max():
    out["reasons"].append("the parabola's vertex lies outside the fitted "
                          "values")
    return out
  if dof > 0:
    resid = y - x @ coef
    s2 = float(resid @ resid) / dof
    cov = s2 * np.linalg.inv(x.T @ x)
    t = float(stats.t.ppf(0.5 + level / 2, dof))
    grad = np.array([-1.0 / (2 * c2), c1 / (2 * c2 * c2)])
    se = float(np.sqrt(max(grad @ cov[1:, 1:] @ grad, 0.0)))
    se_c2 = float(np.sqrt(max(cov[2, 2], 0.0)))
    out.update(log2_se=se, ci=[float(2.0 ** (u_opt - t * se)),
                               float(2.0 ** (u_opt + t * se))],
               curvature_ci=[c2 - t * se_c2, c2 + t * se_c2])
    if c2 - t * se_c2 <= 0:
      out["reasons"].append("curvature not clearly positive (its interval "
                            "reaches 0)")
      return out
  else:
    out["reasons"].append("3 points: no degrees of freedom left for an "
                          "interval (the bootstrap gives one)")
  out["identifiable"] = True
  return out


def fit_law(x, h_opt, level: float = LEVEL) -> dict | None:
  """h*(x) = coef · x^exponent on the identifiable sizes (None if < 2).

  Returns:
    dict coef, exponent, exponent_se, exponent_ci_t (Student-t, None with
    2 sizes), r2, n_sizes.
  """
  x = np.asarray(x, np.float64)
  h_opt = np.asarray(h_opt, np.float64)
  if np.unique(x).size < 2:
    return None
  fit = powerlaw.fit_power_law(x, h_opt)
  lo, hi = fit.exponent_ci(level)
  return dict(coef=fit.law.coef, exponent=fit.law.exponent,
              exponent_se=fit.exponent_se if np.isfinite(fit.exponent_se)
              else None,
              exponent_ci_t=[lo, hi] if np.isfinite(lo) else None,
              r2=fit.r2 if np.isfinite(fit.r2) else None,
              n_sizes=int(x.size))


def fit_hparam(size, x, h, loss, run, grid_by_size: dict | None = None, *,
               n_resamples: int = 200, seed: int = 0, window: int = WINDOW,
               level: float = LEVEL) -> dict:
  """Per-size optima and the power law across sizes, with a bootstrap.

  Args:
    size: [n] size key of each run (e.g. its N).
    x: [n] the law's variable of each run (N or C; one value per size, the
      geometric mean is used).
    h: [n] hyperparameter value.
    loss: [n] final loss (NaN for diverged or failed runs).
    run: [n] run ids (the bootstrap's unit, resampled within each size).
    grid_by_size: size → every value tried (default: the values of ``h``).
    n_resamples: bootstrap resamples (0 = none).
    seed: resampling seed.
    window, level: as :func:`fit_optimum`.

  Returns:
    dict ``sizes`` (one :func:`fit_optimum` dict per size, with ``size``,
    ``x`` and the bootstrap ``ci_bootstrap`` of h*), ``law`` (:func:`fit_law`
    plus ``coef_ci`` and ``exponent_ci``, bootstrap percentile intervals, and
    ``n_ok``; None with fewer than 2 identifiable sizes), ``excluded`` (sizes
    left out and why), ``identifiable``, ``reasons``.
  """
  size = np.asarray(size)
  x = np.asarray(x, np.float64)
  h = np.asarray(h, np.float64)
  loss = np.asarray(loss, np.float64)
  run = np.asarray(run).astype(str)
  keys = sorted(np.unique(size).tolist())
  grid_by_size = grid_by_size or {}
  sizes, law_x, law_h, excluded = [], [], [], []
  for key in keys:
    rows = size == key
    res = fit_optimum(h[rows], loss[rows], grid_by_size.get(key, h[rows]),
                      window, level)
    res.update(size=float(key) if np.isscalar(key) else key,
               x=float(np.exp(np.mean(np.log(x[rows])))))
    sizes.append(res)
    if res["identifiable"]:
      law_x.append(res["x"])
      law_h.append(res["value"])
    else:
      excluded.append(dict(size=res["size"], reasons=list(res["reasons"]),
                           edge=res["edge"]))
  law = fit_law(law_x, law_h, level) if len(law_x) >= 2 else None
  reasons = []
  if law is None:
    reasons.append(f"{len(law_x)} sizes with an identifiable optimum; a power "
                   "law needs at least 2")
  elif law["n_sizes"] < 3:
    reasons.append("2 sizes: the law passes through both, no interval from "
                   "the fit")
  if n_resamples and law is not None:
    _bootstrap(sizes, size, x, h, loss, run, grid_by_size, law, n_resamples,
               seed, window, level)
  return dict(sizes=sizes, law=law, excluded=excluded,
              identifiable=law is not None and law["n_sizes"] >= 3,
              reasons=reasons)


def _bootstrap(sizes, size, x, h, loss, run, grid_by_size, law, k, seed,
               window, level):
  """Resamples runs within each size; percentile intervals of the law and of
  each used size's optimum (in place)."""
  rng = np.random.default_rng(seed)
  used = [s for s in sizes if s["identifiable"]]
  opt = np.full((k, len(used)), np.nan)
  for j, s in enumerate(used):
    rows = np.flatnonzero(size == s["size"])
    counts = bootstrap.resample_counts(run[rows], k, int(rng.integers(2**31)))
    for i in range(k):
      pick = np.repeat(rows, counts[i].astype(int))
      res = fit_optimum(h[pick], loss[pick],
                        grid_by_size.get(s["size"], h[rows]), window, level)
      if (res["fitted"] and res["curvature"] > 0
          and res["window"][0] <= res["value"] <= res["window"][1]):
        opt[i, j] = res["value"]
  xs = np.array([s["x"] for s in used])
  coefs, exps = np.full(k, np.nan), np.full(k, np.nan)
  for i in range(k):
    ok = np.isfinite(opt[i])
    if np.unique(xs[ok]).size >= 2:
      fit = powerlaw.fit_power_law(xs[ok], opt[i, ok])
      coefs[i], exps[i] = fit.law.coef, fit.law.exponent
  for j, s in enumerate(used):
    lo, hi, n = bootstrap.interval(opt[:, j], level)
    s["ci_bootstrap"] = [lo, hi] if n >= 2 else None
  for name, samples in (("coef", coefs), ("exponent", exps)):
    lo, hi, n = bootstrap.interval(samples, level)
    law[f"{name}_ci"] = [lo, hi] if n >= 2 else None
  law["n_ok"] = int(np.isfinite(exps).sum())
  law["n_resamples"] = int(k)
