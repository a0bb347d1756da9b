"""Standard scaling-law figures (matplotlib, Agg canvas, PNG and SVG).

Figures follow Hoffmann et al. 2022: isoFLOP curves with their parabolas and
minima (Fig. 3 left), N_opt and D_opt versus C with fitted lines and bootstrap
bands (Fig. 3 centre/right, Fig. 1), loss versus compute for every run with the
envelope and the frontier fit (Fig. 2 left), contours of the fitted L(N, D)
with the efficient frontier (Fig. 4), and the residuals of the parametric fit.
Every function draws on a fresh ``Figure`` with an Agg canvas (no pyplot, no
global backend switch) and writes ``<stem>.png`` and ``<stem>.svg``.
"""

from __future__ import annotations

import os

import numpy as np

LOSS_LABEL = "loss (nats per token)"
N_LABEL = "parameters N"
D_LABEL = "training tokens D"
C_LABEL = "training compute C (FLOPs)"


def _figure(ncols: int = 1, width: float = 6.4, height: float = 4.6):
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
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


def _plain_y(ax):
  """Plain numbers (2.5, 3, 4) on a log-scaled loss axis."""
  from matplotlib import ticker
  fmt = ticker.FuncFormatter(lambda v, _: f"{v:.3g}")
  ax.yaxis.set_major_formatter(fmt)
  ax.yaxis.set_minor_formatter(fmt)


def _cmap(values):
  from matplotlib import cm, colors
  v = np.asarray(values, np.float64)
  norm = colors.LogNorm(vmin=v.min(), vmax=max(v.max(), v.min() * 1.0001))
  return cm.ScalarMappable(norm=norm, cmap="viridis")


def plot_isoflop(out_dir: str, runs, approach2: dict) -> list[str]:
  """Loss versus N per budget with robust parabolas and their minima.

  Args:
    out_dir: output directory.
    runs: DataFrame with N, C, loss (and budget).
    approach2: result of ``isoflop.fit_approach2`` (with ``_parabolas``).
  """
  from analysis import isoflop
  fig, (ax,) = _figure()
  budget = runs["budget"].to_numpy() if "budget" in runs else None
  labels, values, _ = isoflop.group_budgets(runs["C"].to_numpy(), budget,
                                            approach2.get("grid_decades", 0.1),
                                            approach2.get("nominal"))
  sm = _cmap(values)
  info = {b["flops"]: b for b in approach2["budgets"]}
  if np.any(labels < 0):
    m = labels < 0
    ax.scatter(runs["N"].to_numpy()[m], runs["loss"].to_numpy()[m], s=8,
               color="lightgray", label="no budget")
    ax.legend(fontsize=8)
  for g, cb in enumerate(values):
    m = labels == g
    col = sm.to_rgba(cb)
    ax.scatter(runs["N"].to_numpy()[m], runs["loss"].to_numpy()[m], s=14,
               color=col, alpha=0.8)
    par = approach2["_parabolas"].get(float(cb))
    b = info.get(float(cb), {})
    if par is not None:
      nn = np.geomspace(runs["N"].to_numpy()[m].min(),
                        runs["N"].to_numpy()[m].max(), 100)
      ax.plot(nn, par(nn), color=col, lw=1.2,
              ls="-" if b.get("included") else ":")
    if b.get("included"):
      ax.plot(b["N_opt"], b["loss_min"], marker="*", ms=11, color=col,
              markeredgecolor="black", ls="none")
  ax.set_xscale("log")
  ax.set_xlabel(N_LABEL)
  ax.set_ylabel(LOSS_LABEL)
  ax.set_title("IsoFLOP curves (Approach 2): parabolas in log N, minima ★;\n"
               "dotted = flagged, left out")
  fig.colorbar(sm, ax=ax, label="budget C (FLOPs)")
  return _save(fig, out_dir, "isoflop")


