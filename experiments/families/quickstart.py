"""``quickstart``: the project's main job, an isoFLOP sweep on 2 CPU cores.

Hoffmann et al. 2022 Approach 2 at laptop scale: 3 compute budgets (1.2e11,
2.5e11, 5e11 FLOPs in the exact ``flops`` count) x 6 byte-level models each
(one or two layers, d_model 8 … 48, N_eff 7k … 106k), trained on the built-in
stdlib corpus with 16 x 128 tokens per step and the per-size hyperparameters
of ``generators.DEFAULT_RULE``; then the analysis fits parabolas in log N per
budget and the power laws of N_opt and D_opt in C.

Sizing, from measurement (not guesses):

* where the optimum is: a pilot isoFLOP sweep at C = 5e11 gave eval_loss
  2.248, 2.154, 2.057, 1.973, 2.075, 2.211, 2.28, 2.36 nats for L1_d8, L1_d12,
  L1_d16, L1_d24, L1_d32, L1_d48, L2_d48, L2_d64 (N_eff 7.1k … 165k): the
  minimum sits at N_eff ~ 26k, D / N_eff ~ 125 tokens per parameter, far above
  Chinchilla's 20 (tiny byte-level models, where the logits are half the
  FLOPs). The generator centres its window on tokens_per_param = 80 and keeps
  the 6 sizes closest to N_opt within a factor 5, so each budget has sizes on
  both sides of its minimum. With 5 sizes per budget, one budget's curvature
  was not clearly positive (95% interval touching 0); 6 fixed that;
* what it costs: 18 runs, 21,219 steps, 5.2e12 FLOPs, 7 model shapes.
  ``time scaling sweep quickstart --workdir DIR`` on the 2-core machine
  shared with other work (load average ~4): 6 min 50 s wall in all; run wall
  time 404 s of which 31 s compiling (7.8%, cold cache); the analysis about
  11 s. The 15-run variant took 9 min 9 s at load ~5.5.

Result of that run: minimum eval_loss per budget at L1_d12, L1_d16, L1_d24
(interior for all three); the analysis' isoFLOP parabolas in ln N have
curvature 0.083 ± 0.013, 0.103 ± 0.017, 0.160 ± 0.027 nats and N_opt 20k,
21k, 32k params_total.
"""

from __future__ import annotations

from experiments import generators
from experiments import registry
from scaling import config as config_lib

BUDGETS = (1.2e11, 2.5e11, 5e11)
SHAPES = (
    generators.Shape(d_model=8, n_layers=1, n_heads=1, d_ff=32),
    generators.Shape(d_model=12, n_layers=1, n_heads=1, d_ff=48),
    generators.Shape(d_model=16, n_layers=1, n_heads=2, d_ff=64),
    generators.Shape(d_model=24, n_layers=1, n_heads=2, d_ff=96),
    generators.Shape(d_model=32, n_layers=1, n_heads=2, d_ff=128),
    generators.Shape(d_model=48, n_layers=1, n_heads=3, d_ff=192),
    generators.Shape(d_model=48, n_layers=2, n_heads=3, d_ff=192),
    generators.Shape(d_model=64, n_layers=2, n_heads=4, d_ff=256),
)


def base_config():
  """16 x 128 tokens per step; eval on 16 x 16 held-out sequences."""
  base = config_lib.default_config()
  base.seq_len = 128
  base.batch_size = 16
  base.train.log_every = 10
  base.checkpoint.async_save = False
  base.eval.batches = 16
  base.eval.batch_size = 16
  return base


@registry.register(
    "quickstart",
    description="isoFLOP sweep, 3 budgets 1.2e11-5e11 x 6 sizes (2 CPU cores)",
    cost="<= 15 min on 2 CPU cores, compile and analysis included")
def build():
  base = base_config()
  notes = []
  runs = generators.isoflop(base, BUDGETS, SHAPES, tokens_per_param=80.0,
                            factor=5.0, max_sizes=6, min_steps=100,
                            rule=generators.DEFAULT_RULE, notes=notes)
  for run in runs:  # cadence only: not part of the run identity
    steps = run.config.train.steps
    run.config.eval.every = max(1, steps // 4)
    run.config.checkpoint.every = max(1, steps // 2)
  return registry.Family(base, runs, notes)
