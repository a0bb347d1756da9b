"""Ahead-of-time check: compile a run's train step for a device count and mesh
without allocating anything, and report what each device will hold.

Used by ``scaling check`` and ``scaling launch ... --check`` on this CPU
machine with fake devices (``--xla_force_host_platform_device_count=N``)
before an accelerator is paid for. It compiles the program training runs
(:func:`scaling.program.build`): ``program_fingerprint`` equals the one a
run of the same config records in its ``summary.json``.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from scaling import program as program_lib
from scaling import sharding
from scaling import validation


def bytes_per_device(abstract_tree) -> int:
  """Bytes of the largest shard of every leaf, summed (one device's share)."""
  total = 0
  for leaf in jax.tree.leaves(abstract_tree):
    shard = leaf.sharding.shard_shape(leaf.shape)
    total += int(np.prod(shard)) * np.dtype(leaf.dtype).itemsize
  return total


def check(config) -> dict:
  """Lowers and compiles the train step of ``config`` on all visible devices.

  Returns:
    dict with device count, mesh shape, parameter and optimizer bytes per
    device, the compiled program's temp bytes where XLA reports them,
    compile seconds and the program fingerprint.

  Raises:
    ConfigError: the config does not fit the device count or mesh.
    Exception: XLA's own error when the sharding cannot be compiled; the CLI
      prints it with the mesh and the config's model shape.
  """
  n = jax.device_count()
  validation.validate(config, n)
  mesh = sharding.make_mesh(config)
  program = program_lib.build(config, mesh)
  t0 = time.time()
  lowered = program.lower()
  with program.context():
    compiled = lowered.compile()
  seconds = time.time() - t0
  report = dict(
      devices=n, mesh=dict(zip(sharding.MESH_AXES, mesh.devices.shape)),
      param_bytes_per_device=bytes_per_device(program.abstract_state["params"]),
      optimizer_bytes_per_device=bytes_per_device(
          program.abstract_state["opt_state"]),
      compile_seconds=seconds,
      program_fingerprint=program_lib.fingerprint(lowered))
  try:
    memory = compiled.memory_analysis()
    report["temp_bytes_per_device"] = int(memory.temp_size_in_bytes)
  except Exception:  # pylint: disable=broad-except  # not every backend reports it
    pass
  return report
