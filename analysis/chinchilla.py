"""Chinchilla Approach 3: L(N, D) = E + A/N^α + B/D^β fitted on log loss.

Hoffmann et al. 2022 (arXiv 2203.15556) §3.3, eqs. (2)–(4): with
θ = (a, b, e, α, β), A = exp(a), B = exp(b), E = exp(e),

    log L̂(N, D) = LSE(a − α·log N, b − β·log D, e)

and θ minimises Σ_i Huber_δ(LSE_i − log L_i) with δ = 1e-3, by L-BFGS from the
grid α, β ∈ {0, 0.5, …, 2}, e ∈ {−1, −0.5, …, 1}, a, b ∈ {0, 5, …, 25}
(4,500 starts; grid as replicated by Besiroglu et al. 2024, arXiv 2404.10102).
The objective is **summed** over points (Besiroglu et al. §2). Everything here
is float64 numpy.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from analysis import multistart

HUBER_DELTA = 1e-3
PARAM_NAMES = ("a", "b", "e", "alpha", "beta")
# Chinchilla's start grid (a, b, e, alpha, beta), Hoffmann et al. 2022 App. D.2.
GRID_A = np.arange(0.0, 30.0, 5.0)
GRID_B = np.arange(0.0, 30.0, 5.0)
GRID_E = np.arange(-1.0, 1.5, 0.5)
GRID_ALPHA = np.arange(0.0, 2.5, 0.5)
GRID_BETA = np.arange(0.0, 2.5, 0.5)
# Hoffmann et al. 2022 unrounded estimates (as quoted by Besiroglu et al. 2024).
CHINCHILLA_PARAMS = dict(A=406.401, B=410.723, E=1.69337, alpha=0.33917084,
                         beta=0.2849083)


def start_grid() -> np.ndarray:
  """Chinchilla's grid of starts, [4500, 5] rows of (a, b, e, α, β)."""
  rows = itertools.product(GRID_A, GRID_B, GRID_E, GRID_ALPHA, GRID_BETA)
  return np.array(list(rows), dtype=np.float64)


def theta_from_params(A: float, B: float, E: float, alpha: float,
                      beta: float) -> np.ndarray:
  """(A, B, E, α, β) → θ = (log A, log B, log E, α, β), shape [5]."""
  return np.array([np.log(A), np.log(B), np.log(E), alpha, beta], np.float64)


def params_from_theta(theta: np.ndarray) -> dict:
  """θ [5] → dict(A, B, E, alpha, beta) as floats."""
  a, b, e, alpha, beta = (float(v) for v in theta)
  return dict(A=float(np.exp(a)), B=float(np.exp(b)), E=float(np.exp(e)),
              alpha=alpha, beta=beta)


def predict_loss(params: dict, n, d) -> np.ndarray:
  """L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022 eq. 2), in nats.

  Args:
    params: dict with A, B, E, alpha, beta.
    n: parameters N (array-like, > 0).
    d: tokens D (array-like, > 0), broadcast against n.
  """
  n = np.asarray(n, np.float64)
  d = np.asarray(d, np.float64)
  return (params["E"] + params["A"] * n ** (-params["alpha"])
          + params["B"] * d ** (-params["beta"]))


def huber(r: np.ndarray, delta: float = HUBER_DELTA) -> np.ndarray:
  """Huber loss: r²/2 for |r| ≤ δ, else δ(|r| − δ/2); elementwise."""
  c = np.clip(r, -delta, delta)
  return c * (r - 0.5 * c)


