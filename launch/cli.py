"""``scaling launch {local,tpu,slurm,gke} [flags] -- <scaling args>``.

Everything after ``--`` is what each launched process runs as ``scaling <args>``
(``python -m scaling.cli <args>``), e.g. ``-- sweep chinchilla_isoflop --workdir DIR``
or ``-- train --workdir DIR --config.model.d_model=256``. ``--dry-run`` prints the
exact commands (or sbatch script) instead of running them. Exit status: 0 on
success, 2 for bad flags, else the launched job's failing status.

Examples::

  scaling launch local --processes 2 --devices-per-process 2 -- train --workdir /tmp/r
  scaling launch tpu --name sweep-v5e --zone us-west4-a --accelerator-type v5litepod-256 \\
      --dry-run -- sweep chinchilla_isoflop --workdir gs://BUCKET/sweeps/chinchilla_isoflop
  scaling launch slurm --nodes 2 --gpus-per-node 8 --array 4 --dry-run \\
      -- sweep chinchilla_isoflop --workdir /shared/sweeps/chinchilla_isoflop
  scaling launch gke --cluster my-cluster --tpu-type v5litepod-256 --docker-image IMAGE \\
      --dry-run -- sweep chinchilla_isoflop --workdir gs://BUCKET/sweeps/chinchilla_isoflop
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from launch import plan


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
  """(launcher flags, scaling args): ``argv`` split at the first ``--``."""
  argv = list(argv)
  if "--" in argv:
    i = argv.index("--")
    return argv[:i], argv[i + 1:]
  return argv, []


def _common(p: argparse.ArgumentParser) -> None:
  p.add_argument("--dry-run", action="store_true",
                 help="print the exact commands (or script) instead of running them")


def _remote(p: argparse.ArgumentParser) -> None:
  _common(p)
  p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                 help="environment variable for the launched processes (repeatable)")
  p.add_argument("--check", action="store_true",
                 help="first compile the step here, before anything is created or "
                      "submitted: for a TPU slice with XLA:TPU (needs libtpu: pip install "
                      "-e '.[tpu]'), failing if it does not fit the HBM; else for the "
                      "device count on fake CPU devices")


def build_parser() -> argparse.ArgumentParser:
  """The ``scaling launch`` argument parser (flags only; scaling args follow ``--``)."""
  parser = argparse.ArgumentParser(
      prog="scaling launch", description=__doc__.split("\n\n")[0],
      epilog="Everything after -- is passed to `scaling` in each launched process.")
  sub = parser.add_subparsers(dest="target", required=True, metavar="{local,tpu,slurm,gke}")

  p = sub.add_parser("local", help="P real JAX processes on this machine (CPU collectives: gloo)")
  p.add_argument("--processes", type=int, required=True, help="number of processes P")
  p.add_argument("--devices-per-process", type=int, default=1,
                 help="devices per process D (fake CPU devices, or GPUs with --platform gpu)")
  p.add_argument("--platform", choices=("cpu", "gpu"), default="cpu")
  p.add_argument("--exec", dest="raw_command", action="store_true",
                 help="the words after -- are a whole command (python script.py ...), "
                      "not scaling arguments")
  p.add_argument("--log-dir", help="also write each process's output to LOG_DIR/process_<i>.log")
  p.add_argument("--timeout", type=float, help="stop everything after this many seconds")
  p.add_argument("--grace-seconds", type=float, default=5.0,
                 help="wait between SIGTERM and SIGKILL when stopping processes")
  p.add_argument("--tail-lines", type=int, default=30,
                 help="last lines of a failing process repeated in the report")
  _common(p)

  p = sub.add_parser("tpu", help="Cloud TPU VM slice or queued resource (gcloud)")
  p.add_argument("--name", required=True, help="TPU VM / queued resource name")
  p.add_argument("--zone", required=True)
  p.add_argument("--project", help="GCP project (default: gcloud's)")
  p.add_argument("--accelerator-type", help="e.g. v5litepod-256, v4-32, v5p-128, v6e-64")
  p.add_argument("--version", help="TPU software version (default: per accelerator family)")
  p.add_argument("--queued", action="store_true", help="request a queued resource")
  p.add_argument("--spot", action="store_true", help="spot (preemptible) capacity")
  p.add_argument("--repo", help="git URL the workers clone (default: remote 'origin')")
  p.add_argument("--commit", help="commit to run (default: HEAD, which must be clean)")
  p.add_argument("--allow-dirty", action="store_true",
                 help="run HEAD although the tree has uncommitted changes (not shipped)")
  p.add_argument("--install", help="install command run in the clone on every worker")
  p.add_argument("--delete", action="store_true",
                 help="delete the slice after the run if this launch created it")
  p.add_argument("--teardown", action="store_true", help="only delete the slice NAME")
  _remote(p)

  p = sub.add_parser("slurm", help="sbatch script: nodes x GPUs, srun; job arrays for sweeps")
  p.add_argument("--nodes", type=int, default=1)
  p.add_argument("--gpus-per-node", type=int, default=8)
  p.add_argument("--process-per", choices=("gpu", "node"), default="gpu",
                 help="one process per GPU (default) or per node")
  p.add_argument("--job-name", help="default: scaling-<experiment>")
  p.add_argument("--partition")
  p.add_argument("--account")
  p.add_argument("--time", help="time limit, e.g. 24:00:00")
  p.add_argument("--cpus-per-task", type=int)
  p.add_argument("--array", type=int, default=0, metavar="K",
                 help="K array tasks sharing one sweep (the sweep runner's claims split it)")
  p.add_argument("--array-parallel", type=int, default=0, metavar="M",
                 help="run at most M array tasks at once")
  p.add_argument("--log-dir", default="slurm-logs", help="script and job output directory")
  p.add_argument("--python", default="python3", help="interpreter on the nodes")
  p.add_argument("--setup", action="append", default=[], metavar="LINE",
                 help="shell line run before srun, e.g. 'source .venv/bin/activate'")
  p.add_argument("--sbatch-arg", action="append", default=[], metavar="OPTION",
                 help="extra #SBATCH option, e.g. --qos=high (repeatable)")
  _remote(p)

  p = sub.add_parser("gke", help="xpk workload create on a GKE cluster")
  p.add_argument("--cluster", required=True)
  p.add_argument("--workload", help="default: scaling-<experiment>")
  p.add_argument("--tpu-type", help="e.g. v5litepod-256")
  p.add_argument("--device-type", help="GPU node type, e.g. h100-80gb-8")
  p.add_argument("--num-slices", type=int, default=1)
  p.add_argument("--num-nodes", type=int, default=1, help="GPU nodes (with --device-type)")
  p.add_argument("--docker-image", help="image with the code installed")
  p.add_argument("--base-docker-image", help="base image xpk builds --script-dir into")
  p.add_argument("--script-dir", help="directory xpk copies into the image")
  p.add_argument("--project")
  p.add_argument("--zone")
  p.add_argument("--priority", choices=("very-low", "low", "medium", "high", "very-high"))
  p.add_argument("--max-restarts", type=int, default=3,
                 help="restarts after preemption or failure (the sweep resumes)")
  _remote(p)
  return parser


def main(argv: list[str]) -> int:
  """``scaling launch ...``: ``argv`` is everything after ``launch``; returns the exit status."""
  flags, scaling_args = split_command(argv)
  try:
    args = build_parser().parse_args(flags)
  except SystemExit as e:  # --help (0) or a usage error (2)
    return e.code if isinstance(e.code, int) else 2
  try:
    if args.target == "local":
      from launch import local
      if not scaling_args:
        raise plan.LaunchError("give what each process runs after --, e.g. "
                               "-- train --workdir DIR (or --exec -- python script.py)")
      return local.launch_local(
          scaling_args, args.processes, args.devices_per_process,
          raw_command=args.raw_command, platform=args.platform, dry_run=args.dry_run,
          log_dir=args.log_dir, timeout=args.timeout, grace_seconds=args.grace_seconds,
          tail_lines=args.tail_lines)
    if args.target == "tpu":
      from launch import tpu
      return tpu.main(args, scaling_args)
    if args.target == "slurm":
      from launch import slurm
      return slurm.main(args, scaling_args)
    from launch import gke
    return gke.main(args, scaling_args)
  except (plan.LaunchError, ValueError) as e:
    print(f"scaling launch {args.target}: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
