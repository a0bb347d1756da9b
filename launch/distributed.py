"""Multi-host initialisation, in one explicit place.

Entry points (``scaling train``, ``scaling sweep``, test payloads) call
:func:`initialize` once at startup, before any JAX computation. It works out how
this process belongs to a job and calls ``jax.distributed.initialize`` (or does
nothing for a single process). The sources, in order of precedence:

1. flags: ``initialize(coordinator_address=..., num_processes=..., process_id=...)``;
2. ``SCALING_DISTRIBUTED`` naming a mode explicitly (the launchers set it):
   ``none`` | ``env`` | ``slurm`` | ``tpu`` | ``gke`` | ``auto``;
3. detection: ``SCALING_NUM_PROCESSES`` set (the local launcher) → ``env``;
   a Slurm job step with ``SLURM_NTASKS`` > 1 → ``slurm``; GKE TPU pods with
   several ``TPU_WORKER_HOSTNAMES`` → ``gke``; otherwise ``none``.

Environment of mode ``env`` (set by :mod:`launch.local`):
``SCALING_COORDINATOR_ADDRESS`` (host:port of process 0), ``SCALING_NUM_PROCESSES``,
``SCALING_PROCESS_ID``, optionally ``SCALING_LOCAL_DEVICE_IDS`` ("0,1").

Slurm: one process per GPU (``--ntasks-per-node`` = GPUs; each process takes GPU
``SLURM_LOCALID``) or one per node (``--ntasks-per-node=1``; the process takes all
visible GPUs). The coordinator is ``SCALING_COORDINATOR_ADDRESS`` when set (our sbatch
script sets it from ``scontrol show hostnames``), else the first host of
``SLURM_STEP_NODELIST`` on port ``61440 + SLURM_JOB_ID % 4096`` (the rule JAX uses).
TPU VMs and GKE: ``jax.distributed.initialize()`` detects everything itself.

Decisions that must agree across processes once the job runs (skip a finished
run, which step to resume from, stop on preemption) are the library's:
:mod:`scaling.agree`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
from collections.abc import Mapping, Sequence

import jax

ENV_MODE = "SCALING_DISTRIBUTED"
ENV_COORDINATOR = "SCALING_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "SCALING_NUM_PROCESSES"
ENV_PROCESS_ID = "SCALING_PROCESS_ID"
ENV_LOCAL_DEVICE_IDS = "SCALING_LOCAL_DEVICE_IDS"
MODES = ("none", "flags", "env", "slurm", "tpu", "gke", "auto")
# Modes where JAX's own cluster detection supplies every parameter.
AUTO_MODES = ("tpu", "gke", "auto")


class DistributedError(ValueError):
  """The multi-host settings are missing or inconsistent; the message names the fix."""


@dataclasses.dataclass(frozen=True)
class DistributedSetup:
  """How this process belongs to a job.

  Attributes:
    mode: one of ``MODES``; ``none`` is a single process.
    coordinator_address: "host:port" of process 0's coordinator (None in auto modes
      and for a single process).
    num_processes: number of processes (None in auto modes: JAX finds it).
    process_id: this process's index in [0, num_processes) (None in auto modes).
    local_device_ids: device ids this process drives, None for all visible ones.
  """

  mode: str
  coordinator_address: str | None = None
  num_processes: int | None = 1
  process_id: int | None = 0
  local_device_ids: tuple[int, ...] | None = None


_SETUP: DistributedSetup | None = None


def _int(environ: Mapping[str, str], name: str) -> int:
  value = environ.get(name)
  if value is None:
    raise DistributedError(f"{name} is not set; set it or launch with `scaling launch`")
  try:
    return int(value)
  except ValueError:
    raise DistributedError(f"{name}={value!r} is not an integer") from None


def _device_ids(value: str | Sequence[int] | None) -> tuple[int, ...] | None:
  if value is None or value == "" or value == "all":
    return None
  if isinstance(value, str):
    value = value.split(",")
  return tuple(int(v) for v in value)


def first_slurm_host(nodelist: str) -> str:
  """The first host name of a Slurm hostlist expression.

  Examples: "node001" -> "node001"; "gpu[003-010,012],cpu1" -> "gpu003";
  "a[1-2]-b[5-6]" -> "a1-b5".

  Raises:
    DistributedError: on an empty nodelist.
  """
  entry, depth = [], 0
  for ch in nodelist.strip():
    if ch == "," and depth == 0:
      break
    depth += (ch == "[") - (ch == "]")
    entry.append(ch)
  host = re.sub(r"\[([^\]]*)\]", lambda m: re.split(r"[,-]", m.group(1))[0],
                "".join(entry))
  if not host:
    raise DistributedError(f"cannot read a host from Slurm nodelist {nodelist!r}")
  return host


def _slurm_tasks_per_node(environ: Mapping[str, str]) -> list[int]:
  """Task counts per node from "8(x2),4" style strings (Slurm's compressed form)."""
  text = (environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE")
          or environ.get("SLURM_NTASKS_PER_NODE") or "")
  return [int(m.group(1)) for m in re.finditer(r"(\d+)(?:\(x\d+\))?", text)]


def _slurm_setup(environ: Mapping[str, str]) -> DistributedSetup:
  num_processes = _int(environ, "SLURM_NTASKS")
  if num_processes == 1:
    return DistributedSetup("none")
  process_id = _int(environ, "SLURM_PROCID")
  coordinator = environ.get(ENV_COORDINATOR)
  if not coordinator:
    nodelist = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST")
    if not nodelist:
      raise DistributedError(
          "Slurm mode needs SLURM_STEP_NODELIST (run under `srun`) or "
          f"{ENV_COORDINATOR}=host:port")
    port = environ.get("JAX_COORDINATOR_PORT") or str(
        61440 + _int(environ, "SLURM_JOB_ID") % 4096)
    coordinator = f"{first_slurm_host(nodelist)}:{port}"
  per_node = _slurm_tasks_per_node(environ)
  visible = [d for d in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
  if (per_node and max(per_node) == 1) or len(visible) == 1:
    local_ids = None  # one process per node (all GPUs), or Slurm bound one GPU
  else:
    local_ids = (int(environ.get("SLURM_LOCALID", "0")),)  # one process per GPU
  return DistributedSetup("slurm", coordinator, num_processes, process_id, local_ids)


def _env_setup(environ: Mapping[str, str]) -> DistributedSetup:
  num_processes = _int(environ, ENV_NUM_PROCESSES)
  if num_processes == 1:
    return DistributedSetup("none")
  coordinator = environ.get(ENV_COORDINATOR)
  if not coordinator:
    raise DistributedError(f"{ENV_NUM_PROCESSES}={num_processes} needs {ENV_COORDINATOR}=host:port")
  return DistributedSetup("env", coordinator, num_processes, _int(environ, ENV_PROCESS_ID),
                          _device_ids(environ.get(ENV_LOCAL_DEVICE_IDS)))


def _detect_mode(environ: Mapping[str, str]) -> str:
  if ENV_NUM_PROCESSES in environ:
    return "env"
  if ("SLURM_STEP_NODELIST" in environ and "SLURM_PROCID" in environ
      and int(environ.get("SLURM_NTASKS", "1") or 1) > 1):
    return "slurm"
  hosts = environ.get("TPU_WORKER_HOSTNAMES") or environ.get("TPU_PROCESS_ADDRESSES") or ""
  if len([h for h in hosts.split(",") if h]) > 1:
    return "gke"
  return "none"


def resolve(coordinator_address: str | None = None, num_processes: int | None = None,
            process_id: int | None = None,
            local_device_ids: Sequence[int] | None = None,
            environ: Mapping[str, str] | None = None) -> DistributedSetup:
  """Works out this process's place in the job, without touching JAX (pure).

  Args:
    coordinator_address, num_processes, process_id, local_device_ids: flags; when
      num_processes is given they win over the environment.
    environ: environment to read (default ``os.environ``).

  Returns:
    The :class:`DistributedSetup`; mode ``none`` for a single process.

  Raises:
    DistributedError: missing or inconsistent settings (message names the fix).
  """
  environ = os.environ if environ is None else environ
  if num_processes is not None or process_id is not None or coordinator_address:
    if num_processes is None or process_id is None:
      raise DistributedError("give --num-processes and --process-id together "
                             "(and --coordinator-address when more than one process)")
    if num_processes == 1:
      return DistributedSetup("none")
    if not coordinator_address:
      raise DistributedError(f"num_processes={num_processes} needs a coordinator_address host:port")
    setup = DistributedSetup("flags", coordinator_address, num_processes, process_id,
                             _device_ids(local_device_ids))
  else:
    mode = environ.get(ENV_MODE) or _detect_mode(environ)
    if mode not in MODES or mode == "flags":
      raise DistributedError(f"{ENV_MODE}={mode!r}: use one of none, env, slurm, tpu, gke, auto")
    if mode == "none":
      return DistributedSetup("none")
    if mode in AUTO_MODES:
      return DistributedSetup(mode, None, None, None, None)
    setup = _env_setup(environ) if mode == "env" else _slurm_setup(environ)
  if setup.mode != "none" and not 0 <= setup.process_id < setup.num_processes:
    raise DistributedError(
        f"process_id={setup.process_id} must be in [0, {setup.num_processes})")
  return setup


def initialize(coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None,
               local_device_ids: Sequence[int] | None = None, *,
               environ: Mapping[str, str] | None = None,
               initialization_timeout: int = 300) -> DistributedSetup:
  """Joins this process to its multi-host job; call once from an entry point.

  Must run before any JAX computation or device query. For more than one process
  it selects gloo CPU collectives (``jax_cpu_collectives_implementation``) so CPU
  processes can run collectives, then calls ``jax.distributed.initialize``; for a
  single process it does nothing. Calling it again with the same settings returns
  the first result.

  Args: as :func:`resolve`; initialization_timeout: seconds to wait for all processes.

  Returns:
    The :class:`DistributedSetup` used.

  Raises:
    DistributedError: settings missing or inconsistent, or different from an
      earlier call.
  """
  global _SETUP
  setup = resolve(coordinator_address, num_processes, process_id, local_device_ids, environ)
  if _SETUP is not None:
    if setup != _SETUP:
      raise DistributedError(f"initialize() already ran with {_SETUP}; now asked for {setup}")
    return _SETUP
  if setup.mode != "none" and not jax.distributed.is_initialized():
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if setup.mode in AUTO_MODES:
      jax.distributed.initialize(initialization_timeout=initialization_timeout)
    else:
      jax.distributed.initialize(
          coordinator_address=setup.coordinator_address,
          num_processes=setup.num_processes, process_id=setup.process_id,
          local_device_ids=list(setup.local_device_ids) if setup.local_device_ids else None,
          cluster_detection_method="deactivate",
          initialization_timeout=initialization_timeout)
    _install_fail_fast_excepthook()
  _SETUP = setup
  return setup


def _exit_now(code: int) -> None:
  for stream in (sys.stdout, sys.stderr):
    with contextlib.suppress(Exception):
      stream.flush()
  os._exit(code)


def _install_fail_fast_excepthook() -> None:
  """An uncaught exception ends a multi-process job's process at once (status 1).

  Otherwise the interpreter would wait in JAX's atexit shutdown barrier for
  processes that never reach it, so the launcher could not see the failure.
  """
  previous = sys.excepthook

  def hook(exc_type, exc, tb):
    previous(exc_type, exc, tb)
    _exit_now(1)

  sys.excepthook = hook


def finish(code: int) -> int:
  """The entry point's last call: ``sys.exit(finish(code))``.

  In a multi-process job a non-zero ``code`` exits at once (after flushing stdout
  and stderr), skipping JAX's shutdown barrier, which would wait for the other
  processes; the launcher then sees the failure and stops them. Otherwise returns
  ``code``.
  """
  if code and _SETUP is not None and _SETUP.mode != "none":
    _exit_now(code)
  return code
