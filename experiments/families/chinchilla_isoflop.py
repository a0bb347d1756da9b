"""``chinchilla_isoflop``: Hoffmann et al. 2022 Approach 2 at realistic scale.

The quickstart's design (isoFLOP parabolas in log N, then power laws of N_opt
and D_opt in C) at the sizes and budgets of Hoffmann et al. 2022 Figure 3's
lower end: budgets 1e18 … 3e19 FLOPs (exact ``flops`` count), 9 sizes per
budget within a factor 4 of N_opt = sqrt(C / 120) (20 tokens per parameter),
from a fixed-aspect ladder (d_model / n_layers = 64, d_head 64, SwiGLU with
d_ff = 8/3 d_model rounded to 128); sequences of 2048 bytes, 256 sequences
(0.5M tokens) per step, bfloat16 compute, hyperparameters from
``generators.DEFAULT_RULE``.

No rematerialisation: with ``model.attention=auto`` (splash on TPU, cuDNN
on GPU) no [B, H, L, L] score tensor is stored, so the largest run
(L30, d_model 1920, one 2048-byte sequence per chip) needs 8,832 MiB of
temporaries per v5e chip without remat (``scaling check sweep
chinchilla_isoflop --topology v5e:16x16``) and fits its 16 GiB, and remat's
second forward pass (a third more FLOPs per step) is not paid. The reference
einsum would need 29,112 MiB there: a copy of this file with
``model.remat = True`` (1,453 MiB) is how to run it with ``reference``.

Cost: about 4e20 FLOPs in all: some 12 chip-days of an H100 or TPU v4 at 40%
MFU, a few hours on a 64-chip slice; meant for accelerators (here:
``--dry-run``).
"""

from __future__ import annotations

from experiments import generators
from experiments import registry
from scaling import config as config_lib

BUDGETS = (1e18, 3e18, 1e19, 3e19)


@registry.register(
    "chinchilla_isoflop",
    description="isoFLOP sweep, 4 budgets 1e18-3e19, ~40M-1.6B params (accelerators)",
    cost="~4e20 FLOPs: ~12 chip-days at 40% MFU; dry-run on CPU")
def build():
  base = config_lib.default_config()
  base.seq_len = 2048
  base.batch_size = 256
  base.model.dtype = "bfloat16"
  base.model.mlp = "swiglu"
  base.model.remat = False  # see the module docstring
  # Sized for a 256-chip slice (v5e-256, v4-256): parameters and optimizer
  # state sharded 128 ways (ZeRO-3 style; every d_model of the ladder is a
  # multiple of 128), two data-parallel replicas.
  base.mesh.data, base.mesh.fsdp = -1, 128
  base.checkpoint.every = 1000
  base.eval.every = 1000
  # Eval batches are sharded like training batches: a multiple of
  # data * fsdp = 256 (8 batches x 256 rows x 2048 tokens = 4.2M eval tokens).
  base.eval.batches = 8
  base.eval.batch_size = 256
  base.train.log_every = 50
  shapes = generators.ladder(range(4, 33, 2), aspect_ratio=64, d_head=64,
                             ffn_ratio=8 / 3, ff_multiple=128)
  notes = []
  runs = generators.isoflop(base, BUDGETS, shapes, tokens_per_param=20.0,
                            factor=4.0, max_sizes=9, min_steps=500,
                            rule=generators.DEFAULT_RULE, notes=notes)
  return registry.Family(base, runs, notes)
