"""Which groups differ: means over seeds, their errors, and pairwise tests.

For a table of replicated measurements (one row per fine-tuning seed of a
group at a compute budget, ``experiments.downstream.collect``):

* :func:`cells`: per (group, budget), the mean over seeds, the sample SD,
  the seed standard error SE_seed = SD/√k (k finished seeds), and when the
  table carries each row's sampling error on its test split (``<metric>_se``:
  √(p(1 − p)/n) for an accuracy on n examples, the per-example standard
  error of a mean bits per byte) its mean s and the total SE = √(SE_seed² +
  s²). The test split is the same for every seed, so its sampling error
  does not shrink with more seeds: s is not divided by √k.
* :func:`pairwise`: per budget, every pair of groups. With sampling errors:
  z = Δ/√(SE_a² + SE_b²) on the total SEs, p = 2(1 − Φ(|z|)); this treats
  the two groups' test errors as independent, although both are scored on
  the same examples (positively correlated errors), so it is conservative:
  a difference it calls distinguishable would hold on another test split of
  the task. Without them: Welch's t-test on the seed values
  (``scipy.stats.ttest_ind(equal_var=False)``), which only says another
  fine-tuning seed would reproduce the difference on this test split. The p
  values are Holm-corrected over the pairs of a budget (Holm 1979: the i-th
  smallest of m gets max over j <= i of min(1, (m − j + 1) p_(j))); a
  difference is *distinguishable* when its corrected p is below ``alpha``.

Measured on the ``objectives`` sweep: five fine-tuning seeds often give the
same test accuracy to the example (SE_seed = 0), while one example of 48 is
0.021; a seed-only test would call differences of less than one example
distinguishable.
"""

from __future__ import annotations

import itertools
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats


def cells(table: pd.DataFrame, metric: str, group_col: str = "group",
          x_col: str = "budget") -> pd.DataFrame:
  """Mean, SD, SE and count of ``metric`` per (group, x) over finished rows.

  Returns:
    Columns group_col, x_col, n, mean, sd, se (NaN sd and se for n = 1),
    and x_mean_flops (the mean ``source_flops`` when present).
  """
  done = table[table["status"].eq("finished") & table[metric].notna()]
  sampling = f"{metric}_se"
  rows = []
  for (group, x), part in done.groupby([group_col, x_col], sort=False):
    v = part[metric].to_numpy(np.float64)
    sd = float(v.std(ddof=1)) if v.size > 1 else math.nan
    se = sd / math.sqrt(v.size) if v.size > 1 else math.nan
    s = (float(part[sampling].mean()) if sampling in part
         and part[sampling].notna().all() else math.nan)
    rows.append({group_col: group, x_col: x, "n": int(v.size),
                 "mean": float(v.mean()), "sd": sd, "se": se,
                 "sampling_se": s,
                 "se_total": math.sqrt((0.0 if math.isnan(se) else se) ** 2
                                       + s ** 2) if np.isfinite(s) else se,
                 "x_mean_flops": float(part["source_flops"].mean())
                 if "source_flops" in part else math.nan})
  return pd.DataFrame(rows)


def holm(p_values) -> np.ndarray:
  """Holm–Bonferroni adjusted p values (same order as given; NaN kept)."""
  p = np.asarray(p_values, np.float64)
  out = np.full(p.shape, np.nan)
  ok = np.flatnonzero(np.isfinite(p))
  m = ok.size
  running = 0.0
  for rank, i in enumerate(ok[np.argsort(p[ok], kind="stable")]):
    running = max(running, min(1.0, (m - rank) * p[i]))
    out[i] = running
  return out


