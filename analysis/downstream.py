"""Downstream scaling laws: a task metric from (N, D) in two steps.

Bhagia et al. 2024 (arXiv 2412.04403) §3 predict a task's accuracy from the
parameters N and training tokens D in two fitted steps, chained:

1. task loss L_task(N, D) = E + A/N^α + B/D^β, where the task loss is the
   gold answer's bits per byte (DESIGN.md §8: Σ NLL of the target / (ln 2 ·
   target bytes)); fitted here by Approach 3 (``chinchilla.fit_approach3``:
   log loss, Huber δ = 1e-3 summed, L-BFGS from Chinchilla's 4,500 starts)
   on the N and D columns the loss fits use;
2. metric Acc(L) = a/(1 + exp(−k(L − L0))) + b with k < 0 and the bounds of
   ``analysis.sigmoid`` (b the floor, a + b ≤ 1 the ceiling), fitted on the
   runs' observed (task loss, metric) pairs;

and the chain predicts Acĉ(N, D) = Acc(L̂_task(N, D)).

Held-out prediction. The paper fits both steps on small "ladder" runs and
predicts separately trained targets (7B-4T, 13B-5T), reporting the relative
error (pred − actual)/actual and the absolute error in points (four
ranked-classification tasks within 2 points). Here runs of the table are
held out (``holdout``): by default the one with the largest compute C
(ties: the largest N); ``"largest-budget"`` holds out every run within 1%
of the largest C (a whole isoFLOP budget: a real extrapolation in C); or a
run id. Both steps are fitted on the rest, and each held-out run's metric is
predicted from its N and D.

Intervals. One bootstrap over the fitted runs drives both steps (the run is
the resampling unit, ``bootstrap.resample_counts``, or the group of runs in
a ``unit`` column when the table has one): resample k refits step
1 (weighted Approach 3 objective, ``bootstrap.multistart_refit`` from the
full-data optimum, Chinchilla's best grid starts and perturbations,
``bootstrap.resample_starts``) and step 2 (the weighted sigmoid objective
from its optimum, its best grid starts and perturbations) on the same runs,
then chains them. The prediction error e = Acĉ − Acc_observed gets the
percentile interval of Acĉ_k − Acc_observed, the spread that the fit's
uncertainty gives the error: when the law is right it covers the error of
the true law at that run (the run's own measurement noise) with about the
stated coverage. Its prediction interval adds that noise, estimated by the
fitted runs' scatter about the chained law: Acĉ_k + r_k − Acc_observed
with r_k drawn from the fitted runs' residuals y_i − Acĉ(N_i, D_i); when the
law is right it covers 0 (the observation) with about the stated coverage,
so an observation outside it is a misfit of the law, not noise. A resample
succeeds when step 1 converges on >= 5 distinct runs and step 2 has >= P
distinct task losses (P = 4 parameters, 3 with a fixed floor).

Honesty (``identify.assess``, as for the loss fits):

* step 1: Approach 3's spread rules (>= 10 runs, >= 3 distinct N and D, log
  N and log D not collinear) and interval widths;
* step 2: >= 2 runs per parameter and >= P distinct task losses; slope k and
  midpoint L0 are its headline, not identified when every run lies on one
  side of L0 (``sigmoid.bend_reasons``), when k's half-width exceeds 50% of
  |k|, or L0's half the runs' range of task loss; an unreached floor or
  ceiling is a caveat;
* a held-out run outside the fitted runs' compute is marked as extrapolation
  with the factor; a predicted task loss outside the fitted runs' task losses
  as an extrapolation of the sigmoid.

Differences from the paper: step 2 uses the runs' final rows only (the paper
adds intermediate checkpoints, whose (loss, accuracy) pairs do not depend on
N and D; a checkpoint table with task columns would allow it), as plain
least squares like the paper's ``curve_fit`` but without its helper point
(L = 0, accuracy = the maximum).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis import bootstrap, chinchilla, identify, load, sigmoid

HOLDOUTS = ("largest", "largest-budget", "none")
# Metric-name endings whose prefix names the task (and split): the default
# loss column is prefix + "gold_bpb" (our fine-tuning evaluation's name),
# else prefix + "bpb". Longest first.
METRIC_SUFFIXES = ("accuracy_norm", "span_precision", "span_recall",
                   "macro_f1", "span_f1", "accuracy", "acc_norm", "exact",
                   "bleu", "chrf", "acc", "f1", "em")
LOSS_SUFFIXES = ("gold_bpb", "bpb")
N_PERTURBED = 4
N_GRID_STARTS = 3
# Perturbation scales of (θ_b, θ_a, log|k|) and of L0 as a fraction of the
# runs' task-loss range.
PERTURB_SCALE = np.array([0.5, 0.5, 0.3])
PERTURB_L0 = 0.1


def figure_stem(metric: str) -> str:
  """The figure's file stem for a metric column: ``downstream_<metric>``
  (characters other than letters, digits, ``-_.`` become ``_``)."""
  safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in metric)
  return f"downstream_{safe}"


def task_loss_column(columns, metric: str, loss: str | None = None
                     ) -> tuple[str, str]:
  """The task-loss column for ``metric``: (column, how it was chosen).

  Given ``loss``, that column; else the metric's name with its ending (one
  of ``METRIC_SUFFIXES``) replaced by ``gold_bpb`` or ``bpb``, the first
  that exists: ``test_accuracy`` → ``test_gold_bpb``,
  ``task_pkg_accuracy`` → ``task_pkg_bpb``.

  Raises:
    ValueError: a missing column, or no derivable one (names the flag).
  """
  columns = list(columns)
  if metric not in columns:
    raise ValueError(f"--task-metric: column {metric!r} not in table; "
                     f"columns are {columns}")
  if loss:
    if loss not in columns:
      raise ValueError(f"--task-loss: column {loss!r} not in table; columns "
                       f"are {columns}")
    if loss == metric:
      raise ValueError("--task-loss must differ from --task-metric")
    return loss, "given (--task-loss)"
  tried = []
  for suffix in METRIC_SUFFIXES:
    if metric.endswith(suffix):
      prefix = metric[:-len(suffix)]
      tried = [prefix + s for s in LOSS_SUFFIXES]
      for name in tried:
        if name in columns:
          return name, (f"derived from the metric's name ({metric!r} → "
                        f"{name!r})")
      break
  raise ValueError(f"--task-loss: no task-loss column for metric {metric!r}"
                   + (f" (tried {tried})" if tried else
                      f" (its name ends in none of {list(METRIC_SUFFIXES)})")
                   + "; name the gold-answer bits-per-byte column with "
                   "--task-loss COLUMN")


def holdout_mask(runs: pd.DataFrame, spec: str = "largest") -> np.ndarray:
  """[rows] bool: the runs held out by ``spec`` (see the module docstring).

  Args:
    runs: DataFrame with run, N, C.
    spec: "largest", "largest-budget", "none" or a run id.

  Raises:
    ValueError: an unknown spec that is no run id.
  """
  c = runs["C"].to_numpy(np.float64)
  mask = np.zeros(len(runs), bool)
  if spec == "none" or not len(runs):
    return mask
  if spec == "largest":
    order = np.lexsort((runs["N"].to_numpy(np.float64), c))
    mask[order[-1]] = True
    return mask
  if spec == "largest-budget":
    return c >= c.max() / (1.0 + identify.DISTINCT_RTOL)
  ids = runs["run"].astype(str).to_numpy()
  if spec in ids:
    return ids == spec
  raise ValueError(f"--task-holdout: {spec!r} is none of {list(HOLDOUTS)} "
                   "and no run id of the table")


def extrapolation_factor(c_target: float, c_fit) -> float | None:
  """C_target / max C_fit beyond the runs, / min C_fit below; None inside
  (values within ``identify.DISTINCT_RTOL`` of the range count as inside)."""
  lo, hi = float(np.min(c_fit)), float(np.max(c_fit))
  tol = 1.0 + identify.DISTINCT_RTOL
  if c_target > hi * tol:
    return float(c_target / hi)
  if c_target < lo / tol:
    return float(c_target / lo)
  return None


def chain(theta1_kx5, theta2_kxp, n, d, floor=None,
          metric_range=sigmoid.METRIC_RANGE) -> tuple[np.ndarray, np.ndarray]:
  """Chained predictions for K parameter rows at H targets.

  Args:
    theta1_kx5: [K, 5] step-1 θ (a, b, e, α, β) of ``chinchilla``.
    theta2_kxp: [K, P] step-2 θ of ``sigmoid``.
    n, d: [H] parameters and tokens of the targets.
    floor, metric_range: as the step-2 fit.

  Returns:
    (task_loss [K, H], metric [K, H]); NaN where a row is NaN.
  """
  t1 = np.atleast_2d(np.asarray(theta1_kx5, np.float64))
  p1 = dict(A=np.exp(t1[:, :1]), B=np.exp(t1[:, 1:2]), E=np.exp(t1[:, 2:3]),
            alpha=t1[:, 3:4], beta=t1[:, 4:5])
  with np.errstate(over="ignore", invalid="ignore"):
    loss = chinchilla.predict_loss(p1, np.asarray(n, np.float64)[None, :],
                                   np.asarray(d, np.float64)[None, :])
  p2 = sigmoid.params_from_thetas(theta2_kxp, floor, metric_range)
  return loss, sigmoid.predict(p2, loss)


def fit_two_step(n, d, task_loss, metric, *, floor=None,
                 metric_range=sigmoid.METRIC_RANGE,
                 delta: float = chinchilla.HUBER_DELTA):
  """Both steps on the same runs: (Approach3Fit, SigmoidFit).

  Raises:
    ValueError: as ``chinchilla.fit_approach3`` and ``sigmoid.fit_sigmoid``.
  """
  fit1 = chinchilla.fit_approach3(n, d, task_loss, delta=delta)
  fit2 = sigmoid.fit_sigmoid(task_loss, metric, floor=floor,
                             metric_range=metric_range)
  return fit1, fit2


def _sigmoid_starts(fit2, fg_full, x, y, k, rng) -> np.ndarray:
  """[K, S, P] step-2 starts: optimum, best grid starts, perturbations."""
  th = np.asarray(fit2.theta, np.float64)
  p = th.size
  grid = sigmoid.start_grid(x, y, fit2.floor, fit2.metric_range)
  fg, _ = fg_full(grid)
  best = grid[np.argsort(np.where(np.isfinite(fg), fg, np.inf),
                         kind="stable")[:N_GRID_STARTS]]
  span = float(np.ptp(x)) or max(0.1 * abs(float(x.max())), 1e-3)
  scale = np.r_[PERTURB_SCALE[3 - (p - 1):], PERTURB_L0 * span]
  pert = th + rng.normal(size=(k, N_PERTURBED, p)) * scale
  return np.concatenate([np.broadcast_to(th, (k, 1, p)),
                         np.broadcast_to(best, (k,) + best.shape), pert],
                        axis=1)


def bootstrap_two_step(n, d, task_loss, metric, run, fits, n_resamples: int,
                       seed: int = 0, targets=None,
                       delta: float = chinchilla.HUBER_DELTA) -> dict:
  """Refits both steps on resamples of the runs and chains them.

  Args:
    n, d, task_loss, metric: [m] the fitted runs' columns.
    run: [m] their resampling units (run ids, or group ids: rows sharing
      one are drawn together).
    fits: (Approach3Fit, SigmoidFit) on the full data.
    n_resamples: K.
    seed: resampling seed (perturbed starts use seed + 1).
    targets: (n [H], d [H]) to predict, or None.
    delta: Huber δ of step 1.

  Returns:
    dict theta1 [K, 5], theta2 [K, P] (NaN rows where that step failed),
    ok1, ok2, ok (both) [K] bool, moved1, moved2 (resamples whose best
    optimum left the full-data one), requested (K), and with targets
    task_loss, metric [K, H] (NaN where not ok).
  """
  fit1, fit2 = fits
  n, d, x, y = (np.asarray(v, np.float64) for v in (n, d, task_loss,
                                                     metric))
  k = int(n_resamples)
  counts = bootstrap.resample_counts(run, k, seed)
  rng = np.random.default_rng(seed + 1)
  args1 = (np.log(n), np.log(d), np.log(x), delta)
  fg1 = chinchilla.make_objective(*args1, weights=counts)
  starts1 = bootstrap.resample_starts(fit1.theta,
                                      chinchilla.make_objective(*args1), k,
                                      rng)
  res1 = bootstrap.multistart_refit(fg1, starts1)
  distinct_nd = np.array([np.unique(np.stack([n[w > 0], d[w > 0]]),
                                    axis=1).shape[1] for w in counts])
  ok1 = res1["converged"] & (distinct_nd >= 5)
  kw = dict(floor=fit2.floor, metric_range=fit2.metric_range)
  fg2 = sigmoid.make_objective(x, y, weights=counts, **kw)
  starts2 = _sigmoid_starts(fit2, sigmoid.make_objective(x, y, **kw), x, y,
                            k, rng)
  res2 = bootstrap.multistart_refit(fg2, starts2)
  distinct_x = np.array([identify.count_distinct(x[w > 0]) for w in counts])
  ok2 = np.isfinite(res2["f"]) & (distinct_x >= fit2.n_params)
  out = dict(theta1=np.where(ok1[:, None], res1["x"], np.nan),
             theta2=np.where(ok2[:, None], res2["x"], np.nan), ok1=ok1,
             ok2=ok2, ok=ok1 & ok2, moved1=res1["moved"] & ok1,
             moved2=res2["moved"] & ok2, requested=k)
  if targets is not None:
    tl, tm = chain(out["theta1"], out["theta2"], *targets, **kw)
    bad = ~out["ok"][:, None]
    out["task_loss"] = np.where(bad, np.nan, tl)
    out["metric"] = np.where(bad, np.nan, tm)
  return out


def _coef(value, samples, level, **extra) -> dict:
  entry = dict(value=float(value), **extra)
  if samples is None:
    return {**entry, "ci": None, "n_ok": 0}
  lo, hi, n_ok = bootstrap.interval(samples, level)
  return {**entry, "ci": [lo, hi] if n_ok >= 2 else None, "n_ok": n_ok}


def _step1_json(fit1, boot, level, n, d, x) -> dict:
  """Step 1 as Approach 3 is reported: coefficients, spread, widths."""
  th = None if boot is None else boot["theta1"]
  samples = {} if th is None else dict(
      A=np.exp(th[:, 0]), B=np.exp(th[:, 1]), E=np.exp(th[:, 2]),
      alpha=th[:, 3], beta=th[:, 4])
  out = {name: _coef(fit1.params[name], samples.get(name), level)
         for name in ("E", "A", "B", "alpha", "beta")}
  r = np.log(x) - np.log(chinchilla.predict_loss(fit1.params, n, d))
  out.update(law="E + A/N^alpha + B/D^beta", n_points=fit1.n_points,
             rms_log_residual=float(np.sqrt(np.mean(r * r))),
             warnings=list(fit1.warnings))
  degenerate = [w for w in fit1.warnings if "not identifiable" in w]
  edge = [w for w in fit1.warnings if "edge of the start grid" in w]
  flags = identify.assess(
      {k: out[k] for k in ("E", "A", "B", "alpha", "beta")},
      spread=identify.spread_reasons("approach3", n=n, d=d), extra=degenerate,
      caveats=edge, loss_min=float(x.min()),
      n_ok=None if boot is None else int(boot["ok1"].sum()),
      n_requested=0 if boot is None else boot["requested"])
  if boot is not None:
    flags["bootstrap"]["left_full_data_optimum"] = int(boot["moved1"].sum())
  out.update(flags)
  return out


def _step2_json(fit2, boot, level, x) -> dict:
  """Step 2: bounded coefficients, the bend check, slope and midpoint."""
  samples = {}
  if boot is not None:
    p = sigmoid.params_from_thetas(boot["theta2"], fit2.floor,
                                   fit2.metric_range)
    samples = {name: p[name][:, 0] for name in ("a", "b", "k", "L0")}
    samples["ceiling"] = samples["a"] + samples["b"]
  out = {}
  for name in ("a", "b", "k", "L0", "ceiling"):
    if name == "b" and fit2.floor is not None:
      out[name] = dict(value=fit2.floor, ci=None, n_ok=0, fixed=True)
      continue
    out[name] = _coef(fit2.params[name], samples.get(name), level)
  npar = fit2.n_params
  spread = []
  if x.size < 2 * npar:
    spread.append(f"only {x.size} runs for the sigmoid's {npar} parameters "
                  f"(need >= {2 * npar})")
  k_x = identify.count_distinct(x)
  if k_x < npar + 1:
    spread.append(f"only {k_x} distinct task-loss value(s) for {npar} "
                  f"parameters (need >= {npar + 1}, values within "
                  f"{identify.DISTINCT_RTOL:.0%} count as one)")
  bend, caveats = sigmoid.bend_reasons(fit2.params, x)
  rise = sigmoid.rise_fraction(fit2.params, x)
  out.update(law="a/(1 + exp(-k (L - L0))) + b, k < 0",
             n_points=fit2.n_points, rms_residual=fit2.rms_residual,
             floor_fixed=fit2.floor is not None,
             metric_range=list(fit2.metric_range),
             rise=[float(rise.min()), float(rise.max())],
             task_loss_range=[float(x.min()), float(x.max())])
  coefs = {k: out[k] for k in ("a", "b", "k", "L0", "ceiling")
           if not out[k].get("fixed")}
  kinds = dict(a="bounded", b="bounded", ceiling="bounded", k="slope",
               L0=("location", float(np.ptp(x))))
  flags = identify.assess(
      coefs, spread=spread, extra=bend, caveats=caveats, headline=("k", "L0"),
      kinds=kinds, n_ok=None if boot is None else int(boot["ok2"].sum()),
      n_requested=0 if boot is None else boot["requested"])
  if boot is not None:
    flags["bootstrap"]["left_full_data_optimum"] = int(boot["moved2"].sum())
  out.update(flags)
  return out


def _combine(step1: dict, step2: dict, boot) -> dict:
  """Flags of the chain: both steps' reasons, and the chain's successes."""
  reasons = ([f"step 1: {r}" for r in step1["reasons"]]
             + [f"step 2: {r}" for r in step2["reasons"]])
  caveats = ([f"step 1: {c}" for c in step1["caveats"]]
             + [f"step 2: {c}" for c in step2["caveats"]])
  k = 0 if boot is None else boot["requested"]
  n_ok = None if boot is None else int(boot["ok"].sum())
  boot_flag = identify.bootstrap_check(n_ok, k)
  if boot_flag and not (step1["unreliable"] or step2["unreliable"]):
    reasons.append(f"chain: {boot_flag}")
  return dict(identifiable=step1["identifiable"] and step2["identifiable"],
              unreliable=bool(step1["unreliable"] or step2["unreliable"]
                              or boot_flag),
              reasons=reasons, caveats=caveats,
              bootstrap=dict(requested=k, succeeded=n_ok,
                             success_rate=None if not k else n_ok / k))


def _fit_json(n, d, x, y, fits, boot, level) -> dict:
  step1 = _step1_json(fits[0], boot, level, n, d, x)
  step2 = _step2_json(fits[1], boot, level, x)
  return dict(runs=int(n.size), step1=step1, step2=step2,
              **_combine(step1, step2, boot))


def analyze(runs: pd.DataFrame, *, holdout: str = "largest", floor=None,
            metric_range=sigmoid.METRIC_RANGE, n_resamples: int = 100,
            seed: int = 0, level: float = 0.95,
            delta: float = chinchilla.HUBER_DELTA) -> dict:
  """The two-step law on all runs, and its prediction of held-out runs.

  Args:
    runs: DataFrame run, N, D, C, task_loss, metric (one row per run;
      finite, N, D, C, task_loss > 0) and optionally unit (the bootstrap's
      resampling unit; default the run).
    holdout: see ``holdout_mask``.
    floor: fixed sigmoid floor b (chance accuracy), or None to fit it.
    metric_range: (lo, hi) of the metric.
    n_resamples, seed, level: bootstrap (0 resamples = no intervals).
    delta: Huber δ of step 1.

  Returns:
    JSON-ready dict: fitted (bool), runs, full (``_fit_json`` of all runs:
    step1, step2 and the flags), holdout (spec, fit on the rest, runs: one
    entry per held-out run with observed, predicted and error, each
    ``{"value", "ci", "n_ok"}``, the error's prediction_interval (with the
    fitted runs' scatter, scatter_rms) and whether the observation lies in
    it, extrapolation, caveats; mean_abs_error over them), points (for the figure), identifiable,
    unreliable, reasons, caveats (those of the held-out fit, which made the
    prediction, plus the extrapolation notes).

  Raises:
    ValueError: an unknown holdout, or the inputs ``sigmoid.check_inputs``
      rejects.
  """
  n, d, c, x, y = (runs[k].to_numpy(np.float64) for k in ("N", "D", "C",
                                                           "task_loss",
                                                           "metric"))
  run = runs["run"].astype(str).to_numpy()
  unit = (runs["unit"] if "unit" in runs else runs["run"]).astype(
      str).to_numpy()
  sigmoid.check_inputs(x, y, floor, metric_range)
  kw = dict(floor=floor, metric_range=metric_range, delta=delta)
  lo, hi = (float(v) for v in metric_range)
  held = holdout_mask(runs, holdout)
  out: dict = dict(fitted=False, runs=int(n.size), holdout=dict(spec=holdout),
                   points=dict(run=run.tolist(), N=n.tolist(), D=d.tolist(),
                               C=c.tolist(), task_loss=x.tolist(),
                               metric=y.tolist(), held_out=held.tolist()))
  if n.size < 3:
    out.update(identifiable=False, unreliable=False, caveats=[],
               reasons=[f"only {n.size} runs with both task columns; the "
                        "two-step law needs >= 3"])
    return out
  fits = fit_two_step(n, d, x, y, **kw)
  boot = (bootstrap_two_step(n, d, x, y, unit, fits, n_resamples, seed,
                             delta=delta) if n_resamples else None)
  out.update(fitted=True, full=_fit_json(n, d, x, y, fits, boot, level))
  keep = ~held
  out["holdout"].update(runs=[], fit=None, mean_abs_error=None)
  if not held.any():
    out.update({k: out["full"][k] for k in ("identifiable", "unreliable",
                                            "reasons", "caveats")})
    out["holdout"]["reason"] = f"no run held out (--task-holdout {holdout})"
    return out
  if keep.sum() < 3:
    out.update(identifiable=False, unreliable=False, caveats=[],
               reasons=[f"only {int(keep.sum())} runs left after holding "
                        f"out {int(held.sum())}; need >= 3"])
    return out
  nk, dk, xk, yk = n[keep], d[keep], x[keep], y[keep]
  fits_k = fit_two_step(nk, dk, xk, yk, **kw)
  targets = (n[held], d[held])
  boot_k = (bootstrap_two_step(nk, dk, xk, yk, unit[keep], fits_k,
                               n_resamples, seed, targets, delta)
            if n_resamples else None)
  fit_k = _fit_json(nk, dk, xk, yk, fits_k, boot_k, level)
  out["holdout"]["fit"] = fit_k
  th1 = fits_k[0].theta[None]
  th2 = fits_k[1].theta[None]
  pl_all, pm_all = chain(th1, th2, n, d, floor, metric_range)
  out["points"]["predicted_task_loss"] = pl_all[0].tolist()
  out["points"]["predicted_metric"] = pm_all[0].tolist()
  pl, pm = pl_all[0][held], pm_all[0][held]
  points = 100.0 / (hi - lo)
  resid = y[keep] - pm_all[0][keep]  # the fitted runs' scatter
  draws = np.random.default_rng(seed + 2).choice(resid, size=(
      n_resamples, int(held.sum()))) if n_resamples else None
  entries, caveats = [], []
  for j, i in enumerate(np.flatnonzero(held)):
    sl = None if boot_k is None else boot_k["task_loss"][:, j]
    sm = None if boot_k is None else boot_k["metric"][:, j]
    err = float(pm[j] - y[i])
    e = dict(run=run[i], N=float(n[i]), D=float(d[i]), C=float(c[i]),
             extrapolation=extrapolation_factor(c[i], c[keep]),
             observed=dict(metric=float(y[i]), task_loss=float(x[i])),
             predicted=dict(metric=_coef(pm[j], sm, level),
                            task_loss=_coef(pl[j], sl, level)),
             error=_coef(err, None if sm is None else sm - y[i], level),
             abs_error_points=abs(err) * points,
             relative_error=err / y[i] if y[i] > 0 else None,
             task_loss_relative_error=float((pl[j] - x[i]) / x[i]))
    ci = e["predicted"]["metric"]["ci"]
    e["observed_in_interval"] = (None if ci is None else
                                 bool(ci[0] <= y[i] <= ci[1]))
    e["scatter_rms"] = float(np.sqrt(np.mean(resid ** 2)))
    e["error"]["prediction_interval"] = None
    e["observed_in_prediction_interval"] = None
    if sm is not None:
      p_lo, p_hi, p_ok = bootstrap.interval(sm + draws[:, j] - y[i], level)
      if p_ok >= 2:
        e["error"]["prediction_interval"] = [p_lo, p_hi]
        e["observed_in_prediction_interval"] = bool(p_lo <= 0.0 <= p_hi)
    notes = []
    if e["extrapolation"] is not None:
      notes.append(f"run {run[i]}: extrapolation ×{e['extrapolation']:.3g} "
                   "in compute " + ("beyond the largest" if
                                    e["extrapolation"] > 1 else
                                    "below the smallest") + " fitted run")
    if pl[j] < xk.min() or pl[j] > xk.max():
      notes.append(f"run {run[i]}: predicted task loss {pl[j]:.4g} is "
                   f"outside the fitted runs' [{xk.min():.4g}, "
                   f"{xk.max():.4g}]: the sigmoid is extrapolated")
    e["caveats"] = notes
    caveats += notes
    entries.append(e)
  out["holdout"]["runs"] = entries
  abs_err = np.abs(pm - y[held])
  mae_s = (None if boot_k is None else
           np.mean(np.abs(boot_k["metric"] - y[held][None, :]), axis=1))
  out["holdout"]["mean_abs_error"] = _coef(float(abs_err.mean()), mae_s,
                                           level)
  out.update(identifiable=fit_k["identifiable"],
             unreliable=fit_k["unreliable"], reasons=list(fit_k["reasons"]),
             caveats=list(fit_k["caveats"]) + caveats)
  return out


def analyze_table(path: str, metric: str, loss: str | None = None, *,
                  load_opts: dict | None = None, group_by: str | None = None,
                  holdout: str = "largest", floor=None,
                  metric_range=sigmoid.METRIC_RANGE, n_resamples: int = 100,
                  seed: int = 0, level: float = 0.95,
                  delta: float = chinchilla.HUBER_DELTA) -> dict:
  """``scaling analyze PATH --task-metric METRIC [--task-loss LOSS]``.

  Loads the table with the task loss as its loss (``load.load_table``, with
  the column options of the loss fits, no rows dropped by loss), drops rows
  without a finite metric, and runs ``analyze`` on the whole table or on
  each value of ``group_by``.

  Args:
    path: sweep directory or CSV.
    metric: the metric column (e.g. ``test_accuracy``).
    loss: its task-loss column, or None (``task_loss_column``).
    load_opts: column options of ``load.load_table`` (n_col, d_col, ...;
      loss_col and drop_highest_loss are ignored).
    group_by: a column: one law per value (e.g. objective).
    holdout, floor, metric_range, n_resamples, seed, level, delta: see
      ``analyze``.

  Returns:
    JSON-ready dict metric, loss, loss_source, columns, rows (read, used,
    rejected), settings, and either the ``analyze`` fields (whole table) or
    group_col and groups (one ``analyze`` dict per group, with ``group``).

  Raises:
    FileNotFoundError, ValueError: as ``load.load_table``; missing or
      underivable columns (naming ``--task-metric`` / ``--task-loss``).
  """
  header = list(pd.read_csv(load.results_csv(path), nrows=0).columns)
  loss_col, how = task_loss_column(header, metric, loss)
  if group_by and group_by not in header:
    raise ValueError(f"--group-by: column {group_by!r} not in table; "
                     f"columns are {header}")
  opts = {k: v for k, v in (load_opts or {}).items()
          if k not in ("loss_col", "drop_highest_loss")}
  keep = (metric,) + ((group_by,) if group_by else ())
  table = load.load_table(path, loss_col=loss_col, keep=keep, **opts)
  runs = table.runs.rename(columns={"loss": "task_loss"})
  runs["metric"] = pd.to_numeric(runs[metric], errors="coerce")
  rejected = dict(table.rejected)
  bad = ~np.isfinite(runs["metric"].to_numpy(np.float64))
  if bad.any():
    rejected[f"{metric} not finite"] = int(bad.sum())
    runs = runs[~bad].reset_index(drop=True)
  out = dict(metric=metric, loss=loss_col, loss_source=how,
             columns={**table.columns, "loss": loss_col, "metric": metric},
             rows=dict(read=table.n_rows, used=int(len(runs)),
                       rejected=rejected),
             settings=dict(holdout=holdout, floor=floor,
                           metric_range=[float(v) for v in metric_range],
                           bootstrap=int(n_resamples), seed=int(seed),
                           level=float(level), huber_delta=float(delta)))
  kw = dict(holdout=holdout, floor=floor, metric_range=metric_range,
            n_resamples=n_resamples, seed=seed, level=level, delta=delta)
  if not group_by:
    out.update(analyze(runs, **kw))
    return out
  groups = []
  for value in pd.unique(runs[group_by].astype(str)):
    sub = runs[runs[group_by].astype(str) == value].reset_index(drop=True)
    foreign = holdout not in HOLDOUTS and holdout not in set(sub["run"])
    entry = analyze(sub, **{**kw, "holdout": "none" if foreign else holdout})
    if foreign and entry.get("fitted"):
      entry["holdout"].update(spec=holdout, reason=f"run {holdout!r} is not "
                              "in this group")
    groups.append(dict(group=value, **entry))
  out.update(group_col=group_by, groups=groups)
  return out
