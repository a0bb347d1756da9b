"""Device mesh and shardings: the one place that decides how arrays are laid out.

The mesh has axes ``("data", "fsdp", "tensor")`` (DESIGN.md §2). We use
logical-rule (GSPMD) sharding, so every mesh axis is ``AxisType.Auto``: the
compiler propagates shardings from the parameters' and batch's annotations
and from ``with_logical_constraint`` on the main activations. Logical names
map to mesh axes through ``scaling.model.LOGICAL_RULES``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from scaling import config as config_lib
from scaling.model import LOGICAL_RULES

MESH_AXES = ("data", "fsdp", "tensor")
# Batch rows are split over every data-parallel axis (data and fsdp).
BATCH_SPEC = P(("data", "fsdp"), None)


def make_mesh(config, devices=None) -> Mesh:
  """Builds the (data, fsdp, tensor) mesh over ``devices`` (default: all).

  Raises:
    ConfigError: when the mesh sizes do not fit the device count.
  """
  devices = jax.devices() if devices is None else devices
  shape = config_lib.mesh_shape(config.mesh, len(devices))
  return jax.make_mesh(shape, MESH_AXES, axis_types=(AxisType.Auto,) * 3,
                       devices=devices)


def logical_shardings(mesh: Mesh, abstract_tree):
  """NamedShardings for a tree of (boxed) abstract values with logical names.

  Args:
    mesh: the device mesh.
    abstract_tree: output of ``jax.eval_shape`` over a Flax init, whose
      leaves are ``nn.LogicallyPartitioned`` boxes (or plain arrays, which are
      replicated).
  """
  specs = nn.get_partition_spec(abstract_tree)
  mesh_specs = nn.logical_to_mesh(specs, LOGICAL_RULES)
  return jax.tree.map(lambda s: NamedSharding(mesh, s), mesh_specs,
                      is_leaf=lambda x: isinstance(x, P))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, BATCH_SPEC)


def rules_context():
  """Context manager that activates the logical axis rules for tracing."""
  return nn.logical_axis_rules(LOGICAL_RULES)
