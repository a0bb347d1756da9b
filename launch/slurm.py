"""``scaling launch slurm``: writes an sbatch script and submits it (``--dry-run`` prints it).

One job: ``--nodes`` N x ``--gpus-per-node`` G; ``srun`` starts one process per GPU
(default; each drives GPU ``SLURM_LOCALID``) or one per node (``--process-per node``;
each drives all G GPUs). The script sets ``SCALING_COORDINATOR_ADDRESS`` to the job's
first node (``scontrol show hostnames``) on port ``61440 + SLURM_JOB_ID % 4096`` and
``SCALING_DISTRIBUTED=slurm``; :func:`launch.distributed.initialize` reads the rest
(``SLURM_NTASKS``, ``SLURM_PROCID``, ``SLURM_LOCALID``) in each process.

Job-array mode (``--array K``): K array tasks, each its own N-node job running
``scaling sweep NAME --workdir DIR``; the sweep runner's atomic run claims split the
runs between them, so the workdir must be on a shared file system (or ``gs://``).

``--signal=TERM@120`` asks Slurm for SIGTERM two minutes before the time limit, which
the trainer turns into one collective checkpoint save.
"""

from __future__ import annotations

import dataclasses
import pathlib
import re
import shlex
import subprocess
import sys
from collections.abc import Sequence

from launch import plan


@dataclasses.dataclass(frozen=True)
class SlurmLaunch:
  """What to submit (fields mirror the command-line flags)."""

  scaling_args: tuple[str, ...]
  nodes: int = 1
  gpus_per_node: int = 8
  process_per: str = "gpu"  # gpu | node
  job_name: str | None = None
  partition: str | None = None
  account: str | None = None
  time: str | None = None
  cpus_per_task: int | None = None
  array: int = 0  # number of array tasks; 0: a single job
  array_parallel: int = 0  # at most this many array tasks at once; 0: no limit
  log_dir: str = "slurm-logs"
  python: str = "python3"
  setup: tuple[str, ...] = ()  # shell lines before srun (module load, venv activation)
  sbatch_args: tuple[str, ...] = ()  # extra "#SBATCH" options, e.g. "--qos=high"
  env: tuple[tuple[str, str], ...] = ()
  check: bool = False

  @property
  def name(self) -> str:
    """The job name: --job-name, else ``scaling-<experiment>``."""
    base = self.job_name or f"scaling-{plan.experiment_name(self.scaling_args)}"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", base)

  @property
  def script_path(self) -> str:
    return f"{self.log_dir}/{self.name}.sbatch"


def validate(launch: SlurmLaunch) -> None:
  """Raises plan.LaunchError naming the flag when the launch is inconsistent."""
  if not launch.scaling_args:
    raise plan.LaunchError("give the scaling command after --, e.g. "
                           "-- sweep chinchilla_isoflop --workdir /shared/sweeps")
  if launch.nodes < 1 or launch.gpus_per_node < 0:
    raise plan.LaunchError("--nodes must be >= 1 and --gpus-per-node >= 0")
  if launch.process_per not in ("gpu", "node"):
    raise plan.LaunchError("--process-per must be gpu or node")
  if launch.process_per == "gpu" and launch.gpus_per_node < 1:
    raise plan.LaunchError("--process-per gpu needs --gpus-per-node >= 1 (or --process-per node)")
  if launch.array < 0 or launch.array_parallel < 0:
    raise plan.LaunchError("--array and --array-parallel must be >= 0")
  if launch.array and launch.scaling_args[0] != "sweep":
    raise plan.LaunchError(
        "--array splits a sweep between array tasks: the command must be "
        "`sweep NAME --workdir DIR` (the sweep runner's run claims divide the work)")


def render_script(launch: SlurmLaunch) -> str:
  """The sbatch script text (deterministic; what ``--dry-run`` prints)."""
  validate(launch)
  tasks_per_node = launch.gpus_per_node if launch.process_per == "gpu" else 1
  log = "%x-%A_%a.out" if launch.array else "%x-%j.out"
  options = [f"--job-name={launch.name}", f"--nodes={launch.nodes}",
             f"--ntasks-per-node={tasks_per_node}"]
  if launch.gpus_per_node:
    options.append(f"--gpus-per-node={launch.gpus_per_node}")
  if launch.cpus_per_task:
    options.append(f"--cpus-per-task={launch.cpus_per_task}")
  for flag, value in (("partition", launch.partition), ("account", launch.account),
                      ("time", launch.time)):
    if value:
      options.append(f"--{flag}={value}")
  options.append(f"--output={launch.log_dir}/{log}")
  if launch.array:
    limit = f"%{launch.array_parallel}" if launch.array_parallel else ""
    options.append(f"--array=0-{launch.array - 1}{limit}")
  options.append("--signal=TERM@120")
  options += launch.sbatch_args
  layout = (f"{launch.nodes} node(s) x {tasks_per_node} process(es) per node"
            + (f", {launch.gpus_per_node} GPU(s) per node" if launch.gpus_per_node else ""))
  lines = ["#!/bin/bash",
           f"# Written by `scaling launch slurm`: {layout}.",
           f"# Submit with: sbatch {launch.script_path}"]
  if launch.array:
    lines.append(f"# Job array: {launch.array} tasks, each running the sweep; "
                 "the sweep runner's run claims split the work.")
  lines += [f"#SBATCH {o}" for o in options]
  lines += ["", "set -euo pipefail", 'cd "$SLURM_SUBMIT_DIR"', *launch.setup, "",
            "# jax.distributed coordinator: the first node of this job "
            "(each array task is its own job)",
            'head_node=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
            'export SCALING_COORDINATOR_ADDRESS="${head_node}:$((61440 + SLURM_JOB_ID % 4096))"',
            "export SCALING_DISTRIBUTED=slurm"]
  lines += [f"export {k}={shlex.quote(v)}" for k, v in launch.env]
  lines += ["", "srun --kill-on-bad-exit=1 "
            + shlex.join(plan.python_command(launch.scaling_args, launch.python))]
  return "\n".join(lines) + "\n"


def main(args, scaling_args: Sequence[str], out=None) -> int:
  """Runs ``scaling launch slurm`` from parsed flags (see launch.cli); returns the exit status.

  Raises:
    plan.LaunchError: inconsistent flags (the CLI exits 2).
  """
  out = out or sys.stdout
  launch = SlurmLaunch(
      scaling_args=tuple(scaling_args), nodes=args.nodes, gpus_per_node=args.gpus_per_node,
      process_per=args.process_per, job_name=args.job_name, partition=args.partition,
      account=args.account, time=args.time, cpus_per_task=args.cpus_per_task,
      array=args.array, array_parallel=args.array_parallel, log_dir=args.log_dir,
      python=args.python, setup=tuple(args.setup), sbatch_args=tuple(args.sbatch_arg),
      env=tuple(plan.parse_env(args.env)), check=args.check)
  script = render_script(launch)
  check = None
  if launch.check:
    check = plan.check_step(launch.scaling_args, launch.nodes * max(launch.gpus_per_node, 1),
                            launch.python)
  if args.dry_run:
    if check:
      print(plan.format_plan("ahead-of-time check (dry run)", [check]), file=out)
    print(script, end="", file=out)
    return 0
  if check and (code := plan.execute([check], out=out)):
    return code
  path = pathlib.Path(launch.script_path)
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(script)
  print(f"wrote {path}\n{plan.format_command(['sbatch', str(path)])}", file=out, flush=True)
  return subprocess.run(["sbatch", str(path)]).returncode
