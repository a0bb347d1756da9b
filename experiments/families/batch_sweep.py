"""``batch_sweep``: batch size × model size at a fixed token budget.

Widths d_model 32, 64, 128 at 2 layers (d_head 16; the ``lr_sweep`` shapes
but the widest), each trained on 1,048,576 tokens at 4, 8, 16, 32 and 64
sequences of 128 tokens per step (2048 … 128 steps), each at 0.5, 1 and 2
times the learning rate of ``hparams.DEFAULT_RULE`` (the optimal learning
rate moves with the batch; Porian et al. 2024 and DeepSeek-AI 2024 tune the
two together). ``scaling analyze SWEEP_DIR --out DIR --hparams batch``
takes the best learning rate per batch, fits B*(N) (``--hparams-x C``: in
C) and writes a rule file a sweep can load (``hparams.get_rule(PATH)``).

Cost: 45 runs, 7.1e13 FLOPs (exact count); `scaling experiments` estimates
about 30 minutes on 2 CPU cores (not measured: small batches run many
steps, and per-step overhead dominates there), minutes on a GPU.
"""

from __future__ import annotations

from experiments import generators
from experiments import hparams
from experiments import registry
from scaling import config as config_lib

BATCH_SIZES = (4, 8, 16, 32, 64)
LR_MULTIPLIERS = (0.5, 1.0, 2.0)
WIDTHS = (32, 64, 128)
TOKENS = 2**20
RULE = hparams.DEFAULT_RULE


def base_config():
  """128-token sequences; eval and a checkpoint at the end only."""
  base = config_lib.default_config()
  base.seq_len = 128
  base.train.log_every = 10
  base.eval.every = 10**9  # the last step only
  base.checkpoint.every = 10**9
  return base


@registry.register(
    "batch_sweep",
    description=("batch 4..64 sequences x lr 0.5..2 of the rule x d_model "
                 "32..128 (2 layers) at 1M tokens"),
    cost="7.1e13 FLOPs: ~30 min on 2 CPU cores (estimated, not measured)")
def build():
  base = base_config()
  shapes = generators.width_ladder(2, WIDTHS, d_head=16)
  runs = generators.batch_sweep(base, shapes, BATCH_SIZES, TOKENS,
                                LR_MULTIPLIERS, RULE)
  return registry.Family(base, runs)
