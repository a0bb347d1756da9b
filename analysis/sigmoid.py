"""Task metric as a sigmoid of the task loss (step 2 of the two-step law).

Bhagia et al. 2024 (arXiv 2412.04403, "Establishing Task Scaling Laws via
Compute-Efficient Model Ladders") §3, step 2: a task's accuracy as a function
of its task loss L (the gold answer's bits per byte, step 1's output),

    Acc(L) = a / (1 + exp(−k·(L − L0))) + b.

Written as the paper writes it, with **k < 0**: accuracy falls as the loss
rises. b is the floor (the accuracy at high loss, chance for a
multiple-choice task), a + b the ceiling (the accuracy at low loss), L0 the
midpoint (accuracy b + a/2) and |k| the steepness in 1/(bits per byte). The
paper's code (allenai/OLMo-ladder) draws the same curve with a ≤ 0, k ≥ 0
and b the ceiling: a' = −a, b' = a + b, k' = −k.

Bounds, by construction of the unconstrained parameters θ:

    b = lo + (hi − lo)·σ(θ_b),  a = (hi − b)·σ(θ_a),  k = −exp(θ_k),
    L0 = θ_L0,

with σ the logistic function and (lo, hi) the metric's range ((0, 1) for an
accuracy): lo ≤ b, 0 ≤ a, a + b ≤ hi, k < 0. With a known floor (chance
accuracy, 1/classes) b is fixed and θ = (θ_a, θ_k, θ_L0).

The objective is least squares on the metric, ½·Σ_i w_i (Acc(L_i) − y_i)²,
as the paper's ``scipy.optimize.curve_fit``; float64; minimised by batched
L-BFGS from a grid of starts (midpoints across and beyond the observed
losses, slopes from a gentle to a sharp rise, floors and ceilings at the
range's edges and the data's) with ``multistart.multistart_minimize``, whose
polish is scale-free. Row weights ``w`` (bootstrap resample counts) make the
same objective serve ``bootstrap.multistart_refit``.

Where the curve bends: σ'' is extremal at σ = (3 ∓ √3)/6 ≈ 0.211 and 0.789
(``LOWER_BEND``, ``UPPER_BEND``), the two knees of the rise. Runs whose
losses all lie on one side of L0 see one tail only: there floor, span,
slope and midpoint trade off (a tail is one exponential, a·e^(k(L−L0)), two
numbers for four), which ``bend_reasons`` says.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
from scipy import special

from analysis import multistart

PARAM_NAMES = ("a", "b", "k", "L0")
LOWER_BEND = (3.0 - math.sqrt(3.0)) / 6.0
UPPER_BEND = (3.0 + math.sqrt(3.0)) / 6.0
METRIC_RANGE = (0.0, 1.0)
# Start grid: midpoints at these fractions of the loss range from its
# minimum, steepness |k| = these multiples of 1/range, floors and ceilings
# at the range's edge (1% inside) and at the data's extremes.
GRID_L0 = np.linspace(-0.5, 1.5, 9)
GRID_STEEPNESS = np.geomspace(0.5, 32.0, 7)
EDGE = 0.01


def predict(params: dict, task_loss) -> np.ndarray:
  """Acc(L) = a/(1 + exp(−k(L − L0))) + b (Bhagia et al. 2024 §3, k < 0).

  Args:
    params: dict a, b, k, L0.
    task_loss: task loss L (array-like; bits per byte of the gold answer).

  Returns:
    the metric at L, same shape, in the metric's units.
  """
  x = np.asarray(task_loss, np.float64)
  z = params["k"] * (x - params["L0"])
  return params["b"] + params["a"] * special.expit(z)


def rise_fraction(params: dict, task_loss) -> np.ndarray:
  """σ(k(L − L0)) ∈ (0, 1): how far up the rise from b to a + b L sits."""
  x = np.asarray(task_loss, np.float64)
  return special.expit(params["k"] * (x - params["L0"]))


def _check_range(metric_range) -> tuple[float, float]:
  lo, hi = (float(v) for v in metric_range)
  if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo):
    raise ValueError(f"metric range must be two finite numbers lo < hi, got "
                     f"{metric_range!r} (--task-range)")
  return lo, hi


def params_from_theta(theta, floor: float | None = None,
                      metric_range=METRIC_RANGE) -> dict:
  """θ [4] (or [3] with a fixed floor) → dict a, b, k, L0, ceiling."""
  lo, hi = _check_range(metric_range)
  t = [float(v) for v in theta]
  if floor is None:
    b = lo + (hi - lo) * float(special.expit(t[0]))
    t = t[1:]
  else:
    b = float(floor)
  a = (hi - b) * float(special.expit(t[0]))
  k = -math.exp(t[1])
  return dict(a=a, b=b, k=k, L0=t[2], ceiling=a + b)


def params_from_thetas(theta_kxp, floor: float | None = None,
                       metric_range=METRIC_RANGE) -> dict:
  """θ rows [K, P] → dict a, b, k, L0 of [K, 1] arrays (NaN rows stay NaN),
  which broadcast against losses [K, H] in ``predict``."""
  lo, hi = _check_range(metric_range)
  th = np.atleast_2d(np.asarray(theta_kxp, np.float64))
  if floor is None:
    b = lo + (hi - lo) * special.expit(th[:, :1])
    th = th[:, 1:]
  else:
    b = np.full((th.shape[0], 1), float(floor))
  with np.errstate(over="ignore"):
    return dict(a=(hi - b) * special.expit(th[:, :1]), b=b,
                k=-np.exp(th[:, 1:2]), L0=th[:, 2:3])


def theta_from_params(a: float, b: float, k: float, L0: float,
                      floor: float | None = None,
                      metric_range=METRIC_RANGE) -> np.ndarray:
  """(a, b, k, L0) → θ, the inverse of ``params_from_theta``.

  Raises:
    ValueError: when the parameters break the bounds (k ≥ 0, a ≤ 0,
      b ≤ lo or a + b ≥ hi).
  """
  lo, hi = _check_range(metric_range)
  b = float(floor) if floor is not None else float(b)
  if not (k < 0 and a > 0 and a + b < hi and (lo < b or floor is not None)):
    raise ValueError(f"sigmoid parameters out of bounds: need k < 0, a > 0, "
                     f"{lo:g} < b, a + b < {hi:g}; got a={a}, b={b}, k={k}")
  t = [float(special.logit(a / (hi - b))), math.log(-k), float(L0)]
  if floor is None:
    t.insert(0, float(special.logit((b - lo) / (hi - lo))))
  return np.array(t, np.float64)


def make_objective(task_loss, metric, *, floor: float | None = None,
                   metric_range=METRIC_RANGE,
                   weights: np.ndarray | None = None):
  """Vectorised least-squares objective in θ and its analytic gradient.

  f(θ) = ½ Σ_i w_i (b + a·s_i − y_i)² with s_i = σ(z_i),
  z_i = −exp(θ_k)(L_i − L0); ∂s/∂z = s(1 − s), ∂z/∂θ_k = z, ∂z/∂L0 =
  exp(θ_k); ∂Acc/∂θ_a = s·(hi − b)σ(θ_a)(1 − σ(θ_a)); and, with a free
  floor, ∂Acc/∂θ_b = (1 − σ(θ_a)·s)·(hi − lo)σ(θ_b)(1 − σ(θ_b)) (a depends
  on b through the ceiling bound).

  Args:
    task_loss: [n] task losses L.
    metric: [n] observed metric y.
    floor: a fixed floor b (θ then has 3 entries), or None (4).
    metric_range: (lo, hi) bounds of the metric.
    weights: optional [R, n] per-row point weights (bootstrap counts).

  Returns:
    fun_grad(X [k, P], rows [k] | None) -> (f [k], g [k, P]); +inf where not
    finite. ``rows`` picks weight rows (ignored without weights).
  """
  x = np.ascontiguousarray(task_loss, np.float64)
  y = np.ascontiguousarray(metric, np.float64)
  lo, hi = _check_range(metric_range)
  w_all = None if weights is None else np.asarray(weights, np.float64)
  free_b = floor is None

  def fun_grad(x_kxp: np.ndarray, rows: np.ndarray | None = None):
    th = np.atleast_2d(np.asarray(x_kxp, np.float64))
    k = th.shape[0]
    if w_all is None:
      w = np.ones((1, x.size))
    else:
      w = w_all[np.zeros(k, int) if rows is None else np.asarray(rows)]
    with np.errstate(all="ignore"):
      if free_b:
        sb = special.expit(th[:, 0])
        b = lo + (hi - lo) * sb
        ua, lk, l0 = th[:, 1], th[:, 2], th[:, 3]
      else:
        b = np.full(k, float(floor))
        ua, lk, l0 = th[:, 0], th[:, 1], th[:, 2]
      sa = special.expit(ua)
      a = (hi - b) * sa
      kap = np.exp(lk)
      z = -kap[:, None] * (x[None, :] - l0[:, None])
      s = special.expit(z)
      r = b[:, None] + a[:, None] * s - y[None, :]
      wr = w * r
      f = 0.5 * np.einsum("ij,ij->i", wr, r)
      ads = a[:, None] * s * (1.0 - s)
      g_ua = np.einsum("ij,ij->i", wr, s) * (hi - b) * sa * (1.0 - sa)
      g_lk = np.einsum("ij,ij->i", wr, ads * z)
      g_l0 = np.einsum("ij,ij->i", wr, ads) * kap
      parts = [g_ua, g_lk, g_l0]
      if free_b:
        g_ub = (np.einsum("ij,ij->i", wr, 1.0 - sa[:, None] * s)
                * (hi - lo) * sb * (1.0 - sb))
        parts.insert(0, g_ub)
      g = np.stack(parts, axis=1)
    ok = np.isfinite(f) & np.all(np.isfinite(g), axis=1)
    return np.where(ok, f, np.inf), np.where(ok[:, None], g, 0.0)

  return fun_grad


def start_grid(task_loss, metric, floor: float | None = None,
               metric_range=METRIC_RANGE) -> np.ndarray:
  """[S, P] starts: midpoints × steepness × floors × ceilings (see top)."""
  lo, hi = _check_range(metric_range)
  x = np.asarray(task_loss, np.float64)
  y = np.asarray(metric, np.float64)
  span = hi - lo
  x_lo, x_hi = float(x.min()), float(x.max())
  rng = x_hi - x_lo if x_hi > x_lo else max(0.1 * abs(x_hi), 1e-3)

  def inside(v):
    return float(np.clip(v, lo + EDGE * span, hi - EDGE * span))

  floors = ([float(floor)] if floor is not None else
            sorted({inside(lo), inside(y.min())}))
  ceilings = sorted({inside(hi), inside(y.max())})
  rows = []
  for f0, c0, m, st in itertools.product(floors, ceilings, GRID_L0,
                                         GRID_STEEPNESS):
    if c0 <= f0 + 1e-6 * span:
      c0 = min(hi - 0.5 * EDGE * span, f0 + EDGE * span)
    a0 = c0 - f0
    t = [float(special.logit(a0 / (hi - f0))), math.log(st / rng),
         x_lo + m * rng]
    if floor is None:
      t.insert(0, float(special.logit((f0 - lo) / span)))
    rows.append(t)
  return np.array(rows, np.float64)


@dataclasses.dataclass
class SigmoidFit:
  """Result of ``fit_sigmoid``.

  Attributes:
    params: dict a, b, k, L0, ceiling (= a + b).
    theta: [P] unconstrained parameters (P = 4, or 3 with a fixed floor).
    objective: ½·Σ residual² at the optimum (metric units squared).
    rms_residual: root mean square of Acc(L_i) − y_i (metric units).
    n_points: points fitted.
    n_starts, n_evals: work done by the multi-start.
    floor: the fixed floor, or None when b was fitted.
    metric_range: (lo, hi).
  """

  params: dict
  theta: np.ndarray
  objective: float
  rms_residual: float
  n_points: int
  n_starts: int
  n_evals: int
  floor: float | None
  metric_range: tuple

  @property
  def n_params(self) -> int:
    """Free parameters: 4, or 3 with a fixed floor."""
    return int(self.theta.size)


def check_inputs(task_loss, metric, floor=None, metric_range=METRIC_RANGE
                 ) -> tuple[np.ndarray, np.ndarray]:
  """Validated float64 copies of (task_loss, metric).

  Raises:
    ValueError: on mismatched lengths, non-finite values, a metric outside
      ``metric_range`` or a floor outside it.
  """
  lo, hi = _check_range(metric_range)
  x = np.asarray(task_loss, np.float64).ravel()
  y = np.asarray(metric, np.float64).ravel()
  if x.shape != y.shape:
    raise ValueError(f"task loss and metric lengths differ: {x.size} vs "
                     f"{y.size}")
  if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
    raise ValueError("task loss and metric must be finite (filter the rows)")
  if y.size and (y.min() < lo or y.max() > hi):
    raise ValueError(f"metric values span [{y.min():.4g}, {y.max():.4g}], "
                     f"outside the sigmoid's range [{lo:g}, {hi:g}]; rescale "
                     "the metric (e.g. BLEU / 100) or give its range with "
                     "--task-range LO,HI")
  if floor is not None and not lo <= float(floor) < hi:
    raise ValueError(f"--task-chance {floor} must lie in [{lo:g}, {hi:g})")
  return x, y


def fit_sigmoid(task_loss, metric, *, floor: float | None = None,
                metric_range=METRIC_RANGE,
                starts: np.ndarray | None = None) -> SigmoidFit:
  """Fits Acc(L) = a/(1 + exp(−k(L − L0))) + b with bounds, multi-start.

  Args:
    task_loss: [n] task losses L (gold-answer bits per byte).
    metric: [n] metric values in ``metric_range`` (accuracy in [0, 1]).
    floor: fix b (e.g. chance accuracy), or None to fit it.
    metric_range: (lo, hi) bounds of the metric.
    starts: [S, P] custom starts in θ (default ``start_grid``).

  Returns:
    a ``SigmoidFit``.

  Raises:
    ValueError: fewer than 3 points, or the inputs ``check_inputs`` rejects.
  """
  x, y = check_inputs(task_loss, metric, floor, metric_range)
  if x.size < 3:
    raise ValueError(f"the sigmoid needs at least 3 points, got {x.size}")
  fg = make_objective(x, y, floor=floor, metric_range=metric_range)
  grid = (start_grid(x, y, floor, metric_range) if starts is None else
          np.asarray(starts, np.float64))
  res = multistart.multistart_minimize(fg, grid)
  params = params_from_theta(res.x, floor, metric_range)
  rms = float(np.sqrt(np.mean((predict(params, x) - y) ** 2)))
  return SigmoidFit(params, np.asarray(res.x), float(res.fun), rms,
                    int(x.size), res.n_starts, res.n_evals,
                    None if floor is None else float(floor),
                    tuple(float(v) for v in metric_range))


def bend_reasons(params: dict, task_loss) -> tuple[list[str], list[str]]:
  """Whether the runs' losses reach the sigmoid's midpoint and bends.

  Args:
    params: dict a, b, k, L0 (k < 0).
    task_loss: [n] the fitted runs' task losses.

  Returns:
    (reasons, caveats): reasons (slope and midpoint not identified) when
    every run lies on one side of the midpoint L0; caveats when the runs
    do not reach the upper bend (the ceiling a + b is extrapolated) or the
    lower bend (the floor b is).
  """
  x = np.asarray(task_loss, np.float64)
  s = rise_fraction(params, x)
  s_lo, s_hi = float(s.min()), float(s.max())
  where = (f"the runs' task losses [{x.min():.4g}, {x.max():.4g}] sit at "
           f"{s_lo:.2f} to {s_hi:.2f} of the rise from b to a + b")
  reasons, caveats = [], []
  if s_hi < 0.5:
    reasons.append(f"every run is above the midpoint L0 = {params['L0']:.4g} "
                   f"in task loss ({where}): only the lower tail is seen, "
                   "where slope k, midpoint L0 and span a trade off")
  elif s_lo > 0.5:
    reasons.append(f"every run is below the midpoint L0 = {params['L0']:.4g} "
                   f"in task loss ({where}): only the upper tail is seen, "
                   "where slope k, midpoint L0 and floor b trade off")
  else:
    if s_hi < UPPER_BEND:
      caveats.append(f"the upper bend ({UPPER_BEND:.3f} of the rise) is not "
                     f"reached ({where}): the ceiling a + b is extrapolated")
    if s_lo > LOWER_BEND:
      caveats.append(f"the lower bend ({LOWER_BEND:.3f} of the rise) is not "
                     f"reached ({where}): the floor b is extrapolated")
  return reasons, caveats
