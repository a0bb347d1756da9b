"""Standard scaling-law figures (matplotlib, Agg canvas, PNG and SVG).

Figures follow Hoffmann et al. 2022: isoFLOP curves with their parabolas and
minima (Fig. 3 left), N_opt and D_opt versus C with fitted lines and bootstrap
bands (Fig. 3 centre/right, Fig. 1), loss versus compute for every run with the
envelope and the frontier fit (Fig. 2 left), contours of the fitted L(N, D)
with the efficient frontier (Fig. 4), and the residuals of the parametric fit
(downstream figures: ``analysis.plots_downstream``).
Every function draws on a fresh ``Figure`` with an Agg canvas (no pyplot, no
global backend switch) and writes ``<stem>.png`` and ``<stem>.svg``.
"""

from __future__ import annotations

import os

import matplotlib
from matplotlib import cm, colors, ticker
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
import numpy as np

from analysis import chinchilla
from analysis import isoflop

LOSS_LABEL = "loss (nats per token)"
N_LABEL = "parameters N"
D_LABEL = "training tokens D"
C_LABEL = "training compute C (FLOPs)"


def _figure(ncols: int = 1, width: float = 6.4, height: float = 4.6):
  fig = Figure(figsize=(width * ncols, height), layout="constrained")
  FigureCanvasAgg(fig)
  axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
  return fig, axes


def _save(fig, out_dir: str, stem: str) -> list[str]:
  os.makedirs(out_dir, exist_ok=True)
  fig.canvas.draw()  # constrained layout once, then frozen for both formats
  fig.set_layout_engine("none")
  names = []
  for ext in ("png", "svg"):
    name = f"{stem}.{ext}"
    fig.savefig(os.path.join(out_dir, name), dpi=120)
    names.append(name)
  return names


NICE = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0)


def nice_log_ticks(lo: float, hi: float, max_ticks: int = 6) -> list[float]:
  """3 to ``max_ticks`` round values inside [lo, hi] for a short log axis.

  Within a decade: evenly spaced round numbers (steps 1, 2, 2.5 or 5 × 10^k,
  ``matplotlib.ticker.MaxNLocator``); over a wider range: 1, 1.2, 1.5, 2,
  2.5, 3, 4, 5, 6, 8 × 10^k, thinned evenly. For axes whose decade ticks are
  too few and whose default minor labels collide.
  """
  if not (lo > 0 and hi > lo):
    return []
  if np.log10(hi / lo) < 1:
    vals = ticker.MaxNLocator(nbins=max_ticks - 1,
                              steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    return [float(v) for v in vals if lo <= v <= hi and v > 0]
  vals = [m * 10.0 ** e for e in range(int(np.floor(np.log10(lo))) - 1,
                                       int(np.ceil(np.log10(hi))) + 1)
          for m in NICE]
  vals = [v for v in vals if lo <= v <= hi]
  step = max(1, int(np.ceil(len(vals) / max_ticks)))
  return vals[::step]


def _log_axis(axis, lo: float, hi: float, fmt=None):
  """Readable ticks on a log axis: decades when it spans >= 2 of them,
  else a few round values; minor tick labels off (they collide)."""
  axis.set_minor_formatter(ticker.NullFormatter())
  if np.log10(hi / lo) >= 2:
    return
  ticks = nice_log_ticks(lo, hi)
  if len(ticks) >= 2:
    axis.set_major_locator(ticker.FixedLocator(ticks))
    axis.set_major_formatter(ticker.FuncFormatter(
        lambda v, _: (fmt or _flops_fmt)(v)))


def _plain_y(ax, lo: float | None = None, hi: float | None = None):
  """Plain numbers (2.5, 3, 4) on a log-scaled loss axis, never colliding."""
  if lo is None:
    lo, hi = ax.get_ylim()
  ticks = nice_log_ticks(lo, hi)
  ax.yaxis.set_minor_formatter(ticker.NullFormatter())
  if len(ticks) >= 2:
    ax.yaxis.set_major_locator(ticker.FixedLocator(ticks))
  ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))


