"""``quickstart_lr``: the learning-rate check behind the quickstart's rule.

At the quickstart's middle budget (1.1e12 FLOPs), its smallest and largest
2-layer shapes used in the pilot (L2_d12, L2_d48), at 0.5, 1, 2 and 4 times
the learning rate of ``generators.DEFAULT_RULE`` (Porian et al. 2024 show a
mis-tuned rate moves the fitted exponents). Measured (eval_loss, nats):
L2_d12 1.994 / 1.974 / 2.075 / 2.103; L2_d48 2.111 / 2.108 / 2.133 / 2.259:
the rule's rate is within 0.02 nats of the best multiplier at both ends.
Its analysis fits each shape's best rate (``analysis.hparams``, a parabola in
log2 lr, flagged when the best is at the grid's edge). About 10 minutes on 2
CPU cores.
"""

from __future__ import annotations

from experiments import generators
from experiments import registry
from experiments.families import quickstart
from scaling import config as config_lib

BUDGET = 1.1e12
MULTIPLIERS = (0.5, 1.0, 2.0, 4.0)


def analyze(sweep_dir: str, out_dir: str) -> dict:
  """Each shape's best learning rate (``scaling analyze --hparams lr``)."""
  from analysis import hparams_report  # pylint: disable=import-outside-toplevel
  return hparams_report.analyze_hparams(sweep_dir, out_dir, kinds=("lr",))


@registry.register(
    "quickstart_lr",
    description="lr x 0.5..4 of the rule at the quickstart's smallest and "
                "largest 2-layer shapes (1.1e12 FLOPs)",
    cost="about 10 min on 2 CPU cores", analyze=analyze)
def build():
  family = quickstart.isoflop_design((BUDGET,), 0)
  shapes = [quickstart.SHAPES[1], quickstart.SHAPES[5]]
  runs = []
  for run in generators.isoflop(
      family.base, (BUDGET,), shapes, tokens_per_param=quickstart.TOKENS_PER_PARAM,
      factor=100.0, min_steps=quickstart.MIN_STEPS,
      rule=generators.DEFAULT_RULE):
    for m in MULTIPLIERS:
      config = config_lib.with_overrides(run.config, {
          "optimizer.peak_lr": run.config.optimizer.peak_lr * m})
      config.eval.every = max(1, config.train.steps // 2)
      config.checkpoint.every = config.train.steps
      runs.append(registry.Run(
          f"{run.short_name}_lrx{generators.fmt_value(m)}", config,
          tags=dict(run.tags, flops_budget=run.budget, lr_multiplier=m)))
  return registry.Family(family.base, runs)
