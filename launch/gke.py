"""``scaling launch gke``: the ``xpk workload create`` command for a GKE cluster (``--dry-run`` prints it).

xpk (github.com/AI-Hypercomputer/xpk) runs the command in every pod of a JobSet on
TPU slices (``--tpu-type``, ``--num-slices``) or GPU nodes (``--device-type``,
``--num-nodes``). The container image carries the code: a prebuilt
``--docker-image``, or ``--base-docker-image`` plus ``--script-dir`` (xpk builds
it). The command sets ``SCALING_DISTRIBUTED=gke`` so
:func:`launch.distributed.initialize` lets ``jax.distributed`` read the pod
environment. ``--max-restarts`` lets a preempted workload restart; the sweep resumes.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import sys
from collections.abc import Sequence

from launch import plan, tpu


@dataclasses.dataclass(frozen=True)
class GkeLaunch:
  """What to submit (fields mirror the command-line flags)."""

  cluster: str
  scaling_args: tuple[str, ...]
  workload: str | None = None
  tpu_type: str | None = None
  device_type: str | None = None
  num_slices: int = 1
  num_nodes: int = 1
  docker_image: str | None = None
  base_docker_image: str | None = None
  script_dir: str | None = None
  project: str | None = None
  zone: str | None = None
  priority: str | None = None
  max_restarts: int = 3
  env: tuple[tuple[str, str], ...] = ()
  check: bool = False

  @property
  def name(self) -> str:
    """The workload name: --workload, else ``scaling-<experiment>`` as a DNS label (<= 40 chars)."""
    if self.workload:
      return self.workload
    base = re.sub(r"[^a-z0-9-]+", "-", f"scaling-{plan.experiment_name(self.scaling_args)}".lower())
    return base[:40].strip("-")

  @property
  def n_devices(self) -> int:
    """Chips (TPU) or GPUs the workload gets: tpu chips x slices, or GPUs per node x nodes."""
    if self.tpu_type:
      return tpu.tpu_chips(self.tpu_type) * self.num_slices
    per_node = re.search(r"-(\d+)$", self.device_type or "")
    return (int(per_node.group(1)) if per_node else 1) * self.num_nodes


def validate(launch: GkeLaunch) -> None:
  """Raises plan.LaunchError naming the flag when the launch is inconsistent."""
  if not launch.scaling_args:
    raise plan.LaunchError("give the scaling command after --, e.g. "
                           "-- sweep chinchilla_isoflop --workdir gs://BUCKET/sweeps")
  if bool(launch.tpu_type) == bool(launch.device_type):
    raise plan.LaunchError("give exactly one of --tpu-type (e.g. v5litepod-256) and "
                           "--device-type (e.g. h100-80gb-8)")
  if launch.tpu_type:
    tpu.tpu_chips(launch.tpu_type)  # validates the name
  if bool(launch.docker_image) == bool(launch.base_docker_image or launch.script_dir):
    raise plan.LaunchError("give either --docker-image (code inside) or --base-docker-image "
                           "with --script-dir (xpk builds the image from the directory)")
  if launch.num_slices < 1 or launch.num_nodes < 1 or launch.max_restarts < 0:
    raise plan.LaunchError("--num-slices and --num-nodes must be >= 1, --max-restarts >= 0")


def build_command(launch: GkeLaunch) -> list[str]:
  """The ``xpk workload create`` argv (deterministic)."""
  validate(launch)
  env = (("SCALING_DISTRIBUTED", "gke"), *launch.env)
  inner = plan.shell_env_prefix(env) + shlex.join(plan.python_command(launch.scaling_args))
  argv = ["xpk", "workload", "create", f"--cluster={launch.cluster}",
          f"--workload={launch.name}"]
  if launch.tpu_type:
    argv += [f"--tpu-type={launch.tpu_type}", f"--num-slices={launch.num_slices}"]
  else:
    argv += [f"--device-type={launch.device_type}", f"--num-nodes={launch.num_nodes}"]
  if launch.docker_image:
    argv.append(f"--docker-image={launch.docker_image}")
  else:
    argv += [f"--base-docker-image={launch.base_docker_image or 'python:3.11'}",
             f"--script-dir={launch.script_dir or '.'}"]
  for flag, value in (("project", launch.project), ("zone", launch.zone),
                      ("priority", launch.priority)):
    if value:
      argv.append(f"--{flag}={value}")
  argv += [f"--max-restarts={launch.max_restarts}", f"--command={inner}"]
  return argv


def main(args, scaling_args: Sequence[str], out=None) -> int:
  """Runs ``scaling launch gke`` from parsed flags (see launch.cli); returns the exit status.

  Raises:
    plan.LaunchError: inconsistent flags (the CLI exits 2).
  """
  out = out or sys.stdout
  launch = GkeLaunch(
      cluster=args.cluster, scaling_args=tuple(scaling_args), workload=args.workload,
      tpu_type=args.tpu_type, device_type=args.device_type, num_slices=args.num_slices,
      num_nodes=args.num_nodes, docker_image=args.docker_image,
      base_docker_image=args.base_docker_image, script_dir=args.script_dir,
      project=args.project, zone=args.zone, priority=args.priority,
      max_restarts=args.max_restarts, env=tuple(plan.parse_env(args.env)), check=args.check)
  steps = []
  if launch.check:
    validate(launch)
    # One TPU slice compiles with XLA:TPU for its topology; multislice or GPU
    # workloads on fake CPU devices.
    topology = (tpu.check_topology(launch.tpu_type)
                if launch.tpu_type and launch.num_slices == 1 else None)
    steps.append(plan.check_step(launch.scaling_args, launch.n_devices, topology=topology))
  steps.append(plan.Step(f"submit workload {launch.name} to cluster {launch.cluster}",
                         tuple(build_command(launch))))
  if args.dry_run:
    print(plan.format_plan("scaling launch gke: commands in order (dry run: nothing is run)",
                           steps), end="", file=out)
    return 0
  return plan.execute(steps, out=out)