def pairwise(table: pd.DataFrame, metric: str, group_col: str = "group",
             x_col: str = "budget", alpha: float = 0.05,
             higher_is_better: bool = True) -> list[dict]:
  """Every pair of groups at each x: Welch's t-test, Holm-corrected per x.

  Returns:
    One dict per (x, pair): x, better and worse (by mean), diff (better −
    worse, in the direction of ``higher_is_better``, so >= 0), test
    (``z`` with sampling errors, else ``welch``), t (z or Welch's t), dof
    (Welch only), p, p_holm, distinguishable (p_holm < alpha), or
    ``testable: False`` when there is no error to test against (Welch:
    fewer than 2 seeds, or both without spread).
  """
  done = table[table["status"].eq("finished") & table[metric].notna()]
  total = cells(done, metric, group_col, x_col).set_index([group_col, x_col])
  use_z = bool(np.isfinite(total["sampling_se"]).all()) if len(total) else False
  out = []
  for x, part in done.groupby(x_col, sort=True):
    values = {g: p[metric].to_numpy(np.float64)
              for g, p in part.groupby(group_col, sort=False)}
    pairs = []
    for a, b in itertools.combinations(values, 2):
      va, vb = values[a], values[b]
      sign = 1.0 if higher_is_better else -1.0
      if sign * (va.mean() - vb.mean()) < 0:
        a, b, va, vb = b, a, vb, va
      entry = dict(x=float(x), better=a, worse=b,
                   diff=float(abs(va.mean() - vb.mean())),
                   test="z" if use_z else "welch", t=math.nan,
                   dof=math.nan, p=math.nan, testable=False)
      if use_z:
        se = math.hypot(total.loc[(a, x), "se_total"],
                        total.loc[(b, x), "se_total"])
        if se > 0:
          z = entry["diff"] / se
          entry.update(t=float(z), p=float(2 * stats.norm.sf(z)),
                       testable=True)
      elif va.size >= 2 and vb.size >= 2 and (va.std() > 0 or vb.std() > 0):
        with warnings.catch_warnings():  # near-equal seeds: precision note
          warnings.simplefilter("ignore", RuntimeWarning)
          res = stats.ttest_ind(va, vb, equal_var=False)
        sa, sb = va.var(ddof=1) / va.size, vb.var(ddof=1) / vb.size
        dof = (sa + sb) ** 2 / (sa ** 2 / (va.size - 1) + sb ** 2 /
                                (vb.size - 1))
        entry.update(t=float(abs(res.statistic)), dof=float(dof),
                     p=float(res.pvalue), testable=True)
      pairs.append(entry)
    adjusted = holm([e["p"] for e in pairs])
    for entry, p_holm in zip(pairs, adjusted):
      entry["p_holm"] = float(p_holm)
      entry["distinguishable"] = bool(np.isfinite(p_holm) and p_holm < alpha)
      out.append(entry)
  return out


def ranking(cell_table: pd.DataFrame, group_col: str = "group",
            x_col: str = "budget", higher_is_better: bool = True
            ) -> dict[float, list[str]]:
  """Groups ordered best first at each x (by their mean)."""
  out = {}
  for x, part in cell_table.groupby(x_col, sort=True):
    part = part.sort_values("mean", ascending=not higher_is_better)
    out[float(x)] = [str(g) for g in part[group_col]]
  return out


def sentence(pairs: list[dict], label=str) -> str:
  """One line per x: the distinguishable pairs, or that none is."""
  lines = []
  for x in sorted({p["x"] for p in pairs}):
    at = [p for p in pairs if p["x"] == x]
    yes = [p for p in at if p["distinguishable"]]
    untestable = sum(not p["testable"] for p in at)
    extra = f", {untestable} not testable" if untestable else ""
    text = (f"{len(yes)} of {len(at)} pairs distinguishable{extra}: "
            + ", ".join(f"{p['better']} > {p['worse']} (Δ {p['diff']:.3g}, "
                        f"Holm p {p['p_holm']:.2g})" for p in yes)
            if yes else f"no pair of the {len(at)} is distinguishable{extra}")
    lines.append(f"at {label(x)}: {text}")
  return "\n".join(lines)
