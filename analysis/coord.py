"""Coordinate-check analysis: log-log slopes of activation size against width
(or depth), the flatness verdict and the plot.

Works on any table with columns ``parametrization``, the size column
(``d_model`` or ``n_layers``), ``step``, ``layer`` and the value columns
``mean_abs`` (mean |x|) and ``mean_abs_change`` (mean |x_t − x_0|), such as
the rows of ``scaling check coord`` (``scaling.coord_check``); no training
code.

The verdict follows microsoft/mup's coordinate-check tests: a layer type is
*flat* when the least-squares slope of log mean|x_t − x_0| against log size
has |slope| ≤ :data:`TOLERANCE` = 0.13, i.e. its change grows or shrinks by
at most 8^0.13 ≈ 1.3× over an 8× width range. Under SP with Adam the change
of hidden activations grows about ∝ width (slope ≈ 1); a μP that is not
active (EleutherAI/gpt-neox#1061, #956) fails the same way.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np
import pandas as pd

from analysis import plots
from analysis import powerlaw

TOLERANCE = 0.13
NAMES = {"sp": "SP", "mup": "μP", "completep": "CompleteP"}


def slopes(rows, size: str = "d_model", value: str = "mean_abs_change",
           level: float = 0.95) -> pd.DataFrame:
  """Log-log slope of ``value`` against ``size`` per (parametrisation,
  layer, step).

  Args:
    rows: records or a DataFrame (module docstring).
    size: ``d_model`` (width sweep) or ``n_layers`` (depth sweep).
    value: ``mean_abs_change`` or ``mean_abs``.
    level: coverage of the slope's Student-t interval.

  Returns:
    DataFrame with ``parametrization``, ``layer``, ``step``, ``slope``,
    ``slope_lo``, ``slope_hi`` (nan with fewer than 3 sizes), ``ratio``
    (largest over smallest value), ``n_sizes`` and ``note``. A value that is
    0 at every size gets slope 0 ("no change at any size"); one that is 0 at
    some sizes only gets a nan slope.

  Raises:
    ValueError: a missing column.
  """
  df = pd.DataFrame(rows)
  for col in ("parametrization", size, "step", "layer", value):
    if col not in df:
      raise ValueError(f"coordinate-check table has no '{col}' column")
  out = []
  for (par, layer, step), g in df.groupby(["parametrization", "layer",
                                           "step"], sort=False):
    g = g.sort_values(size)
    x = g[size].to_numpy(np.float64)
    y = g[value].to_numpy(np.float64)
    row = dict(parametrization=par, layer=layer, step=int(step),
               n_sizes=int(np.unique(x).size), slope=math.nan,
               slope_lo=math.nan, slope_hi=math.nan, ratio=math.nan, note="")
    if np.unique(x).size < 2:
      row["note"] = "fewer than 2 sizes"
    elif np.all(y == 0):
      row.update(slope=0.0, ratio=1.0, note="no change at any size")
    elif np.any(y <= 0) or not np.all(np.isfinite(y)):
      row["note"] = "zero or non-finite at some sizes"
    else:
      fit = powerlaw.fit_power_law(x, y)
      lo, hi = fit.exponent_ci(level)
      row.update(slope=fit.law.exponent, slope_lo=lo, slope_hi=hi,
                 ratio=float(y.max() / y.min()))
    out.append(row)
  return pd.DataFrame(out)


def verdict(slope_table: pd.DataFrame, parametrization: str,
            steps: Iterable[int], tolerance: float = TOLERANCE) -> dict:
  """Whether every layer type of ``parametrization`` is flat at ``steps``.

  Returns:
    dict ``flat`` (bool), ``worst`` (the row with the largest |slope|, nan
    counting as not flat), ``failing`` (rows with |slope| > tolerance or
    nan), ``max_slope`` (the largest slope).

  Raises:
    ValueError: no rows for that parametrisation and those steps.
  """
  steps = set(int(s) for s in steps)
  t = slope_table[(slope_table.parametrization == parametrization)
                  & slope_table.step.isin(steps)]
  if t.empty:
    raise ValueError(f"no coordinate-check slopes for {parametrization} at "
                     f"steps {sorted(steps)}")
  mag = t.slope.abs().fillna(np.inf)
  failing = t[mag > tolerance]
  worst = t.loc[mag.idxmax()]
  return dict(flat=failing.empty, worst=worst.to_dict(),
              failing=failing.to_dict("records"),
              max_slope=float(t.slope.max()))


def format_table(rows, size: str = "d_model", tolerance: float = TOLERANCE
                 ) -> str:
  """The check as text: per parametrisation, layer type and step, mean |x|
  and mean |x_t − x_0| at every size, then the slope of the latter with its
  95% interval, and a verdict line per parametrisation."""
  df = pd.DataFrame(rows)
  table = slopes(df, size)
  sizes = sorted(df[size].unique())
  head = " ".join(f"{s:>8}" for s in sizes)
  lines = []
  for par in df.parametrization.unique():
    lines.append(f"{NAMES.get(par, par)} ({par}): {size} = "
                 f"{', '.join(str(s) for s in sizes)}")
    lines.append(f"  {'layer':<11}{'t':>2}  mean|x| at {size}: {head}   "
                 f"mean|x_t-x_0|: {head}   slope (95% CI)")
    d = df[df.parametrization == par]
    for layer in d.layer.unique():
      for step in sorted(d.step.unique()):
        g = d[(d.layer == layer) & (d.step == step)].set_index(size)
        absv = " ".join(f"{g.mean_abs.get(s, math.nan):8.3g}" for s in sizes)
        chg = " ".join(f"{g.mean_abs_change.get(s, math.nan):8.3g}"
                       for s in sizes)
        text = ""
        if step > 0:
          r = table[(table.parametrization == par) & (table.layer == layer)
                    & (table.step == step)].iloc[0]
          text = f"{r.slope:+.2f}"
          if np.isfinite(r.slope_lo):
            text += f" [{r.slope_lo:+.2f}, {r.slope_hi:+.2f}]"
          if r.note:
            text += f" ({r.note})"
        lines.append(f"  {layer:<11}{step:>2}  {'':>{len(size) + 11}}{absv}   "
                     f"{'':>15}{chg}   {text}")
    steps = [s for s in sorted(d.step.unique()) if s > 0]
    if steps:
      v = verdict(table, par, steps, tolerance)
      w = v["worst"]
      state = "flat" if v["flat"] else "NOT flat"
      lines.append(f"  -> {state}: largest |slope| {abs(w['slope']):.2f} "
                   f"({w['layer']}, t={w['step']}); tolerance {tolerance}")
    lines.append("")
  return "\n".join(lines)


def plot(rows, out_dir: str, size: str = "d_model",
         value: str = "mean_abs_change", stem: str = "coord_check",
         steps: Sequence[int] | None = None) -> list[str]:
  """Log-log plot of ``value`` against ``size``: one row of panels per
  parametrisation, one column per step t ≥ 1, one line per layer type.

  Returns:
    The file names written in ``out_dir`` (``<stem>.png``, ``<stem>.svg``).
  """
  df = pd.DataFrame(rows)
  table = slopes(df, size, value)
  pars = list(df.parametrization.unique())
  steps = sorted(s for s in df.step.unique() if s > 0) if steps is None \
      else list(steps)
  fig = Figure(figsize=(3.2 * len(steps), 2.9 * len(pars)),
               layout="constrained")
  FigureCanvasAgg(fig)
  layers = list(df.layer.unique())
  colours = matplotlib.colormaps["tab10"]
  label = {"mean_abs_change": "mean |x_t − x_0|", "mean_abs": "mean |x_t|"}
  for i, par in enumerate(pars):
    for j, step in enumerate(steps):
      ax = fig.add_subplot(len(pars), len(steps), i * len(steps) + j + 1)
      for k, layer in enumerate(layers):
        g = df[(df.parametrization == par) & (df.layer == layer)
               & (df.step == step)].sort_values(size)
        y = g[value].to_numpy(np.float64)
        if not np.any(y > 0):
          continue
        s = table[(table.parametrization == par) & (table.layer == layer)
                  & (table.step == step)].slope.iloc[0]
        ax.plot(g[size], np.where(y > 0, y, np.nan), "o-", ms=3,
                color=colours(k % 10), label=f"{layer} ({s:+.2f})")
      ax.set_xscale("log", base=2)
      ax.set_yscale("log")
      ax.set_title(f"{NAMES.get(par, par)}, t = {step}", fontsize=9)
      ax.tick_params(labelsize=7)
      if i == len(pars) - 1:
        ax.set_xlabel(size, fontsize=8)
      if j == 0:
        ax.set_ylabel(label.get(value, value), fontsize=8)
      ax.legend(fontsize=6, title="layer (slope)", title_fontsize=6)
  return plots._save(fig, out_dir, stem)  # pylint: disable=protected-access
