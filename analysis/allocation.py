"""Compute-optimal allocation of a FLOP budget between N and D.

Closed form (Hoffmann et al. 2022 eq. 4 and App. D.2), when C = 6ND:

    N_opt(C) = G·(C/6)^a,  D_opt(C) = G⁻¹·(C/6)^b,
    G = (αA/(βB))^(1/(α+β)),  a = β/(α+β),  b = α/(α+β).

Otherwise (the runs' FLOPs are our exact count, not 6ND), the runs' FLOPs per
token are fitted as C/D = κ·N^q and L(N, D) is minimised numerically along
κ·N^q·D = C (golden-section search in ln N), the same FLOP count the runs
used.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from analysis import powerlaw

SIX_ND_TOLERANCE = 0.01  # C within 1% of 6ND for every run → closed form


@dataclasses.dataclass(frozen=True)
class FlopsModel:
  """Training FLOPs C = kappa · N^q · D (per-token cost as a power of N).

  Attributes:
    kappa, q: fitted constants (6 and 1 for C = 6ND).
    is_6nd: True when every run has C = 6ND within 1%.
    max_rel_error: largest |model/C − 1| over the runs.
  """

  kappa: float
  q: float
  is_6nd: bool
  max_rel_error: float

  def tokens(self, n, c) -> np.ndarray:
    """D such that kappa·N^q·D = C."""
    return np.asarray(c, np.float64) / (self.kappa * np.asarray(n, np.float64)
                                        ** self.q)

  def to_json(self) -> dict:
    """JSON-ready dict of the fields."""
    return dataclasses.asdict(self)


SIX_ND = FlopsModel(6.0, 1.0, True, 0.0)


def fit_flops_model(n, d, c) -> FlopsModel:
  """Fits C/D = κ·N^q over runs; returns ``SIX_ND`` when C = 6ND (±1%).

  Raises:
    ValueError: on non-positive inputs.
  """
  n, d, c = (np.asarray(v, np.float64) for v in (n, d, c))
  rel = np.abs(c / (6.0 * n * d) - 1.0)
  if rel.size and rel.max() <= SIX_ND_TOLERANCE:
    return FlopsModel(6.0, 1.0, True, float(rel.max()))
  if np.unique(n).size < 2:
    kappa = float(np.exp(np.mean(np.log(c / (d * n)))))
    q = 1.0
  else:
    fit = powerlaw.fit_power_law(n, c / d)
    kappa, q = fit.law.coef, fit.law.exponent
  model = kappa * n ** q * d
  return FlopsModel(float(kappa), float(q), False,
                    float(np.max(np.abs(model / c - 1.0))))


def closed_form(params: dict) -> dict:
  """Closed-form allocation for C = 6ND (Hoffmann et al. 2022 eq. 4).

  Args:
    params: dict A, B, alpha, beta (E does not enter).

  Returns:
    dict G, a, b, n_opt and d_opt (PowerLaw in C, FLOPs → parameters/tokens).
  """
  A, B, al, be = params["A"], params["B"], params["alpha"], params["beta"]
  g = (al * A / (be * B)) ** (1.0 / (al + be))
  a = be / (al + be)
  b = al / (al + be)
  return dict(G=float(g), a=float(a), b=float(b),
              n_opt=powerlaw.PowerLaw(float(g * 6.0 ** (-a)), float(a)),
              d_opt=powerlaw.PowerLaw(float(6.0 ** (-b) / g), float(b)))


def numerical_optimum(params: dict, flops: FlopsModel, c, n_iter: int = 120
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Minimises L(N, D) subject to flops(N, D) = C, vectorised.

  Golden-section search in ln N over [0, ln N_max], N_max leaving one token;
  L along the constraint is unimodal in ln N (a sum of two exponentials in
  ln N plus E), so the search converges to the optimum (to ~1e-12 in ln N).

  Args:
    params: dict A, B, E, alpha, beta; floats or arrays (e.g. [K, 1]
      bootstrap samples) broadcast against ``c``.
    flops: FLOP model of the runs.
    c: budget(s) in FLOPs (float or array).
    n_iter: golden-section iterations.

  Returns:
    (N_opt, D_opt, loss at the optimum in nats), broadcast arrays.
  """
  A, B, E = (np.asarray(params[k], np.float64) for k in ("A", "B", "E"))
  al, be = (np.asarray(params[k], np.float64) for k in ("alpha", "beta"))
  c = np.asarray(c, np.float64)

  def loss_at(x):
    n = np.exp(x)
    return E + A * n ** (-al) + B * flops.tokens(n, c) ** (-be)

  hi = np.log(c / flops.kappa) / flops.q
  shape = np.broadcast(A, B, E, al, be, c).shape
  lo = np.zeros(shape)
  hi = np.broadcast_to(np.maximum(hi, 1.0), shape).astype(np.float64)
  ratio = (np.sqrt(5.0) - 1.0) / 2.0
  x1 = hi - ratio * (hi - lo)
  x2 = lo + ratio * (hi - lo)
  f1, f2 = loss_at(x1), loss_at(x2)
  with np.errstate(over="ignore", invalid="ignore"):
    for _ in range(n_iter):
      left = f1 <= f2  # minimum in [lo, x2], else in [x1, hi]
      hi_n = np.where(left, x2, hi)
      lo_n = np.where(left, lo, x1)
      x1_n = np.where(left, hi_n - ratio * (hi_n - lo_n), x2)
      x2_n = np.where(left, x1, lo_n + ratio * (hi_n - lo_n))
      fe = loss_at(np.where(left, x1_n, x2_n))
      f1, f2 = np.where(left, fe, f2), np.where(left, f1, fe)
      lo, hi, x1, x2 = lo_n, hi_n, x1_n, x2_n
  x = 0.5 * (lo + hi)
  n = np.exp(x)
  return n, flops.tokens(n, c), loss_at(x)


