"""Peak FLOP/s of the devices a run uses, the denominator of MFU (DESIGN §4).

MFU = model FLOPs per second (``flops``, no rematerialisation) / peak FLOP/s.
The peak is, per device:

* for a known accelerator, its vendor datasheet figure (dense, no 2:4
  sparsity), from :data:`DATASHEETS`, keyed by ``jax.Device.device_kind``;
* on CPU (and for an accelerator missing from the table), a measured rate: a
  jitted square matmul, sized to take about 0.2 s, run concurrently on every
  device given, timed best of several. The figure is cached in a JSON file
  (``$XDG_CACHE_HOME/scaling`` or ``~/.cache/scaling``) keyed by machine,
  device kind and count, dtype and jax/jaxlib versions, because measuring takes
  seconds and the result should be the same for every run on a machine.
  Measure on an otherwise idle machine: other processes lower the figure (and
  so inflate MFU); ``refresh`` measures again and keeps the higher figure.

Every figure comes with a ``source`` string saying which of these it is;
print it next to any MFU.

The same table is the one home of the other chip figures: HBM capacity and
bandwidth per device (``hbm_bytes``, ``hbm_bytes_per_sec``, with their
``memory_source``), which ``scaling check --topology`` compares a compiled
step against (fit, roofline: :mod:`scaling.roofline`). GPU memory figures are
not in it yet (that check compiles for TPU only).

float32 on accelerators: at JAX's default matmul precision float32 dots run as
one bfloat16 pass on TPU and as TF32 on NVIDIA tensor cores (Ampere and
later), so the float32 peak of the table is the bfloat16 peak on TPU and the
TF32 tensor-core peak on NVIDIA (JAX docs, "Matmul precision"). Runs that set
``jax_default_matmul_precision`` to "highest" will see a lower MFU ceiling.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import platform
import re
import tempfile
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

from scaling import metrics

_DTYPES = ("float32", "bfloat16")


@dataclasses.dataclass(frozen=True)
class Datasheet:
  """Dense peak FLOP/s and memory of ONE jax device (chip, or TensorCore on
  TPU v2/v3).

  Attributes:
    name: the accelerator's marketing name.
    bfloat16: bf16 matmul peak, FLOP/s, dense.
    float32: float32 matmul peak at JAX's default precision, FLOP/s (TF32
      tensor cores on NVIDIA, bf16 passes on TPU; see the module docstring).
    source: where the FLOP/s figures come from.
    hbm_bytes: HBM capacity, bytes (None: not in the table).
    hbm_bytes_per_sec: HBM bandwidth, bytes/s (None: not in the table).
    memory_source: where the two memory figures come from.
  """

  name: str
  bfloat16: float
  float32: float
  source: str
  hbm_bytes: float | None = None
  hbm_bytes_per_sec: float | None = None
  memory_source: str = ""


_TPU_DOCS = "cloud.google.com/tpu/docs/system-architecture-tpu-vm"
_NV = "NVIDIA datasheet, dense = half the 'with sparsity' figure"
_GiB = 2**30
# Cloud TPU's per-generation pages (cloud.google.com/tpu/docs/v4, /v5e,
# /v5p, /v6e, /v3), table "HBM capacity and bandwidth". Capacity: the
# printed figure read as GiB (HBM stacks are binary-sized; v4 and v3 print
# "GiB", the others "GB"; XLA:TPU's own limits agree: it reports 15.75 GiB
# available on v5e, 30.75 on v4, 31.25 on v6e and 95.74 on v5p after the
# runtime's reserve). Bandwidth: GB/s as printed, 1e9 bytes/s.
_HBM = "cloud.google.com/tpu/docs/{}: HBM capacity and bandwidth {}"

# (device_kind pattern, figures); first match wins (case-insensitive search).
DATASHEETS: tuple[tuple[str, Datasheet], ...] = (
    # TPU v2/v3: 2 TensorCores per chip, each its own jax device.
    (r"^TPU v2$", Datasheet("TPU v2 (per core)", 22.5e12, 22.5e12,
                            f"{_TPU_DOCS}: 45 TFLOP/s per chip, 2 cores")),
    (r"^TPU v3$", Datasheet("TPU v3 (per core)", 61.5e12, 61.5e12,
                            f"{_TPU_DOCS}: 123 TFLOP/s per chip, 2 cores",
                            16 * _GiB, 450e9,
                            _HBM.format("v3", "32 GiB, 900 GBps per chip, "
                                        "halved per core"))),
    # From v4 on (megacore / single core) one jax device is one chip.
    (r"^TPU v4$", Datasheet("TPU v4", 275e12, 275e12, _TPU_DOCS,
                            32 * _GiB, 1200e9,
                            _HBM.format("v4", "32 GiB, 1200 GBps"))),
    (r"^TPU v5( lite|e)$", Datasheet("TPU v5e", 197e12, 197e12, _TPU_DOCS,
                                     16 * _GiB, 819e9,
                                     _HBM.format("v5e", "16 GB, 819 GBps"))),
    (r"^TPU v5p?$", Datasheet("TPU v5p", 459e12, 459e12, _TPU_DOCS,
                              95 * _GiB, 2765e9,
                              _HBM.format("v5p", "95 GB, 2765 GBps"))),
    (r"^TPU v6( lite|e)$", Datasheet("TPU v6e (Trillium)", 918e12, 918e12,
                                     _TPU_DOCS, 32 * _GiB, 1638e9,
                                     _HBM.format("v6e", "32 GB, 1638 GBps"))),
    # NVIDIA: bf16 and TF32 tensor-core peaks, dense.
    (r"A100", Datasheet("NVIDIA A100", 312e12, 156e12,
                        "NVIDIA A100 datasheet (dense)")),
    (r"H100.*NVL", Datasheet("NVIDIA H100 NVL", 835.5e12, 417.5e12, _NV)),
    (r"H100.*PCIe", Datasheet("NVIDIA H100 PCIe", 756.5e12, 378e12, _NV)),
    (r"H100", Datasheet("NVIDIA H100 SXM", 989.5e12, 494.5e12, _NV)),
    (r"H200.*NVL", Datasheet("NVIDIA H200 NVL", 835.5e12, 417.5e12, _NV)),
    (r"H200", Datasheet("NVIDIA H200 SXM", 989.5e12, 494.5e12, _NV)),
    (r"B200", Datasheet("NVIDIA B200 (HGX)", 2.25e15, 1.125e15, _NV)),
    (r"\bL4\b", Datasheet("NVIDIA L4", 121e12, 60e12, _NV)),
)


def _dtype_name(dtype: Any) -> str:
  """'float32' | 'bfloat16' for a dtype or its name; ValueError otherwise."""
  name = jnp.dtype(dtype).name
  if name not in _DTYPES:
    raise ValueError(f"peak FLOP/s known for {_DTYPES}, not {name!r} "
                     "(model.dtype)")
  return name


def datasheet(device_kind: str) -> Datasheet | None:
  """The table entry for a ``jax.Device.device_kind``, or None if unknown."""
  for pattern, sheet in DATASHEETS:
    if re.search(pattern, device_kind, flags=re.IGNORECASE):
      return sheet
  return None


def default_cache_dir() -> pathlib.Path:
  """``$XDG_CACHE_HOME/scaling``, else ``~/.cache/scaling``."""
  root = os.environ.get("XDG_CACHE_HOME") or os.path.join(
      os.path.expanduser("~"), ".cache")
  return pathlib.Path(root) / "scaling"


def _machine_id() -> str:
  """Host name, CPU model and usable CPU count (what a CPU peak depends on)."""
  cpu_model = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      for line in f:
        if line.startswith("model name"):
          cpu_model = line.split(":", 1)[1].strip()
          break
  except OSError:
    pass
  try:
    n_cpus = len(os.sched_getaffinity(0))
  except AttributeError:
    n_cpus = os.cpu_count() or 0
  return f"{platform.node()}|{cpu_model}|cpus={n_cpus}"


def measure_matmul_flops(devices: Sequence[Any], dtype: Any,
                         target_seconds: float = 0.2,
                         repeats: int = 10, *, n: int | None = None,
                         budget_seconds: float | None = None,
                         call_seconds: float | None = None) -> dict[str, Any]:
  """Measures the matmul rate of ``devices`` running concurrently.

  Each device multiplies two [n, n] matrices of ``dtype`` (one jitted batched
  einsum sharded over the devices); n is a multiple of 128 chosen so one call
  takes about ``target_seconds`` (or given); the best of ``repeats`` timed
  calls after a warm-up counts (with ``budget_seconds``, as many calls of
  ``call_seconds`` each as fit in it with the warm-up, at least 2). FLOPs per
  call = 2 n^3 per device.

  Returns:
    dict(flops_per_sec=float, n=int, seconds=float (best call),
    n_devices=int).
  """

  devices = list(devices)
  n_dev = len(devices)
  mesh = jax.sharding.Mesh(np.array(devices), ("devices",))
  sharding = jax.sharding.NamedSharding(
      mesh, jax.sharding.PartitionSpec("devices"))
  dt = jnp.dtype(_dtype_name(dtype))
  matmul = jax.jit(lambda a, b: jnp.einsum("dij,djk->dik", a, b),
                   out_shardings=sharding)

  def best_time(n: int, count: int) -> float:
    """Best wall seconds of one [n_dev, n, n] matmul over `count` calls."""
    make = jax.jit(lambda: (jnp.full((n_dev, n, n), 0.5, dt),
                            jnp.full((n_dev, n, n), 1.5, dt)),
                   out_shardings=(sharding, sharding))
    a, b = make()
    matmul(a, b).block_until_ready()  # compile + warm up
    best = float("inf")
    for _ in range(count):
      start = time.perf_counter()
      matmul(a, b).block_until_ready()
      best = min(best, time.perf_counter() - start)
    return best

  if n is None:
    n = 256
    seconds = best_time(n, 2)
    for _ in range(5):  # grow n until one call takes about target_seconds
      if seconds >= 0.7 * target_seconds or n >= 8192:
        break
      rate = 2.0 * n**3 / seconds
      n = int(min(8192, max(n, (target_seconds * rate / 2.0) ** (1 / 3))))
      n = max(128, n // 128 * 128)
      seconds = best_time(n, 1)
  if budget_seconds is not None:
    # One call at this n costs 2 n^3 / rate; a floor of 1 GFLOP/s per device
    # bounds it, and the cached seconds (when given) say it exactly.
    per_call = call_seconds or 2.0 * n**3 / 1e9
    repeats = max(2, int(budget_seconds / max(per_call, 1e-6)) - 1)
  seconds = best_time(n, repeats)
  return dict(flops_per_sec=2.0 * n**3 * n_dev / seconds, n=n,
              seconds=seconds, n_devices=n_dev)


_MEASURED: dict[str, dict[str, Any]] = {}  # this process's measurements
QUICK_SECONDS = 0.4  # timed calls of a re-measurement at the cached size


def _read_table(path: pathlib.Path) -> dict:
  try:
    table = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, ValueError):
    return {}
  return table if isinstance(table, dict) else {}


def _write_table(path: pathlib.Path, table: dict) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".peak_flops.")
  with os.fdopen(fd, "w", encoding="utf-8") as f:
    json.dump(table, f, indent=1, sort_keys=True)
  os.replace(tmp, path)  # atomic: concurrent runs never read half a file


def _measured_peak(devices: Sequence[Any], dtype: str, cache_dir: pathlib.Path,
                   refresh: bool, target_seconds: float
                   ) -> tuple[dict[str, Any], dict[str, Any], pathlib.Path]:
  """(best entry seen on this machine, this process's entry, cache path).

  This process measures once (again with ``refresh``): at the cached
  matrix size within :data:`QUICK_SECONDS` when the cache has a figure,
  else a full measurement. The cache keeps the best figure seen: other load
  only ever lowers a measurement, so the highest is the closest to the peak.
  """
  kind = devices[0].device_kind
  key = (f"{_machine_id()}|{devices[0].platform}:{kind}x{len(devices)}|"
         f"{dtype}|jax={jax.__version__}|jaxlib={jaxlib.__version__}")
  path = pathlib.Path(cache_dir) / "peak_flops.json"
  table = _read_table(path)
  old = table.get(key) if isinstance(table.get(key), dict) else None
  if old is not None and not (old.get("flops_per_sec", 0) > 0
                              and isinstance(old.get("n"), int)):
    old = None
  now = _MEASURED.get(key)
  if now is None or refresh:
    if old is not None:
      now = measure_matmul_flops(devices, dtype, n=old["n"],
                                 budget_seconds=QUICK_SECONDS,
                                 call_seconds=old.get("seconds"))
    else:
      now = measure_matmul_flops(devices, dtype, target_seconds=target_seconds)
    now["measured_at"] = time.time()
    _MEASURED[key] = now
    if old is None or now["flops_per_sec"] > old["flops_per_sec"]:
      table = _read_table(path)  # another process may have written meanwhile
      table[key] = dict(now)
      _write_table(path, table)
  best = old if old is not None and old["flops_per_sec"] >= now["flops_per_sec"] else now
  return best, now, path


def peak_flops(devices: Sequence[Any] | None, dtype: Any, *,
               cache_dir: str | os.PathLike | None = None,
               refresh: bool = False,
               target_seconds: float = 0.2) -> tuple[float, str]:
  """Peak FLOP/s of ``devices`` together, for matmuls in ``dtype``.

  Call it outside any mesh context (``jax.set_mesh``): the measurement
  builds its own mesh of this process's devices.

  Args:
    devices: the jax devices a run uses (None: ``jax.devices()``); all of one
      device_kind.
    dtype: compute dtype, "float32" or "bfloat16" (or the jnp dtype).
    cache_dir: where the measured-rate cache lives (default
      :func:`default_cache_dir`).
    refresh: measure again even if this process measured already.
    target_seconds: duration of one timed matmul of a first (uncached)
      measurement.

  Returns:
    (flops_per_sec, source): the summed peak, and "datasheet <name> ..." or
    "measured matmul ..." naming the figure's age, this process's own
    measurement and the cache file.

  Raises:
    ValueError: for no devices, mixed device kinds, or a dtype other than
      float32/bfloat16.
    RuntimeError: when called inside a mesh context.
  """
  devices = list(jax.devices() if devices is None else devices)
  if not devices:
    raise ValueError("peak_flops needs at least one device")
  kinds = sorted({d.device_kind for d in devices})
  if len(kinds) > 1:
    raise ValueError(f"devices of mixed kinds {kinds}; MFU needs one kind")
  name = _dtype_name(dtype)
  n_dev = len(devices)
  sheet = None if devices[0].platform == "cpu" else datasheet(kinds[0])
  if sheet is not None:
    per_device = getattr(sheet, name)
    return per_device * n_dev, (
        f"datasheet {sheet.name} {name} dense {per_device / 1e12:g} TFLOP/s "
        f"x {n_dev} device(s) ({sheet.source})")
  if not jax.sharding.get_abstract_mesh().empty:
    raise RuntimeError("measure the peak outside the run's mesh context "
                       "(jax.set_mesh): the measurement has its own mesh")
  # Measure on the devices this process can drive; scale to all of them.
  local = [d for d in devices
           if d.process_index == jax.process_index()] or devices
  best, now, path = _measured_peak(
      local, name, pathlib.Path(cache_dir or default_cache_dir()), refresh,
      target_seconds)
  scale = n_dev / len(local)
  notes = "" if devices[0].platform == "cpu" else (
      f", device kind {kinds[0]!r} not in the datasheet table")
  if len(local) != n_dev:
    notes += f", scaled by {n_dev}/{len(local)} devices"
  when = best.get("measured_at")
  if isinstance(when, (int, float)):
    age = (f"measured {metrics.duration(max(0.0, time.time() - when))} ago "
           f"({time.strftime('%Y-%m-%d %H:%M', time.localtime(when))})")
  else:
    age = f"measured {when or 'at an unknown time'}"
  return best["flops_per_sec"] * scale, (
      f"measured matmul {name} n={best['n']} on {len(local)} "
      f"{devices[0].platform} device(s){notes}: the best figure seen on this "
      f"machine, {age}; this process measured "
      f"{now['flops_per_sec'] * scale / 1e9:,.1f} GFLOP/s just now "
      f"(cached at {path})")


def mfu(model_flops_per_sec: float, peak_flops_per_sec: float) -> float:
  """Model FLOPs utilisation = model FLOP/s (``flops``, no remat) / peak.

  Raises:
    ValueError: if the peak is not positive.
  """
  if peak_flops_per_sec <= 0:
    raise ValueError(f"peak FLOP/s must be > 0, got {peak_flops_per_sec}")
  return float(model_flops_per_sec) / float(peak_flops_per_sec)