def _flops_fmt(v: float) -> str:
  """1.2e+11 → '1.2e11', 25000 → '2.5e4', 300 → '300'."""
  text = f"{v:.3g}"
  if "e" not in text:
    return text
  m, e = text.split("e")
  return f"{m}e{int(e)}"


def _cmap(values):
  v = np.asarray(values, np.float64)
  norm = colors.LogNorm(vmin=v.min(), vmax=max(v.max(), v.min() * 1.0001))
  return cm.ScalarMappable(norm=norm, cmap="viridis")


def plot_isoflop(out_dir: str, runs, approach2: dict) -> list[str]:
  """Loss versus N per budget with robust parabolas and their minima.

  Marker area and opacity show each run's robust weight in its budget's
  parabola (``isoflop.fit_parabola``); the colour bar names the budgets
  (every one up to 12, else every k-th).

  Args:
    out_dir: output directory.
    runs: DataFrame with N, C, loss (and budget).
    approach2: result of ``isoflop.fit_approach2`` (with ``_parabolas``).
  """
  fig, (ax,) = _figure()
  budget = runs["budget"].to_numpy() if "budget" in runs else None
  labels, values, _ = isoflop.group_budgets(runs["C"].to_numpy(), budget,
                                            approach2.get("grid_decades", 0.1),
                                            approach2.get("nominal"))
  sm = _cmap(values)
  info = {b.get("budget_flops", b["flops"]): b for b in approach2["budgets"]}
  n_all, l_all = runs["N"].to_numpy(), runs["loss"].to_numpy()
  handles = []
  if np.any(labels < 0):
    m = labels < 0
    ax.scatter(n_all[m], l_all[m], s=8, color="lightgray")
    handles.append(Line2D([], [], ls="none", marker="o", color="lightgray",
                          ms=4, label="no budget"))
  any_flagged = False
  any_down = False
  for g, cb in enumerate(values):
    m = labels == g
    col = sm.to_rgba(cb)
    par = approach2["_parabolas"].get(float(cb))
    b = info.get(float(cb), {})
    w = np.ones(int(m.sum())) if par is None else np.asarray(par.weights)
    any_down |= bool(np.any(w < 0.999))
    rgba = np.tile(colors.to_rgba(col), (w.size, 1))
    rgba[:, 3] = 0.25 + 0.75 * np.clip(w, 0, 1)
    ax.scatter(n_all[m], l_all[m], s=8 + 32 * np.clip(w, 0, 1), c=rgba,
               edgecolors="none")
    if par is not None:
      nn = np.geomspace(n_all[m].min(), n_all[m].max(), 100)
      ax.plot(nn, par(nn), color=col, lw=1.2,
              ls="-" if b.get("included") else ":")
      any_flagged |= not b.get("included")
    if b.get("included"):
      ax.plot(b["N_opt"], b["loss_min"], marker="*", ms=11, color=col,
              markeredgecolor="black", ls="none")
  handles.append(Line2D([], [], ls="none", marker="*", ms=10, color="gray",
                        markeredgecolor="black", label="parabola minimum"))
  if any_down:
    for wv in (1.0, 0.5, 0.1):
      handles.append(Line2D([], [], ls="none", marker="o", color="gray",
                            alpha=0.25 + 0.75 * wv,
                            ms=np.sqrt(8 + 32 * wv),
                            label=f"robust weight {wv:g}"))
  else:
    handles.append(Line2D([], [], ls="none", marker="o", color="gray",
                          ms=np.sqrt(40), label="run (robust weight 1)"))
  if any_flagged:
    handles.append(Line2D([], [], ls=":", color="gray",
                          label="flagged budget, left out"))
  ax.set_xscale("log")
  _log_axis(ax.xaxis, n_all.min(), n_all.max())
  ax.set_xlabel(N_LABEL)
  ax.set_ylabel(LOSS_LABEL)
  ax.set_title("IsoFLOP curves (Approach 2): robust parabolas in log N"
               + ("; dotted = flagged budget" if any_flagged else ""),
               fontsize=10)
  ax.legend(handles=handles, fontsize=7, loc="upper right")
  cb_ = fig.colorbar(sm, ax=ax, label="isoFLOP budget C (FLOPs)")
  shown = list(values)[::max(1, int(np.ceil(len(values) / 12)))]
  cb_.ax.yaxis.set_major_locator(ticker.FixedLocator(shown))
  cb_.ax.yaxis.set_major_formatter(ticker.FuncFormatter(
      lambda v, _: _flops_fmt(v)))
  cb_.ax.yaxis.set_minor_locator(ticker.NullLocator())
  return _save(fig, out_dir, "isoflop")


