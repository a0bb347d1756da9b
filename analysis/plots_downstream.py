"""Downstream figures (matplotlib, Agg canvas, PNG and SVG; helpers of
``analysis.plots``).

* :func:`plot_downstream`: the two-step law of Bhagia et al. 2024 (Fig. 1:
  metric against task loss with the sigmoid; predicted against observed);
* :func:`plot_compare`: a downstream metric against pretraining compute per
  group (objective), mean ± SE over fine-tuning seeds, beside the scratch
  baseline (T5's comparison of objectives, Raffel et al. 2020 §3.3, drawn
  against compute).
"""

from __future__ import annotations

import matplotlib
from matplotlib import ticker
import numpy as np

from analysis import sigmoid
from analysis.plots import (  # pylint: disable=protected-access
    _figure, _flops_fmt, _plain_y, _save)


def _err(ci, value):
  """[[below], [above]] error-bar lengths of an interval, or None."""
  if not ci or ci[0] is None:
    return None
  return [[max(value - ci[0], 0.0)], [max(ci[1] - value, 0.0)]]


def plot_downstream(out_dir: str, panels: dict, stem: str, *,
                    metric_label: str = "metric",
                    loss_label: str = "task loss (bits per byte)"
                    ) -> list[str]:
  """The two-step law: metric against task loss, predicted against observed.

  Args:
    out_dir: output directory.
    panels: label → ``downstream.analyze`` dict (one colour each: the
      whole table, or one per group).
    stem: file stem.
    metric_label, loss_label: axis labels.

  Left: every run's (task loss, metric), the sigmoid that made the
  prediction (fitted without the held-out runs; solid when identifiable,
  dashed otherwise), the held-out runs observed (×) and predicted (◇, at
  the predicted task loss, bars: the bootstrap intervals of both steps).
  Right: the chain's prediction Acc(L̂(N, D)) against the observed metric,
  fitted runs small (in-sample), held-out runs with the prediction's
  interval; the diagonal is a perfect prediction.
  """
  fig, (ax, bx) = _figure(2, width=6.0, height=4.8)
  palette = matplotlib.colormaps["tab10"]
  lo_all, hi_all = [], []
  for i, (label, e) in enumerate(panels.items()):
    col = palette(i % 10)
    pts = e.get("points") or {}
    if not pts.get("task_loss"):
      continue
    x = np.asarray(pts["task_loss"], np.float64)
    y = np.asarray(pts["metric"], np.float64)
    held = np.asarray(pts["held_out"], bool)
    fit = (e.get("holdout") or {}).get("fit") or e.get("full")
    ax.scatter(x[~held], y[~held], s=14, color=col, alpha=0.7,
               edgecolors="none")
    ax.scatter(x[held], y[held], s=50, color=col, marker="x", zorder=4)
    xs = [x]
    runs = (e.get("holdout") or {}).get("runs") or []
    for r in runs:
      pl, pm = r["predicted"]["task_loss"], r["predicted"]["metric"]
      xs.append(np.array([pl["value"]]))
      ax.errorbar([pl["value"]], [pm["value"]], xerr=_err(pl.get("ci"),
                                                          pl["value"]),
                  yerr=_err(pm.get("ci"), pm["value"]), color=col,
                  marker="D", mfc="white", ms=6, lw=1, capsize=3, zorder=5)
    good = bool(fit and fit.get("identifiable") and not fit.get("unreliable"))
    name = label
    if fit:
      st2 = fit["step2"]
      par = {k: st2[k]["value"] for k in ("a", "b", "k", "L0")}
      xall = np.concatenate(xs)
      pad = 0.05 * (np.ptp(xall) or 0.1)
      grid = np.linspace(xall.min() - pad, xall.max() + pad, 200)
      ax.plot(grid, sigmoid.predict(par, grid), color=col, lw=1.6,
              ls="-" if good else "--")
      name += (f": k = {par['k']:.3g}, L0 = {par['L0']:.3g}"
               + ("" if good else " (not identifiable)"
                  if not fit.get("identifiable") else " (unreliable)"))
    ax.plot([], [], color=col, marker="o", ls="-" if good else "--",
            label=name)
    pm_all = pts.get("predicted_metric")
    if pm_all is not None:
      pm_all = np.asarray(pm_all, np.float64)
      bx.scatter(y[~held], pm_all[~held], s=12, color=col, alpha=0.5,
                 edgecolors="none")
      lo_all += [y.min(), pm_all.min()]
      hi_all += [y.max(), pm_all.max()]
    for r in runs:
      pm = r["predicted"]["metric"]
      obs = r["observed"]["metric"]
      bx.errorbar([obs], [pm["value"]], yerr=_err(pm.get("ci"), pm["value"]),
                  color=col, marker="D", mfc="white", ms=6, lw=1, capsize=3,
                  zorder=5,
                  label=f"{r['run']}: error {r['abs_error_points']:.2g} "
                  "points")
  ax.plot([], [], color="gray", marker="x", ls="none",
          label="held-out run (observed)")
  ax.plot([], [], color="gray", marker="D", mfc="white", ls="none",
          label="held-out run (predicted, 95% bars)")
  ax.set_xlabel(loss_label)
  ax.set_ylabel(metric_label)
  ax.set_title("Step 2: metric = a/(1+e^(-k(L-L0))) + b, fitted without the "
               "held-out runs", fontsize=9)
  ax.legend(fontsize=7, loc="upper right")
  if lo_all:
    lo, hi = min(lo_all), max(hi_all)
    pad = 0.05 * (hi - lo or 0.1)
    bx.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black",
            lw=0.8, label="perfect prediction")
  bx.set_xlabel(f"observed {metric_label}")
  bx.set_ylabel(f"predicted {metric_label} (two steps from N, D)")
  bx.set_title("Chained prediction: fitted runs (dots), held-out (◇)",
               fontsize=9)
  bx.legend(fontsize=7, loc="upper left")
  return _save(fig, out_dir, stem)


