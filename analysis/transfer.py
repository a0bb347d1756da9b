"""Learning-rate transfer across width: the best learning rate per width and
how far it drifts, per parametrisation (Yang et al. 2022, arXiv 2203.03466,
Fig. 1 and §6: under μP the optimum stays put as width grows; under SP it
moves to smaller rates).

Input: a table of finished runs with a width column (``d_model``), the peak
learning rate (``peak_lr``), the final loss (``eval_loss``) and optionally a
parametrisation column; the rates form a grid evenly spaced in log2 (×2
apart in the ``lr_transfer`` experiment). Pure numpy/scipy; no training code.

Per (parametrisation, width):

1. the loss at each tried rate is the lowest of its runs; a rate whose runs
   all diverged (NaN, infinite or failed) is left out, so the best tried
   rate is the argmin of the finite losses;
2. the optimum is *on the grid's edge* when the best tried rate is the
   smallest or largest of the grid: it may lie beyond, so the width gets a
   bound, no estimate, and is left out of the drift;
3. otherwise a parabola loss = c0 + c1·u + c2·u² in u = log2(lr) is fitted
   by least squares to the best rate and up to ``window`` tried rates either
   side; u* = −c1 / (2·c2), with a delta-method standard error from the
   parabola's covariance and a Student-t interval on n − 3 degrees of freedom
   (none with 3 points). A curvature that is not positive, or a vertex
   outside the fitted rates, is not identifiable.

Across widths: the drift is the least-squares slope of u* against log2
width (= d log lr* / d log width; μP predicts 0, SP with Adam about −1,
Yang et al. 2022 §2), with its Student-t interval and a residual-bootstrap
interval: each width's parabola residuals are resampled and every vertex and
the slope refitted, counting the resamples in which every width stayed
identifiable (residuals rescaled by sqrt(n / (n − 3)) for the fitted
coefficients). ``moved_grid_steps`` is how far the optimum travels across the
widths in grid steps, for the best tried rates and for the fitted vertices.

Shareable with ``analysis.hparams`` (lr*(N) per size): :func:`fit_optimum`
is the same parabola-in-log2 reading of one size's optimum.
"""

from __future__ import annotations

import json
import math
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import matplotlib
import numpy as np
import pandas as pd
from scipy import stats

from analysis import bootstrap
from analysis import load
from analysis import plots

WINDOW = 2
LEVEL = 0.95
NAMES = {"sp": "SP", "mup": "μP", "completep": "CompleteP"}


def _parabola(u, y):
  """Least-squares (c0, c1, c2), their covariance (None without dof), dof."""
  x = np.stack([np.ones_like(u), u, u * u], axis=1)
  coef, _, _, _ = np.linalg.lstsq(x, y, rcond=None)
  dof = u.size - 3
  cov = None
  if dof > 0:
    r = y - x @ coef
    cov = np.linalg.inv(x.T @ x) * float(r @ r) / dof
  return coef, cov, dof


