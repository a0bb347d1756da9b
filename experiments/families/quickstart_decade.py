"""``quickstart_decade``: the quickstart's design over 1.4 decades of compute.

The same shapes, corpus, batch, rule and evaluation as ``quickstart``
(:func:`experiments.families.quickstart.isoflop_design`), at 5 budgets from
3e11 to 7.4e12 FLOPs (exact count, ×2.24 apart) × 6 sizes, with seed
replicates at three budgets: for a researcher who wants the allocation
exponent pinned (target: a 95% half-width of at most 0.15). About 31 minutes on
2 CPU cores; its top budget's smaller models read the 10M-token corpus more
than once (results.csv ``epochs``; the report counts them).
"""

from __future__ import annotations

from experiments import registry
from experiments.families import quickstart

BUDGETS = (3e11, 6.7e11, 1.5e12, 3.3e12, 7.4e12)


@registry.register(
    "quickstart_decade",
    description="the quickstart's design at 5 budgets 3e11-7.4e12 x 6 sizes "
                "(1.4 decades), 6 seed replicates",
    cost="about 30 min on 2 CPU cores")
def build():
  return quickstart.isoflop_design(BUDGETS, 6, replicate_budgets=BUDGETS[1:4])
