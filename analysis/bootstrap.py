"""Bootstrap confidence intervals by resampling runs with replacement.

Each resample draws as many runs as there are, with replacement (Efron &
Tibshirani 1993, ch. 6; as Besiroglu et al. 2024 do for Chinchilla's fit),
and refits every estimate on it. The resampling unit is the run (rows of one
run move together), or a group of runs that are not independent: the decay
branches of one warmup-stable-decay run share its whole stable prefix, so
they are drawn together (``ctx["runs"]["unit"]``, the stable run; the
cluster bootstrap of Davison & Hinkley 1997 §3.8).

* Approach 3 and the likelihood fit: every resample is fitted from several
  starts (``resample_starts``): the full-data optimum, a few of Chinchilla's
  grid starts that fit the full data best, and random perturbations of the
  optimum (the likelihood fit: the optimum, that resample's Approach 3
  optimum and one perturbation),
  all advancing together in one batched float64 L-BFGS (each row weighs the
  points by its resample's counts); each resample keeps its best optimum. A
  warm start alone never leaves the full-data optimum when the resample is
  fitted by it exactly (three noise-free runs), and the interval collapses to
  a point;
* Approaches 1 and 2 are refitted per resample (closed-form pieces); the
  frontier from its own grid of starts plus the full-data optimum; the
  data-constrained decay constants from the full-data optimum and two starts
  a decade either side.

A resample *succeeds* when its estimate exists: for Approach 3 and the
likelihood fit it must hold at least as many distinct runs as the law has
parameters (5 or 6; fewer are fitted exactly by a continuum of laws) and
reach a finite optimum, which for Approach 3 must also converge within
``MAX_ITER`` iterations (the likelihood's near-Laplace objective has kinks
where L-BFGS need not stop cleanly, so it is not held to that); for Approaches
1 and 2 and the frontier the fit must be possible on it. ``n_ok`` counts
successes; ``_n_ok`` holds them per fit, ``_moved`` how many resamples' best
optimum came from a start other than the full-data optimum.

Intervals are percentile intervals at ``level``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import (allocation, chinchilla, data_constrained, envelope,
                      identify, isoflop, mle, multistart, powerlaw)

MAX_ITER = 1000
# After these iterations a start whose objective exceeds its resample's best
# by more than PRUNE_MARGIN (relative) stops: it is in a worse basin.
PRUNE_AT = (50, 150)
PRUNE_MARGIN = 0.5
MLE_MAX_ITER = 500
N_GRID_STARTS = 3
N_PERTURBED = 4
# Perturbation scales of (log A, log B, log E, alpha, beta).
PERTURB_SCALE = np.array([1.0, 1.0, 0.3, 0.1, 0.1])


def resample_counts(run_ids, n_resamples: int, seed: int = 0) -> np.ndarray:
  """[K, rows] multiplicity of each row per resample (units drawn uniformly).

  Rows sharing an id move together: with run ids a run is the resampled
  unit; with group ids (a branch's stable run) every row of a group gets
  the same multiplicity in every resample.

  Args:
    run_ids: [rows] resampling unit of each row (run or group id).
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
  """Warm-started batched L-BFGS for k weighted objectives; [k, P] optima.

  The single-start form (kept for comparison and tests); the bootstrap uses
  ``multistart_refit``.
  """
  st = multistart.init_state(fun_grad, np.tile(x_full, (k, 1)),
                             ids=np.arange(k))
  st = multistart.lbfgs_iterations(fun_grad, st, max_iter, rel_tol=1e-13)
  x = st.x.copy()
  x[~np.isfinite(st.f)] = np.nan
  return x


def multistart_refit(fun_grad, starts_KxSxP: np.ndarray,
                     max_iter: int = MAX_ITER) -> dict:
  """Batched L-BFGS from S starts for each of K weighted objectives.

  Args:
    fun_grad: vectorised objective whose row id k selects resample k's
      weights (``chinchilla.make_objective(..., weights=counts)``).
    starts_KxSxP: [K, S, P] starts; start 0 of each resample is taken as
      its warm start (the full-data optimum).
    max_iter: L-BFGS iterations at most. After ``PRUNE_AT`` iterations,
      starts more than ``PRUNE_MARGIN`` above their resample's best stop.

  Returns:
    dict x [K, P] best optimum per resample (NaN where none is finite),
    f [K], converged [K] (the best row stopped on its own, not by
    ``max_iter``), moved [K] (the best optimum is lower than the warm
    start's by more than 1e-9 relative), start [K] (index of the winning
    start).
  """
  starts = np.asarray(starts_KxSxP, np.float64)
  k, s, p = starts.shape
  ids = np.repeat(np.arange(k), s)
  st = multistart.init_state(fun_grad, starts.reshape(k * s, p), ids=ids)
  done_iter = 0
  for stage in PRUNE_AT:  # stop starts far behind their resample's best
    if stage >= max_iter:
      break
    st = multistart.lbfgs_iterations(fun_grad, st, stage - done_iter,
                                     rel_tol=1e-13)
    done_iter = stage
    f = np.where(np.isfinite(st.f), st.f, np.inf).reshape(k, s)
    best = f.min(axis=1, keepdims=True)
    behind = (f > best + PRUNE_MARGIN * np.abs(best) + 1e-300).ravel()
    st.done |= behind
    st.f = np.where(behind, np.inf, st.f)  # never selected
  st = multistart.lbfgs_iterations(fun_grad, st, max_iter - done_iter,
                                   rel_tol=1e-13)
  f = np.where(np.isfinite(st.f), st.f, np.inf).reshape(k, s)
  best = np.argmin(f, axis=1)
  rows = np.arange(k) * s + best
  x = st.x[rows].copy()
  fb = f[np.arange(k), best]
  x[~np.isfinite(fb)] = np.nan
  warm = f[:, 0]
  with np.errstate(invalid="ignore"):
    moved = np.isfinite(fb) & ~(fb >= warm - 1e-9 * np.abs(warm))
  return dict(x=x, f=fb, converged=st.done[rows] & np.isfinite(fb),
              moved=moved, start=best)


def resample_starts(theta_full: np.ndarray, fun_grad_full, k: int,
                    rng: np.random.Generator, grid: np.ndarray | None = None,
                    n_grid: int = N_GRID_STARTS,
                    n_perturbed: int = N_PERTURBED,
                    scale: np.ndarray = PERTURB_SCALE) -> np.ndarray:
  """[K, S, 5] starts per resample: optimum, best grid starts, perturbations.

  Args:
    theta_full: [5] full-data optimum (a, b, e, α, β).
    fun_grad_full: unweighted full-data objective (ranks the grid starts).
    k: resamples.
    rng: numpy Generator (perturbations differ per resample).
    grid: [G, 5] candidate starts (default Chinchilla's grid).
    n_grid: grid starts kept (lowest full-data objective).
    n_perturbed: random perturbations θ + N(0, scale²) per resample.
    scale: [5] perturbation standard deviations.
  """
  theta_full = np.asarray(theta_full, np.float64)
  grid = chinchilla.start_grid() if grid is None else np.asarray(grid)
  parts = [np.broadcast_to(theta_full, (k, 1, theta_full.size))]
  if n_grid:
    fg, _ = fun_grad_full(grid)
    best = grid[np.argsort(np.where(np.isfinite(fg), fg, np.inf),
                           kind="stable")[:n_grid]]
    parts.append(np.broadcast_to(best, (k,) + best.shape))
  if n_perturbed:
    noise = rng.normal(size=(k, n_perturbed, theta_full.size)) * scale
    pert = theta_full + noise
    pert[..., 3:5] = np.abs(pert[..., 3:5])  # exponents stay positive
    parts.append(pert)
  return np.concatenate(parts, axis=1)


def run_bootstrap(ctx: dict, n_resamples: int, seed: int = 0,
                  level: float = 0.95) -> dict:
  """Refits every estimate on ``n_resamples`` resamples of the runs (see
  :func:`_run_bootstrap`). A resample whose fit runs off to an unbounded
  coefficient gives inf or NaN samples, which the intervals and the report's
  identifiability flags state ("interval spans a factor inf"); numpy's
  overflow warnings for them are not printed as well."""
  with np.errstate(over="ignore", invalid="ignore"):
    return _run_bootstrap(ctx, n_resamples, seed, level)


def _run_bootstrap(ctx: dict, n_resamples: int, seed: int = 0,
                   level: float = 0.95) -> dict:
  """Refits every estimate on ``n_resamples`` resamples of the runs.

  Args:
    ctx: what the full-data analysis used and found (built by
      ``report.analyze``): runs (DataFrame run, N, D, C, loss[, budget,
      unique_tokens, unit: the resampling unit, default the run]), points (Approach 1 points; None refits only
      Approach 3 and the likelihood fit), point_groups (their budget
      labels, or None), theta3, phi_mle (or None), flops_model,
      reference_flops, grid_decades, budgets, frontier (SaturatingPowerLaw
      or None), dc_base/dc_start (or None), delta, c_grid (FLOPs grid for the
      plotted bands, or None).
    n_resamples: K (small in tests).
    seed: resampling seed (the perturbed starts use seed + 1).
    level: interval coverage.

  Returns:
    dict quantity → samples [K] (np arrays; NaN where the resample failed),
    ``_n_ok``: fit → resamples that succeeded, ``_moved``: fit → resamples
    whose best optimum left the full-data optimum, ``_requested``: K, and
    ``_lines``: approach → [K, 2, G] N_opt/D_opt on ``ctx["c_grid"]`` (for
    the bands of ``plots.plot_optimal``).
  """
  runs: pd.DataFrame = ctx["runs"]
  k = int(n_resamples)
  units = runs["unit"] if "unit" in runs else runs["run"]
  counts = resample_counts(units, k, seed)
  rng = np.random.default_rng(seed + 1)
  n, d, c, loss = (runs[col].to_numpy(np.float64)
                   for col in ("N", "D", "C", "loss"))
  out: dict = {"_lines": {}, "_n_ok": {}, "_moved": {}, "_requested": k}
  delta = ctx.get("delta", chinchilla.HUBER_DELTA)
  c_grid = ctx.get("c_grid")
  distinct = np.array([np.unique(np.stack([n[w > 0], d[w > 0]]), axis=1
                                 ).shape[1] for w in counts])

  th = None
  if ctx.get("theta3") is not None:
    fg = chinchilla.make_objective(np.log(n), np.log(d), np.log(loss), delta,
                                   weights=counts)
    fg_full = chinchilla.make_objective(np.log(n), np.log(d), np.log(loss),
                                        delta)
    starts = resample_starts(np.asarray(ctx["theta3"]), fg_full, k, rng)
    res = multistart_refit(fg, starts)
    ok = res["converged"] & (distinct >= 5)
    th = np.where(ok[:, None], res["x"], np.nan)
    for j, name in enumerate(("A", "B", "E")):
      out[f"approach3.{name}"] = np.exp(th[:, j])
    out["approach3.alpha"], out["approach3.beta"] = th[:, 3], th[:, 4]
    out["_n_ok"]["approach3"] = int(ok.sum())
    out["_moved"]["approach3"] = int((res["moved"] & ok).sum())
    _allocation_samples(th, ctx, out)

  if ctx.get("phi_mle") is not None:
    phi0 = np.asarray(ctx["phi_mle"], np.float64)
    fg = mle.make_nll(n, d, loss, delta, weights=counts)
    pert = phi0 + np.concatenate([rng.normal(size=(k, 1, 5)) * PERTURB_SCALE,
                                  np.zeros((k, 1, 1))], axis=2)
    pert[..., 3:5] = np.abs(pert[..., 3:5])
    parts = [np.broadcast_to(phi0, (k, 1, 6)), pert]
    if th is not None:  # the resample's own Approach 3 optimum, σ of full
      own = np.concatenate([np.where(np.isfinite(th), th, phi0[:5]),
                            np.full((k, 1), phi0[5])], axis=1)
      parts.insert(1, own[:, None, :])
    res = multistart_refit(fg, np.concatenate(parts, axis=1),
                           max_iter=MLE_MAX_ITER)
    ok = np.isfinite(res["f"]) & (distinct >= 6)
    ph = np.where(ok[:, None], res["x"], np.nan)
    for j, name in enumerate(("A", "B", "E")):
      out[f"mle.{name}"] = np.exp(ph[:, j])
    out["mle.alpha"], out["mle.beta"] = ph[:, 3], ph[:, 4]
    out["mle.huber_scale"] = np.exp(ph[:, 5])
    out["_n_ok"]["mle"] = int(ok.sum())
    out["_moved"]["mle"] = int((res["moved"] & ok).sum())

  if ctx.get("points") is None:  # Approach 3 / likelihood only
    return out
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
  out["_n_ok"]["approach2"] = int(np.isfinite(a2).sum())
  if c_grid is not None:
    out["_lines"]["approach2"] = np.stack(lines2)

  pts: pd.DataFrame = ctx["points"]
  run_index = {r: j for j, r in enumerate(runs["run"].astype(str))}
  pts_rows = pts["run"].astype(str).map(run_index).to_numpy()
  a1, b1 = np.full(k, np.nan), np.full(k, np.nan)
  fr = {name: np.full(k, np.nan) for name in ("E", "A", "gamma")}
  lines1, fronts = [], []
  law0 = ctx.get("frontier")
  for i in range(k):
    cnt = counts[i][pts_rows]
    res = envelope.fit_approach1(pts, cnt, ctx.get("point_groups"))
    if res["identifiable"]:
      a1[i], b1[i] = res["a"]["exponent"], res["b"]["exponent"]
    lines1.append(_power_lines(res, c_grid))
    front = res["_front"]
    if identify.count_distinct(front["C"]) >= 4:
      fronts.append((front["C"].to_numpy(), front["loss"].to_numpy()))
    else:
      fronts.append((np.empty(0), np.empty(0)))
  if law0 is not None:
    th0 = (np.log(law0.E), np.log(law0.A), law0.gamma)
    for i, (law, _) in enumerate(powerlaw.fit_saturating_many(fronts, th0)):
      if law is not None:
        fr["E"][i], fr["A"][i], fr["gamma"][i] = law.E, law.A, law.gamma
    out["_n_ok"]["frontier"] = int(np.isfinite(fr["gamma"]).sum())
  out["approach1.a"], out["approach1.b"] = a1, b1
  out["_n_ok"]["approach1"] = int(np.isfinite(a1).sum())
  if c_grid is not None:
    out["_lines"]["approach1"] = np.stack(lines1)
  for name, v in fr.items():
    out[f"frontier.{name}"] = v

  if ctx.get("dc_base") is not None:
    u = runs["unique_tokens"].to_numpy(np.float64)
    rn, rd = np.full(k, np.nan), np.full(k, np.nan)
    r0 = np.asarray(ctx["dc_start"], np.float64)
    starts = [tuple(r0), tuple(r0 * 10.0), tuple(r0 / 10.0)]
    for i in range(k):
      res = data_constrained.fit_decay(n, d, u, loss, ctx["dc_base"],
                                       delta=delta, weights=counts[i],
                                       start=starts)
      rn[i], rd[i] = res["R_N_star"], res["R_D_star"]
    out["data_constrained.R_N_star"] = rn
    out["data_constrained.R_D_star"] = rd
    out["_n_ok"]["data_constrained"] = int(np.isfinite(rn).sum())
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
