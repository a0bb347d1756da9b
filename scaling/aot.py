"""Ahead-of-time check: compile a run's train step for a device count and mesh
without allocating anything, and report what each device will hold.

Used by ``scaling check`` and ``scaling launch ... --check`` on this CPU
machine with fake devices (``--xla_force_host_platform_device_count=N``)
before an accelerator is paid for.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from scaling import config as config_lib
from scaling import model as model_lib
from scaling import sharding as sharding_lib
from scaling import step as step_lib


def _bytes_per_device(abstract_tree) -> int:
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
    device, the compiled program's temp bytes where XLA reports them, and
    compile seconds.

  Raises:
    ConfigError: the config does not fit the device count or mesh.
    Exception: XLA's own error when the sharding cannot be compiled; the CLI
      prints it with the mesh and the config's model shape.
  """
  n = jax.device_count()
  config_lib.validate(config, n)
  mesh = sharding_lib.make_mesh(config)
  model = model_lib.build(config)
  steps = config_lib.train_steps(config)
  hp = step_lib.hyperparams(config, steps, 0)
  with jax.set_mesh(mesh), sharding_lib.rules_context():
    _, abstract, shardings = step_lib.abstract_state(model, mesh, 0)
    batch_sharding = sharding_lib.batch_sharding(mesh)
    shape = (config.batch_size, config.seq_len)
    batch = {k: jax.ShapeDtypeStruct(shape, v.dtype, sharding=batch_sharding)
             for k, v in step_lib.dummy_batch(1, 1).items()}
    fn = jax.jit(step_lib.make_train_step(
        model, config.schedule.name, config.train.microbatches,
        config.optimizer.decay_embeddings),
        out_shardings=(shardings, None), donate_argnums=(0,))
    t0 = time.time()
    compiled = fn.lower(abstract, batch, hp).compile()
    seconds = time.time() - t0
  report = dict(
      devices=n, mesh=dict(zip(sharding_lib.MESH_AXES, mesh.devices.shape)),
      param_bytes_per_device=_bytes_per_device(abstract["params"]),
      optimizer_bytes_per_device=_bytes_per_device(abstract["opt_state"]),
      compile_seconds=seconds)
  try:
    memory = compiled.memory_analysis()
    report["temp_bytes_per_device"] = int(memory.temp_size_in_bytes)
  except Exception:  # pylint: disable=broad-except  # not every backend reports it
    pass
  return report