def plot_optimal(out_dir: str, results: dict, boot_lines: dict | None
                 ) -> list[str]:
  """N_opt(C) and D_opt(C): points, fitted power laws and bootstrap bands.

  Args:
    results: dict with keys approach1, approach2 (fit results with ``_fits``
      and ``_front``/``budgets``), approach3_lines (C → (N, D) callable or
      None), c_range (lo, hi) FLOPs, data_range (lo, hi) FLOPs of the runs
      (beyond it the lines are extrapolation, shaded). Bands are drawn only
      for approaches fitted on the full data, labelled with the number of
      resamples behind them.
    boot_lines: name → [K, 2, G] bootstrap N/D on the grid, or None.
  """
  fig, axes = _figure(2)
  data_lo, data_hi = results.get("data_range", results["c_range"])
  lo, hi = results["c_range"]
  grid = np.geomspace(lo, hi, 60)
  styles = dict(approach1=("tab:blue", "Approach 1 (envelope)"),
                approach2=("tab:orange", "Approach 2 (isoFLOP minima)"),
                approach3=("tab:green", "Approach 3 (parametric)"))
  for j, (ax, key, label) in enumerate(zip(axes, ("a", "b"),
                                           (N_LABEL, D_LABEL))):
    col_name = "N" if key == "a" else "D"
    a1 = results["approach1"]
    if "_front" in a1:
      f = a1["_front"]
      ax.scatter(f["C"], f[col_name], s=10, color="tab:blue", alpha=0.5)
    a2 = results["approach2"]
    inc = [b for b in a2["budgets"] if b.get("included")]
    if inc:
      ax.scatter([b["flops"] for b in inc],
                 [b["N_opt" if key == "a" else "D_opt"] for b in inc],
                 s=40, marker="*", color="tab:orange", zorder=3)
    for name, res in (("approach1", a1), ("approach2", a2)):
      if res.get("_fits"):
        law = res["_fits"][key].law
        ax.plot(grid, law(grid), color=styles[name][0],
                label=f"{styles[name][1]}: exponent {law.exponent:.3f}")
    if results.get("approach3_lines") is not None:
      nd = results["approach3_lines"](grid)
      slope = np.polyfit(np.log(grid), np.log(nd[j]), 1)[0]
      ax.plot(grid, nd[j], color="tab:green", lw=2,
              label=f"{styles['approach3'][1]}: exponent {slope:.3f}")
    fitted = dict(approach1=bool(a1.get("_fits")),
                  approach2=bool(a2.get("_fits")),
                  approach3=results.get("approach3_lines") is not None)
    for name, (col, _) in styles.items():
      band = (boot_lines or {}).get(name)
      if (band is not None and fitted[name]
          and np.isfinite(band[:, j]).sum(axis=0).min() >= 2):
        q = np.nanpercentile(band[:, j], [2.5, 97.5], axis=0)
        k_ok = int(np.isfinite(band[:, j, 0]).sum())
        ax.fill_between(grid, q[0], q[1], color=col, alpha=0.18, lw=0,
                        label=f"{name.replace('approach', 'Approach ')} band:"
                        f" {k_ok} of {band.shape[0]} resamples")
    if hi > data_hi * 1.001:
      ax.axvspan(data_hi, hi, color="gray", alpha=0.12, lw=0,
                 label=f"extrapolation (×{hi / data_hi:.3g} beyond the "
                 "largest run)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(C_LABEL)
    ax.set_ylabel(("optimal " + label))
    ax.legend(fontsize=7, loc="upper left")  # "best" is slow on bands
  axes[0].set_title("Compute-optimal parameters (bands: bootstrap 95%)",
                    fontsize=10)
  axes[1].set_title("Compute-optimal tokens (bands: bootstrap 95%)",
                    fontsize=10)
  return _save(fig, out_dir, "optimal_allocation")


def plot_loss_vs_compute(out_dir: str, runs, curves, front, frontier,
                         frontier_ok: bool = True) -> list[str]:
  """Every run's loss against compute, the envelope and L(C) = E + A·C^−γ.

  Args:
    runs: DataFrame run, N, C, loss (final points).
    curves: curve DataFrame (run, N, C, loss) or None.
    front: envelope points (DataFrame with C, loss) or None: each budget's
      best run (finals) or the curves' envelope.
    frontier: SaturatingPowerLaw or None.
    frontier_ok: False draws the frontier dashed and says "not
      identifiable" in its label.
  """
  fig, (ax,) = _figure()
  sm = _cmap(runs["N"])
  has_curves = curves is not None and len(curves) > 0
  if has_curves:
    for run, g in curves.groupby("run", sort=False):
      ax.plot(g["C"], g["loss"], lw=0.7, alpha=0.5,
              color=sm.to_rgba(g["N"].iloc[0]))
  ax.scatter(runs["C"], runs["loss"], s=12, c=sm.to_rgba(runs["N"]),
             zorder=2)
  if front is not None and len(front):
    if front["run"].nunique() == len(front):  # one point per run: finals
      ax.plot(front["C"], front["loss"], color="black", lw=0.8, marker="o",
              mfc="none", ms=8, label="envelope: best run per budget")
    else:
      ax.plot(front["C"], front["loss"], color="black", lw=1.0,
              label="envelope: lowest loss at each C over the curves")
  if frontier is not None:
    cc = np.geomspace(runs["C"].min(), runs["C"].max(), 100)
    ax.plot(cc, frontier(cc), color="tab:red", lw=2,
            ls="-" if frontier_ok else "--",
            label=(f"L(C) = {frontier.E:.3g} + {frontier.A:.3g}·"
                   f"C^-{frontier.gamma:.3g}"
                   + ("" if frontier_ok else " (not identifiable)")))
  ax.set_xscale("log")
  ax.set_yscale("log")
  c_all = runs["C"].to_numpy()
  l_all = runs["loss"].to_numpy()
  if has_curves:
    c_all = np.r_[c_all, curves["C"].to_numpy()]
    l_all = np.r_[l_all, curves["loss"].to_numpy()]
  _log_axis(ax.xaxis, c_all.min(), c_all.max())
  ax.set_ylim(l_all.min() * 0.97, l_all.max() * 1.03)
  _plain_y(ax, l_all.min() * 0.97, l_all.max() * 1.03)
  ax.set_xlabel(C_LABEL)
  ax.set_ylabel(LOSS_LABEL)
  ax.set_title("Loss versus compute, every run (colour: N)"
               + (", curves: lines" if has_curves else ""), fontsize=10)
  ax.legend(fontsize=8, loc="upper right")
  fig.colorbar(sm, ax=ax, label=N_LABEL)
  return _save(fig, out_dir, "loss_vs_compute")


def plot_contours(out_dir: str, runs, params: dict, optimal_nd,
                  tokens_for=None) -> list[str]:
  """Contours of the fitted L(N, D), the runs, isoFLOP lines and the frontier.

  Args:
    runs: DataFrame N, D, C, loss.
    params: dict A, B, E, alpha, beta.
    optimal_nd: callable C [G] → (N_opt [G], D_opt [G]) or None.
    tokens_for: callable (N, C) → D of the runs' FLOP model (default 6ND),
      for the dashed isoFLOP lines.
  """
  fig, (ax,) = _figure()
  n_lo, n_hi = runs["N"].min() / 3, runs["N"].max() * 30
  d_lo, d_hi = runs["D"].min() / 3, runs["D"].max() * 30
  nn = np.geomspace(n_lo, n_hi, 120)
  dd = np.geomspace(d_lo, d_hi, 120)
  ng, dg = np.meshgrid(nn, dd)
  lg = chinchilla.predict_loss(params, ng, dg)
  levels = np.geomspace(lg.min() * 1.001, np.percentile(lg, 95), 14)
  cs = ax.contour(ng, dg, lg, levels=levels, cmap="viridis_r", linewidths=0.9)
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlim(n_lo, n_hi)
  ax.set_ylim(d_lo, d_hi)
  for text in ax.clabel(cs, fmt="%.2f", fontsize=7):
    # A label at an edge would be cut or run into the title: drop it.
    fx, fy = ax.transAxes.inverted().transform(
        ax.transData.transform(text.get_position()))
    if not (0.04 < fx < 0.96 and 0.05 < fy < 0.93):
      text.remove()
  ax.scatter(runs["N"], runs["D"], s=8, color="gray", alpha=0.6, label="runs")
  flops_of = (lambda n, c: c / (6.0 * n)) if tokens_for is None else tokens_for
  for e in range(int(np.ceil(np.log10(6 * n_lo * d_lo))),
                 int(np.floor(np.log10(6 * n_hi * d_hi))) + 1, 2):
    ax.plot(nn, flops_of(nn, 10.0 ** e), color="gray", lw=0.6, ls="--")
    n_mid = np.sqrt(n_lo * n_hi)
    d_mid = float(flops_of(n_mid, 10.0 ** e))
    if d_lo * 2 < d_mid < d_hi / 3:  # keep the label inside the axes
      ax.text(n_mid, d_mid, f"C=1e{e}", fontsize=7, color="gray",
              rotation=-30)
  if optimal_nd is not None:
    cgrid = np.geomspace(6 * n_lo * d_lo, 6 * n_hi * d_hi, 200)
    no, do = optimal_nd(cgrid)
    ok = (no >= n_lo) & (no <= n_hi) & (do >= d_lo) & (do <= d_hi)
    ax.plot(no[ok], do[ok], color="tab:red", lw=2,
            label="efficient frontier N_opt(C), D_opt(C)")
  ax.set_xscale("log")
  ax.set_yscale("log")
  ax.set_xlim(n_lo, n_hi)
  ax.set_ylim(d_lo, d_hi)
  ax.set_xlabel(N_LABEL)
  ax.set_ylabel(D_LABEL)
  ax.set_title("Fitted L(N, D) (nats per token), Approach 3", fontsize=10,
               pad=8)
  ax.legend(fontsize=8, loc="lower right")
  return _save(fig, out_dir, "contours")


def plot_residuals(out_dir: str, runs, params: dict) -> list[str]:
  """ln L − ln L̂ of the Approach 3 fit against C and against N."""
  fig, axes = _figure(2)
  pred = chinchilla.predict_loss(params, runs["N"], runs["D"])
  res = np.log(runs["loss"].to_numpy()) - np.log(pred)
  sm = _cmap(runs["D"])
  for ax, col, label in zip(axes, ("C", "N"), (C_LABEL, N_LABEL)):
    ax.axhline(0.0, color="black", lw=0.8)
    ax.scatter(runs[col], res, s=12, c=sm.to_rgba(runs["D"]))
    ax.set_xscale("log")
    _log_axis(ax.xaxis, runs[col].min(), runs[col].max())
    ax.set_xlabel(label)
    ax.set_ylabel("log residual ln L − ln L̂ (≈ relative error)")
  rms = np.sqrt(np.mean(res ** 2))
  axes[0].set_title(f"Approach 3 residuals (RMS {rms:.4f})")
  fig.colorbar(sm, ax=axes[1], label=D_LABEL)
  return _save(fig, out_dir, "residuals")


def plot_group_frontiers(out_dir: str, panels: dict, stem: str, *,
                         c_label: str = C_LABEL,
                         loss_label: str = LOSS_LABEL) -> list[str]:
  """Every group's runs, compute-optimal points and frontier on one figure.

  Args:
    out_dir: output directory.
    panels: panel title → ``groups.fit_groups`` result (one panel each,
      e.g. one per loss view).
    stem: file stem.
    c_label, loss_label: axis labels.

  Drawn per group (one colour each): all runs (small, faint), each budget's
  best run (filled; hollow when it is the budget's smallest or largest
  size), the fitted law over the group's compute range (solid when
  identifiable and reliable, dashed otherwise); groups that are not
  applicable are listed in the corner.
  """
  fig, axes = _figure(len(panels), width=6.8, height=5.0)
  names = []
  for res in panels.values():
    for g in res["groups"]:
      if g["group"] not in names:
        names.append(g["group"])
  palette = matplotlib.colormaps["tab10"]
  colours = {n: palette(i % 10) for i, n in enumerate(names)}
  for ax, (title, res) in zip(axes, panels.items()):
    na = []
    lo, hi = np.inf, 0.0
    for g in res["groups"]:
      if not g.get("applicable"):
        reason = str(g.get("reason") or "")
        na.append(f"{g['group']}: " + (reason[:80] + "…" if len(reason) > 80
                                       else reason))
        continue
      col = colours[g["group"]]
      pts = g["points"]
      ax.scatter(pts["flops"], pts["loss"], s=9, alpha=0.3, color=col,
                 edgecolors="none")
      fr = g["front"]
      edge = np.asarray(fr["edge"], bool)
      fc, fl = np.asarray(fr["flops"]), np.asarray(fr["loss"])
      ax.scatter(fc[~edge], fl[~edge], s=30, color=col, zorder=3)
      ax.scatter(fc[edge], fl[edge], s=30, facecolors="none", edgecolors=col,
                 zorder=3)
      lo, hi = min(lo, min(pts["flops"])), max(hi, max(pts["flops"]))
      good = g.get("identifiable") and not g.get("unreliable")
      label = g["group"]
      if g.get("law"):
        cc = np.geomspace(min(pts["flops"]), max(pts["flops"]), 100)
        e = (g.get("E") or {}).get("value", 0.0) or 0.0
        a, gam = g["A"]["value"], g["gamma"]["value"]
        ax.plot(cc, e + a * cc ** (-gam), color=col, lw=1.8,
                ls="-" if good else "--")
        head = f"{e:.3g} + " if g.get("E") else ""
        label += f": {head}{a:.3g}·C^-{gam:.3g}"
      label += "" if good else " (not identifiable)" if not g.get(
          "identifiable") else " (unreliable)"
      ax.plot([], [], color=col, marker="o", ls="-" if good else "--",
              label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    if hi > lo:
      _log_axis(ax.xaxis, lo, hi)
    y0, y1 = ax.get_ylim()
    _plain_y(ax, y0, y1)
    ax.set_xlabel(c_label)
    ax.set_ylabel(loss_label)
    ax.set_title(title + " (filled: each budget's best run; hollow: at its "
                 "budget's size edge)", fontsize=9)
    ax.legend(fontsize=7)
    if na:
      ax.text(0.01, 0.01, "not applicable:\n" + "\n".join(na),
              transform=ax.transAxes, fontsize=6, va="bottom")
  return _save(fig, out_dir, stem)


def plot_wsd_branches(out_dir: str, runs) -> list[str]:
  """Final eval loss against training tokens D per size: WSD decay branches
  (solid) beside the same lengths trained with cosine (dashed).

  Args:
    out_dir: where ``wsd_branches.{png,svg}`` go.
    runs: the ``wsd_branches`` results table (columns ``status``, ``shape``,
      ``role``, ``tokens``, ``eval_loss``).
  """
  fig, (ax,) = _figure()
  fin = runs[runs["status"] == "finished"]
  for i, (shape, group) in enumerate(fin.groupby("shape", sort=False)):
    for role, style in (("branch", "o-"), ("independent", "s--")):
      g = group[group["role"] == role].sort_values("tokens")
      if len(g):
        ax.plot(g["tokens"], g["eval_loss"], style, color=f"C{i}", ms=4,
                label=f"{shape} {'WSD branch' if role == 'branch' else 'cosine'}")
  ax.set_xscale("log")
  ax.set_xlabel(D_LABEL)
  ax.set_ylabel("final eval loss (nats)")
  ax.legend(fontsize=7, ncol=2)
  return _save(fig, out_dir, "wsd_branches")
