"""What the data can identify: spread of the runs, width of the intervals.

A fit is *identifiable* when the runs spread enough along every axis the fit
needs and its bootstrap intervals are informative; it is *unreliable* when too
few bootstrap resamples succeeded for its intervals to mean anything. Exact
degeneracy (all runs at one D) is one case of the first test, not the test.
Every fit in ``fit.json`` carries ``identifiable``, ``unreliable`` and
``reasons`` (non-empty exactly when one of the two flags is raised), plus
``caveats`` that do not change a flag.

Data spread (``MIN_DISTINCT``). Values within ``DISTINCT_RTOL`` = 1% of each
other count as one (``count_distinct``): the exact FLOP counts of one isoFLOP
budget differ by ~0.1% (half an optimizer step), and a designed sweep never
steps a size or budget by less than ~20%.

* Approach 3 and the likelihood fit, L(N, D) = E + A/N^α + B/D^β: at least 10
  runs (2 per free parameter), at least 3 distinct N and 3 distinct D (each
  term E + A·x^(−α) is a 3-parameter curve along its axis: with 2 distinct
  values a coefficient, an exponent and the constant cannot be told apart, so
  12 runs at two values of D fit β to anything), and log N, log D not
  collinear (|corr| ≤ 0.995: runs on one line D ∝ N^k, e.g. one isoFLOP
  budget or one tokens-per-parameter ratio, confound α with β).
* Approach 2 (isoFLOP minima, then N_opt = k·C^a): at least 3 usable budgets
  (2 parameters in the power law; a third gives the only check of the fit).
* Approach 1 (envelope, then the same power law): at least 3 distinct compute
  values and 3 distinct N among the runs holding the envelope.
* Frontier L(C) = E + A·C^(−γ): at least 4 distinct compute values (3
  parameters, one residual degree of freedom).

Interval widths (``check_coefficient``; percentile bootstrap, default 95%):

* exponents (α, β, a, b, γ): half-width above ``EXPONENT_HALF_WIDTH`` = 0.15
  (the target for the allocation exponent a, whose plausible range is
  0.4–0.6: a half-width of 0.15 spans Kaplan's 0.73 to Chinchilla's 0.5), or
  above half the value's magnitude, or an interval that reaches 0;
* positive coefficients (A, B, G, N_opt, D_opt, tokens per parameter): an
  interval spanning more than a factor ``COEF_MAX_RATIO`` = 100; prefactors
  covary with their exponent (A with α), so a factor of a few tens is normal
  on good data (Chinchilla's refit: A spans ~×20);
* an irreducible loss E: an interval spanning more than a factor
  ``FLOOR_MAX_RATIO`` = 2, or a value or lower end below ``FLOOR_BOUND`` =
  1% of the lowest observed loss (E → 0 is the bound of the
  parametrisation E = exp(e): the data show no floor);
* any zero-width interval (every resample gave the same number): not an
  uncertainty, printed as such and never as an interval.

Kinds for curves other than power laws (``kinds`` of ``assess``; the sigmoid
of ``analysis.sigmoid``):

* a slope of either sign (k): an interval that includes 0, or a half-width
  above ``EXPONENT_REL_HALF_WIDTH`` = 50% of the value's magnitude;
* a location (a midpoint L0, in the units of the data): a half-width above
  ``LOCATION_HALF_WIDTH`` = 50% of ``scale``, the range of the data along
  that axis (the midpoint is not located within the runs);
* a bounded amplitude (a floor or a span in [0, 1]): only a zero-width
  interval or no estimate is flagged (its bounds keep it finite).

Bootstrap success (``bootstrap_check``): a fit whose resamples succeeded in
fewer than ``MIN_SUCCESS`` = 80% of draws is *unreliable*; its intervals are
conditional on the lucky resamples.
"""

from __future__ import annotations

import math

import numpy as np

DISTINCT_RTOL = 0.01
MIN_DISTINCT = dict(
    approach3=dict(runs=10, N=3, D=3),
    mle=dict(runs=10, N=3, D=3),
    approach2=dict(budgets=3),
    approach1=dict(C=3, N=3),
    frontier=dict(C=4),
)
MAX_COLLINEARITY = 0.995
EXPONENT_HALF_WIDTH = 0.15
EXPONENT_REL_HALF_WIDTH = 0.5
LOCATION_HALF_WIDTH = 0.5
COEF_MAX_RATIO = 100.0
FLOOR_MAX_RATIO = 2.0
FLOOR_BOUND = 0.01
MIN_SUCCESS = 0.8
ZERO_WIDTH_RTOL = 1e-9

EXPONENTS = ("alpha", "beta", "a", "b", "gamma")
FLOORS = ("E",)


