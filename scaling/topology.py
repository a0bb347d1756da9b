"""TPU slices as compile-only devices, for ``scaling check --topology NAME``.

A slice is named either by its topology, ``FAMILY:AxB`` (v5e, v6e: a 2-D
torus) or ``FAMILY:AxBxC`` (v4, v5p: 3-D), e.g. ``v5e:16x16``, ``v6e:8x8``,
``v5p:8x8x4``, or by the accelerator type that ``scaling launch tpu
--accelerator-type`` takes (``v5litepod-256``, ``v6e-64``, ``v4-32``,
``v5p-128``), which :func:`parse` maps to that type's topology in the Cloud
TPU docs' configuration tables (cloud.google.com/tpu/docs/v4, /v5e, /v5p,
/v6e). :func:`devices` asks libtpu, the TPU compiler, for the slice's
devices: they cannot run anything, but a train step lowered for a mesh of
them compiles with XLA:TPU on this CPU machine, so its memory figures are the
TPU compiler's (DESIGN.md §8). MaxText's ``train_compile.py`` does the same.

libtpu is the optional extra ``pip install -e '.[tpu]'`` (Linux only; it
installs the libtpu version that the installed jax release pins). Nothing
here imports jax at import time; the CLI makes JAX's own backend the CPU
(``jax_platforms=cpu``) before asking for a topology, so libtpu is used as a
compiler only.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import math
import re
import sys

from scaling.config import ConfigError


class LibtpuMissing(RuntimeError):
  """libtpu cannot be imported here; the message says how to install it."""


@dataclasses.dataclass(frozen=True)
class Family:
  """One TPU generation as the topology API and the launcher name it.

  Attributes:
    name: the topology prefix libtpu accepts ("v5e").
    aliases: other prefixes accepted in names ("v5litepod").
    type_prefix: the accelerator-type prefix ("v5litepod" in v5litepod-256).
    device_kind: ``jax.Device.device_kind`` of its chips (the datasheet key,
      ``scaling.peak.DATASHEETS``).
    rank: 2 (torus AxB) or 3 (AxBxC).
    cores_in_type: the accelerator type's number counts TensorCores, two per
      chip (v4, v5p), rather than chips (v5e, v6e).
    single_host_chips: slices up to this many chips are one host (a TPU VM).
    slices: chips -> the topology of that accelerator type (Cloud TPU docs).
    options: extra ``get_topology_desc`` arguments (v4: one device per chip,
      megacore, as on a v4 TPU VM).
  """

  name: str
  aliases: tuple[str, ...]
  type_prefix: str
  device_kind: str
  rank: int
  cores_in_type: bool
  single_host_chips: int
  slices: dict[int, tuple[int, ...]]
  options: tuple[tuple[str, str], ...] = ()


_2D = {1: (1, 1), 4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8),
       128: (8, 16), 256: (16, 16)}
_3D = {4: (2, 2, 1), 8: (2, 2, 2), 16: (2, 2, 4), 32: (2, 4, 4),
       64: (4, 4, 4), 128: (4, 4, 8), 256: (4, 8, 8), 512: (8, 8, 8),
       1024: (8, 8, 16), 2048: (8, 16, 16)}

FAMILIES: tuple[Family, ...] = (
    Family("v5e", ("v5e", "v5litepod", "v5lite"), "v5litepod", "TPU v5 lite",
           2, False, 8, _2D),
    Family("v6e", ("v6e",), "v6e", "TPU v6 lite", 2, False, 8, _2D),
    Family("v4", ("v4",), "v4", "TPU v4", 3, True, 4,
           {**_3D, 768: (8, 8, 12)},
           (("chip_config_name", "megacore"),)),
    Family("v5p", ("v5p",), "v5p", "TPU v5", 3, True, 4,
           {**_3D, 4096: (16, 16, 16), 6144: (16, 16, 24)}),
)


@dataclasses.dataclass(frozen=True)
class Topology:
  """A parsed slice: ``name`` is what libtpu is asked for ("v5e:16x16")."""

  name: str
  family: Family
  dims: tuple[int, ...]

  @property
  def chips(self) -> int:
    """Chips of the slice = jax devices (one per chip from v4 on)."""
    return math.prod(self.dims)

  @property
  def accelerator_type(self) -> str:
    """The Cloud TPU accelerator type of this many chips ("v5litepod-256")."""
    per_chip = 2 if self.family.cores_in_type else 1
    return f"{self.family.type_prefix}-{self.chips * per_chip}"

  def host_bounds(self) -> tuple[int, int, int]:
    """Chips per host: the whole slice up to ``single_host_chips`` (one TPU
    VM), else 2x2x1 (4-chip VMs)."""
    if self.chips <= self.family.single_host_chips:
      return tuple(self.dims) + (1,) * (3 - len(self.dims))
    return (2, 2, 1)


def _family(prefix: str) -> Family | None:
  for family in FAMILIES:
    if prefix.lower() in family.aliases:
      return family
  return None


def _known() -> str:
  return ", ".join(f.name for f in FAMILIES)


def parse(name: str) -> Topology:
  """A topology (``v5e:16x16``) or accelerator type (``v5litepod-256``).

  Raises:
    ConfigError: (``--topology``) an unknown family, a malformed name, the
      wrong number of dimensions, or an accelerator type whose topology is
      not in the table (the message lists the known sizes).
  """
  text = name.strip()
  topo = re.fullmatch(r"([A-Za-z0-9]+):(\d+(?:x\d+)+)", text)
  accel = re.fullmatch(r"([A-Za-z0-9]+)-(\d+)", text)
  prefix = (topo or accel).group(1) if (topo or accel) else text
  family = _family(prefix)
  if not (topo or accel) or family is None:
    raise ConfigError(
        "--topology", f"{name!r} is not a TPU slice: give FAMILY:AxB[xC] "
        f"(e.g. v5e:16x16, v5p:8x8x4, v6e:8x8) or an accelerator type "
        f"(e.g. v5litepod-256, v4-32) with FAMILY one of {_known()} "
        "(v2 and v3 are not supported)")
  if topo:
    dims = tuple(int(x) for x in topo.group(2).split("x"))
    if len(dims) != family.rank or min(dims) < 1:
      raise ConfigError(
          "--topology", f"{name!r}: {family.name} slices are "
          f"{'AxB' if family.rank == 2 else 'AxBxC'} with positive sizes, "
          f"e.g. {family.name}:{'x'.join(map(str, family.slices[max(family.slices)]))}")
  else:
    count = int(accel.group(2))
    chips = count // 2 if family.cores_in_type else count
    if chips not in family.slices or (family.cores_in_type and count % 2):
      per = 2 if family.cores_in_type else 1
      sizes = ", ".join(f"{family.type_prefix}-{c * per}" for c in family.slices)
      raise ConfigError(
          "--topology", f"{name!r}: no topology of that size in the table "
          f"({sizes}); give the slice as {family.name}:"
          f"{'AxB' if family.rank == 2 else 'AxBxC'}")
    dims = family.slices[chips]
  return Topology(f"{family.name}:{'x'.join(map(str, dims))}", family, dims)


def expected_libtpu() -> str | None:
  """The libtpu requirement of the installed jax's ``tpu`` extra
  ("libtpu==0.0.42.*"), from jax's package metadata; None if absent."""
  try:
    requires = importlib.metadata.requires("jax") or []
  except importlib.metadata.PackageNotFoundError:
    return None
  for req in requires:
    spec, _, marker = req.partition(";")
    if spec.strip().startswith("libtpu") and "tpu" in marker:
      return spec.replace(" ", "")
  return None


