"""``objectives``: pretraining objectives compared at equal compute (issue 5).

Every objective of ``scaling.objectives`` (causal LM, prefix LM, span
corruption, UL2, FIM, masked LM) is trained on the same isoFLOP grid: the
same compute budgets (exact ``flops`` count), the same model-size ladder and
the same per-size hyperparameter rule (``generators.DEFAULT_RULE``), on the
built-in stdlib corpus. Training losses of different objectives are not
comparable (DESIGN.md §4), so each run is scored on the shared view of
``scaling.evaluation``: ``eval_bpb`` (held-out causal bits per byte) and
``eval_continuation_bpb`` (bits per byte of the second half of a held-out
window given the first half, in each objective's trained form); masked LM
has neither and its rows say so (``eval_bpb_na``).

:func:`analyze` reads the sweep's ``results.csv`` and fits, per objective
and view, the loss-versus-compute frontier L(C) = E + A·C^(−γ) on the
compute-optimal runs (each budget's best; Hoffmann et al. 2022 Fig. 2,
``analysis.powerlaw.fit_saturating``), or the pure power law A·C^(−γ)
(``analysis.powerlaw.fit_power_law``) when there are fewer than 4 such
points, and draws every objective's points and curve on one figure
(``objectives_frontier.png``). The generic ``analysis.report`` fits one law to a whole table and cannot
tell objectives apart; run this one with
``python -m experiments.objectives SWEEP_DIR``.

Sizing (2 CPU cores, measured with the real trainer on the shared machine,
see :data:`STEP_SECONDS`): 6 objectives × 4 budgets (1e10 to 6e10 FLOPs,
×1.8 apart) × 3 sizes (one-layer models, N_eff 7k to 21k) = 72 runs of 52
to 438 steps of 16 × 128 tokens; `scaling experiments` estimates about 15
minutes including compilation, conservatively (48 runs of an earlier grid
of the same size took 264 s against 530 s estimated), within the issue's
20. Every objective uses the same learning-rate rule, fitted on causal LM;
a per-objective rule is not part of this design.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from analysis import envelope
from analysis import powerlaw
from experiments import generators
from experiments import registry
from scaling import config as config_lib

OBJECTIVES = ("causal_lm", "prefix_lm", "span_corruption", "ul2", "fim",
              "masked_lm")
BUDGETS = (1e10, 1.8e10, 3.3e10, 6e10)
# A width ladder of one-layer byte-level models (N_eff 7k to 37k; embeddings
# are a large share at this size), then two-layer ones for larger budgets.
SHAPES = (
    generators.Shape(d_model=8, n_layers=1, n_heads=1, d_ff=32),
    generators.Shape(d_model=12, n_layers=1, n_heads=1, d_ff=48),
    generators.Shape(d_model=16, n_layers=1, n_heads=1, d_ff=64),
    generators.Shape(d_model=20, n_layers=1, n_heads=2, d_ff=80),
    generators.Shape(d_model=24, n_layers=1, n_heads=2, d_ff=96),
    generators.Shape(d_model=32, n_layers=1, n_heads=2, d_ff=128),
    generators.Shape(d_model=32, n_layers=2, n_heads=2, d_ff=128),
    generators.Shape(d_model=48, n_layers=2, n_heads=3, d_ff=192),
)
# Measured: at these budgets the smallest sizes win (at 1e10 and 2.5e10
# FLOPs every objective's best run was its smallest model at 20 tokens per
# parameter), so the grid is centred on more tokens per parameter, as the
# quickstart is (100).
TOKENS_PER_PARAM = 60.0
SIZES_PER_BUDGET = 3
MIN_STEPS = 40
VIEWS = (("eval_bpb", "held-out bits per byte (causal plain text)"),
         ("eval_continuation_bpb",
          "continuation bits per byte (2nd half | 1st half)"))


def base_config():
  """Shared settings: 16 rows of 128 tokens, 4 eval batches per view."""
  base = config_lib.default_config()
  base.seq_len = 128
  base.batch_size = 16
  base.train.log_every = 10
  base.checkpoint.async_save = False
  base.eval.batches = 4
  base.eval.batch_size = 16
  base.eval.continuation = True
  return base


def _fit(budget, c, loss) -> dict:
  """Frontier fit on the compute-optimal runs (C FLOPs, loss bits per byte).

  The frontier points are each isoFLOP budget's lowest-loss run, kept when
  its loss is below every smaller budget's (``analysis.envelope.pareto_front``
  on those points): runs of one budget differ in C by less than a step, so
  the plain Pareto front over all runs would fit noise within a budget.
  """
  budget, c, loss = (np.asarray(x, np.float64) for x in (budget, c, loss))
  best = [int(np.flatnonzero(budget == b)[np.argmin(loss[budget == b])])
          for b in np.unique(budget)]
  front = np.asarray(best)[envelope.pareto_front(c[best], loss[best])]
  fc, fl = c[front], loss[front]
  out = dict(front_flops=fc.tolist(), front_loss=fl.tolist(), law=None,
             n_budgets=len(best))
  if len(front) >= 4:
    try:
      law, rms = powerlaw.fit_saturating(fc, fl)
      out.update(law="E + A*C^-gamma", E=law.E, A=law.A, gamma=law.gamma,
                 rms_log_residual=rms)
      return out
    except ValueError as e:
      out["warning"] = f"saturating fit failed ({e}); pure power law instead"
  if len(front) >= 2:
    fit = powerlaw.fit_power_law(fc, fl)
    out.update(law="A*C^-gamma", E=0.0, A=fit.law.coef,
               gamma=-fit.law.exponent, r2=fit.r2)
    if len(front) < 4:
      out["warning"] = (f"{len(front)} compute-optimal points: E + A*C^-gamma "
                        "needs >= 4, the pure power law A*C^-gamma is shown")
  else:
    out["warning"] = (f"{len(front)} compute-optimal point(s): no frontier "
                      "fitted")
  return out


def analyze(sweep_dir: str, out_dir: str | None = None) -> dict:
  """Per-objective loss-versus-compute frontiers on the shared views.

  Args:
    sweep_dir: the ``objectives`` sweep directory (holds ``results.csv``
      with columns ``objective``, ``status``, ``flops``, ``eval_bpb``,
      ``eval_continuation_bpb`` and the ``*_na`` reasons).
    out_dir: where ``objectives_frontier.{png,svg,json}`` go (default
      ``sweep_dir/analysis``).

  Returns:
    The JSON written: per view, per objective either the fit (``law``,
    ``E``, ``A``, ``gamma`` in bits per byte and FLOPs, the front points,
    ``n_runs``) or ``{"applicable": False, "reason": ...}``.

  Raises:
    FileNotFoundError: no ``results.csv``.
  """
  out_dir = out_dir or os.path.join(sweep_dir, "analysis")
  runs = pd.read_csv(os.path.join(sweep_dir, "results.csv"))
  runs = runs[runs["status"] == "finished"]
  result = dict(flops="exact count (scaling.accounting)", views={})
  for view, _ in VIEWS:
    per = {}
    for name in OBJECTIVES:
      rows = runs[runs["objective"] == name]
      if not len(rows):
        per[name] = dict(applicable=None, reason="no finished runs")
        continue
      values = (pd.to_numeric(rows[view], errors="coerce").to_numpy(np.float64)
                if view in rows else np.full(len(rows), np.nan))
      ok = np.isfinite(values)
      if not ok.any():
        na = rows.get(f"{view}_na")
        reason = (str(na.dropna().iloc[0]) if na is not None and
                  na.notna().any() else "no value recorded")
        per[name] = dict(applicable=False, reason=reason)
        continue
      flops = rows["flops"].to_numpy(np.float64)[ok]
      budget = (rows["budget"].to_numpy(np.float64)[ok] if "budget" in rows
                else flops)
      fit = _fit(np.where(np.isfinite(budget), budget, flops), flops,
                 values[ok])
      per[name] = dict(applicable=True, n_runs=int(ok.sum()),
                       flops=flops.tolist(), loss=values[ok].tolist(), **fit)
    result["views"][view] = per
  os.makedirs(out_dir, exist_ok=True)
  result["plots"] = _plot(result, out_dir)
  with open(os.path.join(out_dir, "objectives_frontier.json"), "w") as f:
    json.dump(result, f, indent=2)
  return result


def _plot(result: dict, out_dir: str) -> list[str]:
  """One figure, one panel per view, one colour per objective."""
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=import-outside-toplevel
  from matplotlib.figure import Figure  # pylint: disable=import-outside-toplevel
  fig = Figure(figsize=(13, 5), layout="constrained")
  FigureCanvasAgg(fig)
  colours = dict(zip(OBJECTIVES, ("tab:blue", "tab:orange", "tab:green",
                                  "tab:red", "tab:purple", "tab:gray")))
  for i, (view, label) in enumerate(VIEWS):
    ax = fig.add_subplot(1, len(VIEWS), i + 1)
    not_applicable = []
    for name, entry in result["views"][view].items():
      if not entry.get("applicable"):
        reason = str(entry.get("reason") or "")
        reason = reason[:90] + "…" if len(reason) > 90 else reason
        not_applicable.append(f"{name}: {reason}")
        continue
      colour = colours[name]
      ax.scatter(entry["flops"], entry["loss"], s=10, alpha=0.35, color=colour)
      ax.plot(entry["front_flops"], entry["front_loss"], "o", ms=5,
              color=colour)
      legend = name
      if entry.get("law"):
        cc = np.geomspace(min(entry["flops"]), max(entry["flops"]), 100)
        ax.plot(cc, entry["E"] + entry["A"] * cc ** (-entry["gamma"]),
                color=colour, lw=1.8)
        head = f"{entry['E']:.3g} + " if entry["E"] else ""
        legend = (f"{name}: {head}{entry['A']:.3g}·C^-{entry['gamma']:.3g}")
      ax.plot([], [], color=colour, marker="o", label=legend)
    ax.set_xscale("log")
    ax.set_xlabel("training compute C (FLOPs, exact count)")
    ax.set_ylabel("bits per byte")
    ax.set_title(label, fontsize=10)
    ax.legend(fontsize=7)
    if not_applicable:
      ax.text(0.01, 0.01, "\n".join(not_applicable), transform=ax.transAxes,
              fontsize=6, va="bottom")
  names = []
  for ext in ("png", "svg"):
    name = f"objectives_frontier.{ext}"
    fig.savefig(os.path.join(out_dir, name), dpi=120)
    names.append(name)
  return names


@registry.register(
    "objectives",
    description=("6 objectives x 4 budgets x 3 sizes at equal FLOPs, scored "
                 "on the shared bits-per-byte view"),
    cost="<= 20 min on 2 CPU cores (about 15 estimated, compile included)",
    analyze=analyze)
def build():
  base = base_config()
  notes, runs = [], []
  for name in OBJECTIVES:
    objective_base = config_lib.with_overrides(base, {"objective.name": name})
    for run in generators.isoflop(
        objective_base, BUDGETS, SHAPES, tokens_per_param=TOKENS_PER_PARAM,
        factor=4.0, max_sizes=SIZES_PER_BUDGET, min_steps=MIN_STEPS,
        rule=generators.DEFAULT_RULE, notes=notes):
      config = run.config
      steps = config.train.steps
      config.eval.every = steps  # the final model only: the frontier's point
      config.checkpoint.every = steps
      runs.append(registry.Run(f"{name}_{run.short_name}", config,
                               budget=run.budget, tags=dict(run.tags)))
  return registry.Family(base, runs, notes)
