"""``scaling sweep NAME --workers N``: N sweep workers on this machine's cores.

Small models leave most of a CPU idle: XLA:CPU cannot spread a step of a
tiny Transformer over many cores, so one process trains at a fraction of
the machine's matmul rate. N independent workers, each pinned to its own
share of the cores (``SCALING_CPU_AFFINITY``, applied by ``scaling.cli``
before JAX starts), share one sweep directory: each run is claimed by one
worker (``scaling.claims``), so every run is trained once. When all have
finished, this process writes the tables and runs the analysis once.

Workers are independent processes (no ``jax.distributed``): a run is
trained by one worker on its cores. A run's numbers depend on the cores its
process may use (XLA:CPU's reduction order follows its thread count; about
1e-7 relative per step), so a sweep with another worker count is not bitwise
equal to this one. Output is prefixed ``[p<i>]``; if one worker fails, the
others are stopped (:func:`launch.local.run_processes`). This module does not
import JAX.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import TextIO

from launch import local

ENV_AFFINITY = "SCALING_CPU_AFFINITY"


def usable_cpus() -> list[int]:
  """The CPUs this process may run on."""
  try:
    return sorted(os.sched_getaffinity(0))
  except AttributeError:  # not Linux
    return list(range(os.cpu_count() or 1))


def cpu_groups(n_workers: int, cpus: Sequence[int]) -> list[list[int]]:
  """``cpus`` split into ``n_workers`` contiguous groups, as equal as can be.

  Raises:
    ValueError: fewer CPUs than workers, or no worker.
  """
  if n_workers < 1 or n_workers > len(cpus):
    raise ValueError(f"--workers {n_workers}: use 1 to {len(cpus)} (the CPUs "
                     "this process may use)")
  size, extra = divmod(len(cpus), n_workers)
  groups, start = [], 0
  for i in range(n_workers):
    end = start + size + (i < extra)
    groups.append(list(cpus[start:end]))
    start = end
  return groups


def worker_env(cpus: Sequence[int], base_env: Mapping[str, str]) -> dict[str, str]:
  """Environment of one worker: one CPU device pinned to ``cpus`` (pure)."""
  env = dict(base_env)
  flags = [f for f in env.get("XLA_FLAGS", "").split()
           if not f.startswith("--xla_force_host_platform_device_count")]
  env["XLA_FLAGS"] = " ".join(flags)
  env["JAX_PLATFORMS"] = "cpu"
  env["SCALING_DISTRIBUTED"] = "none"
  env[ENV_AFFINITY] = ",".join(str(c) for c in cpus)
  env["PYTHONUNBUFFERED"] = "1"
  path = env.get("PYTHONPATH", "")
  env["PYTHONPATH"] = str(local.REPO_ROOT) + (os.pathsep + path if path else "")
  return env


def apply_affinity(environ: Mapping[str, str] | None = None) -> None:
  """Pins this process to ``SCALING_CPU_AFFINITY`` (a worker's first call).

  Must run before JAX starts, so XLA sizes its thread pool to the pinned
  CPUs.
  """
  environ = os.environ if environ is None else environ
  value = environ.get(ENV_AFFINITY)
  if value and hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {int(c) for c in value.split(",")})


def run_workers(sweep_args: Sequence[str], n_workers: int, *,
                out: TextIO | None = None) -> int:
  """Trains the sweep with ``n_workers`` pinned worker processes.

  Args:
    sweep_args: the ``scaling sweep`` arguments (NAME, --workdir, ...),
      without ``--workers``.
    n_workers: N >= 2.
    out: where the workers' prefixed output goes (default sys.stdout).

  Returns:
    0 when every worker finished, else the first failing worker's status
    (see :func:`launch.local.run_processes`). The caller then writes the
    tables and the analysis.
  """
  out = out or sys.stdout
  groups = cpu_groups(n_workers, usable_cpus())
  command = local.scaling_command(["sweep", *sweep_args, "--workers", "1",
                                   "--no-analysis", "--no-progress"])
  envs = [worker_env(g, os.environ) for g in groups]
  print(f"sweep: {n_workers} workers on CPUs "
        f"{'; '.join(','.join(map(str, g)) for g in groups)}", file=out,
        flush=True)
  return local.run_processes([command] * n_workers, envs, out=out)