def install_hint() -> str:
  """How to install the libtpu that matches the installed jax."""
  try:
    jax_version = importlib.metadata.version("jax")
  except importlib.metadata.PackageNotFoundError:
    jax_version = "?"
  want = expected_libtpu() or "libtpu"
  if not sys.platform.startswith("linux"):
    return (f"libtpu is published for Linux only (this is {sys.platform}): "
            "run the check on a Linux machine, there with "
            "pip install -e '.[tpu]'")
  return (f"pip install -e '.[tpu]' (or pip install '{want}': the libtpu "
          f"that jax {jax_version} pins)")


def libtpu_version() -> str:
  """The importable libtpu's version.

  Raises:
    LibtpuMissing: libtpu cannot be imported (the message has
      :func:`install_hint`).
  """
  try:
    import libtpu  # pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    raise LibtpuMissing(
        "--topology compiles with XLA:TPU from libtpu, which is not "
        f"installed here: {install_hint()}") from None
  try:
    return importlib.metadata.version("libtpu")
  except importlib.metadata.PackageNotFoundError:
    return "unknown"


def version_warning() -> str | None:
  """A warning when the installed libtpu is not the one jax pins, else None.

  Raises:
    LibtpuMissing: see :func:`libtpu_version`.
  """
  have = libtpu_version()
  want = expected_libtpu()
  if want is None or "==" not in want:
    return None
  pattern = want.split("==", 1)[1]
  prefix = pattern[:-1] if pattern.endswith("*") else pattern
  ok = have.startswith(prefix) if pattern.endswith("*") else have == pattern
  if ok:
    return None
  return (f"warning: libtpu {have} is installed but jax pins {want}; the TPU "
          f"compile may fail or differ from the real one: {install_hint()}")


def devices(topology: Topology) -> list:
  """The compile-only devices of ``topology`` (one per chip), from libtpu.

  Call it with JAX's backend on the CPU (``jax_platforms=cpu``) to keep
  libtpu from looking for local TPU chips; it works either way.

  Raises:
    LibtpuMissing: libtpu is not installed (with the install command).
    ConfigError: (``--topology``) libtpu refuses the topology.
  """
  libtpu_version()
  from jax.experimental import topologies  # pylint: disable=import-outside-toplevel
  try:
    desc = topologies.get_topology_desc(
        topology_name=topology.name, platform="tpu",
        chips_per_host_bounds=topology.host_bounds(),
        **dict(topology.family.options))
  except Exception as e:  # pylint: disable=broad-except  # libtpu's own message
    raise ConfigError("--topology", f"libtpu does not accept {topology.name!r}: "
                      f"{str(e).splitlines()[0][:300]}") from e
  found = list(desc.devices)
  if len(found) != topology.chips:
    raise ConfigError("--topology", f"libtpu gave {len(found)} devices for "
                      f"{topology.name!r}, expected {topology.chips} (one per chip)")
  return found