def plot_compare(out_dir: str, panels: dict, stem: str, *,
                 order=(), baseline: str | None = "scratch",
                 c_label: str = "pretraining compute C (FLOPs, exact count)",
                 chance: dict | None = None, log_y=()) -> list[str]:
  """A metric against pretraining compute per group, one panel per metric.

  Args:
    out_dir: output directory.
    panels: metric label → ``analysis.compare.cells`` table (columns group,
      x_mean_flops, mean, se, n).
    stem: file stem.
    order: groups in legend order (others follow).
    baseline: the group drawn as the no-pretraining baseline (grey, dashed;
      at the compute of the run whose model it re-initialises).
    chance: metric label → its chance level (a dotted line).
    log_y: metric labels drawn on a log y axis.

  Each point is a group's mean over its fine-tuning seeds; bars are ± 1
  total SE (seeds and the test split's sampling, ``analysis.compare``). Points of one budget are spread a little along
  x so that bars do not overlap.
  """
  fig, axes = _figure(len(panels), width=5.6, height=5.0)
  palette = matplotlib.colormaps["tab10"]
  for ax, (label, table) in zip(axes, panels.items()):
    groups = [g for g in order if g in set(table["group"])]
    groups += [g for g in dict.fromkeys(table["group"]) if g not in groups]
    spread = np.linspace(-0.04, 0.04, max(len(groups), 1))
    xs = []
    for i, g in enumerate(groups):
      part = table[table["group"] == g].sort_values("x_mean_flops")
      x = part["x_mean_flops"].to_numpy(np.float64) * 10 ** spread[i]
      xs.append(x)
      se = part["se_total" if "se_total" in part else "se"].fillna(
          0.0).to_numpy(np.float64)
      is_base = g == baseline
      ax.errorbar(x, part["mean"], yerr=se, marker="s" if is_base else "o",
                  ms=4, lw=1.2, capsize=2.5, ls="--" if is_base else "-",
                  color="0.45" if is_base else palette(i % 10),
                  label=("no pretraining (same model, fresh init)" if is_base
                         else g))
    x_all = np.concatenate(xs) if xs else np.array([1.0, 10.0])
    ax.set_xscale("log")
    ax.set_xlim(x_all.min() / 1.15, x_all.max() * 1.15)
    budgets = sorted({float(f"{v:.2g}") for v in table["x_mean_flops"]})
    ax.xaxis.set_major_locator(ticker.FixedLocator(budgets))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(
        lambda v, _: _flops_fmt(v)))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    if label in (chance or {}):
      ax.axhline(chance[label], color="0.3", lw=0.8, ls=":",
                 label=f"chance ({chance[label]:.3g})")
    if label in log_y:
      ax.set_yscale("log")
      _plain_y(ax)
    ax.set_xlabel(c_label)
    ax.set_ylabel(label)
    ax.set_title(f"{label}: mean over fine-tuning seeds ± SE (seeds and "
                 "test sampling)", fontsize=9)
  handles, labels = axes[0].get_legend_handles_labels()
  fig.legend(handles, labels, loc="outside lower center", fontsize=8,
             ncol=min(len(labels), 4))
  return _save(fig, out_dir, stem)