def make_objective(log_n: np.ndarray, log_d: np.ndarray, log_loss: np.ndarray,
                   delta: float = HUBER_DELTA, reduction: str = "sum",
                   scale: float = 1.0, weights: np.ndarray | None = None,
                   chunk: int = 128):
  """Vectorised Huber objective on log loss and its analytic gradient.

  f(θ) = scale · Σ_i Huber_δ(LSE(a − α log N_i, b − β log D_i, e) − log L_i)
  (or the mean over i with ``reduction="mean"``); with ``weights`` [R, n] the
  row with id k weighs point i by weights[k, i] (bootstrap resample counts).
  The gradient uses the
  softmax weights p_k of the LSE: ∂f/∂a = Σ ψ(r)p₁, ∂f/∂α = −Σ ψ(r)p₁ log N,
  and likewise for b, β, e, with ψ = Huber′ = clip(r, −δ, δ).

  Args:
    log_n, log_d, log_loss: [n] natural logs of N, D and loss.
    delta: Huber δ (on log loss).
    reduction: "sum" (Chinchilla/Besiroglu) or "mean".
    scale: positive constant factor on the objective.
    weights: optional [R, n] per-row point weights.
    chunk: starts per block (keeps the [chunk, n] work arrays in cache).

  Returns:
    fun_grad(X [k, 5], rows [k] | None) -> (f [k], g [k, 5]); +inf where the
    LSE underflows. ``rows`` picks weight rows (ignored without weights).

  Raises:
    ValueError: on an unknown reduction or non-positive scale.
  """
  if reduction not in ("sum", "mean"):
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
  if not scale > 0:
    raise ValueError(f"scale must be > 0, got {scale}")
  ln = np.ascontiguousarray(log_n, np.float64)
  ld = np.ascontiguousarray(log_d, np.float64)
  ll = np.ascontiguousarray(log_loss, np.float64)
  factor = scale / (ln.size if reduction == "mean" else 1.0)
  ln_lo, ln_hi, ld_lo, ld_hi = ln.min(), ln.max(), ld.min(), ld.max()

  w_all = None if weights is None else np.asarray(weights, np.float64)

  def fun_grad(x_kx5: np.ndarray, rows: np.ndarray | None = None):
    x_kx5 = np.atleast_2d(np.asarray(x_kx5, np.float64))
    k = x_kx5.shape[0]
    if w_all is not None:
      w_kxn = w_all[np.zeros(k, int) if rows is None else np.asarray(rows)]
    f = np.empty(k)
    g = np.empty((k, 5))
    with np.errstate(over="ignore", under="ignore", invalid="ignore",
                     divide="ignore"):
      for lo in range(0, k, chunk):
        a, b, e, al, be = x_kx5[lo:lo + chunk].T
        # Row-wise shift: max over points of a linear function of log N.
        m = np.maximum(np.maximum(a - np.minimum(al * ln_lo, al * ln_hi),
                                  b - np.minimum(be * ld_lo, be * ld_hi)), e)
        e1 = np.exp((a - m)[:, None] - al[:, None] * ln)
        e2 = np.exp((b - m)[:, None] - be[:, None] * ld)
        e3 = np.exp(e - m)
        s = e1 + e2 + e3[:, None]
        r = np.log(s) + (m[:, None] - ll)
        c = np.clip(r, -delta, delta)
        if w_all is not None:
          c_w = c * w_kxn[lo:lo + chunk]
          fv = np.einsum("ij,ij->i", c_w, r - 0.5 * c)
          h = c_w / s
        else:
          fv = np.einsum("ij,ij->i", c, r - 0.5 * c)
          h = c / s
        w1 = h * e1
        w2 = h * e2
        sl = slice(lo, lo + chunk)
        f[sl] = fv
        g[sl, 0] = w1.sum(axis=1)
        g[sl, 1] = w2.sum(axis=1)
        g[sl, 2] = e3 * h.sum(axis=1)
        g[sl, 3] = -np.einsum("ij,j->i", w1, ln)
        g[sl, 4] = -np.einsum("ij,j->i", w2, ld)
    f = np.where(np.isfinite(f), f * factor, np.inf)
    return f, g * factor

  return fun_grad


@dataclasses.dataclass
class Approach3Fit:
  """Result of ``fit_approach3``.

  Attributes:
    params: dict A, B, E, alpha, beta.
    theta: [5] (a, b, e, α, β).
    objective: minimised objective (as configured: sum or mean, scale).
    n_points: rows fitted.
    n_starts, n_evals: work done by the multi-start.
    warnings: identifiability warnings (see ``identifiability``).
    identifiable: per-parameter flag (False = the data cannot fix it).
  """

  params: dict
  theta: np.ndarray
  objective: float
  n_points: int
  n_starts: int
  n_evals: int
  warnings: list
  identifiable: dict

  def to_json(self) -> dict:
    """JSON-ready dict of the fields."""
    return dict(params=self.params, theta=[float(v) for v in self.theta],
                objective=self.objective, n_points=self.n_points,
                n_starts=self.n_starts, n_evals=self.n_evals,
                warnings=list(self.warnings), identifiable=self.identifiable)


