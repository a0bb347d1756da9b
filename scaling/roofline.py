"""Roofline bounds on one train step: its least time and so its largest MFU.

A device that must do F floating-point operations and move B bytes between
its HBM and the chip cannot finish in less than

    T_min = max(F / P, B / W)

seconds, with P its peak FLOP/s and W its HBM bandwidth in bytes/s (the
roofline model: Williams, Waterman & Patterson 2009, "Roofline: an insightful
visual performance model for multicore architectures", CACM 52(4); the first
term is the compute bound, the second the memory bound, and perfect overlap
of the two is assumed). With the step's model FLOPs per device F_model (the
exact ``flops`` count, no rematerialisation: DESIGN.md §4), MFU can then be
at most F_model / (P · T_min).

F and B come from XLA's cost analysis of the compiled step
(``compiled.cost_analysis()``: "flops", "bytes accessed", per device), which
has two known gaps, handled by the caller (:mod:`scaling.aot`):

* a ``while`` loop's body is counted once, whatever its trip count, so a
  step scanned over layers (``model.scan_layers``) or microbatches reports
  about one layer's cost: :func:`per_step_cost` extrapolates from unrolled
  one- and two-layer compiles;
* a Pallas kernel (splash attention) is a custom call whose FLOPs XLA does
  not see, so the compute term uses the larger of XLA's count and F_model.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Roofline:
  """The bound on one step on one device.

  Attributes:
    compute_seconds: F / P.
    memory_seconds: B / W.
    seconds: T_min = max of the two.
    bound: "compute" or "memory", whichever term is larger.
    mfu: F_model / (P · T_min), the largest MFU the step can reach.
  """

  compute_seconds: float
  memory_seconds: float
  seconds: float
  bound: str
  mfu: float


def step_bound(flops: float, bytes_accessed: float, model_flops: float,
               peak_flops_per_sec: float, hbm_bytes_per_sec: float) -> Roofline:
  """T_min = max(F / P, B / W) and MFU <= F_model / (P T_min), per device.

  Args:
    flops: F, FLOPs the device executes in one step.
    bytes_accessed: B, bytes it moves to and from HBM in one step.
    model_flops: F_model, the step's model FLOPs per device (no remat).
    peak_flops_per_sec: P, the device's dense peak FLOP/s (datasheet).
    hbm_bytes_per_sec: W, its HBM bandwidth, bytes/s (datasheet).

  Returns:
    :class:`Roofline`.

  Raises:
    ValueError: a non-positive peak or bandwidth, or negative counts.
  """
  if peak_flops_per_sec <= 0 or hbm_bytes_per_sec <= 0:
    raise ValueError("peak FLOP/s and HBM bandwidth must be > 0, got "
                     f"{peak_flops_per_sec} and {hbm_bytes_per_sec}")
  if min(flops, bytes_accessed, model_flops) < 0:
    raise ValueError("FLOP and byte counts must be >= 0")
  compute = flops / peak_flops_per_sec
  memory = bytes_accessed / hbm_bytes_per_sec
  seconds = max(compute, memory)
  mfu = model_flops / (peak_flops_per_sec * seconds) if seconds > 0 else 0.0
  return Roofline(compute, memory, seconds,
                  "compute" if compute >= memory else "memory", mfu)


def per_step_cost(one_layer: dict, two_layers: dict, n_layers: int,
                  microbatches: int = 1) -> dict:
  """A step's cost from compiles of its one- and two-layer versions.

  Each layer adds the same cost, so cost(L) = c1 + (L - 1) (c2 - c1) for the
  unrolled model; with M microbatches (each of batch_size / M rows) the
  forward-backward runs M times, so the step costs M cost(L) (this counts the
  optimizer update M times instead of once: a small overestimate, of order
  the parameter bytes, against M passes over all activations).

  Args:
    one_layer, two_layers: {"flops": F, "bytes accessed": B} of the step
      with n_layers = 1 and 2 (unrolled, one microbatch).
    n_layers: the run's depth L.
    microbatches: M.

  Returns:
    {"flops": ..., "bytes accessed": ...} per device per step.
  """
  return {key: microbatches * (one_layer[key] + (n_layers - 1) *
                               (two_layers[key] - one_layer[key]))
          for key in ("flops", "bytes accessed")}