def fit_optimum(lr, loss, window: int = WINDOW, level: float = LEVEL,
                grid=None) -> dict:
  """The best learning rate of one width (module docstring, steps 1–3).

  Args:
    lr: [n] peak learning rate of each run (> 0).
    loss: [n] final loss of each run (nats); NaN or inf for a diverged run.
    window: tried rates fitted either side of the best one.
    level: interval coverage.
    grid: every rate tried, finished or not (default ``lr``); its ends are
      the grid's edges.

  Returns:
    dict ``log2_lr`` (u*, or the best tried log2 rate when not fitted),
    ``lr`` (2^u*), ``best_tried_log2``, ``edge`` (None, "low", "high"),
    ``identifiable``, ``reasons``, ``ci_log2`` ([lo, hi] or None),
    ``se_log2``, ``curvature`` (c2, nats per octave²), ``n_points``,
    ``fitted`` ([u values fitted]), and ``_fit`` (arrays for the bootstrap).

  Raises:
    ValueError: no finite loss.
  """
  u_all = np.log2(np.asarray(lr, np.float64))
  y_all = np.asarray(loss, np.float64)
  ok = np.isfinite(y_all) & np.isfinite(u_all)
  if not ok.any():
    raise ValueError("no finite loss at any learning rate")
  u = np.unique(u_all[ok])
  y = np.array([y_all[ok][u_all[ok] == v].min() for v in u])
  g = np.log2(np.asarray(lr if grid is None else grid, np.float64))
  best = int(np.argmin(y))
  out = dict(best_tried_log2=float(u[best]), log2_lr=float(u[best]),
             edge=None, identifiable=False, reasons=[], ci_log2=None,
             se_log2=None, curvature=None, n_points=int(u.size), fitted=[])
  if u[best] <= g.min():
    out["edge"] = "low"
  elif u[best] >= g.max():
    out["edge"] = "high"
  if out["edge"]:
    out["reasons"].append(f"best tried rate 2^{u[best]:.2f} is on the "
                          f"grid's {out['edge']} edge")
    out["lr"] = float(2.0 ** out["log2_lr"])
    return out
  lo, hi = max(0, best - window), min(u.size, best + window + 1)
  uu, yy = u[lo:hi], y[lo:hi]
  if uu.size < 3:
    out["reasons"].append("fewer than 3 finite rates around the best one")
    out["lr"] = float(2.0 ** out["log2_lr"])
    return out
  coef, cov, dof = _parabola(uu, yy)
  c2 = float(coef[2])
  out.update(curvature=c2, fitted=[float(v) for v in uu],
             _fit=dict(u=uu, y=yy, coef=coef))
  if c2 <= 0:
    out["reasons"].append(f"curvature not positive (c2 = {c2:.3g})")
  else:
    vertex = float(-coef[1] / (2 * c2))
    out["log2_lr"] = vertex
    if not uu.min() <= vertex <= uu.max():
      out["reasons"].append(f"vertex 2^{vertex:.2f} outside the fitted rates")
    if cov is not None:
      grad = np.array([0.0, -1.0 / (2 * c2), coef[1] / (2 * c2 * c2)])
      se = float(np.sqrt(max(grad @ cov @ grad, 0.0)))
      t = stats.t.ppf(0.5 + level / 2, dof)
      out.update(se_log2=se, ci_log2=[vertex - t * se, vertex + t * se])
      c2_se = float(np.sqrt(max(cov[2, 2], 0.0)))
      if c2 - t * c2_se <= 0:
        out["reasons"].append(f"curvature not clearly positive (c2 = {c2:.3g}"
                              f" ± {c2_se:.3g})")
  out["identifiable"] = not out["reasons"]
  out["lr"] = float(2.0 ** out["log2_lr"])
  return out