def identifiability(n, d, theta: np.ndarray | None = None,
                    min_points: int = 10, rel_spread: float = 1e-3
                    ) -> tuple[list, dict]:
  """Checks what the data can identify in L(N, D) = E + A/N^α + B/D^β.

  Args:
    n, d: [n] parameters and tokens of the fitted rows.
    theta: fitted (a, b, e, α, β), to check the edges of the start grid.
    min_points: fewer rows than this gives a warning (5 free parameters).
    rel_spread: N (or D) values within this relative spread count as one.

  Returns:
    (warnings, identifiable) with identifiable mapping A, B, E, alpha, beta
    to bool.
  """
  n = np.asarray(n, np.float64)
  d = np.asarray(d, np.float64)
  warnings: list[str] = []
  ok = dict(A=True, B=True, E=True, alpha=True, beta=True)
  if n.size < min_points:
    warnings.append(f"too few runs for 5 parameters: {n.size} < {min_points}; "
                    "coefficients are poorly constrained")
  if n.size and np.log(d.max() / d.min()) <= rel_spread:
    warnings.append("all runs have the same D (tokens): B and beta are not "
                    "identifiable (B/D^beta is one constant, confounded with "
                    "E)")
    ok.update(B=False, beta=False, E=False)
  if n.size and np.log(n.max() / n.min()) <= rel_spread:
    warnings.append("all runs have the same N (parameters): A and alpha are "
                    "not identifiable (A/N^alpha is one constant, confounded "
                    "with E)")
    ok.update(A=False, alpha=False, E=False)
  if theta is not None:
    grids = dict(a=GRID_A, b=GRID_B, e=GRID_E, alpha=GRID_ALPHA, beta=GRID_BETA)
    for name, v in zip(PARAM_NAMES, theta):
      lo, hi = grids[name][0], grids[name][-1]
      if v <= lo or v >= hi:
        warnings.append(f"{name} = {v:.4g} is at or beyond the edge of the "
                        f"start grid [{lo:g}, {hi:g}]; the optimum may be "
                        "outside the searched region or degenerate")
  return warnings, ok


def fit_approach3(n, d, loss, *, delta: float = HUBER_DELTA,
                  reduction: str = "sum", scale: float = 1.0,
                  starts: np.ndarray | None = None,
                  halving: tuple = ((2, 0.1), (8, 0.2))) -> Approach3Fit:
  """Fits L(N, D) = E + A/N^α + B/D^β by Chinchilla's Approach 3.

  Huber (δ on log loss) objective summed over rows, float64, L-BFGS from the
  4,500-start grid via ``multistart.multistart_minimize`` (Hoffmann et al.
  2022 §3.3; Besiroglu et al. 2024 §2).

  Args:
    n: [n] parameters N (> 0).
    d: [n] training tokens D (> 0).
    loss: [n] final losses in nats (> 0).
    delta: Huber δ.
    reduction, scale: objective form ("sum" is the published one).
    starts: [S, 5] custom starts (default: ``start_grid()``).
    halving: successive-halving schedule (``()`` runs every start fully).

  Raises:
    ValueError: on fewer than 2 rows or non-positive inputs.
  """
  n, d, loss = (np.asarray(v, np.float64) for v in (n, d, loss))
  if n.size < 2:
    raise ValueError(f"Approach 3 needs at least 2 runs, got {n.size}")
  if not (np.all(n > 0) and np.all(d > 0) and np.all(loss > 0)):
    raise ValueError("N, D and loss must all be > 0 (filter the table first)")
  fg = make_objective(np.log(n), np.log(d), np.log(loss), delta, reduction,
                      scale)
  grid = start_grid() if starts is None else np.asarray(starts, np.float64)
  res = multistart.multistart_minimize(fg, grid, halving=halving)
  warnings, ok = identifiability(n, d, res.x)
  return Approach3Fit(params_from_theta(res.x), np.asarray(res.x),
                      float(res.fun), int(n.size), res.n_starts, res.n_evals,
                      warnings, ok)


def refit_from(theta0: np.ndarray, n, d, loss, *, delta: float = HUBER_DELTA
               ) -> np.ndarray:
  """Single polished L-BFGS fit warm-started at θ0 (bootstrap resamples)."""
  fg = make_objective(np.log(n), np.log(d), np.log(loss), delta)
  return np.asarray(multistart.polish(fg, theta0).x)
