"""Chinchilla Approach 1: lower envelope of loss versus FLOPs, then N_opt ∝ C^a.

Hoffmann et al. 2022 §3.1: over all runs' (FLOPs, loss) points take, for each
compute, the lowest loss reached by any run (the envelope); the runs on it give
N_opt(C) and D_opt(C), fitted as power laws. A point is a valid
end-of-training loss only where its schedule allows it: the final point of a
run always is; an intermediate point of a decaying schedule (cosine, linear,
WSD before its decay) is not the loss a run of that length would reach, so by
default only final points (and every point of constant-LR runs) are used;
``curve_points="all"`` uses them all and says so.

Two cases (``fit_approach1``):

* every run has one valid point (its final): the runs of one isoFLOP budget
  differ in FLOPs only by a fraction of a step (~0.1%), so sorting them by
  exact FLOPs orders them by noise, and a running minimum over that order keeps
  whichever run happens to have the fewest FLOPs, often a bad one. Runs are
  therefore first grouped into budgets (the budget column, the nominal
  budgets or a log-C grid, as for Approach 2) and each budget keeps its
  lowest-loss run (``best_per_group``); the budgets' best runs then form a
  Pareto front in compute (a budget whose best is not below every smaller
  budget's best is dropped, and said);
* some runs have curves: the envelope is the minimum over runs of their
  curves, each interpolated linearly in (log C, log loss) on a common grid of
  ``GRID_DECADES`` in log10 C and never extrapolated (``curve_envelope``);
  single-point runs join the grid at their budget's compute.

Each run on the envelope gives one point to the power-law fits
(``run_points``), so a long curve does not outweigh a single-point run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import identify, powerlaw

CONSTANT_SCHEDULES = ("constant", "const")
GRID_DECADES = 0.02


def valid_points(runs: pd.DataFrame, curves: pd.DataFrame | None,
                 curve_points: str = "auto") -> tuple[pd.DataFrame, str]:
  """Points usable as end-of-training losses.

  Args:
    runs: per-run table (run, N, D, C, loss, optional schedule).
    curves: curve points (run, step, N, D, C, loss) or None.
    curve_points: "auto" (finals, plus every point of constant-LR runs when
      ``runs`` has a schedule column), "final", or "all".

  Returns:
    (points with columns run, N, D, C, loss, final; a note for the report).

  Raises:
    ValueError: on an unknown ``curve_points``.
  """
  if curve_points not in ("auto", "final", "all"):
    raise ValueError("curve_points must be auto|final|all, got "
                     f"{curve_points!r}")
  finals = runs[["run", "N", "D", "C", "loss"]].assign(final=True)
  if curves is None or len(curves) == 0:
    return finals, "one end-of-training point per run (no curves)"
  inter = curves[["run", "N", "D", "C", "loss"]].copy()
  # Drop each run's last curve point: the results row is its final loss.
  last_c = runs.set_index("run")["C"]
  inter = inter[inter["C"] < inter["run"].map(last_c) * (1 - 1e-9)]
  inter = inter.assign(final=False)
  if curve_points == "all":
    note = ("all curve points used: intermediate points of a decaying LR "
            "schedule are not end-of-training losses, so the envelope lies "
            "above the true compute-optimal frontier (Hoffmann et al. 2022 "
            "§3.1)")
    return pd.concat([finals, inter], ignore_index=True), note
  if curve_points == "auto" and "schedule" in runs.columns:
    const = runs.loc[runs["schedule"].str.lower().isin(CONSTANT_SCHEDULES),
                     "run"]
    keep = inter[inter["run"].isin(set(const))]
    note = (f"final points, plus {len(keep)} intermediate points of "
            f"{len(const)} constant-LR runs; intermediate points of decaying "
            "schedules are not end-of-training losses and are not used")
    return pd.concat([finals, keep], ignore_index=True), note
  return finals, ("final points only: the LR schedule of the curves is unknown "
                  "or decaying, so intermediate points are not valid "
                  "end-of-training losses (use --curve-points all to include "
                  "them, biased)")


def pareto_front(c, loss) -> np.ndarray:
  """Indices of points whose loss is below every point with less compute.

  Args:
    c: [n] FLOPs; loss: [n] losses.

  Returns:
    int indices sorted by increasing C (ties: lowest loss first).
  """
  c = np.asarray(c, np.float64)
  loss = np.asarray(loss, np.float64)
  order = np.lexsort((loss, c))
  best = np.inf
  keep = []
  for i in order:
    if loss[i] < best:
      keep.append(i)
      best = loss[i]
  return np.asarray(keep, dtype=np.int64)


def best_per_group(points: pd.DataFrame, groups=None
                   ) -> tuple[pd.DataFrame, list[str]]:
  """Each isoFLOP budget's lowest-loss point (finals), other points kept.

  Args:
    points: one row per run (run, N, D, C, loss).
    groups: [n] int budget label per row (−1 = in no budget: kept alone), or
      None (every row alone: the plain Pareto front of the old behaviour).

  Returns:
    (rows kept, sorted by their budget's compute, with columns ``group``,
    ``group_c`` (geometric mean C of the budget), ``group_runs`` and
    ``edge`` (the best run is the budget's smallest or largest N); caveats).
  """
  pts = points.reset_index(drop=True).copy()
  lab = (np.arange(len(pts)) + 10 ** 9 if groups is None else
         np.asarray(groups, np.int64).copy())
  alone = lab < 0
  lab[alone] = np.arange(alone.sum()) + 2 * 10 ** 9  # own group each
  keys, inv = np.unique(lab, return_inverse=True)
  n = pts["N"].to_numpy(np.float64)
  logc = np.log(pts["C"].to_numpy(np.float64))
  size = np.bincount(inv, minlength=keys.size)
  gmean = np.exp(np.bincount(inv, logc, keys.size) / size)
  nmin = np.full(keys.size, np.inf)
  nmax = np.full(keys.size, -np.inf)
  np.minimum.at(nmin, inv, n)
  np.maximum.at(nmax, inv, n)
  runs_per = np.array([np.unique(pts["run"].to_numpy()[inv == g]).size
                       for g in range(keys.size)]) if len(pts) else size
  order = np.lexsort((pts["C"].to_numpy(), pts["loss"].to_numpy(), inv))
  first = order[np.r_[True, inv[order][1:] != inv[order][:-1]]] if len(
      order) else order
  best = pts.iloc[first].copy()
  g = inv[first]
  best["group"] = lab[first]
  best["group_c"] = gmean[g]
  best["group_runs"] = runs_per[g]
  n_b = best["N"].to_numpy()
  best["edge"] = ((runs_per[g] >= 2) & (nmax[g] > nmin[g])
                  & ((n_b <= nmin[g]) | (n_b >= nmax[g])))
  best = best.sort_values(["group_c", "loss"], kind="stable")
  caveats = [f"budget C = {r.group_c:.3g}: its best run (N = {r.N:.3g}) is "
             f"its {'smallest' if r.N <= nmin[gi] else 'largest'} size, "
             "so the budget's optimum may lie outside the sampled sizes"
             for r, gi in zip(best.itertuples(), np.searchsorted(
                 keys, best["group"].to_numpy())) if r.edge]
  return best, caveats


def curve_envelope(points: pd.DataFrame, grid_decades: float = GRID_DECADES
                   ) -> pd.DataFrame:
  """Minimum over runs of their interpolated curves on a log-C grid.

  Args:
    points: rows run, N, D, C, loss; a run with one row is a single point
      (placed at the grid node nearest its C), a run with several rows a
      curve, linear in (log C, log loss) and (log C, log D) between its
      points and absent outside them.
    grid_decades: grid spacing in log10 C.

  Returns:
    envelope nodes sorted by C: run (holding the node), N, D, C, loss.
  """
  lc_all = np.log10(points["C"].to_numpy(np.float64))
  lo, hi = lc_all.min(), lc_all.max()
  k = max(int(np.ceil((hi - lo) / grid_decades)) + 1, 2)
  nodes = np.linspace(lo, hi, k)
  runs = list(points.groupby("run", sort=False))
  loss = np.full((len(runs), k), np.inf)
  logd = np.full((len(runs), k), np.nan)
  n_of = np.empty(len(runs))
  for i, (_, g) in enumerate(runs):
    g = g.sort_values("C", kind="stable")
    lc = np.log10(g["C"].to_numpy(np.float64))
    ll = np.log(g["loss"].to_numpy(np.float64))
    ld = np.log(g["D"].to_numpy(np.float64))
    n_of[i] = g["N"].iloc[0]
    if len(g) == 1:
      j = int(np.argmin(np.abs(nodes - lc[0])))
      loss[i, j], logd[i, j] = ll[0], ld[0]
      continue
    inside = (nodes >= lc[0]) & (nodes <= lc[-1])
    loss[i, inside] = np.interp(nodes[inside], lc, ll)
    logd[i, inside] = np.interp(nodes[inside], lc, ld)
  holder = np.argmin(loss, axis=0)
  best = loss[holder, np.arange(k)]
  ok = np.isfinite(best)
  cols = np.flatnonzero(ok)
  return pd.DataFrame(dict(
      run=[runs[h][0] for h in holder[ok]], N=n_of[holder[ok]],
      D=np.exp(logd[holder[ok], cols]), C=10.0 ** nodes[ok],
      loss=np.exp(best[ok])))


def fit_approach1(points: pd.DataFrame, counts=None, groups=None) -> dict:
  """Envelope and power laws N_opt ∝ C^a, D_opt ∝ C^b (Approach 1).

  Args:
    points: columns run, N, D, C, loss (from ``valid_points``).
    counts: optional [n] multiplicities; points with count 0 are absent
      (bootstrap). Duplicates do not move the envelope.
    groups: optional [n] int isoFLOP budget label per point (−1 = none), as
      ``isoflop.group_budgets`` gives; single-point runs of one budget are
      reduced to the budget's best (see the module docstring). None treats
      every point alone.

  Returns:
    dict with method, envelope points (``_front``, not JSON), n_front,
    front_runs, a, b (PowerLawFit json or None), warnings, caveats,
    dropped (budgets left off the Pareto front), identifiable.
  """
  keep = (np.ones(len(points), bool) if counts is None else
          np.asarray(counts) > 0)
  pts = points[keep].reset_index(drop=True)
  grp = None if groups is None else np.asarray(groups)[keep]
  n_per_run = pts.groupby("run")["C"].transform("size").to_numpy()
  single = n_per_run == 1
  best, caveats = best_per_group(pts[single], None if grp is None else
                                 grp[single])
  dropped = []
  if single.all():
    method = ("best run per isoFLOP budget (final points), then the Pareto "
              "front over budgets")
    front_idx = pareto_front(best["group_c"].to_numpy(),
                             best["loss"].to_numpy())
    on = np.zeros(len(best), bool)
    on[front_idx] = True
    dropped = [f"budget C = {r.group_c:.3g} (best loss {r.loss:.4g} is not "
               "below a smaller budget's best)"
               for r, o in zip(best.itertuples(), on) if not o]
    fp = best.iloc[front_idx][["run", "N", "D", "C", "loss", "group_runs",
                               "edge"]].reset_index(drop=True)
  else:
    method = (f"lower envelope of the runs' curves (grid {GRID_DECADES:g} "
              "decade in C)")
    snapped = best.assign(C=best["group_c"])[["run", "N", "D", "C", "loss"]]
    fp = curve_envelope(pd.concat([pts[~single][["run", "N", "D", "C",
                                                   "loss"]], snapped],
                                  ignore_index=True))
  out = dict(method=method, n_points=int(len(pts)), n_front=int(len(fp)),
             front_runs=int(fp["run"].nunique()), a=None, b=None, warnings=[],
             caveats=caveats + [f"left off the envelope: {d}"
                                for d in dropped],
             dropped=dropped, identifiable=False, _front=fp)
  if fp["N"].nunique() < 3:
    out["warnings"].append("not identifiable: fewer than 3 model sizes on "
                           "the loss-vs-FLOPs envelope")
    return out
  per_run = run_points(fp)
  out["n_fit_points"] = int(len(per_run))
  if per_run["N"].nunique() < 3:
    out["warnings"].append("not identifiable: fewer than 3 model sizes hold "
                           "the envelope inside the data's range")
    return out
  if identify.count_distinct(per_run["C"]) < 2:
    out["warnings"].append("not identifiable: the envelope's runs share one "
                           "compute budget")
    return out
  fa = powerlaw.fit_power_law(per_run["C"], per_run["N"])
  fb = powerlaw.fit_power_law(per_run["C"], per_run["D"])
  out.update(a=fa.to_json(), b=fb.to_json(), identifiable=True,
             _fits=dict(a=fa, b=fb), _run_points=per_run)
  return out


def run_points(front: pd.DataFrame) -> pd.DataFrame:
  """One (C, N, D) per run holding the envelope.

  A run holding the envelope over several points is represented at the
  geometric middle of its compute interval (C and D both geometric means of
  its first and last envelope points). When runs hold intervals (curves), the
  two runs holding the envelope's ends are dropped: their interval is cut by
  the data's range, not by a better run, so their midpoint is biased.

  Args:
    front: envelope points sorted by C (columns run, N, D, C).
  """
  g = front.groupby("run", sort=False)
  pts = pd.DataFrame(dict(
      N=g["N"].first(), C=np.sqrt(g["C"].first() * g["C"].last()),
      D=np.sqrt(g["D"].first() * g["D"].last()), n_front=g.size()))
  if len(pts) >= 5 and pts["n_front"].max() > 1:
    ends = {front["run"].iloc[0], front["run"].iloc[-1]}
    pts = pts[~pts.index.isin(ends)]
  return pts.reset_index()