def _slope(x, y):
  """OLS slope of y on x with its Student-t interval (nan with < 3 points)."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.size < 2 or np.unique(x).size < 2:
    return math.nan, [math.nan, math.nan]
  res = stats.linregress(x, y)
  if x.size < 3:
    return float(res.slope), [math.nan, math.nan]
  t = stats.t.ppf(0.5 + LEVEL / 2, x.size - 2)
  return float(res.slope), [float(res.slope - t * res.stderr),
                            float(res.slope + t * res.stderr)]


def drift(widths, fits, grid_step_log2: float = 1.0,
          n_resamples: int = 1000, seed: int = 0) -> dict:
  """How the optimum moves across width (module docstring).

  Args:
    widths: [k] widths (d_model).
    fits: [k] :func:`fit_optimum` results, in the same order.
    grid_step_log2: the grid's spacing in log2 lr (1 for ×2 apart).
    n_resamples: residual-bootstrap resamples.
    seed: numpy seed.

  Returns:
    dict ``slope`` (d log2 lr* / d log2 width over the identifiable
    widths), ``slope_ci_t``, ``slope_ci_bootstrap``, ``bootstrap_ok`` (of
    ``bootstrap_requested``), ``widths_used``, ``widths_left_out`` (with
    reasons), ``moved_grid_steps`` (best tried, fitted).
  """
  widths = np.asarray(widths, np.float64)
  use = [i for i, f in enumerate(fits) if f["identifiable"]]
  x = np.log2(widths[use])
  y = np.array([fits[i]["log2_lr"] for i in use])
  slope, ci = _slope(x, y)
  boot = []
  rng = np.random.default_rng(seed)
  ok = 0
  if len(use) >= 2:
    for _ in range(n_resamples):
      ys, good = [], True
      for i in use:
        f = fits[i]["_fit"]
        fitted = np.stack([np.ones_like(f["u"]), f["u"], f["u"] ** 2], 1) \
            @ f["coef"]
        r = f["y"] - fitted
        if r.size > 3:  # a 3-coefficient fit shrinks its residuals
          r = r * np.sqrt(r.size / (r.size - 3))
        yb = fitted + rng.choice(r, size=r.size, replace=True)
        cb, _, _ = _parabola(f["u"], yb)
        if cb[2] <= 0:
          good = False
          break
        v = -cb[1] / (2 * cb[2])
        if not f["u"].min() <= v <= f["u"].max():
          good = False
          break
        ys.append(v)
      if good:
        ok += 1
        boot.append(_slope(x, ys)[0])
  lo, hi, _ = bootstrap.interval(boot, LEVEL)
  best = [f["best_tried_log2"] for f in fits]
  fitted = [f["log2_lr"] for f in fits if f["identifiable"]]
  spacing = grid_step_log2
  return dict(
      slope=slope, slope_ci_t=ci, slope_ci_bootstrap=[lo, hi],
      bootstrap_ok=ok, bootstrap_requested=n_resamples if len(use) >= 2 else 0,
      widths_used=[int(widths[i]) for i in use],
      widths_left_out={int(w): "; ".join(f["reasons"]) for w, f in
                       zip(widths, fits) if not f["identifiable"]},
      grid_step_log2=spacing,
      moved_grid_steps=dict(
          best_tried=(max(best) - min(best)) / spacing,
          fitted=((max(fitted) - min(fitted)) / spacing
                  if len(fitted) >= 2 else None)))


def grid_step(lr) -> float:
  """The median spacing of the distinct rates in log2 (1 when fewer than 2)."""
  u = np.unique(np.log2(np.asarray(lr, np.float64)))
  return float(np.median(np.diff(u))) if u.size >= 2 else 1.0


def analyze_table(df: pd.DataFrame, *, lr_col: str = "peak_lr",
                  width_col: str = "d_model", loss_col: str = "eval_loss",
                  group_col: str = "parametrization", window: int = WINDOW,
                  n_resamples: int = 1000, seed: int = 0) -> dict:
  """Transfer per parametrisation: each width's optimum and the drift.

  Args:
    df: one row per run; rows with ``status`` other than ``finished`` count
      as diverged (their rate stays on the grid, their loss is NaN).
    lr_col, width_col, loss_col: column names.
    group_col: parametrisation column (absent: one group ``all``).
    window, n_resamples, seed: as :func:`fit_optimum` and :func:`drift`.

  Returns:
    ``{group: {"widths": {width: fit}, "drift": drift dict,
    "at_most_one_grid_step": bool | None}}``; the verdict is None when fewer
    than two widths are identifiable.

  Raises:
    ValueError: a missing column or no finite loss for some width.
  """
  for col in (lr_col, width_col, loss_col):
    if col not in df:
      raise ValueError(f"transfer analysis: the table has no '{col}' column "
                       "(runs need the learning rate, width and final loss)")
  df = df.copy()
  df[loss_col] = pd.to_numeric(df[loss_col], errors="coerce")
  if "status" in df:
    df.loc[df.status.astype(str) != "finished", loss_col] = np.nan
  groups = df[group_col].astype(str) if group_col in df else \
      pd.Series("all", index=df.index)
  out = {}
  for name in dict.fromkeys(groups):
    g = df[groups == name]
    widths = sorted(g[width_col].unique())
    fits = [fit_optimum(g[g[width_col] == w][lr_col],
                        g[g[width_col] == w][loss_col], window=window)
            for w in widths]
    d = drift(widths, fits, grid_step(g[lr_col]), n_resamples, seed)
    moved = d["moved_grid_steps"]
    verdict = None
    if moved["fitted"] is not None:
      verdict = bool(moved["fitted"] <= 1.0 and moved["best_tried"] <= 1.0)
    out[name] = dict(
        widths={int(w): {k: v for k, v in f.items() if not k.startswith("_")}
                for w, f in zip(widths, fits)},
        drift=d, at_most_one_grid_step=verdict)
  return out


def format_report(result: dict) -> str:
  """Markdown: per parametrisation the optimum per width and the drift."""
  lines = ["# Learning-rate transfer across width", ""]
  for name, r in result.items():
    d = r["drift"]
    lines.append(f"## {NAMES.get(name, name)} ({name})")
    lines.append("")
    lines.append("| width | best tried log2 lr | fitted log2 lr* (95% CI) | "
                 "curvature (nats/octave²) | note |")
    lines.append("|---|---|---|---|---|")
    for w, f in r["widths"].items():
      ci = f["ci_log2"]
      fit = (f"{f['log2_lr']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci
                                       else "")) if f["identifiable"] else "—"
      curv = f"{f['curvature']:.3g}" if f["curvature"] is not None else "—"
      lines.append(f"| {w} | {f['best_tried_log2']:.2f} | {fit} | {curv} | "
                   f"{'; '.join(f['reasons'])} |")
    lines.append("")
    lo, hi = d["slope_ci_t"]
    blo, bhi = d["slope_ci_bootstrap"]
    lines.append(
        f"Drift d log2 lr* / d log2 width = {d['slope']:.3f} (t 95% CI "
        f"[{lo:.3f}, {hi:.3f}]; bootstrap 95% CI [{blo:.3f}, {bhi:.3f}], "
        f"{d['bootstrap_ok']}/{d['bootstrap_requested']} resamples "
        f"identifiable) over widths {d['widths_used']}.")
    m = d["moved_grid_steps"]
    fitted = f"{m['fitted']:.2f}" if m["fitted"] is not None else "n/a"
    lines.append(f"The optimum moves {m['best_tried']:.0f} grid steps (best "
                 f"tried) and {fitted} grid steps (fitted) across the widths; "
                 f"grid step = {d['grid_step_log2']:g} in log2 lr.")
    if d["widths_left_out"]:
      lines.append("Left out of the drift: " + "; ".join(
          f"{w}: {why}" for w, why in d["widths_left_out"].items()) + ".")
    if r["at_most_one_grid_step"] is not None:
      lines.append(f"At most one grid step: "
                   f"{'yes' if r['at_most_one_grid_step'] else 'no'}.")
    lines.append("")
  return "\n".join(lines)


def plot(df: pd.DataFrame, result: dict, out_dir: str, *,
         lr_col: str = "peak_lr", width_col: str = "d_model",
         loss_col: str = "eval_loss", group_col: str = "parametrization",
         stem: str = "transfer") -> list[str]:
  """Loss against log2 learning rate, one line per width, one panel per
  parametrisation, with each fitted optimum (★). Returns the file names."""
  groups = list(result)
  fig = Figure(figsize=(5.0 * len(groups), 3.8), layout="constrained")
  FigureCanvasAgg(fig)
  cmap = matplotlib.colormaps["viridis"]
  ylo, yhi = [], []
  axes = []
  for i, name in enumerate(groups):
    ax = fig.add_subplot(1, len(groups), i + 1)
    axes.append(ax)
    g = df[df[group_col].astype(str) == name] if group_col in df else df
    widths = sorted(result[name]["widths"])
    for k, w in enumerate(widths):
      rows = g[g[width_col] == w].sort_values(lr_col)
      y = pd.to_numeric(rows[loss_col], errors="coerce").to_numpy()
      colour = cmap(k / max(len(widths) - 1, 1))
      ax.plot(np.log2(rows[lr_col].to_numpy(np.float64)), y, "o-", ms=3,
              color=colour, label=f"d_model {w}")
      f = result[name]["widths"][w]
      if f["identifiable"]:
        ax.axvline(f["log2_lr"], color=colour, lw=0.6, ls=":")
      finite = y[np.isfinite(y)]
      if finite.size:
        ylo.append(finite.min())
        yhi.append(np.percentile(finite, 75))
    d = result[name]["drift"]
    ax.set_title(f"{NAMES.get(name, name)}: drift {d['slope']:+.2f} "
                 f"log2 lr per log2 width", fontsize=9)
    ax.set_xlabel("log2 peak learning rate", fontsize=8)
    ax.set_ylabel(plots.LOSS_LABEL, fontsize=8)
    ax.legend(fontsize=7)
  if ylo:
    pad = 0.05 * (max(yhi) - min(ylo))
    for ax in axes:
      ax.set_ylim(min(ylo) - pad, max(yhi) + pad)
  return plots._save(fig, out_dir, stem)  # pylint: disable=protected-access


def analyze(path: str, out_dir: str, **options) -> dict:
  """Reads a sweep directory or CSV, writes ``transfer.json``,
  ``transfer.md`` and ``transfer.png``/``.svg`` into ``out_dir``.

  The ``lr_transfer`` experiment's analysis hook and ``scaling analyze PATH
  --transfer``.

  Raises:
    FileNotFoundError: no table at ``path``.  ValueError: as
      :func:`analyze_table`.
  """
  df = pd.read_csv(load.results_csv(path))
  result = analyze_table(df, **options)
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "transfer.json"), "w") as f:
    json.dump(result, f, indent=1, default=_json_default)
  with open(os.path.join(out_dir, "transfer.md"), "w") as f:
    f.write(format_report(result))
  keys = {k: options[k] for k in ("lr_col", "width_col", "loss_col",
                                  "group_col") if k in options}
  files = plot(df, result, out_dir, **keys)
  return dict(result=result, plots=files, report=format_report(result))


def _json_default(value):
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  raise TypeError(f"not JSON serialisable: {type(value).__name__}")
