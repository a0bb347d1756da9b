"""``tiny``: three runs of a few steps, for tests of the sweep runner.

One shape (d_model 32, one layer, seq_len 32, batch 4) at three learning
rates, so the three runs share one compiled train step. Cost: a few seconds per
run on a laptop CPU once compiled (about 10 s of compilation on a cold cache).
"""

from __future__ import annotations

from experiments import generators
from experiments import registry
from scaling import config as config_lib


def base_config():
  """The tiny base config: 12 steps of a one-layer d_model=32 model."""
  base = config_lib.default_config()
  base.batch_size = 4
  base.seq_len = 32
  base.model.update(dict(d_model=32, n_layers=1, n_heads=2, n_kv_heads=2,
                         d_ff=64))
  base.train.steps = 12
  base.train.log_every = 2
  base.schedule.warmup_steps = 2
  base.checkpoint.every = 4
  base.checkpoint.async_save = False
  base.eval.every = 6
  base.eval.batches = 2
  base.eval.batch_size = 4
  return base


@registry.register(
    "tiny", description="3 runs x 12 steps of a d_model=32 model (runner tests)",
    cost="seconds per run on CPU")
def build():
  base = base_config()
  runs = generators.grid(base, {"optimizer.peak_lr": [1e-3, 3e-3, 1e-2]})
  return registry.Family(base, runs)
