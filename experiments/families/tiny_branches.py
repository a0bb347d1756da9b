"""``tiny_branches``: one stable run and two WSD decay branches, for tests.

The ``tiny`` shape (d_model 32, one layer, seq_len 32, batch 4): a stable run
of 9 steps (2 warmup, then the peak rate; checkpoints every 3 steps, only the
last kept, plus the branch points) and 1-sqrt branches of 10 and 15 steps
(decay 40%: they start from the stable run's steps 6 and 9), plus the
15-step branch's config trained from scratch, which must match it. Cost:
seconds per run on a laptop CPU once compiled.
"""

from __future__ import annotations

from experiments import generators
from experiments import registry
from experiments.families import tiny


def build_runs():
  """The stable run, its two branches, and the longer branch from scratch."""
  base = tiny.base_config()
  base.train.log_every = 1
  base.eval.every = 3
  base.checkpoint.every = 3
  base.checkpoint.keep = 1  # the branch points are kept all the same
  shape = generators.Shape(d_model=32, n_layers=1, n_heads=2, d_ff=64)
  tokens_per_step = base.batch_size * base.seq_len
  runs = generators.wsd_branches(
      base, [shape], [10 * tokens_per_step, 15 * tokens_per_step],
      decay_fraction=0.4, decay_shape="1-sqrt", warmup_steps=2)
  longest = runs[-1]
  runs.append(registry.Run(f"{longest.short_name}_scratch", longest.config,
                           tags=dict(longest.tags, role="independent")))
  return base, runs


@registry.register(
    "tiny_branches",
    description="1 stable run + 2 WSD branches + 1 run from scratch (tests)",
    cost="seconds per run on CPU")
def build():
  base, runs = build_runs()
  return registry.Family(base, runs)
