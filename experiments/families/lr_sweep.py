"""``lr_sweep``: learning rate × width, the grid that checks the per-size rule.

Widths d_model 32, 64, 128, 256 at 2 layers (d_head 16), each trained for
1M tokens (500 steps of 16 x 128) at 1/8 … 8 times the learning rate of
``generators.DEFAULT_RULE``. If the rule transfers, every width's best
multiplier is near 1 (Yang et al. 2022 Figure 1 style; Everett et al. 2024).
The runs of one width differ only in the learning rate, a traced
hyperparameter, so each width compiles once.

Cost: about 1.1e14 FLOPs; about 2 hours on 2 CPU cores (estimate), minutes on a GPU.

``lr_transfer`` is the parametrisation axis of the same grid (the transfer
check): each width is trained under SP and under μP (``model.
parametrization``, base d_model 32) at the *same* seven learning rates, ×2
apart around the rule's rate for the base width, so under μP the base
width's optimum should hold at every width and under SP it drifts. Its
analysis (:func:`analysis.transfer.analyze`) fits a parabola in log2(lr) per
width and reports the optimum's drift across width with intervals.
"""

from __future__ import annotations

from experiments import generators
from experiments import registry
from scaling import config as config_lib

MULTIPLIERS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
WIDTHS = (32, 64, 128, 256)


def base_config():
  """16 x 128 tokens per step, 500 steps, eval at the end."""
  base = config_lib.default_config()
  base.seq_len = 128
  base.batch_size = 16
  base.train.steps = 500
  base.eval.every = 500
  base.checkpoint.every = 250
  return base


@registry.register(
    "lr_sweep",
    description="peak_lr x 1/8..8 of the per-size rule x d_model 32..256 (2 layers)",
    cost="~1.1e14 FLOPs: about 2 hours on 2 CPU cores")
def build():
  base = base_config()
  shapes = generators.width_ladder(2, WIDTHS, d_head=16)
  runs = generators.lr_sweep(base, shapes, MULTIPLIERS, generators.DEFAULT_RULE)
  return registry.Family(base, runs)


def analyze_transfer(sweep_dir: str, out_dir: str) -> dict:
  """:func:`analysis.transfer.analyze`, imported only when a sweep is analysed
  (the analysis stack adds about 2 s to the start of every sweep process)."""
  from analysis import transfer  # pylint: disable=import-outside-toplevel
  return transfer.analyze(sweep_dir, out_dir)


# The transfer check (Yang et al. 2022, Fig. 1): the same learning rates for
# every width, under SP and under μP with the smallest width as the base.
TRANSFER_PARAMETRIZATIONS = ("sp", "mup")
TRANSFER_STEPS = 120


def transfer_config():
  """lr_sweep's runs at a quarter of the cost per step and shorter: 120
  steps of 16 x 64 tokens (sized for the shared 2-core machine)."""
  base = base_config()
  base.seq_len = 64
  base.train.steps = TRANSFER_STEPS
  base.eval.every = TRANSFER_STEPS
  base.checkpoint.every = TRANSFER_STEPS
  return base


@registry.register(
    "lr_transfer",
    description="peak_lr x 1/8..8 (one grid for all widths) x d_model 32..256"
    " x {sp, mup}, base d_model 32",
    cost="56 runs of 120 steps of 16 x 64 tokens: about 15 min on 2 idle CPU cores",
    analyze=analyze_transfer)
def build_transfer():
  base = transfer_config()
  shapes = generators.width_ladder(2, WIDTHS, d_head=16)
  runs = generators.lr_sweep(base, shapes, MULTIPLIERS, generators.DEFAULT_RULE,
                             parametrizations=TRANSFER_PARAMETRIZATIONS,
                             base_shape=shapes[0])
  return registry.Family(base, runs)