def extrapolation(c: float, flops_range) -> float | None:
  """How far budget c lies outside the runs' compute range, as a factor.

  Args:
    c: budget in FLOPs.
    flops_range: (smallest, largest) compute of the runs, or None.

  Returns:
    c / largest when c is above the range (e.g. 100.0 = "×100 beyond the
    largest budget"), c / smallest (< 1) when below it, None inside it
    (0.1% tolerance: FLOP counts of one budget differ by a fraction of a
    step).
  """
  if flops_range is None:
    return None
  lo, hi = (float(v) for v in flops_range)
  if c > hi * 1.001:
    return float(c / hi)
  if c < lo / 1.001:
    return float(c / lo)
  return None


def allocate(params: dict, flops: FlopsModel, reference_flops,
             flops_range=None) -> dict:
  """Allocation at each reference budget, closed form or numerical.

  Args:
    params: dict A, B, E, alpha, beta.
    flops: FLOP model (``SIX_ND`` → closed form).
    reference_flops: budgets (FLOPs) to tabulate.
    flops_range: (smallest, largest) compute of the fitted runs; rows
      outside it get ``extrapolation`` (see ``extrapolation``).

  Returns:
    dict method, G/a/b (closed form) or effective a/b (numerical, local
    power-law slopes over the reference range), and ``table`` rows of
    flops, N_opt, D_opt, tokens_per_param, loss, extrapolation.
  """
  refs = [float(c) for c in reference_flops]
  out: dict = dict(flops_model=flops.to_json())
  rows = []
  if flops.is_6nd:
    cf = closed_form(params)
    out.update(method="closed form (C = 6ND)", G=cf["G"], a=cf["a"], b=cf["b"])
    for c in refs:
      n, d = float(cf["n_opt"](c)), float(cf["d_opt"](c))
      rows.append(dict(flops=c, N_opt=n, D_opt=d, tokens_per_param=d / n,
                       loss=float(_loss(params, n, d))))
  else:
    out["method"] = (f"numerical: minimise L(N, D) on C = {flops.kappa:.4g}"
                     f"·N^{flops.q:.4g}·D (the runs' FLOP count)")
    for c in refs:
      n, d, l = (float(v) for v in numerical_optimum(params, flops, c))
      rows.append(dict(flops=c, N_opt=n, D_opt=d, tokens_per_param=d / n,
                       loss=l))
    grid = np.geomspace(min(refs), max(max(refs), min(refs) * 100), 9)
    n_g, d_g, _ = numerical_optimum(params, flops, grid)
    out["a"] = powerlaw.fit_power_law(grid, n_g).law.exponent
    out["b"] = powerlaw.fit_power_law(grid, d_g).law.exponent
  for row in rows:
    row["extrapolation"] = extrapolation(row["flops"], flops_range)
  out["table"] = rows
  return out


def _loss(params, n, d):
  return (params["E"] + params["A"] * n ** (-params["alpha"])
          + params["B"] * d ** (-params["beta"]))
