"""Loss-versus-compute frontier per group of runs (``--group-by COLUMN``).

For each value of a column (an objective, a tokenizer, an architecture) the
frontier L(C) = E + A·C^(−γ) (Hoffmann et al. 2022 Fig. 2 and eq. 2 reduced
to compute; ``powerlaw.fit_saturating``) is fitted on that group's
compute-optimal runs: each isoFLOP budget's lowest-loss run
(``envelope.best_per_group``; budgets from a budget column, nominal budgets
or a log-C grid, ``isoflop.group_budgets``). Runs of one budget differ in C by
a fraction of a step, so a Pareto front over all runs would fit noise within
a budget; every budget's best is kept (none is dropped for being above a
smaller budget's best, which is noise or a failed budget, and is said).

Honesty, as for the whole-table fits (``analysis.identify``):

* 3 parameters need 4 distinct budgets; with 2 or 3 the pure power law
  A·C^(−γ) (E = 0 assumed) is fitted as a description and the group is
  flagged not identifiable; with fewer nothing is fitted;
* intervals from a bootstrap over the group's runs (the unit is the run):
  each resample re-picks every budget's best among the runs drawn and refits
  from the full grid of starts plus the full-data optimum; fewer than 80%
  successful resamples make the group unreliable; E at its bound 0, a
  zero-width interval or a wide one is flagged;
* a budget whose best run is its smallest or largest size is a caveat: that
  budget's optimum may lie outside the sizes run.

``fit_groups`` works on any DataFrame; ``scaling analyze PATH --out DIR
--group-by COLUMN`` is ``analysis.report.analyze_groups``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import bootstrap, envelope, identify, isoflop, powerlaw

DEFAULT_BOOTSTRAP = 200


def _front(c, loss, n, run, labels, mask=None):
  """Each budget's best run among ``mask``: (rows, caveats)."""
  m = np.ones(len(c), bool) if mask is None else mask
  pts = pd.DataFrame(dict(run=run[m], N=n[m], D=np.ones(int(m.sum())),
                          C=c[m], loss=loss[m]))
  return envelope.best_per_group(pts, labels[m])


def fit_frontier(c, loss, n=None, labels=None, run=None, *,
                 n_resamples: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                 level: float = 0.95) -> dict:
  """Frontier of one group on its compute-optimal runs, with intervals.

  Args:
    c: [k] training FLOPs of the group's runs.
    loss: [k] losses (any unit: nats, bits per byte).
    n: [k] parameters (for the edge caveat; optional).
    labels: [k] int isoFLOP budget labels (−1 = none; default: each run its
      own budget, i.e. every run is a frontier candidate).
    run: [k] run ids (the resampling unit; default one per row).
    n_resamples: bootstrap resamples (0 = none).
    seed: resampling seed.
    level: interval coverage.

  Returns:
    dict law ("E + A*C^-gamma", "A*C^-gamma" or None), E, A, gamma
    (``{"value", "ci", "n_ok", "flag"}``), rms_log_residual, front (flops,
    loss, N, run, edge per budget), n_runs, n_budgets, identifiable,
    unreliable, reasons, caveats, bootstrap (requested, succeeded,
    success_rate).

  Raises:
    ValueError: on mismatched lengths or non-positive C or loss.
  """
  c, loss = np.asarray(c, np.float64), np.asarray(loss, np.float64)
  k = c.size
  if loss.shape != c.shape:
    raise ValueError(f"c and loss lengths differ: {c.shape} vs {loss.shape}")
  if not (np.all(c > 0) and np.all(loss > 0)):
    raise ValueError("frontier needs C > 0 and loss > 0 (filter the rows)")
  n = np.ones(k) if n is None else np.asarray(n, np.float64)
  labels = np.arange(k) if labels is None else np.asarray(labels, np.int64)
  run = (np.array([f"row{i}" for i in range(k)]) if run is None else
         np.asarray(run).astype(str))
  front, caveats = _front(c, loss, n, run, labels)
  fc, fl = front["C"].to_numpy(), front["loss"].to_numpy()
  n_distinct = identify.count_distinct(fc)
  out = dict(law=None, n_runs=int(k), n_budgets=int(len(front)),
             front=dict(flops=fc.tolist(), loss=fl.tolist(),
                        N=front["N"].tolist(), run=front["run"].tolist(),
                        edge=front["edge"].astype(bool).tolist()),
             rms_log_residual=None)
  order = np.argsort(fc)
  if np.any(np.diff(fl[order]) > 0):
    caveats.append("the budgets' best losses do not decrease with compute "
                   "everywhere (noise or a failed budget)")
  extra = []
  coefs: dict = {}
  if n_distinct >= 4:
    law, rms = powerlaw.fit_saturating(fc, fl)
    out.update(law="E + A*C^-gamma", rms_log_residual=rms)
    values = dict(E=law.E, A=law.A, gamma=law.gamma)
  elif n_distinct >= 2:
    fit = powerlaw.fit_power_law(fc, fl)
    out["law"] = "A*C^-gamma"
    values = dict(A=fit.law.coef, gamma=-fit.law.exponent)
    extra.append(f"{n_distinct} compute-optimal points for the 3 parameters "
                 "of E + A*C^-gamma (need >= 4): the pure power law "
                 "A*C^-gamma (E = 0 assumed) is shown as a description only")
  else:
    values = {}
    extra.append(f"{n_distinct} compute-optimal point(s): no frontier fitted")
  samples = {name: np.full(n_resamples, np.nan) for name in values}
  if n_resamples and values:
    counts = bootstrap.resample_counts(run, n_resamples, seed)
    fronts = []
    for i in range(n_resamples):
      f, _ = _front(c, loss, n, run, labels, counts[i] > 0)
      fronts.append((f["C"].to_numpy(), f["loss"].to_numpy()))
    if out["law"] == "E + A*C^-gamma":
      th0 = (math.log(values["E"]), math.log(values["A"]), values["gamma"])
      ok = [identify.count_distinct(fc_) >= 4 for fc_, _ in fronts]
      fits = powerlaw.fit_saturating_many(
          [f if o else (np.empty(0), np.empty(0)) for f, o in zip(fronts,
                                                                  ok)], th0)
      for i, (law, _) in enumerate(fits):
        if law is not None:
          for name in values:
            samples[name][i] = getattr(law, name)
    else:
      for i, (fc_, fl_) in enumerate(fronts):
        if identify.count_distinct(fc_) >= 2:
          fit = powerlaw.fit_power_law(fc_, fl_)
          samples["A"][i], samples["gamma"][i] = (fit.law.coef,
                                                  -fit.law.exponent)
  for name, v in values.items():
    lo, hi, n_ok = bootstrap.interval(samples[name], level)
    coefs[name] = dict(value=float(v), ci=None if not n_ok >= 2 else [lo, hi],
                       n_ok=n_ok)
  n_ok_fit = (int(np.isfinite(samples["gamma"]).sum()) if "gamma" in samples
              else 0)
  flags = identify.assess(
      coefs, spread=identify.spread_reasons("frontier", c=fc), n_ok=n_ok_fit,
      n_requested=int(n_resamples) if values else 0,
      loss_min=float(loss.min()), extra=extra, caveats=caveats)
  if not values:
    flags["identifiable"] = False
  out.update(coefs)
  out.update(flags)
  return out


