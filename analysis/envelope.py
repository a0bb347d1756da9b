"""Chinchilla Approach 1: lower envelope of loss versus FLOPs, then N_opt ∝ C^a.

Hoffmann et al. 2022 §3.1: over all runs' (FLOPs, loss) points take, for each
compute, the lowest loss reached by any run (the envelope); the runs on it give
N_opt(C) and D_opt(C), fitted as power laws. A point is a valid
end-of-training loss only where its schedule allows it: the final point of a
run always is; an intermediate point of a decaying schedule (cosine, linear,
WSD before its decay) is not the loss a run of that length would reach, so by
default only final points (and every point of constant-LR runs) are used;
``curve_points="all"`` uses them all and says so.

The envelope of discrete points is their Pareto front: a point is on it when
its loss is below that of every point with less compute. Each run on the
envelope gives one point to the power-law fits (``run_points``), so a long
curve does not outweigh a single-point run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import powerlaw

CONSTANT_SCHEDULES = ("constant", "const")


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


def fit_approach1(points: pd.DataFrame, counts=None) -> dict:
  """Envelope and power laws N_opt ∝ C^a, D_opt ∝ C^b (Approach 1).

  Args:
    points: columns run, N, D, C, loss (from ``valid_points``).
    counts: optional [n] multiplicities; points with count 0 are absent
      (bootstrap). Duplicates do not move the envelope.

  Returns:
    dict with envelope point indices (``_front``, not JSON), n_front, a, b
    (PowerLawFit json or None), warnings, identifiable.
  """
  pts = points
  if counts is not None:
    pts = points[np.asarray(counts) > 0]
  front = pareto_front(pts["C"].to_numpy(), pts["loss"].to_numpy())
  fp = pts.iloc[front]
  out = dict(n_points=int(len(pts)), n_front=int(len(fp)),
             front_runs=int(fp["run"].nunique()), a=None, b=None, warnings=[],
             identifiable=False, _front=fp)
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