def plot_optimal(out_dir: str, results: dict, boot_lines: dict | None
                 ) -> list[str]:
  """N_opt(C) and D_opt(C): points, fitted power laws and bootstrap bands.

  Args:
    results: dict with keys approach1, approach2 (fit results with ``_fits``
      and ``_front``/``budgets``), approach3_lines (C → (N, D) callable or
      None), c_range (lo, hi) FLOPs.
    boot_lines: name → [K, 2, G] bootstrap N/D on the grid, or None.
  """
  fig, axes = _figure(2)
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
    for name, (col, _) in styles.items():
      band = (boot_lines or {}).get(name)
      if band is not None and np.isfinite(band[:, j]).sum(axis=0).min() >= 2:
        q = np.nanpercentile(band[:, j], [2.5, 97.5], axis=0)
        ax.fill_between(grid, q[0], q[1], color=col, alpha=0.18, lw=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(C_LABEL)
    ax.set_ylabel(("optimal " + label))
    ax.legend(fontsize=8)
  axes[0].set_title("Compute-optimal parameters (bands: bootstrap 95%)")
  axes[1].set_title("Compute-optimal tokens (bands: bootstrap 95%)")
  return _save(fig, out_dir, "optimal_allocation")


def plot_loss_vs_compute(out_dir: str, runs, curves, front, frontier
                         ) -> list[str]:
  """Every run's loss against compute, the envelope and L(C) = E + A·C^−γ.

  Args:
    runs: DataFrame run, N, C, loss (final points).
    curves: curve DataFrame (run, N, C, loss) or None.
    front: envelope points (DataFrame with C, loss) or None.
    frontier: SaturatingPowerLaw or None.
  """
  fig, (ax,) = _figure()
  sm = _cmap(runs["N"])
  if curves is not None and len(curves):
    for run, g in curves.groupby("run", sort=False):
      ax.plot(g["C"], g["loss"], lw=0.7, alpha=0.5,
              color=sm.to_rgba(g["N"].iloc[0]))
  ax.scatter(runs["C"], runs["loss"], s=12, c=sm.to_rgba(runs["N"]),
             zorder=2)
  if front is not None and len(front):
    ax.step(front["C"], front["loss"], where="post", color="black", lw=1.0,
            label="envelope (lowest loss so far)")
  if frontier is not None:
    cc = np.geomspace(runs["C"].min(), runs["C"].max(), 100)
    ax.plot(cc, frontier(cc), color="tab:red", lw=2,
            label=(f"L(C) = {frontier.E:.3g} + {frontier.A:.3g}·"
                   f"C^-{frontier.gamma:.3g}"))
  ax.set_xscale("log")
  ax.set_yscale("log")
  _plain_y(ax)
  ax.set_xlabel(C_LABEL)
  ax.set_ylabel(LOSS_LABEL)
  ax.set_title("Loss versus compute, every run (colour: N)")
  ax.legend(fontsize=8)
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
  from analysis import chinchilla
  fig, (ax,) = _figure()
  n_lo, n_hi = runs["N"].min() / 3, runs["N"].max() * 30
  d_lo, d_hi = runs["D"].min() / 3, runs["D"].max() * 30
  nn = np.geomspace(n_lo, n_hi, 120)
  dd = np.geomspace(d_lo, d_hi, 120)
  ng, dg = np.meshgrid(nn, dd)
  lg = chinchilla.predict_loss(params, ng, dg)
  levels = np.geomspace(lg.min() * 1.001, np.percentile(lg, 95), 14)
  cs = ax.contour(ng, dg, lg, levels=levels, cmap="viridis_r", linewidths=0.9)
  ax.clabel(cs, fmt="%.2f", fontsize=7)
  ax.scatter(runs["N"], runs["D"], s=8, color="gray", alpha=0.6, label="runs")
  flops_of = (lambda n, c: c / (6.0 * n)) if tokens_for is None else tokens_for
  for e in range(int(np.ceil(np.log10(6 * n_lo * d_lo))),
                 int(np.floor(np.log10(6 * n_hi * d_hi))) + 1, 2):
    ax.plot(nn, flops_of(nn, 10.0 ** e), color="gray", lw=0.6, ls="--")
    n_mid = np.sqrt(n_lo * n_hi)
    d_mid = float(flops_of(n_mid, 10.0 ** e))
    if d_lo < d_mid < d_hi:
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
  ax.set_title("Fitted L(N, D) (nats per token), Approach 3")
  ax.legend(fontsize=8, loc="lower right")
  return _save(fig, out_dir, "contours")


def plot_residuals(out_dir: str, runs, params: dict) -> list[str]:
  """ln L − ln L̂ of the Approach 3 fit against C and against N."""
  from analysis import chinchilla
  fig, axes = _figure(2)
  pred = chinchilla.predict_loss(params, runs["N"], runs["D"])
  res = np.log(runs["loss"].to_numpy()) - np.log(pred)
  sm = _cmap(runs["D"])
  for ax, col, label in zip(axes, ("C", "N"), (C_LABEL, N_LABEL)):
    ax.axhline(0.0, color="black", lw=0.8)
    ax.scatter(runs[col], res, s=12, c=sm.to_rgba(runs["D"]))
    ax.set_xscale("log")
    ax.set_xlabel(label)
    ax.set_ylabel("log residual ln L − ln L̂ (≈ relative error)")
  rms = np.sqrt(np.mean(res ** 2))
  axes[0].set_title(f"Approach 3 residuals (RMS {rms:.4f})")
  fig.colorbar(sm, ax=axes[1], label=D_LABEL)
  return _save(fig, out_dir, "residuals")