def fit_groups(df: pd.DataFrame, group_col: str, *, loss_col: str = "loss",
               c_col: str = "C", n_col: str | None = "N",
               run_col: str | None = "run", budget_col: str | None = "budget",
               na_col: str | None = None, grid_decades: float = 0.1,
               nominal=None, n_resamples: int = DEFAULT_BOOTSTRAP,
               seed: int = 0, level: float = 0.95, order=None) -> dict:
  """Frontier per value of ``group_col`` (see the module docstring).

  Args:
    df: any table with one row per run (rows that did not finish should be
      removed first, or carry a ``status`` column other than "finished").
    group_col: the column whose values define the groups.
    loss_col: the loss (the view: e.g. ``eval_loss`` in nats, ``eval_bpb``).
    c_col: training FLOPs.
    n_col: parameters (for the edge caveat), or None.
    run_col: run ids (resampling unit), or None (one per row).
    budget_col: isoFLOP budget per run, or None (then ``nominal`` or a
      log-C grid of ``grid_decades``).
    na_col: column giving why ``loss_col`` is not applicable to a row
      (default ``<loss_col>_na`` when present).
    grid_decades, nominal: budget grouping (``isoflop.group_budgets``).
    n_resamples, seed, level: bootstrap.
    order: optional group values in the order wanted (others follow); a
      value without finished rows gets ``applicable`` None, "no finished
      runs".

  Returns:
    dict group_col, loss_col, groups: list of per-group dicts (``group``,
    ``applicable`` True with ``fit_frontier``'s fields, False (the loss is
    not applicable, ``reason`` from ``na_col``) or None (no finished runs)).

  Raises:
    ValueError: a named column is missing.
  """
  for name, col in (("group_col", group_col), ("loss_col", loss_col),
                    ("c_col", c_col)):
    if col not in df.columns:
      raise ValueError(f"{name}: column {col!r} not in table; columns are "
                       f"{list(df.columns)}")
  if na_col is None and f"{loss_col}_na" in df.columns:
    na_col = f"{loss_col}_na"
  if "status" in df.columns:
    df = df[df["status"].astype(str).str.lower().eq("finished")]
  values = list(pd.unique(df[group_col].astype(str)))
  if order is not None:
    order = [str(v) for v in order]
    values = order + [v for v in values if v not in order]
  groups = []
  for value in values:
    rows = df[df[group_col].astype(str) == value]
    if not len(rows):
      groups.append(dict(group=value, applicable=None,
                         reason="no finished runs"))
      continue
    loss = pd.to_numeric(rows[loss_col], errors="coerce").to_numpy(np.float64)
    c = pd.to_numeric(rows[c_col], errors="coerce").to_numpy(np.float64)
    ok = np.isfinite(loss) & (loss > 0) & np.isfinite(c) & (c > 0)
    entry: dict = dict(group=value)
    if not ok.any():
      reason = "no finite positive loss recorded"
      if na_col and na_col in rows and rows[na_col].notna().any():
        reason = str(rows[na_col].dropna().iloc[0])
      entry.update(applicable=False, reason=reason)
      groups.append(entry)
      continue
    r = rows[ok]
    n = (pd.to_numeric(r[n_col], errors="coerce").to_numpy(np.float64)
         if n_col and n_col in r else None)
    budget = (pd.to_numeric(r[budget_col], errors="coerce").to_numpy(
        np.float64) if budget_col and budget_col in r else None)
    labels, _, method = isoflop.group_budgets(c[ok], budget, grid_decades,
                                              nominal)
    run = (r[run_col].astype(str).to_numpy() if run_col and run_col in r
           else None)
    fit = fit_frontier(c[ok], loss[ok], n, labels, run,
                       n_resamples=n_resamples, seed=seed, level=level)
    entry.update(applicable=True, grouping=method,
                 points=dict(flops=c[ok].tolist(), loss=loss[ok].tolist()),
                 rejected=int((~ok).sum()), **fit)
    groups.append(entry)
  return dict(group_col=group_col, loss_col=loss_col, groups=groups)