def count_distinct(values, rtol: float = DISTINCT_RTOL) -> int:
  """Number of distinct positive values, merging those within ``rtol``.

  Sorted values start a new group when they exceed the previous one by more
  than a factor 1 + rtol (so a chain of 0.5% steps counts as one value).

  Args:
    values: [n] positive numbers (e.g. N, D or FLOPs); non-finite ignored.
    rtol: relative tolerance.
  """
  v = np.asarray(values, np.float64)
  v = np.sort(v[np.isfinite(v) & (v > 0)])
  if v.size == 0:
    return 0
  return int(1 + np.sum(np.diff(np.log(v)) > math.log1p(rtol)))


def spread_reasons(kind: str, n=None, d=None, c=None, n_budgets=None
                   ) -> list[str]:
  """Reasons the data's spread cannot identify fit ``kind`` (empty = fine).

  Args:
    kind: a key of ``MIN_DISTINCT`` (approach3, mle, approach2, approach1,
      frontier).
    n, d, c: [k] parameters, tokens, FLOPs of the points the fit uses (those
      its thresholds need).
    n_budgets: usable isoFLOP budgets (Approach 2).

  Raises:
    KeyError: on an unknown kind.
  """
  need = MIN_DISTINCT[kind]
  out = []
  if "runs" in need and n is not None and len(n) < need["runs"]:
    out.append(f"only {len(n)} runs for 5 parameters (need >= "
               f"{need['runs']})")
  for axis, values in (("N", n), ("D", d), ("C", c)):
    if axis in need and values is not None:
      k = count_distinct(values)
      if k < need[axis]:
        out.append(f"only {k} distinct {axis} value(s) (need >= "
                   f"{need[axis]}, values within {DISTINCT_RTOL:.0%} count "
                   "as one)")
  if "budgets" in need and n_budgets is not None and n_budgets < need[
      "budgets"]:
    out.append(f"only {n_budgets} usable isoFLOP budget(s) (need >= "
               f"{need['budgets']} with an interior minimum)")
  if kind in ("approach3", "mle") and n is not None and d is not None:
    ln, ld = np.log(np.asarray(n, np.float64)), np.log(np.asarray(d,
                                                                  np.float64))
    if ln.size > 2 and ln.std() > 0 and ld.std() > 0:
      r = float(np.corrcoef(ln, ld)[0, 1])
      if abs(r) > MAX_COLLINEARITY:
        out.append(f"log N and log D are collinear (corr {r:+.4f}): the runs "
                   "lie on one line D ∝ N^k (one budget or one tokens per "
                   "parameter), so alpha and beta cannot be separated")
  return out


def check_coefficient(name: str, value, ci, *, loss_min: float | None = None,
                      kind: str | None = None, scale: float | None = None
                      ) -> str | None:
  """Why one coefficient's estimate is not informative, or None.

  Args:
    name: coefficient name; its kind follows from it unless ``kind`` is
      given (``EXPONENTS`` → "exponent", ``FLOORS`` → "floor", else
      "positive").
    value: the full-data estimate.
    ci: [lo, hi] bootstrap interval or None.
    loss_min: lowest observed loss (nats), the scale of a floor E.
    kind: "exponent", "floor", "positive", "slope", "location" or
      "bounded" (see the module docstring).
    scale: the data's range along the coefficient's axis ("location").

  Returns:
    A short reason (e.g. "95% interval spans a factor 8.7e+06 (> 100)").
  """
  kind = kind or ("exponent" if name in EXPONENTS else
                  "floor" if name in FLOORS else "positive")
  if value is None or not np.isfinite(value):
    return "no finite estimate"
  if kind == "floor" and loss_min is not None and value < FLOOR_BOUND * \
      loss_min:
    return (f"at its bound 0 ({value:.3g} < {FLOOR_BOUND:.0%} of the lowest "
            "loss): no irreducible loss is detectable")
  if ci is None or ci[0] is None or ci[1] is None:
    return None
  lo, hi = float(ci[0]), float(ci[1])
  if hi - lo <= ZERO_WIDTH_RTOL * max(abs(value), 1e-300):
    return ("zero-width interval: every resample gave the same value, which "
            "measures nothing")
  half = (hi - lo) / 2
  if kind == "bounded":
    return None
  if kind == "slope":
    if lo <= 0 <= hi:
      return f"interval [{lo:.3g}, {hi:.3g}] includes 0"
    if half > EXPONENT_REL_HALF_WIDTH * abs(value):
      return (f"interval half-width {half:.3g} > "
              f"{EXPONENT_REL_HALF_WIDTH:.0%} of the value's magnitude")
    return None
  if kind == "location":
    if scale is not None and half > LOCATION_HALF_WIDTH * scale:
      return (f"interval half-width {half:.3g} > {LOCATION_HALF_WIDTH:.0%} "
              f"of the data's range {scale:.3g}: not located within the "
              "runs")
    return None
  if kind == "exponent":
    if lo <= 0 <= hi:
      return f"interval [{lo:.3g}, {hi:.3g}] includes 0"
    if half > EXPONENT_HALF_WIDTH:
      return (f"interval half-width {half:.3g} > {EXPONENT_HALF_WIDTH:g}")
    if half > EXPONENT_REL_HALF_WIDTH * abs(value):
      return (f"interval half-width {half:.3g} > "
              f"{EXPONENT_REL_HALF_WIDTH:.0%} of the value")
    return None
  if lo <= 0:
    return f"interval [{lo:.3g}, {hi:.3g}] reaches 0"
  ratio = hi / lo
  if kind == "floor":
    if loss_min is not None and lo < FLOOR_BOUND * loss_min:
      return (f"interval [{lo:.3g}, {hi:.3g}] reaches the bound E → 0 "
              "(no floor detectable)")
    if ratio > FLOOR_MAX_RATIO:
      return f"interval spans a factor {ratio:.3g} (> {FLOOR_MAX_RATIO:g})"
    return None
  if ratio > COEF_MAX_RATIO:
    return f"interval spans a factor {ratio:.3g} (> {COEF_MAX_RATIO:g})"
  return None


