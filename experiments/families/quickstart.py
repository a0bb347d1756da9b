"""``quickstart``: the project's main job, a small isoFLOP study on 2 CPU cores.

Hoffmann et al. 2022 Approach 2 (and Approaches 1 and 3 on the same runs) at
laptop scale: 3 compute budgets, 3e11 to 2.2e12 FLOPs in the exact ``flops``
count (0.87 decades), × 5 byte-level Transformers each, all with at least 2
layers (Kaplan et al. 2020 Fig. 6 show one-layer models off the trend),
d_model 12 to 64, on the built-in stdlib corpus with 16 × 128 tokens per step
and the per-size hyperparameters of ``generators.DEFAULT_RULE``; plus two
replicates of the middle budget's central run with other seeds (data order
and init), which measure the noise floor the fits assume.

Design, from measurement (``scaling sweep quickstart_lr`` and a pilot
isoFLOP at 1.1e12 FLOPs, eval_loss in nats):

* where the optimum is: at C = 1.1e12, L2_d8 … L2_d64 gave 2.168, 1.974,
  1.937, 1.861, 1.838, 2.108, 2.260 (N_total 7.7k … 148k): the minimum at
  L2_d32 (N_total 49k, N_eff 54k, 3.4M tokens), D / N_eff ≈ 63 — so each
  budget centres its sizes on 60 tokens per N_eff and keeps the 5 shapes
  closest to N_opt within a factor 3.5;
* the learning rate: at that budget, x0.5 / x1 / x2 / x4 of the rule gave
  1.994 / 1.974 / 2.075 / 2.103 for L2_d12 and 2.111 / 2.108 / 2.133 / 2.259
  for L2_d48: the rule is within 0.02 nats of the best multiplier at both
  ends of the ladder (the quickstart_lr experiment repeats this check);
* vocabulary: causal LM uses no sentinels (``tokenizer.n_sentinels = 0``):
  266 real ids padded to 384 instead of 512, so at d_model 64 the
  non-embedding parameters are 67% of the model (75% at L3_d64);
* speed: layers are unrolled (``model.scan_layers = False``; at 2–3 layers
  the scan's stacked residuals cost more than they save), eval runs at the
  middle and the end of each run on the causal view only (16 × 16 × 128
  held-out tokens), and ``scaling sweep`` trains with one worker per CPU.
* repetition: the corpus has about 10M training tokens; the top budget's
  smallest model reads about 10M, the rest less (``epochs`` in results.csv;
  the report says how many runs repeat data).

What it can and cannot identify (measured on this machine; the README gives
the figures): 0.87 decades of compute pin the isoFLOP minima and the
compute-optimal tokens per parameter, but the allocation exponent a has a
wide interval; the ``quickstart_decade`` experiment (1.4 decades, about an
hour) is the one that pins it.
"""

from __future__ import annotations

from experiments import generators
from experiments import registry
from scaling import config as config_lib

BUDGETS = (3e11, 8e11, 2.2e12)
SHAPES = (
    generators.Shape(d_model=8, n_layers=2, n_heads=1, d_ff=32),
    generators.Shape(d_model=12, n_layers=2, n_heads=1, d_ff=48),
    generators.Shape(d_model=16, n_layers=2, n_heads=1, d_ff=64),
    generators.Shape(d_model=24, n_layers=2, n_heads=2, d_ff=96),
    generators.Shape(d_model=32, n_layers=2, n_heads=2, d_ff=128),
    generators.Shape(d_model=48, n_layers=2, n_heads=3, d_ff=192),
    generators.Shape(d_model=64, n_layers=2, n_heads=4, d_ff=256),
    generators.Shape(d_model=64, n_layers=3, n_heads=4, d_ff=256),
    generators.Shape(d_model=80, n_layers=3, n_heads=5, d_ff=320),
    generators.Shape(d_model=96, n_layers=4, n_heads=6, d_ff=384),
)
TOKENS_PER_PARAM = 60.0  # D / N_eff at the measured optimum
FACTOR = 3.5
MIN_STEPS = 200
REPLICATE_SEEDS = (1, 2)


def base_config():
  """16 x 128 tokens per step; eval on 16 x 16 held-out sequences."""
  base = config_lib.default_config()
  base.seq_len = 128
  base.batch_size = 16
  base.tokenizer.n_sentinels = 0  # causal LM uses none
  base.model.scan_layers = False
  base.train.log_every = 10
  base.checkpoint.async_save = False
  base.eval.batches = 16
  base.eval.batch_size = 16
  base.eval.continuation = False
  return base


def isoflop_design(budgets, sizes_per_budget: int, replicate_budgets=()):
  """The family: isoFLOP runs, plus seed replicates of central runs.

  Args:
    budgets: compute budgets (exact ``flops``).
    sizes_per_budget: shapes kept per budget (closest to N_opt).
    replicate_budgets: budgets whose central run (closest to N_opt) is
      repeated with each of :data:`REPLICATE_SEEDS` (data and init seeds).
  """
  base = base_config()
  notes = []
  runs = generators.isoflop(base, budgets, SHAPES,
                            tokens_per_param=TOKENS_PER_PARAM, factor=FACTOR,
                            max_sizes=sizes_per_budget, min_steps=MIN_STEPS,
                            rule=generators.DEFAULT_RULE, notes=notes)
  for budget in replicate_budgets:
    same = [r for r in runs if r.budget == budget]
    central = same[len(same) // 2]
    for seed in REPLICATE_SEEDS:
      config = config_lib.with_overrides(central.config, {
          "train.seed": seed, "data.seed": seed})
      runs.append(registry.Run(f"{central.short_name}_seed{seed}", config,
                               budget=budget,
                               tags=dict(central.tags, seed=seed)))
  for run in runs:  # cadence only: not part of the run identity
    steps = run.config.train.steps
    run.config.eval.every = max(1, steps // 2)
    run.config.checkpoint.every = steps
  return registry.Family(base, runs, notes)


@registry.register(
    "quickstart",
    description="isoFLOP study, 3 budgets 3e11-2.2e12 x 5 sizes (>= 2 layers), "
                "2 seed replicates (2 CPU cores)",
    cost="<= 15 min on 2 CPU cores, compile and analysis included")
def build():
  return isoflop_design(BUDGETS, 5, replicate_budgets=(BUDGETS[1],))
