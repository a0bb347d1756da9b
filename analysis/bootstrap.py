"""Bootstrap confidence intervals by resampling runs with replacement.

Each resample draws as many runs as there are, with replacement (Efron &
Tibshirani 1993, ch. 6; as Besiroglu et al. 2024 do for Chinchilla's fit),
and refits every estimate on it:

* Approach 3 and the likelihood fit: every resample starts from the full-data
  optimum; all resamples advance together in one batched float64 L-BFGS (each
  row of the batch weighs the points by that resample's counts);
* Approaches 1 and 2, the frontier and the data-constrained decay constants:
  refitted per resample (cheap), warm-started where iterative.

Intervals are percentile intervals at ``level``; ``n_ok`` counts the resamples
where the estimate existed (e.g. Approach 2 may lose a budget's minimum).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import (allocation, chinchilla, data_constrained, envelope,
                      isoflop, mle, multistart, powerlaw)


def resample_counts(run_ids, n_resamples: int, seed: int = 0) -> np.ndarray:
  """[K, rows] multiplicity of each row per resample (runs drawn uniformly).

  Rows sharing a run id move together (a run is the resampled unit).

  Args:
    run_ids: [rows] run id of each row.
    n_resamples: K.
    seed: numpy Generator seed.
  """
  runs, inv = np.unique(np.asarray(run_ids).astype(str), return_inverse=True)
  rng = np.random.default_rng(seed)
  draws = rng.integers(0, runs.size, size=(n_resamples, runs.size))
  counts_runs = np.zeros((n_resamples, runs.size))
  np.add.at(counts_runs, (np.arange(n_resamples)[:, None], draws), 1.0)
  return counts_runs[:, inv]


def interval(samples, level: float = 0.95) -> tuple[float, float, int]:
  """Percentile interval of the finite samples: (lo, hi, n_finite)."""
  s = np.asarray(samples, np.float64)
  s = s[np.isfinite(s)]
  if s.size < 2:
    return float("nan"), float("nan"), int(s.size)
  q = 100 * (1 - level) / 2
  lo, hi = np.percentile(s, [q, 100 - q])
  return float(lo), float(hi), int(s.size)


def batched_refit(fun_grad, x_full: np.ndarray, k: int,
                  max_iter: int = 500) -> np.ndarray:
  """Warm-started batched L-BFGS for k weighted objectives; [k, P] optima."""
  st = multistart.init_state(fun_grad, np.tile(x_full, (k, 1)),
                             ids=np.arange(k))
  st = multistart.lbfgs_iterations(fun_grad, st, max_iter, rel_tol=1e-13)
  x = st.x.copy()
  x[~np.isfinite(st.f)] = np.nan
  return x


def run_bootstrap(ctx: dict, n_resamples: int, seed: int = 0,
                  level: float = 0.95) -> dict:
  """Refits every estimate on ``n_resamples`` resamples of the runs.

  Args:
    ctx: what the full-data analysis used and found (built by
      ``report.analyze``): runs (DataFrame run, N, D, C, loss[, budget,
      unique_tokens]), points (Approach 1 points), theta3, phi_mle (or None),
      flops_model, reference_flops, grid_decades, frontier (SaturatingPowerLaw
      or None), dc_base/dc_start (or None), delta, c_grid (FLOPs grid for
      the plotted bands, or None).
    n_resamples: K (small in tests).
    seed: resampling seed.
    level: interval coverage.

  Returns:
    dict quantity → samples [K] (np arrays; NaN where not estimable), and
    ``_lines``: approach → [K, 2, G] N_opt/D_opt on ``ctx["c_grid"]`` (for
    the bands of ``plots.plot_optimal``).
  """
  runs: pd.DataFrame = ctx["runs"]
  k = int(n_resamples)
  counts = resample_counts(runs["run"], k, seed)
  n, d, c, loss = (runs[col].to_numpy(np.float64)
                   for col in ("N", "D", "C", "loss"))
  out: dict = {"_lines": {}}
  delta = ctx.get("delta", chinchilla.HUBER_DELTA)
  c_grid = ctx.get("c_grid")

  if ctx.get("theta3") is not None:
    fg = chinchilla.make_objective(np.log(n), np.log(d), np.log(loss), delta,
                                   weights=counts)
    th = batched_refit(fg, np.asarray(ctx["theta3"]), k)
    for j, name in enumerate(("A", "B", "E")):
      out[f"approach3.{name}"] = np.exp(th[:, j])
    out["approach3.alpha"], out["approach3.beta"] = th[:, 3], th[:, 4]
    _allocation_samples(th, ctx, out)

  if ctx.get("phi_mle") is not None:
    fg = mle.make_nll(n, d, loss, delta, weights=counts)
    ph = batched_refit(fg, np.asarray(ctx["phi_mle"]), k)
    for j, name in enumerate(("A", "B", "E")):
      out[f"mle.{name}"] = np.exp(ph[:, j])
    out["mle.alpha"], out["mle.beta"] = ph[:, 3], ph[:, 4]
    out["mle.sigma"] = np.exp(ph[:, 5])

  budget = runs["budget"].to_numpy() if "budget" in runs else None
  a2, b2 = np.full(k, np.nan), np.full(k, np.nan)
  lines2 = []
  for i in range(k):
    res = isoflop.fit_approach2(n, d, c, loss, budget, ctx["grid_decades"],
                                counts=counts[i], nominal=ctx.get("budgets"))
    if res["identifiable"]:
      a2[i], b2[i] = res["a"]["exponent"], res["b"]["exponent"]
    lines2.append(_power_lines(res, c_grid))
  out["approach2.a"], out["approach2.b"] = a2, b2
  if c_grid is not None:
    out["_lines"]["approach2"] = np.stack(lines2)

  pts: pd.DataFrame = ctx["points"]
  run_index = {r: j for j, r in enumerate(runs["run"].astype(str))}
  pts_rows = pts["run"].astype(str).map(run_index).to_numpy()
  a1, b1 = np.full(k, np.nan), np.full(k, np.nan)
  fr = {name: np.full(k, np.nan) for name in ("E", "A", "gamma")}
  lines1 = []
  for i in range(k):
    cnt = counts[i][pts_rows]
    res = envelope.fit_approach1(pts, cnt)
    if res["identifiable"]:
      a1[i], b1[i] = res["a"]["exponent"], res["b"]["exponent"]
    lines1.append(_power_lines(res, c_grid))
    law0 = ctx.get("frontier")
    front = res["_front"]
    if law0 is not None and len(front) >= 4:
      th0 = (np.log(law0.E), np.log(law0.A), law0.gamma)
      try:
        law, _ = powerlaw.fit_saturating(front["C"], front["loss"], th0)
        fr["E"][i], fr["A"][i], fr["gamma"][i] = law.E, law.A, law.gamma
      except ValueError:
        pass
  out["approach1.a"], out["approach1.b"] = a1, b1
  if c_grid is not None:
    out["_lines"]["approach1"] = np.stack(lines1)
  for name, v in fr.items():
    out[f"frontier.{name}"] = v

  if ctx.get("dc_base") is not None:
    u = runs["unique_tokens"].to_numpy(np.float64)
    rn, rd = np.full(k, np.nan), np.full(k, np.nan)
    for i in range(k):
      res = data_constrained.fit_decay(n, d, u, loss, ctx["dc_base"],
                                       delta=delta, weights=counts[i],
                                       start=ctx["dc_start"])
      rn[i], rd[i] = res["R_N_star"], res["R_D_star"]
    out["data_constrained.R_N_star"] = rn
    out["data_constrained.R_D_star"] = rd
  return out


def _power_lines(res: dict, c_grid) -> np.ndarray | None:
  """[2, G] fitted N_opt, D_opt power laws on the grid (NaN if not fitted)."""
  if c_grid is None:
    return None
  if not res.get("_fits"):
    return np.full((2, len(c_grid)), np.nan)
  fits = res["_fits"]
  return np.stack([fits["a"].law(c_grid), fits["b"].law(c_grid)])


def optimal_lines(theta_kx5: np.ndarray, flops: allocation.FlopsModel,
                  c_grid) -> np.ndarray:
  """[K, 2, G] N_opt and D_opt on ``c_grid`` for each parameter row θ."""
  th = np.asarray(theta_kx5, np.float64)
  p = dict(A=np.exp(th[:, :1]), B=np.exp(th[:, 1:2]), E=np.exp(th[:, 2:3]),
           alpha=th[:, 3:4], beta=th[:, 4:5])
  c = np.asarray(c_grid, np.float64)[None, :]
  if flops.is_6nd:
    al, be = p["alpha"], p["beta"]
    g = (al * p["A"] / (be * p["B"])) ** (1.0 / (al + be))
    n = g * (c / 6.0) ** (be / (al + be))
    d = (c / 6.0) ** (al / (al + be)) / g
  else:
    n, d, _ = allocation.numerical_optimum(p, flops, c)
  return np.stack([n, d], axis=1)


def _allocation_samples(theta_kx5: np.ndarray, ctx: dict, out: dict):
  """Allocation quantities (and frontier lines) for each Approach 3 resample."""
  flops: allocation.FlopsModel = ctx["flops_model"]
  refs = [float(c) for c in ctx["reference_flops"]]
  th = theta_kx5
  if flops.is_6nd:
    al, be = th[:, 3], th[:, 4]
    out["allocation.a"] = be / (al + be)
    out["allocation.b"] = al / (al + be)
    out["allocation.G"] = (al * np.exp(th[:, 0]) / (be * np.exp(th[:, 1]))
                           ) ** (1.0 / (al + be))
  else:  # effective exponents: slopes over the reference range
    grid = np.geomspace(min(refs), max(max(refs), min(refs) * 100), 9)
    lines = optimal_lines(th, flops, grid)
    lc = np.log(grid) - np.log(grid).mean()
    for j, name in enumerate(("a", "b")):
      ly = np.log(lines[:, j, :])
      out[f"allocation.{name}"] = ((ly - ly.mean(axis=1, keepdims=True)) @ lc
                                   / (lc @ lc))
  nd = optimal_lines(th, flops, refs)
  for j, c in enumerate(refs):
    out[f"allocation.N_opt@{c:.3g}"] = nd[:, 0, j]
    out[f"allocation.D_opt@{c:.3g}"] = nd[:, 1, j]
    out[f"allocation.tokens_per_param@{c:.3g}"] = nd[:, 1, j] / nd[:, 0, j]
  if ctx.get("c_grid") is not None:
    out["_lines"]["approach3"] = optimal_lines(th, flops, ctx["c_grid"])
