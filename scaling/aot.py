"""Ahead-of-time check: compile a run's train step for a device count and mesh
without allocating anything, and report what each device will hold.

Used by ``scaling check`` and ``scaling launch ... --check`` on this CPU
machine before an accelerator is paid for. It compiles the program training
runs (:func:`scaling.program.build`): ``program_fingerprint`` equals the one a
run of the same config records in its ``summary.json``. Two kinds of target:

* the visible devices (``topology=None``; fake CPU devices with
  ``--xla_force_host_platform_device_count=N``): XLA:CPU's memory figures;
* a TPU slice (``topology="v5e:16x16"``, an accelerator type such as
  ``v5litepod-256``: :mod:`scaling.topology`), whose compile-only devices come
  from libtpu: the step compiles with XLA:TPU, so the bytes per device are the
  TPU compiler's (DESIGN.md §8). They are compared with the chip's HBM
  (``scaling.peak.DATASHEETS``): a step XLA:TPU cannot fit (it refuses to
  compile it) or whose total exceeds the HBM is reported with ``fits`` False.
  XLA's cost analysis then gives the roofline bound on the step time and MFU
  (:mod:`scaling.roofline`).

Memory per device (XLA's ``memory_analysis``): arguments (parameters,
optimizer state, batch, hyperparameters, as laid out on the device: small
arrays are padded to the TPU's (8, 128) tiles), outputs, aliased (outputs
written into donated argument buffers), temporaries (activations and
everything else live during the step) and generated code; the total is
arguments + outputs - aliased + temporaries + generated code.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import numpy as np

from scaling import accounting
from scaling import attention
from scaling import config as config_lib
from scaling import peak
from scaling import program as program_lib
from scaling import roofline as roofline_lib
from scaling import sharding
from scaling import topology as topology_lib
from scaling import validation
from scaling.config import ConfigError


def bytes_per_device(abstract_tree) -> int:
  """Bytes of the largest shard of every leaf, summed (one device's share)."""
  total = 0
  for leaf in jax.tree.leaves(abstract_tree):
    shard = leaf.sharding.shard_shape(leaf.shape)
    total += int(np.prod(shard)) * np.dtype(leaf.dtype).itemsize
  return total


def memory_figures(compiled: jax.stages.Compiled) -> dict[str, int] | None:
  """XLA's memory of a compiled step on one device, bytes (module docstring).

  Returns:
    {argument, output, alias, temp, generated_code, total}_bytes_per_device,
    or None when the backend reports nothing.
  """
  try:
    m = compiled.memory_analysis()
  except Exception:  # pylint: disable=broad-except  # not every backend reports it
    return None
  if m is None:
    return None
  out = dict(argument_bytes_per_device=int(m.argument_size_in_bytes),
             output_bytes_per_device=int(m.output_size_in_bytes),
             alias_bytes_per_device=int(m.alias_size_in_bytes),
             temp_bytes_per_device=int(m.temp_size_in_bytes),
             generated_code_bytes_per_device=int(m.generated_code_size_in_bytes))
  out["total_bytes_per_device"] = (
      out["argument_bytes_per_device"] + out["output_bytes_per_device"]
      - out["alias_bytes_per_device"] + out["temp_bytes_per_device"]
      + out["generated_code_bytes_per_device"])
  return out


def cost_figures(compiled: jax.stages.Compiled) -> dict[str, float] | None:
  """XLA's cost analysis per device: {"flops", "bytes accessed"}, or None."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  if not cost or "flops" not in cost:
    return None
  return {"flops": float(cost["flops"]),
          "bytes accessed": float(cost.get("bytes accessed", 0.0))}


@dataclasses.dataclass(frozen=True)
class Target:
  """What a step is compiled for: devices, the TPU slice (or None) and the
  datasheet of its chips (or None)."""

  devices: list
  topology: topology_lib.Topology | None = None
  sheet: peak.Datasheet | None = None

  @property
  def platform(self) -> str:
    return self.devices[0].platform


def target(topology: str | None = None) -> Target:
  """The visible devices, or the compile-only devices of a TPU slice.

  Raises:
    ConfigError: (``--topology``) a name libtpu or the table does not know.
    scaling.topology.LibtpuMissing: a topology without libtpu installed.
  """
  if topology is None:
    return Target(jax.devices())
  topo = topology_lib.parse(topology)
  devices = topology_lib.devices(topo)
  return Target(devices, topo, peak.datasheet(devices[0].device_kind))


def _lower(config, where: Target):
  validation.validate(config, len(where.devices))
  program = program_lib.build(config, sharding.make_mesh(config, where.devices))
  return program, program.lower()


_OOM = "RESOURCE_EXHAUSTED"


def _compile(program, lowered):
  """(compiled or None, XLA's out-of-memory message or None, seconds)."""
  t0 = time.time()
  try:
    with program.context():
      compiled = lowered.compile()
  except Exception as e:  # pylint: disable=broad-except
    if _OOM not in str(e):
      raise
    lines = [l.strip() for l in str(e).splitlines() if l.strip()]
    return None, " ".join(lines[:2])[:600], time.time() - t0
  return compiled, None, time.time() - t0


def _step_cost(config, compiled, where: Target, progress) -> tuple[dict | None, str]:
  """(cost per device per step, how it was obtained): see scaling.roofline.

  XLA counts a while loop's body once, so a step scanned over layers or
  microbatches is costed from unrolled one- and two-layer compiles of one
  microbatch (:func:`scaling.roofline.per_step_cost`).
  """
  m, micro = config.model, config.train.microbatches
  if not ((m.scan_layers and m.n_layers > 1) or micro > 1):
    return cost_figures(compiled), "XLA cost analysis of the step"
  probes = []
  for layers in (1, 2):
    probe = config_lib.with_overrides(config, {
        "model.n_layers": layers, "model.scan_layers": False,
        "train.microbatches": 1, "batch_size": config.batch_size // micro})
    if progress:
      progress(f"  compiling the {layers}-layer unrolled step for XLA's cost "
               "analysis")
    program, lowered = _lower(probe, where)
    probe_compiled, oom, _ = _compile(program, lowered)
    cost = cost_figures(probe_compiled) if probe_compiled is not None else None
    if cost is None:
      return None, f"no cost: the {layers}-layer probe did not compile ({oom})"
    probes.append(cost)
  how = ("XLA cost analysis of unrolled 1- and 2-layer compiles, extrapolated "
         f"to {m.n_layers} layers" + (f" x {micro} microbatches" if micro > 1 else ""))
  return roofline_lib.per_step_cost(probes[0], probes[1], m.n_layers, micro), how


def _report(config, program, lowered, where: Target, roofline: bool,
            progress) -> dict[str, Any]:
  n = len(where.devices)
  m = config.model
  platform = where.platform
  dtype = config_lib.compute_dtype(m.dtype, platform)
  compiled, oom, seconds = _compile(program, lowered)
  report: dict[str, Any] = dict(devices=n,
                                device_kind=where.devices[0].device_kind)
  if where.topology is not None:
    report["topology"] = where.topology.name
  report.update(
      mesh=dict(zip(sharding.MESH_AXES, program.mesh.devices.shape)),
      compute_dtype=dtype,
      attention=attention.resolve(m.attention, platform, dtype=dtype,
                                  seq_len=config.seq_len,
                                  d_head=config_lib.d_head(m)),
      remat=m.remat_policy if m.remat else "none",
      compile_seconds=seconds,
      program_fingerprint=program_lib.fingerprint(lowered),
      param_bytes_per_device=bytes_per_device(program.abstract_state["params"]),
      optimizer_bytes_per_device=bytes_per_device(
          program.abstract_state["opt_state"]))
  sheet = where.sheet
  hbm = int(sheet.hbm_bytes) if sheet is not None and sheet.hbm_bytes else None
  if compiled is None:
    if hbm is not None:
      report["hbm_bytes_per_device"] = hbm
    report.update(fits=False, xla_error=oom)
    return report
  report.update(memory_figures(compiled) or {})
  if hbm is not None:
    report["hbm_bytes_per_device"] = hbm
    if "total_bytes_per_device" in report:
      report["fits"] = report["total_bytes_per_device"] <= hbm
  if roofline and sheet is not None and sheet.hbm_bytes_per_sec:
    cost, how = _step_cost(config, compiled, where, progress)
    report["cost_source"] = how
    if cost is not None:
      model_flops = accounting.flops_per_step(config)["flops"] / n
      peak_flops = getattr(sheet, dtype)
      bound = roofline_lib.step_bound(
          max(cost["flops"], model_flops), cost["bytes accessed"], model_flops,
          peak_flops, sheet.hbm_bytes_per_sec)
      report.update(
          xla_flops_per_device=cost["flops"],
          xla_bytes_accessed_per_device=cost["bytes accessed"],
          model_flops_per_device=model_flops,
          peak_flops_per_device=peak_flops,
          hbm_bytes_per_sec=sheet.hbm_bytes_per_sec,
          roofline_compute_seconds=bound.compute_seconds,
          roofline_memory_seconds=bound.memory_seconds,
          step_seconds_lower_bound=bound.seconds, roofline_bound=bound.bound,
          mfu_upper_bound=bound.mfu)
  return report


def check_runs(runs: Sequence[tuple[str, Any]], topology: str | None = None, *,
               roofline: bool = True,
               progress: Callable[[str], None] | None = None
               ) -> Iterator[tuple[list[str], dict[str, Any]]]:
  """Compiles each distinct train step of ``runs`` once and reports on it.

  Every run is validated and lowered first; runs whose lowered programs are
  equal (the same ``program_fingerprint``: they differ only in traced
  hyperparameters such as the learning rate or the training length) share
  one compile.

  Args:
    runs: (name, config) pairs.
    topology: None (the visible devices) or a TPU slice name
      (:func:`scaling.topology.parse`).
    roofline: with a TPU slice, also compile the cost probes and report the
      roofline bound (two more, smaller compiles per program when the step
      loops over layers or microbatches).
    progress: called with a line of text before each compile.

  Yields:
    (names of the runs, report) per distinct program, in the runs' order;
    the report as :func:`check`'s.

  Raises:
    ConfigError: a run does not validate for the devices (the message names
      the run), or a bad topology.
    scaling.topology.LibtpuMissing: a topology without libtpu.
    Exception: XLA's own error when a step cannot be compiled for another
      reason than memory.
  """
  where = target(topology)
  groups: dict[str, dict] = {}
  for name, config in runs:
    try:
      program, lowered = _lower(config, where)
    except ConfigError as e:
      message = str(e).split(": ", 1)[1] if ": " in str(e) else str(e)
      raise type(e)(e.field, f"(run '{name}') {message}") from e
    group = groups.setdefault(program_lib.fingerprint(lowered), dict(
        names=[], config=config, program=program, lowered=lowered))
    group["names"].append(name)
  for i, group in enumerate(groups.values(), 1):
    if progress:
      progress(f"[{i}/{len(groups)}] compiling {', '.join(group['names'])}")
    yield group["names"], _report(group["config"], group["program"],
                                  group["lowered"], where, roofline, progress)


def check(config, topology: str | None = None, *, roofline: bool = True,
          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
  """Lowers and compiles the train step of ``config`` for the visible devices
  or a TPU slice.

  Returns:
    dict with ``devices``, ``device_kind``, ``mesh``, the resolved
    ``compute_dtype``, ``attention`` and ``remat``, parameter and optimizer
    bytes per device (their shards' shapes, unpadded), XLA's memory figures
    (module docstring) where the backend reports them, ``compile_seconds``
    and ``program_fingerprint``. For a TPU slice also ``topology``,
    ``hbm_bytes_per_device`` and ``fits`` (False with ``xla_error`` when
    XLA:TPU refuses the step for lack of memory), and with ``roofline``
    XLA's and the model's FLOPs, XLA's bytes accessed, the roofline terms,
    ``step_seconds_lower_bound`` and ``mfu_upper_bound``
    (:mod:`scaling.roofline`).

  Raises:
    as :func:`check_runs`.
  """
  where = target(topology)
  program, lowered = _lower(config, where)
  return _report(config, program, lowered, where, roofline, progress)


_NUMBER = re.compile(r"\(([\d.]+)G\)")


def oom_bytes(xla_error: str) -> tuple[float, float] | None:
  """(required, available) bytes from XLA:TPU's out-of-memory message
  ("... required for HLO temporaries (29.60G) exceeds available HBM
  (15.75G)"), or None when it has no such pair."""
  found = _NUMBER.findall(xla_error or "")
  if len(found) < 2:
    return None
  return float(found[0]) * 2**30, float(found[1]) * 2**30
