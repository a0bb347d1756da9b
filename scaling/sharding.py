"""How arrays are laid out on devices and processes: the one room for sharding.

* The mesh has axes ``("data", "fsdp", "tensor")`` (DESIGN.md §2.2), built by
  :func:`make_mesh` from ``config.mesh`` (at most one ``-1`` fills the rest).
  We use logical-rule (GSPMD) sharding, so every mesh axis is
  ``AxisType.Auto``: the compiler propagates shardings from the parameters'
  and the batch's annotations and from ``with_logical_constraint`` on the main
  activations.
* :data:`LOGICAL_RULES` maps the model's logical axis names to mesh axes.
* Process topology: which rows of every global batch a process loads
  (:func:`process_shard`), and how per-process rows become one global array
  (:func:`to_global`, ``jax.make_array_from_process_local_data``).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from scaling.config import ConfigError

MESH_AXES = ("data", "fsdp", "tensor")
# Batch rows are split over every data-parallel axis (data and fsdp).
BATCH_SPEC = P(("data", "fsdp"), None)

# Logical axis name -> mesh axis. Order matters: flax assigns each mesh axis at
# most once per array, first rule first, so an activation's `batch` takes
# (data, fsdp) and its `embed` then falls through to replication, while a
# parameter's `embed` is sharded over fsdp (ZeRO-3 style).
LOGICAL_RULES = (
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("embed", "fsdp"),
    ("length", None),
    ("kv", None),
    ("layers", None),
)


# ------------------------------------------------------------------- mesh


def mesh_shape(mesh_cfg, n_devices: int) -> tuple[int, int, int]:
  """Resolves (data, fsdp, tensor) with at most one -1 filling the rest.

  Raises:
    ConfigError: more than one -1, non-positive sizes, or a product that is
      not the device count.
  """
  sizes = {k: int(mesh_cfg[k]) for k in MESH_AXES}
  free = [k for k, v in sizes.items() if v == -1]
  if len(free) > 1:
    raise ConfigError(f"mesh.{free[1]}", "at most one mesh axis may be -1.")
  for k, v in sizes.items():
    if v == 0 or v < -1:
      raise ConfigError(f"mesh.{k}", f"must be positive or -1, got {v}.")
  fixed = math.prod(v for v in sizes.values() if v != -1)
  if free:
    if n_devices % fixed:
      raise ConfigError(
          f"mesh.{free[0]}", f"cannot fill: {n_devices} devices are not "
          f"divisible by the other axes' product {fixed}.")
    sizes[free[0]] = n_devices // fixed
  product = math.prod(sizes.values())
  if product != n_devices:
    raise ConfigError(
        "mesh", f"data*fsdp*tensor = {product} but there are {n_devices} "
        "devices; set one axis to -1 or make the product match.")
  return sizes["data"], sizes["fsdp"], sizes["tensor"]


def make_mesh(config, devices=None) -> Mesh:
  """Builds the (data, fsdp, tensor) mesh over ``devices`` (default: all).

  Raises:
    ConfigError: when the mesh sizes do not fit the device count.
  """
  devices = jax.devices() if devices is None else devices
  shape = mesh_shape(config.mesh, len(devices))
  return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3,
                       devices=devices)


def abstract_mesh(config, n_devices: int) -> jax.sharding.AbstractMesh:
  """The mesh of ``config`` over ``n_devices`` devices, without devices.

  A step lowered under it needs no device that can execute (compile-only
  checks, DESIGN.md §8).
  """
  shape = mesh_shape(config.mesh, n_devices)
  return jax.sharding.AbstractMesh(shape, MESH_AXES,
                                   axis_types=(AxisType.Auto,) * 3)


def logical_shardings(mesh, abstract_tree):
  """NamedShardings for a tree of (boxed) abstract values with logical names.

  Args:
    mesh: the device mesh (a ``Mesh`` or an ``AbstractMesh``).
    abstract_tree: output of ``jax.eval_shape`` over a Flax init, whose
      leaves are ``nn.LogicallyPartitioned`` boxes (or plain arrays, which are
      replicated).
  """
  specs = nn.get_partition_spec(abstract_tree)
  mesh_specs = nn.logical_to_mesh(specs, LOGICAL_RULES)
  return jax.tree.map(lambda s: NamedSharding(mesh, s), mesh_specs,
                      is_leaf=lambda x: isinstance(x, P))


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh) -> NamedSharding:
  return NamedSharding(mesh, BATCH_SPEC)


def rules_context():
  """Context manager that activates the logical axis rules for tracing."""
  return nn.logical_axis_rules(LOGICAL_RULES)


# ------------------------------------------------------- process topology


def batch_shard(process_of_device: np.ndarray, axis_names: tuple[str, ...],
                batch_axes: tuple[str, ...],
                process_index: int) -> tuple[int, int]:
  """Which block of the batch dimension one process holds (pure logic).

  A batch dimension sharded over mesh axes ``batch_axes`` is cut into
  ``prod(sizes)`` shards, the first axis major (as NamedSharding does); the
  process must hold a contiguous, aligned run of them.

  Args:
    process_of_device: int array shaped like the mesh: each device's process.
    axis_names: the mesh axis names, in order.
    batch_axes: mesh axes the batch dimension is sharded over (may be empty:
      replicated).
    process_index: the process asked about.

  Returns:
    ``(shard_index, shard_count)``: the process holds global rows
    ``[shard_index B/shard_count, (shard_index+1) B/shard_count)``.

  Raises:
    ValueError: the process holds no device, or a non-contiguous or
      misaligned set of batch shards (reorder the mesh's devices).
  """
  dims = [axis_names.index(a) for a in batch_axes]
  sizes = [process_of_device.shape[d] for d in dims]
  count = math.prod(sizes)
  coords = np.argwhere(process_of_device == process_index)
  if not len(coords):
    raise ValueError(f"process {process_index} holds no device of the mesh")
  held = sorted({int(np.ravel_multi_index(tuple(c[dims]), sizes))
                 if dims else 0 for c in coords})
  width = len(held)
  if held != list(range(held[0], held[0] + width)) or held[0] % width:
    raise ValueError(
        f"process {process_index} holds batch shards {held} of {count}, not "
        "one aligned contiguous block; build the mesh with jax.make_mesh so "
        "each process's devices are adjacent along the data axes")
  return held[0] // width, count // width


def _batch_axes(pspec) -> tuple[str, ...]:
  first = pspec[0] if len(pspec) else None
  if first is None:
    return ()
  return (first,) if isinstance(first, str) else tuple(first)


def process_shard(mesh: Mesh, pspec=BATCH_SPEC) -> tuple[int, int]:
  """This process's ``(shard_index, shard_count)`` of every global batch.

  Derived from the mesh rather than ``jax.process_index()`` so that processes
  replicated along the batch (e.g. a tensor axis across hosts) load the same
  rows. Single process: ``(0, 1)``.

  Args:
    mesh: the device mesh.
    pspec: the batch's PartitionSpec (default :data:`BATCH_SPEC`).

  Raises:
    ValueError: see :func:`batch_shard`.
  """
  process_of_device = np.vectorize(lambda d: d.process_index,
                                   otypes=[int])(mesh.devices)
  return batch_shard(process_of_device, tuple(mesh.axis_names),
                     _batch_axes(pspec), jax.process_index())


def local_rows(global_batch: dict[str, np.ndarray], shard_index: int,
               shard_count: int) -> dict[str, np.ndarray]:
  """One process's contiguous block of a global host batch.

  Returns:
    Every array's rows ``[i b, (i+1) b)``, b = B / shard_count.
  """
  b = next(iter(global_batch.values())).shape[0] // shard_count
  return {k: v[shard_index * b:(shard_index + 1) * b]
          for k, v in global_batch.items()}


def to_global(local_batch: dict[str, np.ndarray], mesh: Mesh,
              pspec=BATCH_SPEC) -> dict[str, jax.Array]:
  """Assembles per-process host rows into global sharded device arrays.

  Args:
    local_batch: this process's rows (from ``TrainStream.local_batch`` or
      :func:`local_rows`), arrays [B / shard_count, L].
    mesh: the device mesh.
    pspec: PartitionSpec of the batch (default :data:`BATCH_SPEC`).

  Returns:
    Dict of ``jax.Array`` [B, L] with ``NamedSharding(mesh, pspec)``, built by
    ``jax.make_array_from_process_local_data``.
  """
  sharding = NamedSharding(mesh, pspec)
  _, count = process_shard(mesh, pspec)
  return {
      k: jax.make_array_from_process_local_data(
          sharding, v, (v.shape[0] * count,) + v.shape[1:])
      for k, v in local_batch.items()
  }


def to_host(x: jax.Array) -> np.ndarray:
  """A global array as one whole host array on every process.

  Single process: ``jax.device_get``; several processes: an all-gather of
  the process-local rows (``multihost_utils.process_allgather``, tiled).
  """
  if jax.process_count() > 1:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))
