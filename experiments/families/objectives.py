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

:func:`analyze` (the sweep's analysis) fits, per objective and view, the
loss-versus-compute frontier L(C) = E + A·C^(−γ) on the compute-optimal runs
(``analysis.groups``, the same as ``scaling analyze SWEEP_DIR --out DIR
--group-by objective --loss-col eval_bpb``) and draws every objective on one
figure (``objectives_frontier.png``).

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


def analyze(sweep_dir: str, out_dir: str | None = None) -> dict:
  """Per-objective loss-versus-compute frontiers on the shared views.

  ``analysis.groups.fit_groups`` per view (grouped by ``objective``: each
  budget's best run, E + A·C^(−γ) with bootstrap intervals and honesty
  flags), drawn on one figure.

  Args:
    sweep_dir: the ``objectives`` sweep directory (holds ``results.csv``
      with columns ``objective``, ``status``, ``flops``, ``eval_bpb``,
      ``eval_continuation_bpb`` and the ``*_na`` reasons).
    out_dir: where ``objectives_frontier.{png,svg,json}`` go (default
      ``sweep_dir/analysis``).

  Returns:
    The JSON written: ``views`` maps each view to its ``fit_groups`` result.

  Raises:
    FileNotFoundError: no ``results.csv``.
  """
  # Imported here: the analysis stack adds about 2 s to every sweep process.
  from analysis import groups  # pylint: disable=import-outside-toplevel
  from analysis import plots  # pylint: disable=import-outside-toplevel
  out_dir = out_dir or os.path.join(sweep_dir, "analysis")
  runs = pd.read_csv(os.path.join(sweep_dir, "results.csv"))
  result = dict(flops="exact count (scaling.accounting)", views={})
  for view, _ in VIEWS:
    if view not in runs:
      runs[view] = np.nan
    result["views"][view] = groups.fit_groups(
        runs, "objective", loss_col=view, c_col="flops", n_col="params_total",
        budget_col="budget", order=OBJECTIVES)
  os.makedirs(out_dir, exist_ok=True)
  result["plots"] = plots.plot_group_frontiers(
      out_dir, {label: result["views"][view] for view, label in VIEWS},
      "objectives_frontier", c_label="training compute C (FLOPs, exact count)",
      loss_label="bits per byte")
  with open(os.path.join(out_dir, "objectives_frontier.json"), "w") as f:
    json.dump(result, f, indent=2)
  return result


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