def bootstrap_check(n_ok: int | None, n_requested: int) -> str | None:
  """'k of K resamples succeeded (…% < 80%)' when too few succeeded."""
  if not n_requested:
    return None
  n_ok = int(n_ok or 0)
  if n_ok < MIN_SUCCESS * n_requested:
    return (f"only {n_ok} of {n_requested} bootstrap resamples succeeded "
            f"({n_ok / n_requested:.0%} < {MIN_SUCCESS:.0%})")
  return None


def assess(coefs: dict, *, spread: list[str] = (), n_ok: int | None = None,
           n_requested: int = 0, loss_min: float | None = None,
           headline=None, extra: list[str] = (), caveats: list[str] = (),
           kinds: dict | None = None) -> dict:
  """The flags of one fit, from its spread, coefficients and bootstrap.

  Args:
    coefs: name → coefficient entry ``{"value", "ci", ...}`` (modified: each
      gets ``flag``, the reason from ``check_coefficient`` or None, and a
      degenerate interval is removed: ``ci`` None, ``ci_zero_width`` True).
    spread: reasons from ``spread_reasons``.
    n_ok: resamples where the whole fit succeeded.
    n_requested: resamples drawn (0 = no bootstrap).
    loss_min: lowest observed loss (for a floor E).
    headline: names whose flag makes the fit not identifiable (default all).
    extra: further reasons the fit is not identifiable.
    caveats: remarks that change no flag.
    kinds: name → kind, or (kind, scale), for ``check_coefficient`` (default:
      the kind follows from the name).

  Returns:
    dict identifiable, unreliable, reasons, caveats, bootstrap (requested,
    succeeded, success_rate).
  """
  reasons = list(spread) + list(extra)
  names = list(coefs) if headline is None else list(headline)
  for name, entry in coefs.items():
    if entry is None:
      continue
    kind = (kinds or {}).get(name)
    kind, scale = kind if isinstance(kind, tuple) else (kind, None)
    flag = check_coefficient(name, entry.get("value"), entry.get("ci"),
                             loss_min=loss_min, kind=kind, scale=scale)
    entry["flag"] = flag
    if flag and flag.startswith("zero-width"):
      entry["ci_zero_width"] = True
      entry["ci"] = None
    if flag and name in names:
      reasons.append(f"{name}: {flag}")
  not_identifiable = bool(reasons)
  boot = bootstrap_check(n_ok, n_requested)
  if boot:
    reasons.append(boot)
  if n_requested == 0:
    caveats = list(caveats) + ["no bootstrap: the uncertainty is unknown"]
  return dict(identifiable=not not_identifiable, unreliable=boot is not None,
              reasons=reasons, caveats=list(caveats),
              bootstrap=dict(requested=int(n_requested),
                             succeeded=None if n_ok is None else int(n_ok),
                             success_rate=(None if not n_requested or n_ok is
                                           None else n_ok / n_requested)))


def flag_text(entry: dict) -> str:
  """'not identifiable (…)' / 'unreliable (…)' / 'identifiable' for a fit."""
  if entry is None:
    return "not fitted"
  parts = []
  if not entry.get("identifiable", True):
    parts.append("not identifiable")
  if entry.get("unreliable"):
    parts.append("unreliable")
  if not parts:
    return "identifiable"
  return " and ".join(parts) + ": " + "; ".join(entry.get("reasons") or [])
