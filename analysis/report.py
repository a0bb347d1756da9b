"""``analyze``: every fit on one table → fit.json, plots and report.md.

Runs, in order: loading (``load``), the FLOP model (``allocation``), Approach 3
(``chinchilla``), the likelihood fit (``mle``), the allocation, Approach 2
(``isoflop``), Approach 1 and the frontier (``envelope``, ``powerlaw``), the
data-constrained fit when unique-token counts exist (``data_constrained``),
the bootstrap (``bootstrap``), the flags (``identify``), the sensitivity
refits (``sensitivity``), the headline (``headline``) and the figures
(``plots``). Every coefficient in ``fit.json`` is ``{"value", "ci": [lo, hi],
"n_ok", "flag"}`` (percentile bootstrap interval over ``n_ok`` successful
resamples; ``flag`` says why the estimate is not informative, and a
zero-width interval is replaced by ``"ci": null, "ci_zero_width": true``).
Every fit carries ``identifiable``, ``unreliable``, ``reasons``, ``caveats``
and ``bootstrap`` (requested, succeeded, success_rate), see ``identify``.
With ``group_by`` the table is analysed per group instead (``groups``).
With ``task_metric`` the two-step downstream law of each metric
(``downstream``) goes into ``fit.json["downstream"]`` (metric column →
``downstream.analyze_table``'s dict), per group too with ``group_by``.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pandas as pd

from analysis import (allocation, bootstrap, chinchilla, data_constrained,
                      downstream, envelope, groups, headline, identify,
                      isoflop, load, markdown, mle, plots, plots_downstream,
                      powerlaw, replicates, sensitivity)

SCHEMA = "scaling.analysis.fit/2"
DEFAULTS = dict(n_col=None, d_col=None, c_col=None, loss_col=None,
                run_col=None, step_col=None, budget_col=None, unique_col=None,
                epochs_col=None, drop_highest_loss=0, n_definition=None,
                bootstrap=100, seed=0, level=0.95, curve_points="auto",
                grid_decades=0.1, reference_flops=None, budgets=None,
                delta=chinchilla.HUBER_DELTA, dc_base="fit", plots=True,
                sensitivity=True, group_by=None, resample_by=None,
                task_metric=None, task_loss=None, task_chance=None,
                task_range=None, task_holdout="largest")
LOAD_KEYS = ("n_col", "d_col", "c_col", "loss_col", "run_col", "step_col",
             "budget_col", "unique_col", "epochs_col", "drop_highest_loss",
             "n_definition", "resample_by")


def clean_json(obj):
  """JSON-safe copy: numpy → Python, NaN/inf → None, drops '_' keys."""
  if isinstance(obj, dict):
    return {str(k): clean_json(v) for k, v in obj.items()
            if not str(k).startswith("_")}
  if isinstance(obj, (list, tuple)):
    return [clean_json(v) for v in obj]
  if isinstance(obj, np.ndarray):
    return [clean_json(v) for v in obj.tolist()]
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
    entry.update(ci=[lo, hi] if n_ok >= 2 else None, n_ok=n_ok)
  else:
    entry.update(ci=None, n_ok=0)
  if not identifiable:
    entry["identifiable"] = False
  return entry


def _flags(entry: dict, coefs: tuple, samples: dict, fit: str, **kw) -> dict:
  """Adds ``identify.assess`` flags (and bootstrap counts) to a fit entry."""
  k = samples.get("_requested", 0)
  n_ok = samples.get("_n_ok", {}).get(fit)
  flags = identify.assess({c: entry[c] for c in coefs if entry.get(c)},
                          n_ok=n_ok, n_requested=k if n_ok is not None else 0,
                          **kw)
  if fit in samples.get("_moved", {}):
    flags["bootstrap"]["left_full_data_optimum"] = samples["_moved"][fit]
  entry.update(flags)
  return entry


def analyze(path: str, out_dir: str, **opts) -> dict:
  """Fits and plots the scaling laws of a sweep directory or a CSV.

  Args:
    path: sweep directory (results.csv [+ curves.csv]) or any CSV.
    out_dir: where fit.json, report.md and the plots go (created).
    **opts: see ``DEFAULTS``: column names and ``n_definition``
      (``load.load_table``), drop_highest_loss, bootstrap (resamples, 0 =
      none), seed, level, curve_points ("auto" | "final" | "all"),
      grid_decades (isoFLOP grouping without a budget column), budgets
      (nominal isoFLOP budgets to group around, ``isoflop.group_budgets``),
      reference_flops (for the allocation table; default max C × 1, 10,
      100), delta (Huber δ), dc_base ("fit" or "published": base law of the
      data-constrained fit), plots (bool), sensitivity (bool: the refits of
      ``analysis.sensitivity``), group_by (a column: per-group frontiers
      only, ``groups.analyze``), resample_by (a column grouping runs into
      one bootstrap unit; default ``branch_of`` when present, the stable
      run of WSD decay branches), task_metric (a metric column or a list of
      them: the two-step downstream law, ``downstream.analyze_table``),
      task_loss (their task-loss columns, same order; missing ones are
      derived from the metric's name), task_chance (fixed sigmoid floor),
      task_range ((lo, hi) of the metrics, default (0, 1)), task_holdout
      ("largest", "largest-budget", "none" or a run id).

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
  if o["group_by"]:
    return analyze_groups(
        path, out_dir, o["group_by"], bootstrap_n=int(o["bootstrap"]),
        seed=int(o["seed"]), level=float(o["level"]),
        grid_decades=o["grid_decades"], budgets=o["budgets"],
        draw=o["plots"], task=_task_options(o),
        task_opts={k: o[k] for k in ("task_chance", "task_range",
                                     "task_holdout", "delta")},
        **{k: o[k] for k in LOAD_KEYS})
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
  flops_range = (float(c.min()), float(c.max()))
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
  alloc = (allocation.allocate(fit3.params, flops, refs, flops_range)
           if alloc_ok else None)
  if not alloc_ok:
    warnings.append("allocation not computed: A, B, alpha and beta must all "
                    "be identifiable")

  budget = runs["budget"].to_numpy() if "budget" in runs else None
  labels, label_flops, _ = isoflop.group_budgets(c, budget, o["grid_decades"],
                                                 o["budgets"])
  a2 = isoflop.fit_approach2(n, d, c, loss, budget, o["grid_decades"],
                             nominal=o["budgets"])
  a2["grid_decades"], a2["nominal"] = o["grid_decades"], o["budgets"]
  warnings += [f"Approach 2: {w}" for w in a2["warnings"]]
  points, points_note = envelope.valid_points(runs, table.curves,
                                              o["curve_points"])
  run_label = dict(zip(runs["run"].astype(str), labels))
  point_groups = points["run"].astype(str).map(run_label).fillna(-1).to_numpy(
      np.int64)
  a1 = envelope.fit_approach1(points, groups=point_groups)
  a1["points"] = points_note
  warnings += [f"Approach 1: {w}" for w in a1["warnings"]]

  front = a1["_front"]
  frontier, frontier_rms = None, None
  if identify.count_distinct(front["C"]) >= 4:
    frontier, frontier_rms = powerlaw.fit_saturating(front["C"], front["loss"])
  else:
    k_c = identify.count_distinct(front["C"])
    warnings.append(f"frontier not fitted: {k_c} distinct compute values on "
                    "the envelope, need >= 4")

  dc, dc_ctx = None, None
  if "unique_tokens" in runs:
    dc, dc_ctx = _data_constrained(runs, o, delta, warnings)

  samples: dict = {"_lines": {}}
  t0 = time.perf_counter()
  if int(o["bootstrap"]) > 0:
    ctx = dict(runs=runs, points=points, point_groups=point_groups,
               theta3=fit3.theta, phi_mle=np.asarray(ml["phi"]),
               flops_model=flops, reference_flops=refs,
               grid_decades=o["grid_decades"], budgets=o["budgets"],
               frontier=frontier, delta=delta, c_grid=c_grid,
               dc_base=dc_ctx["base"] if dc else None,
               dc_start=dc_ctx["start"] if dc else None)
    samples = bootstrap.run_bootstrap(ctx, int(o["bootstrap"]), int(o["seed"]),
                                      level)
  boot_s = time.perf_counter() - t0

  result = dict(schema=SCHEMA, **table.to_json(),
                flops_model=flops.to_json(),
                settings=dict(huber_delta=delta, bootstrap=int(o["bootstrap"]),
                              seed=int(o["seed"]), level=level,
                              curve_points=o["curve_points"],
                              grid_decades=o["grid_decades"],
                              budgets=o["budgets"], reference_flops=refs,
                              flops_range=list(flops_range)),
                warnings=warnings, bootstrap_seconds=boot_s)
  loss_min = float(loss.min())
  result["approach3"] = _approach3_json(fit3, fit3_s, samples, level, delta,
                                        n, d, loss, loss_min)
  result["mle"] = _mle_json(ml, samples, level, ok3, n, d, loss, loss_min)
  result["allocation"] = _allocation_json(alloc, samples, level,
                                          result["approach3"])
  result["approach2"] = _approach2_json(a2, samples, level)
  result["approach1"] = _approach1_json(a1, samples, level)
  result["frontier"] = _frontier_json(frontier, frontier_rms, front, samples,
                                      level)
  if dc is not None:
    for k in ("R_N_star", "R_D_star"):
      dc[k] = _coef(dc[k], samples, f"data_constrained.{k}", level)
    _flags(dc, ("R_N_star", "R_D_star"), samples, "data_constrained",
           caveats=list(dc["warnings"]))
  result["data_constrained"] = dc

  result["sensitivity"] = None
  if o["sensitivity"]:
    t0 = time.perf_counter()
    result["sensitivity"] = sensitivity.run(
        runs, table.alternatives, n_definition=table.n_definition,
        delta=delta, labels=(labels, label_flops),
        default_params3=fit3.params,
        default_ok=dict(approach3=result["allocation"]["identifiable"],
                        approach2=result["approach2"]["identifiable"]),
        default_ci=dict(approach3=(result["allocation"].get("a") or {}).get(
            "ci"), approach2=(result["approach2"].get("a") or {}).get("ci")))
    result["sensitivity"]["seconds"] = time.perf_counter() - t0
  result["replicates"] = replicates.noise_floor(n, d, loss, level)
  result["repetition"] = replicates.repetition(
      d, runs["unique_tokens"] if "unique_tokens" in runs else None)
  result["summary"] = headline.summarize(result)
  task = _task_options(o)
  result["downstream"] = _downstream(path, task, o, None) if task else None

  files = []
  if o["plots"]:
    files = _plots(out_dir, runs, table.curves, a1, a2, fit3, flops, frontier,
                   samples["_lines"], c_grid, alloc_ok,
                   result["frontier"], result["approach3"])
    files += _downstream_plots(out_dir, result["downstream"])
  result["plots"] = files
  result["seconds"] = time.perf_counter() - t_start
  result = clean_json(result)
  os.makedirs(out_dir, exist_ok=True)
  tmp = os.path.join(out_dir, "fit.json.tmp")
  with open(tmp, "w") as f:
    json.dump(result, f, indent=1)
  os.replace(tmp, os.path.join(out_dir, "fit.json"))
  with open(os.path.join(out_dir, "report.md"), "w") as f:
    f.write(markdown.render(result))
  return result


def _task_options(o: dict) -> list[tuple[str, str | None]] | None:
  """[(metric, task-loss column or None)] from the task options, or None.

  Raises:
    ValueError: more --task-loss than --task-metric flags.
  """
  metrics = o.get("task_metric")
  if not metrics:
    return None
  metrics = [metrics] if isinstance(metrics, str) else list(metrics)
  losses = o.get("task_loss") or []
  losses = [losses] if isinstance(losses, str) else list(losses)
  if len(losses) > len(metrics):
    raise ValueError(f"{len(losses)} --task-loss for {len(metrics)} "
                     "--task-metric: give one --task-loss per metric, in "
                     "the same order (or none to derive them)")
  return [(m, losses[i] if i < len(losses) else None)
          for i, m in enumerate(metrics)]


def _downstream(path: str, task, o: dict, group_by: str | None) -> dict:
  """metric → ``downstream.analyze_table`` for each (metric, loss)."""
  rng = o.get("task_range") or (0.0, 1.0)
  return {metric: downstream.analyze_table(
      path, metric, loss, load_opts={k: o.get(k) for k in LOAD_KEYS},
      group_by=group_by, holdout=o.get("task_holdout") or "largest",
      floor=o.get("task_chance"), metric_range=tuple(rng),
      n_resamples=int(o["bootstrap"]), seed=int(o["seed"]),
      level=float(o["level"]), delta=float(o.get("delta",
                                                 chinchilla.HUBER_DELTA)))
          for metric, loss in task}


def _downstream_plots(out_dir: str, entries: dict | None) -> list[str]:
  """One figure per metric (``plots_downstream.plot_downstream``)."""
  files = []
  for metric, entry in (entries or {}).items():
    panels = ({g["group"]: g for g in entry["groups"]} if "groups" in entry
              else {metric: entry})
    files += plots_downstream.plot_downstream(
        out_dir, panels, downstream.figure_stem(metric), metric_label=metric,
        loss_label=f"task loss {entry['loss']} (bits per byte)")
  return files


def _log_rms(params, n, d, loss) -> float:
  """Root mean square of ln L − ln L̂ (≈ relative error) over the runs."""
  r = np.log(loss) - np.log(chinchilla.predict_loss(params, n, d))
  return float(np.sqrt(np.mean(r * r)))


def _approach3_json(fit3, seconds, samples, level, delta, n, d, loss,
                    loss_min):
  ok3 = fit3.identifiable
  p3 = fit3.params
  out = dict(
      **{k: _coef(p3[k], samples, f"approach3.{k}", level, ok3[k])
         for k in ("A", "B", "E", "alpha", "beta")},
      objective=fit3.objective, n_points=fit3.n_points,
      n_starts=fit3.n_starts, n_evals=fit3.n_evals, seconds=seconds,
      huber_delta=delta, reduction="sum", warnings=fit3.warnings,
      rms_log_residual=_log_rms(p3, n, d, loss))
  degenerate = [w for w in fit3.warnings if "not identifiable" in w]
  edge = [w for w in fit3.warnings if "edge of the start grid" in w]
  return _flags(out, ("A", "B", "E", "alpha", "beta"), samples, "approach3",
                spread=identify.spread_reasons("approach3", n=n, d=d),
                extra=degenerate, caveats=edge, loss_min=loss_min)


def _mle_json(ml, samples, level, ok3, n, d, loss, loss_min):
  p = ml["params"]
  out = dict(
      **{k: _coef(p[k], samples, f"mle.{k}", level, ok3.get(k, True))
         for k in ("A", "B", "E", "alpha", "beta")},
      huber_scale=_coef(p["sigma"], samples, "mle.huber_scale", level),
      rms_log_residual=_log_rms(p, n, d, loss),
      nll=ml["nll"], converged=ml["converged"], start=ml["start"],
      message=ml["message"],
      note=("huber_scale is σ of the Huber density of the log-loss "
            "residuals (Besiroglu et al. 2024 §3), not a residual size: with "
            "δ = 1e-3 nearly every |r|/σ exceeds δ and σ ≈ δ·mean|r|; "
            "rms_log_residual is the residuals' size"))
  return _flags(out, ("A", "B", "E", "alpha", "beta"), samples, "mle",
                spread=identify.spread_reasons("mle", n=n, d=d),
                loss_min=loss_min)


def _data_constrained(runs, o, delta, warnings):
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


def _allocation_json(alloc, samples, level, a3):
  """Allocation with flags; inherits Approach 3's."""
  inherited = ([] if a3["identifiable"] else
               ["Approach 3 is not identifiable (see the Approach 3 section)"])
  if alloc is None:
    return dict(identifiable=False, unreliable=a3["unreliable"], method=None,
                table=[], reasons=inherited or ["A, B, alpha or beta is not "
                                                "identifiable"], caveats=[],
                bootstrap=a3["bootstrap"])
  out = dict(method=alloc["method"], flops_model=alloc["flops_model"])
  names = [k for k in ("a", "b", "G") if k in alloc]
  for k in names:
    out[k] = _coef(alloc[k], samples, f"allocation.{k}", level)
  rows = []
  for row in alloc["table"]:
    key = f"{row['flops']:.3g}"
    entry = dict(flops=row["flops"], loss=row["loss"],
                 extrapolation=row["extrapolation"],
                 **{k: _coef(row[k], samples, f"allocation.{k}@{key}", level)
                    for k in ("N_opt", "D_opt", "tokens_per_param")})
    identify.assess({k: entry[k] for k in ("N_opt", "D_opt",
                                           "tokens_per_param")})
    rows.append(entry)
  out["table"] = rows
  n_ok = samples.get("_n_ok", {}).get("approach3")
  flags = identify.assess({k: out[k] for k in names}, headline=("a", "b"),
                          n_ok=n_ok, n_requested=samples.get("_requested", 0)
                          if n_ok is not None else 0, extra=inherited)
  out.update(flags)
  return out


def _approach2_json(res, samples, level):
  out = _approach2_like(res, samples, "approach2", level)
  inc = [b for b in res["budgets"] if b["included"]]
  down = [b for b in inc if b.get("best_run_weight", 1.0) < 0.999]
  caveats = [f"robust parabolas (Huber k = {isoflop.HUBER_K}, scale 1.4826·"
             "MAD): runs far from a budget's parabola are down-weighted"]
  caveats += [f"budget C = {b['flops']:.3g}: its best run has robust weight "
              f"{b['best_run_weight']:.2f}" for b in down]
  extra = [w for w in res["warnings"] if w.startswith("not identifiable")]
  return _flags(out, ("a", "b"), samples, "approach2",
                spread=identify.spread_reasons("approach2",
                                               n_budgets=len(inc)),
                extra=extra if not out["fitted"] else [], caveats=caveats)


def _approach1_json(res, samples, level):
  out = _approach2_like(res, samples, "approach1", level)
  rp = res.get("_run_points")
  spread = (identify.spread_reasons("approach1", n=rp["N"], c=rp["C"])
            if rp is not None else [])
  extra = [w for w in res["warnings"] if w.startswith("not identifiable")]
  return _flags(out, ("a", "b"), samples, "approach1", spread=spread,
                extra=extra, caveats=list(res.get("caveats", [])))


def _approach2_like(res, samples, name, level):
  out = {k: v for k, v in res.items() if k not in ("a", "b", "identifiable")}
  out["fitted"] = res["identifiable"]
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


def _frontier_json(frontier, rms, front, samples, level):
  fc = front["C"].to_numpy()
  spread = identify.spread_reasons("frontier", c=fc)
  if frontier is None:
    return dict(fitted=False, identifiable=False, unreliable=False,
                reasons=spread or ["not fitted"], caveats=[],
                fitted_on=f"{len(front)} envelope points",
                bootstrap=dict(requested=samples.get("_requested", 0),
                               succeeded=None, success_rate=None))
  out = dict(fitted=True,
             **{k: _coef(getattr(frontier, k), samples, f"frontier.{k}", level)
                for k in ("E", "A", "gamma")},
             fitted_on=f"{len(front)} envelope points (Approach 1 front)",
             rms_log_residual=rms)
  return _flags(out, ("E", "A", "gamma"), samples, "frontier", spread=spread,
                loss_min=float(front["loss"].min()))


def _plots(out_dir, runs, curves, a1, a2, fit3, flops, frontier, lines,
           c_grid, alloc_ok, frontier_json, a3_json):
  files = []
  if a2["budgets"]:
    files += plots.plot_isoflop(out_dir, runs, a2)

  def optimal_nd(cc):
    nd = bootstrap.optimal_lines(fit3.theta[None], flops, cc)[0]
    return nd[0], nd[1]

  files += plots.plot_optimal(
      out_dir, dict(approach1=a1, approach2=a2,
                    approach3_lines=optimal_nd if alloc_ok else None,
                    c_range=(c_grid[0], c_grid[-1]),
                    data_range=(runs["C"].min(), runs["C"].max())), lines)
  files += plots.plot_loss_vs_compute(
      out_dir, runs, curves, a1["_front"], frontier,
      frontier_ok=bool(frontier_json.get("identifiable")))
  files += plots.plot_contours(out_dir, runs, fit3.params,
                               optimal_nd if alloc_ok else None, flops.tokens)
  files += plots.plot_residuals(out_dir, runs, fit3.params)
  return files


def analyze_groups(path: str, out_dir: str, group_by: str, *, bootstrap_n: int =
                   groups.DEFAULT_BOOTSTRAP, seed: int = 0, level: float = 0.95,
            grid_decades: float = 0.1, budgets=None, draw: bool = True,
            task=None, task_opts: dict | None = None, **load_opts) -> dict:
  """``scaling analyze PATH --out DIR --group-by COLUMN``.

  Loads the table (``load.load_table``; rows without a finite loss are kept
  aside so a group whose loss is not applicable says why), fits every
  group's frontier and writes ``fit.json``, ``report.md`` and
  ``frontier_by_group.{png,svg}`` into ``out_dir``.

  Args:
    path: sweep directory or CSV.
    out_dir: output directory (created).
    group_by: group column.
    bootstrap_n, seed, level: bootstrap.
    grid_decades, budgets: isoFLOP grouping without a budget column.
    draw: draw the figure.
    task: [(metric, task-loss column or None)]: the two-step downstream law
      of each metric per group (``downstream.analyze_table``), or None.
    task_opts: task_chance, task_range, task_holdout, delta (as
      ``analyze``).
    **load_opts: column options of ``load.load_table``.

  Returns:
    the content of fit.json.

  Raises:
    FileNotFoundError, ValueError: as ``load.load_table``; an unknown
      group column.
  """
  raw = pd.read_csv(load.results_csv(path))
  if group_by not in raw.columns:
    raise ValueError(f"--group-by: column {group_by!r} not in table; columns "
                     f"are {list(raw.columns)}")
  table = load.load_table(path, keep=(group_by,), **load_opts)
  runs = table.runs.copy()
  loss_src = table.columns["loss"]
  na_col = f"{loss_src}_na" if f"{loss_src}_na" in raw.columns else None
  result = groups.fit_groups(runs, group_by, loss_col="loss", c_col="C", n_col="N",
                      run_col="run", budget_col="budget", grid_decades=
                      grid_decades, nominal=budgets, n_resamples=bootstrap_n,
                      seed=seed, level=level,
                      order=list(pd.unique(raw[group_by].astype(str))))
  for g in result["groups"]:  # rows rejected on loading: say why
    if g.get("applicable") is not None:
      continue
    rows = raw[raw[group_by].astype(str) == g["group"]]
    if na_col and rows[na_col].notna().any():
      g.update(applicable=False, reason=str(rows[na_col].dropna().iloc[0]))
    elif len(rows):
      g["reason"] = ("every row rejected on loading (not finished, NaN or "
                     "non-positive)")
  result.update(schema="scaling.analysis.groups/1", **table.to_json(),
                loss_column=loss_src,
                settings=dict(bootstrap=int(bootstrap_n), seed=int(seed),
                              level=level, grid_decades=grid_decades,
                              budgets=budgets))
  o = dict(task_opts or {}, bootstrap=bootstrap_n, seed=seed, level=level,
           **{k: load_opts.get(k) for k in LOAD_KEYS})
  result["downstream"] = (_downstream(path, task, o, group_by) if task else
                          None)
  files = []
  if draw:
    files = plots.plot_group_frontiers(
        out_dir, {f"{loss_src} by {group_by}": result}, "frontier_by_group",
        c_label=f"training compute C ({table.columns['C']}, FLOPs)",
        loss_label=loss_src)
    files += _downstream_plots(out_dir, result["downstream"])
  result["plots"] = files
  result = clean_json(result)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "fit.json"), "w") as f:
    json.dump(result, f, indent=1)
  with open(os.path.join(out_dir, "report.md"), "w") as f:
    f.write(markdown.render_groups(result))
  return result
