"""Sensitivity of the allocation to the analyst's choices (refits of A2, A3).

Li, Kudugunta & Zettlemoyer 2025, "(Mis)Fitting Scaling Laws" (arXiv
2502.18969), show that published allocations move with choices made before
any fit: how N and C are counted, the loss and its Huber δ, which runs are
kept. Each row here changes one choice against the default and refits
Approach 3 (L(N, D), then the allocation) and Approach 2 (isoFLOP minima,
then N_opt ∝ C^a), giving a, b and D_opt/N_opt at the largest budget:

* N: the other parameter count (non-embedding when N is total, and the
  reverse) when the table has it; D and C stay as they are. Kaplan et al.
  2020 count non-embedding parameters, Hoffmann et al. 2022 all of them;
  Pearce & Song 2024 (arXiv 2406.12907) attribute much of the gap between
  their exponents to that choice at small scale, and Porian et al. 2024
  (arXiv 2406.19146) to the output layer's compute among other factors;
* C: 6ND instead of the exact count (or the reverse). The runs stay in the
  sweep's budgets; each budget's compute is read at its isoFLOP minimum
  (``isoflop.fit_approach2(flops_at="vertex")``), since under 6ND the runs
  of one budget no longer share one C;
* Huber δ on log loss: 1e-4, 1e-3, 1e-2 (Approach 3 only);
* plain least-squares isoFLOP parabolas instead of the robust ones
  (Approach 2 only);
* dropping the smallest runs: each budget's smallest N, and separately the
  runs below the 20th percentile of N.

The conclusion *survives* when every row's a lies inside the default's
bootstrap interval, per approach.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import allocation, chinchilla, isoflop

DELTAS = (1e-4, 1e-3, 1e-2)
SMALLEST_QUANTILE = 0.2


def refit(n, d, c, loss, labels, *, delta: float, robust: bool = True,
          flops_at: str = "budget", fit_a3: bool = True, fit_a2: bool = True,
          params3: dict | None = None) -> dict:
  """Approaches 3 and 2 on one choice of inputs: a, b, tokens per parameter.

  Args:
    n, d, c, loss: [k] parameters, tokens, FLOPs and final losses.
    labels: ([k] int budget labels, [G] budget FLOPs) of the runs.
    delta: Huber δ of Approach 3.
    robust: robust (default) or plain isoFLOP parabolas.
    flops_at: "budget" or "vertex" (``isoflop.fit_approach2``).
    fit_a3, fit_a2: which approaches to refit (None in their place if not).
    params3: Approach 3 parameters already fitted on exactly these inputs
      (the default row reuses the main fit), instead of refitting.

  Returns:
    dict c_max (largest C, FLOPs), approach3 (a, b, tokens_per_param at
    c_max, alpha, beta, E, method) and approach2 (a, b, tokens_per_param)
    or None where the fit is not possible.
  """
  n, d, c, loss = (np.asarray(v, np.float64) for v in (n, d, c, loss))
  c_max = float(c.max())
  out = dict(c_max=c_max, n_runs=int(n.size), approach3=None, approach2=None)
  if fit_a3:
    p3 = (params3 if params3 is not None else
          chinchilla.fit_approach3(n, d, loss, delta=delta).params)
    flops = allocation.fit_flops_model(n, d, c)
    al = allocation.allocate(p3, flops, [c_max])
    out["approach3"] = dict(
        a=float(al["a"]), b=float(al["b"]),
        tokens_per_param=float(al["table"][0]["tokens_per_param"]),
        alpha=p3["alpha"], beta=p3["beta"], E=p3["E"], method=al["method"])
  if fit_a2:
    res = isoflop.fit_approach2(n, d, c, loss, labels=labels, robust=robust,
                                flops_at=flops_at)
    if res["identifiable"]:
      fa, fb = res["_fits"]["a"].law, res["_fits"]["b"].law
      out["approach2"] = dict(a=fa.exponent, b=fb.exponent,
                              tokens_per_param=float(fb(c_max) / fa(c_max)),
                              n_budgets=sum(b["included"]
                                            for b in res["budgets"]))
  return out


def _smallest_per_budget(n, labels) -> np.ndarray:
  """[k] bool: the smallest-N run of each budget with >= 2 runs."""
  drop = np.zeros(n.size, bool)
  for g in np.unique(labels[labels >= 0]):
    idx = np.flatnonzero(labels == g)
    if idx.size >= 2:
      drop[idx[np.argmin(n[idx])]] = True
  return drop


def run(runs: pd.DataFrame, alternatives: dict, *, n_definition: str,
        delta: float, labels, default_ci: dict | None = None,
        default_params3: dict | None = None,
        default_ok: dict | None = None) -> dict:
  """The sensitivity table (see the module docstring).

  Args:
    runs: cleaned runs (``load.Table.runs``): N, D, C, loss, and ``N_alt`` /
      ``C_alt`` when ``alternatives`` names them.
    alternatives: ``load.Table.alternatives``.
    n_definition: the default N's definition ("total", "nonembedding" or
      "as given").
    delta: the default Huber δ.
    labels: ([k] int, [G] FLOPs) isoFLOP budgets of the runs (default C).
    default_ci: approach ("approach3", "approach2") → [lo, hi] interval of
      the default a (for the verdict), or None.
    default_params3: the main Approach 3 fit on ``runs`` with ``delta``
      (reused for the default row), or None to refit.
    default_ok: approach → whether the default fit is identifiable (a wide
      interval of a non-identifiable default makes "within" weak evidence,
      and the sentence says so).

  Returns:
    dict rows (choice, what changed, n_runs, approach3, approach2,
    same_as_default), unavailable (choices the table does not allow, with
    why), verdict (approach → True/False/None), sentence.
  """
  n, d, c, loss = (runs[k].to_numpy(np.float64) for k in ("N", "D", "C",
                                                          "loss"))
  lab, values = np.asarray(labels[0]), np.asarray(labels[1])
  rows, unavailable = [], []

  def add(choice, mask=None, *, n_=n, c_=c, delta_=delta, robust=True,
          flops_at="budget", a3=True, a2=True, params3=None):
    m = np.ones(n.size, bool) if mask is None else mask
    m = m & np.isfinite(n_) & (n_ > 0) & np.isfinite(c_) & (c_ > 0)
    res = refit(n_[m], d[m], c_[m], loss[m], (lab[m], values),
                delta=delta_, robust=robust, flops_at=flops_at, fit_a3=a3,
                fit_a2=a2, params3=params3)
    res["choice"] = choice
    res["same_as_default"] = dict(approach3=not a3, approach2=not a2)
    if rows:  # copy the default's unchanged approach
      for key, fitted in (("approach3", a3), ("approach2", a2)):
        if not fitted:
          res[key] = rows[0][key]
    rows.append(res)

  n_label = {"total": "total", "nonembedding": "non-embedding"}.get(
      n_definition, "as given")
  add(f"default (N {n_label}, C as loaded, δ = {delta:g}, robust parabolas, "
      "all runs)", params3=default_params3)
  alt_n = alternatives.get("N")
  if isinstance(alt_n, dict):
    add(f"N = {alt_n['label']}", n_=runs["N_alt"].to_numpy(np.float64))
  else:
    unavailable.append(f"N definition: {alt_n}")
  alt_c = alternatives.get("C")
  if isinstance(alt_c, dict):
    add(f"C = {alt_c['label']}", c_=runs["C_alt"].to_numpy(np.float64),
        flops_at="vertex")
  else:
    unavailable.append(f"FLOP count: {alt_c}")
  for dl in DELTAS:
    if not np.isclose(dl, delta, rtol=1e-12, atol=0):
      add(f"Huber δ = {dl:g}", delta_=dl, a2=False)
  add("plain least-squares isoFLOP parabolas", robust=False, a3=False)
  small = _smallest_per_budget(n, lab)
  if small.any():
    add(f"drop each budget's smallest-N run ({int(small.sum())} runs)",
        ~small)
  q = np.quantile(n, SMALLEST_QUANTILE)
  below = n < q
  if below.any() and (~below).sum() >= 3:
    add(f"drop runs below the {SMALLEST_QUANTILE:.0%} quantile of N "
        f"(N < {q:.3g}: {int(below.sum())} runs)", ~below)
  verdict, parts = {}, []
  for key, name in (("approach3", "Approach 3"), ("approach2",
                                                  "Approach 2")):
    ci = (default_ci or {}).get(key)
    vals = [r[key]["a"] for r in rows if r[key] is not None]
    missing = [r["choice"] for r in rows if r[key] is None]
    if rows[0][key] is None:
      verdict[key] = None
      parts.append(f"{name}: the default fit does not exist, nothing to "
                   "compare")
      continue
    if not ci or ci[0] is None or ci[1] is None:
      verdict[key] = None
      parts.append(f"{name}: a ranges over [{min(vals):.3g}, "
                   f"{max(vals):.3g}] but the default has no interval to "
                   "judge it against")
      continue
    inside = [ci[0] <= v <= ci[1] for v in vals]
    verdict[key] = bool(all(inside)) and not missing
    outside = [r["choice"] for r in rows if r[key] is not None
               and not ci[0] <= r[key]["a"] <= ci[1]]
    text = (f"{name}: a ranges over [{min(vals):.3g}, {max(vals):.3g}], "
            + ("all within" if all(inside) else
               f"{len(outside)} of {len(vals)} outside") +
            f" the default's interval [{ci[0]:.3g}, {ci[1]:.3g}]")
    if outside:
      text += " (" + "; ".join(outside) + ")"
    if (default_ok or {}).get(key) is False:
      text += (" — but the default is not identifiable, so its interval is "
               "wide and 'within' is weak evidence")
    if missing:
      text += "; not fitted under: " + "; ".join(missing)
    parts.append(text)
  decided = [v for v in verdict.values() if v is not None]
  if not decided:
    head = "The conclusion cannot be judged"
  elif all(decided):
    head = "The conclusion survives these choices"
  else:
    head = "The conclusion depends on these choices"
  sentence = head + ": " + "; ".join(parts) + "."
  return dict(rows=rows, unavailable=unavailable, verdict=verdict,
              sentence=sentence)
