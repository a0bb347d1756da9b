"""How long a sweep takes here: the one wall-time model of the experiments.

total FLOPs / sustained FLOP/s + a fixed cost per optimizer step (host data,
dispatch) + per run (corpus, eval, checkpoints) + per compiled model shape,
with the sustained rate an assumed fraction (MFU) of the peak of
:mod:`scaling.peak` (a measured matmul rate on CPU, a datasheet figure on
accelerators). CPU figures set from ``scaling sweep quickstart`` on the
2-core machine shared with other work, on the safe side: 15 runs (17,820
steps, 4.35e12 FLOPs) took 549 s at load ~5.5 (estimate 10.4 min); 18 runs
(21,219 steps, 5.2e12) 410 s at load ~4 (estimate 12 min).
"""

from __future__ import annotations

from typing import Sequence

import jax

from experiments.registry import Run
from scaling import peak

ASSUMED_MFU_CPU = 0.35
STEP_SECONDS_CPU = 0.015
ASSUMED_MFU_ACCELERATOR = 0.3
STEP_SECONDS_ACCELERATOR = 0.005
SECONDS_PER_RUN = 3.0
COMPILE_SECONDS_PER_SHAPE = 6.0


def throughput() -> tuple[float, float, str]:
  """(sustained FLOP/s, fixed seconds per step, how they were obtained)."""
  peak_flops, source = peak.peak_flops(jax.devices(), "float32")
  on_cpu = jax.devices()[0].platform == "cpu"
  mfu = ASSUMED_MFU_CPU if on_cpu else ASSUMED_MFU_ACCELERATOR
  step = STEP_SECONDS_CPU if on_cpu else STEP_SECONDS_ACCELERATOR
  return peak_flops * mfu, step, (
      f"{peak_flops / 1e9:.1f} GFLOP/s peak ({source}) x assumed MFU {mfu}, "
      f"plus {step * 1e3:g} ms per step")


def estimate_seconds(runs: Sequence[Run], flops_per_sec: float,
                     step_seconds: float = STEP_SECONDS_CPU) -> float:
  """Estimated wall time of training ``runs`` here, cold compile cache.

  total FLOPs / sustained FLOP/s + step_seconds per optimizer step +
  SECONDS_PER_RUN per run + COMPILE_SECONDS_PER_SHAPE per distinct shape.
  A WSD decay branch counts only its steps after its branch point.
  """
  shapes = {(r.config.model.d_model, r.config.model.n_layers,
             r.config.model.d_ff, r.config.batch_size, r.config.seq_len,
             r.config.objective.name) for r in runs}
  return (sum(r.flops for r in runs) / flops_per_sec
          + step_seconds * sum(r.steps - r.branch_step for r in runs)
          + SECONDS_PER_RUN * len(runs) + COMPILE_SECONDS_PER_SHAPE * len(shapes))
