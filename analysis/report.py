"""``analyze``: every fit on one table → fit.json, plots and report.md.

Runs, in order: loading (``load``), the FLOP model (``allocation``), Approach 3
(``chinchilla``), the likelihood fit (``mle``), the allocation, Approach 2
(``isoflop``), Approach 1 and the frontier (``envelope``, ``powerlaw``), the
data-constrained fit when unique-token counts exist (``data_constrained``),
the bootstrap (``bootstrap``) and the figures (``plots``). Every coefficient in
``fit.json`` is ``{"value", "ci": [lo, hi], "n_ok"}`` (percentile bootstrap
interval over ``n_ok`` successful resamples); what the data cannot identify is
marked ``"identifiable": false`` and listed under ``warnings``.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np

from analysis import (allocation, bootstrap, chinchilla, data_constrained,
                      envelope, isoflop, load, mle, plots, powerlaw)

SCHEMA = "scaling.analysis.fit/1"
DEFAULTS = dict(n_col=None, d_col=None, c_col=None, loss_col=None,
                run_col=None, step_col=None, budget_col=None, unique_col=None,
                epochs_col=None, drop_highest_loss=0, bootstrap=100, seed=0,
                level=0.95, curve_points="auto", grid_decades=0.1,
                reference_flops=None, budgets=None,
                delta=chinchilla.HUBER_DELTA,
                dc_base="fit", plots=True)
LOAD_KEYS = ("n_col", "d_col", "c_col", "loss_col", "run_col", "step_col",
             "budget_col", "unique_col", "epochs_col", "drop_highest_loss")


def _clean(obj):
  """JSON-safe copy: numpy → Python, NaN/inf → None, drops '_' keys."""
  if isinstance(obj, dict):
    return {str(k): _clean(v) for k, v in obj.items()
            if not str(k).startswith("_")}
  if isinstance(obj, (list, tuple)):
    return [_clean(v) for v in obj]
  if isinstance(obj, np.ndarray):
    return [_clean(v) for v in obj.tolist()]
  if isinstance(obj, (np.floating, float)):
    v = float(obj)
    return v if math.isfinite(v) else None
  if isinstance(obj, (np.integer,)):
    return int(obj)
  if isinstance(obj, np.bool_):
    return bool(obj)
  return obj


def _coef(value, samples: dict, key: str, level: float, identifiable=True):
  entry = dict(value=value)
  if key in samples:
    lo, hi, n_ok = bootstrap.interval(samples[key], level)
    entry.update(ci=[lo, hi], n_ok=n_ok)
  else:
    entry.update(ci=None, n_ok=0)
  if not identifiable:
    entry["identifiable"] = False
  return entry


def analyze(path: str, out_dir: str, **opts) -> dict:
  """Fits and plots the scaling laws of a sweep directory or a CSV.

  Args:
    path: sweep directory (results.csv [+ curves.csv]) or any CSV.
    out_dir: where fit.json, report.md and the plots go (created).
    **opts: see ``DEFAULTS``: column names (``load.load_table``),
      drop_highest_loss, bootstrap (resamples, 0 = none), seed, level,
      curve_points ("auto" | "final" | "all"), grid_decades (isoFLOP grouping
      without a budget column), budgets (nominal isoFLOP budgets to group
      around, ``isoflop.group_budgets``), reference_flops (for the allocation
      table; default max C × 1, 10, 100), delta (Huber δ), dc_base ("fit" or
      "published": base law of the data-constrained fit), plots (bool).

  Returns:
    the content of fit.json (a dict).

  Raises:
    ValueError: unknown option, unusable table (see ``load.load_table``) or
      fewer than 3 usable runs.
  """
  unknown = set(opts) - set(DEFAULTS)
  if unknown:
    raise ValueError(f"unknown analyze options: {sorted(unknown)}")
  o = {**DEFAULTS, **{k: v for k, v in opts.items() if v is not None}}
  t_start = time.perf_counter()
  table = load.load_table(path, **{k: o[k] for k in LOAD_KEYS})
  runs = table.runs
  if len(runs) < 3:
    raise ValueError(f"only {len(runs)} usable runs after cleaning "
                     f"(rejected: {table.rejected}); need >= 3")
  n, d, c, loss = (runs[k].to_numpy(np.float64)
                   for k in ("N", "D", "C", "loss"))
  level, delta = float(o["level"]), float(o["delta"])
  refs = (list(o["reference_flops"]) if o["reference_flops"] else
          [float(c.max()), float(c.max()) * 10, float(c.max()) * 100])
  c_grid = np.geomspace(c.min(), max(max(refs), c.max()), 60)
  warnings: list[str] = []
  flops = allocation.fit_flops_model(n, d, c)

  t0 = time.perf_counter()
  fit3 = chinchilla.fit_approach3(n, d, loss, delta=delta)
  fit3_s = time.perf_counter() - t0
  warnings += [f"Approach 3: {w}" for w in fit3.warnings]
  ok3 = fit3.identifiable

  ml = mle.fit_mle(n, d, loss, delta)
  ml_alt = mle.fit_mle(n, d, loss, delta, start=fit3.params)
  ml["start"] = "chinchilla"
  if ml_alt["nll"] < ml["nll"] - 1e-9 * abs(ml["nll"]):
    ml, ml["start"] = ml_alt, "approach3 optimum"
    warnings.append("MLE: BFGS from Chinchilla's parameters stopped at a worse "
                    "likelihood than from the Approach 3 optimum; the latter "
                    "is reported")
  if not ml["converged"]:
    warnings.append(f"MLE: BFGS did not converge ({ml['message']})")

  alloc_ok = all(ok3[k] for k in ("A", "B", "alpha", "beta"))
  alloc = allocation.allocate(fit3.params, flops, refs) if alloc_ok else None
  if not alloc_ok:
    warnings.append("allocation not computed: A, B, alpha and beta must all "
                    "be identifiable")

  budget = runs["budget"].to_numpy() if "budget" in runs else None
  a2 = isoflop.fit_approach2(n, d, c, loss, budget, o["grid_decades"],
                             nominal=o["budgets"])
  a2["grid_decades"], a2["nominal"] = o["grid_decades"], o["budgets"]
  warnings += [f"Approach 2: {w}" for w in a2["warnings"]]
  points, points_note = envelope.valid_points(runs, table.curves,
                                              o["curve_points"])
  a1 = envelope.fit_approach1(points)
  a1["points"] = points_note
  warnings += [f"Approach 1: {w}" for w in a1["warnings"]]

  front = a1["_front"]
  frontier, frontier_rms = None, None
  if len(front) >= 4:
    frontier, frontier_rms = powerlaw.fit_saturating(front["C"], front["loss"])
    if frontier.E < 1e-2 * front["loss"].min():
      warnings.append("frontier: fitted E is ~0, no irreducible loss is "
                      "detectable (pure power law)")
  else:
    warnings.append(f"frontier not fitted: {len(front)} envelope points, "
                    "need >= 4")

  dc = None
  if "unique_tokens" in runs:
    dc, dc_ctx = _data_constrained(runs, o, fit3, delta, warnings)

  samples: dict = {"_lines": {}}
  if int(o["bootstrap"]) > 0:
    ctx = dict(runs=runs, points=points, theta3=fit3.theta,
               phi_mle=np.asarray(ml["phi"]), flops_model=flops,
               reference_flops=refs, grid_decades=o["grid_decades"],
               budgets=o["budgets"],
               frontier=frontier, delta=delta, c_grid=c_grid,
               dc_base=dc_ctx["base"] if dc else None,
               dc_start=dc_ctx["start"] if dc else None)
    samples = bootstrap.run_bootstrap(ctx, int(o["bootstrap"]), int(o["seed"]),
                                      level)

  result = dict(schema=SCHEMA, **table.to_json(),
                flops_model=flops.to_json(),
                settings=dict(huber_delta=delta, bootstrap=int(o["bootstrap"]),
                              seed=int(o["seed"]), level=level,
                              curve_points=o["curve_points"],
                              grid_decades=o["grid_decades"],
                              budgets=o["budgets"], reference_flops=refs),
                warnings=warnings)
  p3 = fit3.params
  result["approach3"] = dict(
      **{k: _coef(p3[k], samples, f"approach3.{k}", level, ok3[k])
         for k in ("A", "B", "E", "alpha", "beta")},
      objective=fit3.objective, n_points=fit3.n_points,
      n_starts=fit3.n_starts, n_evals=fit3.n_evals, seconds=fit3_s,
      huber_delta=delta, reduction="sum", warnings=fit3.warnings,
      identifiable=all(ok3.values()))
  result["mle"] = dict(
      **{k: _coef(ml["params"][k], samples, f"mle.{k}", level,
                  ok3.get(k, True))
         for k in ("A", "B", "E", "alpha", "beta", "sigma")},
      nll=ml["nll"], converged=ml["converged"], start=ml["start"],
      message=ml["message"])
  result["allocation"] = _allocation_json(alloc, samples, level, refs)
  result["approach2"] = _approach_json(a2, samples, "approach2", level)
  result["approach1"] = _approach_json(a1, samples, "approach1", level)
  result["frontier"] = None if frontier is None else dict(
      **{k: _coef(getattr(frontier, k), samples, f"frontier.{k}", level)
         for k in ("E", "A", "gamma")},
      fitted_on=f"{len(front)} envelope points (Approach 1 front)",
      rms_log_residual=frontier_rms)
  if dc is not None:
    for k in ("R_N_star", "R_D_star"):
      dc[k] = _coef(dc[k], samples, f"data_constrained.{k}", level)
  result["data_constrained"] = dc

  files = []
  if o["plots"]:
    files = _plots(out_dir, runs, table.curves, a1, a2, fit3, flops, frontier,
                   samples["_lines"], c_grid, alloc_ok)
  result["plots"] = files
  result["seconds"] = time.perf_counter() - t_start
  result = _clean(result)
  os.makedirs(out_dir, exist_ok=True)
  tmp = os.path.join(out_dir, "fit.json.tmp")
  with open(tmp, "w") as f:
    json.dump(result, f, indent=1)
  os.replace(tmp, os.path.join(out_dir, "fit.json"))
  from analysis import markdown
  with open(os.path.join(out_dir, "report.md"), "w") as f:
    f.write(markdown.render(result))
  return result


def _data_constrained(runs, o, fit3, delta, warnings):
  """Muennighoff et al. fit when unique-token counts exist."""
  u = runs["unique_tokens"].to_numpy(np.float64)
  args = [runs[k].to_numpy(np.float64) for k in ("N", "D")] + [u,
          runs["loss"].to_numpy(np.float64)]
  if not np.any(args[1] > 1.0001 * u):
    warnings.append("data-constrained fit not run: no run repeats data "
                    "(every D <= its unique tokens)")
    return None, None
  base = None
  if o["dc_base"] == "published":
    base = data_constrained.PUBLISHED
  try:
    dc = data_constrained.fit_data_constrained(*args, base=base, delta=delta)
  except ValueError as e:
    warnings.append(f"data-constrained fit skipped: {e}")
    return None, None
  warnings += [f"data-constrained: {w}" for w in dc["warnings"]]
  ctx = dict(base=dc["base"]["params"],
             start=(dc["R_N_star"], dc["R_D_star"]))
  return dc, ctx


def _allocation_json(alloc, samples, level, refs):
  if alloc is None:
    return dict(identifiable=False, method=None, table=[])
  out = dict(method=alloc["method"], flops_model=alloc["flops_model"],
             identifiable=True)
  for k in ("G", "a", "b"):
    if k in alloc:
      out[k] = _coef(alloc[k], samples, f"allocation.{k}", level)
  rows = []
  for row in alloc["table"]:
    key = f"{row['flops']:.3g}"
    rows.append(dict(
        flops=row["flops"], loss=row["loss"],
        **{k: _coef(row[k], samples, f"allocation.{k}@{key}", level)
           for k in ("N_opt", "D_opt", "tokens_per_param")}))
  out["table"] = rows
  return out


def _approach_json(res, samples, name, level):
  out = {k: v for k, v in res.items() if k not in ("a", "b")}
  for k in ("a", "b"):
    fit = res.get(k)
    if fit is None:
      out[k] = None
      continue
    entry = _coef(fit["exponent"], samples, f"{name}.{k}", level)
    entry.update(coef=fit["coef"], exponent_se=fit["exponent_se"],
                 n_points=fit["n_points"])
    out[k] = entry
  return out


def _plots(out_dir, runs, curves, a1, a2, fit3, flops, frontier, lines,
           c_grid, alloc_ok):
  files = []
  if a2["budgets"]:
    files += plots.plot_isoflop(out_dir, runs, a2)

  def optimal_nd(cc):
    nd = bootstrap.optimal_lines(fit3.theta[None], flops, cc)[0]
    return nd[0], nd[1]

  files += plots.plot_optimal(
      out_dir, dict(approach1=a1, approach2=a2,
                    approach3_lines=optimal_nd if alloc_ok else None,
                    c_range=(c_grid[0], c_grid[-1])), lines)
  files += plots.plot_loss_vs_compute(out_dir, runs, curves, a1["_front"],
                                      frontier)
  files += plots.plot_contours(out_dir, runs, fit3.params,
                               optimal_nd if alloc_ok else None, flops.tokens)
  files += plots.plot_residuals(out_dir, runs, fit3.params)
  return files
