"""``scaling launch tpu``: a sweep or run on a Cloud TPU VM slice (or queued resource) via gcloud.

The plan (printed exactly by ``--dry-run``):

1. reuse the TPU VM / queued resource NAME if it exists, else create it (a queued
   resource is then polled until ACTIVE);
2. on every worker (``--worker=all``): clone the code at the commit (a clean local
   tree is required unless ``--allow-dirty``), into ``~/scaling-<commit[:12]>``, and
   install it (``pip install 'jax[tpu]' -e .``);
3. on every worker: run ``python3 -m scaling.cli <args>`` with
   ``SCALING_DISTRIBUTED=tpu`` (so :func:`launch.distributed.initialize` lets
   ``jax.distributed`` find the slice), streaming all workers' output here;
4. with ``--delete``: delete the slice afterwards if this launch created it
   (``--teardown`` only deletes).

Workers share no disk: give a ``gs://`` ``--workdir``. A local ``--workdir`` on a
multi-host slice (:func:`tpu_multi_host`), or code the workers cannot clone (a
repository path on this machine), is refused before anything is created
(:func:`check_reachable`, exit status 2). The ``--check`` step first compiles the step
on this CPU machine for the slice itself, with XLA:TPU (``scaling check --topology
ACCELERATOR_TYPE``; libtpu: ``pip install -e '.[tpu]'``), and stops the launch before
anything is created if the step does not fit the chips' HBM.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Sequence

from launch import plan

# Default TPU VM software versions per accelerator family (Cloud TPU docs).
RUNTIME_VERSIONS = {
    "v2": "tpu-ubuntu2204-base", "v3": "tpu-ubuntu2204-base",
    "v4": "tpu-ubuntu2204-base", "v5p": "v2-alpha-tpuv5",
    "v5litepod": "v2-alpha-tpuv5-lite", "v6e": "v2-alpha-tpuv6e",
}
# Families whose type suffix counts TensorCores (2 per chip); the others count chips.
CORE_COUNTED = ("v2", "v3", "v4", "v5p")
DEFAULT_INSTALL = 'python3 -m pip install --quiet -U "jax[tpu]" -e .'


def tpu_chips(accelerator_type: str) -> int:
  """Chips (JAX devices) of a TPU type: "v4-32" -> 16, "v5p-128" -> 64, "v5litepod-256" -> 256.

  Source: Cloud TPU system architecture docs (v2-v5p names count TensorCores, two per
  chip; v5e/v6e names count chips).

  Raises:
    plan.LaunchError: unknown family or malformed type.
  """
  family, _, size = accelerator_type.rpartition("-")
  if family not in RUNTIME_VERSIONS or not size.isdigit():
    raise plan.LaunchError(
        f"--accelerator-type {accelerator_type!r}: expected FAMILY-SIZE with FAMILY in "
        f"{', '.join(RUNTIME_VERSIONS)} (e.g. v5litepod-256, v4-32)")
  return int(size) // 2 if family in CORE_COUNTED else int(size)


def check_topology(accelerator_type: str) -> str | None:
  """``accelerator_type`` when ``scaling check --topology`` compiles for it (v4, v5e,
  v5p, v6e slices of the Cloud TPU docs' sizes), else None: the check then compiles
  for that many fake CPU devices (v2, v3). Imports ``scaling`` (not JAX) only when
  called: dry runs without ``--check`` import neither."""
  from scaling import topology as topology_lib  # pylint: disable=import-outside-toplevel
  from scaling.config import ConfigError  # pylint: disable=import-outside-toplevel
  try:
    topology_lib.parse(accelerator_type)
  except ConfigError:
    return None
  return accelerator_type


def tpu_multi_host(accelerator_type: str) -> bool:
  """Whether a TPU type's slice spans more than one TPU VM (worker).

  Single-host slices (Cloud TPU system architecture and v5e/v6e configuration docs):
  up to 4 chips for v2, v3, v4 and v5p (v2-8, v3-8, v4-8, v5p-8: one VM of 4 chips);
  up to 8 chips for v5e and v6e (v5litepod-1/4/8, v6e-1/4/8). Anything larger, e.g.
  v4-16 or v5litepod-16, runs one process per worker on separate VMs with separate disks.

  Raises:
    plan.LaunchError: unknown family or malformed type (see :func:`tpu_chips`).
  """
  family = accelerator_type.rpartition("-")[0]
  single_host_chips = 4 if family in CORE_COUNTED else 8
  return tpu_chips(accelerator_type) > single_host_chips


def check_reachable(accelerator_type: str, scaling_args: Sequence[str], repo: str,
                    repo_flag: bool, cwd: str | None = None) -> None:
  """Refuses a launch whose workers could not reach the code or share the workdir.

  Both are errors, not warnings, because the launch would only fail later on the
  slice (after creating it): the workers clone ``repo`` on their own VMs, so a path
  on this machine cannot be cloned; and on a multi-host slice (:func:`tpu_multi_host`)
  each worker would write its own partial run to a local ``--workdir``. A local
  workdir on a single-host slice is fine (one VM, one disk).

  Args:
    accelerator_type: e.g. "v5litepod-16".
    scaling_args: what the workers run (``--workdir`` is read from it).
    repo: the git URL the workers clone.
    repo_flag: whether ``repo`` came from ``--repo`` (else the 'origin' remote).
    cwd: where relative repo paths are resolved (default: the working directory).

  Raises:
    plan.LaunchError: naming the problem and the fix.
  """
  if plan.is_local_repo(repo, cwd):
    source = "--repo" if repo_flag else "the git remote 'origin'"
    raise plan.LaunchError(
        f"the TPU workers would clone the code from {repo!r} ({source}), a path on this "
        "machine that they cannot reach: push the commit to a remote they can clone "
        "(e.g. https://github.com/...) and pass it as --repo URL (or set it as 'origin')")
  workdir = plan.scaling_flag(scaling_args, "--workdir")
  if workdir is not None and not workdir.startswith("gs://") and tpu_multi_host(
      accelerator_type):
    raise plan.LaunchError(
        f"--workdir {workdir!r} is a local path, but {accelerator_type} "
        f"({tpu_chips(accelerator_type)} chips) spans several TPU VM workers, which share "
        "no disk: each would write its own partial run. Give a gs:// path, e.g. "
        "--workdir gs://BUCKET/sweeps/NAME (a local path works only on a single-host "
        "slice)")


@dataclasses.dataclass(frozen=True)
class TpuLaunch:
  """What to launch where (fields mirror the command-line flags)."""

  name: str
  zone: str
  accelerator_type: str
  scaling_args: tuple[str, ...]
  repo: str
  commit: str
  project: str | None = None
  version: str | None = None
  queued: bool = False
  spot: bool = False
  install: str = DEFAULT_INSTALL
  env: tuple[tuple[str, str], ...] = ()
  delete: bool = False
  check: bool = False


def _where(launch: TpuLaunch) -> list[str]:
  return [f"--zone={launch.zone}"] + ([f"--project={launch.project}"] if launch.project else [])


def _ssh(launch: TpuLaunch, comment: str, remote: str) -> plan.Step:
  return plan.Step(comment, ("gcloud", "compute", "tpus", "tpu-vm", "ssh", launch.name,
                             *_where(launch), "--worker=all", f"--command={remote}"))


def delete_steps(launch: TpuLaunch, only_if_created: bool) -> list[plan.Step]:
  """The step deleting the slice (queued resource with ``--force``, or TPU VM)."""
  if launch.queued:
    argv = ("gcloud", "compute", "tpus", "queued-resources", "delete", launch.name,
            *_where(launch), "--force", "--quiet")
  else:
    argv = ("gcloud", "compute", "tpus", "tpu-vm", "delete", launch.name, *_where(launch),
            "--quiet")
  what = "queued resource" if launch.queued else "TPU VM"
  note = " (if this launch created it)" if only_if_created else ""
  return [plan.Step(f"delete the {what} {launch.name}{note}", argv,
                    only_if_created=only_if_created, always=True)]


def build_plan(launch: TpuLaunch) -> list[plan.Step]:
  """The ordered gcloud commands of a TPU launch (see the module docstring)."""
  family = launch.accelerator_type.rpartition("-")[0]
  chips = tpu_chips(launch.accelerator_type)
  version = launch.version or RUNTIME_VERSIONS[family]
  where = _where(launch)
  steps = []
  if launch.check:
    steps.append(plan.check_step(launch.scaling_args, chips,
                                 topology=check_topology(launch.accelerator_type)))
  if launch.queued:
    qr = ("gcloud", "compute", "tpus", "queued-resources")
    state = (*qr, "describe", launch.name, *where, "--format=value(state.state)")
    steps += [
        plan.Step(f"reuse queued resource {launch.name} if it exists (exit status 0)",
                  state, probe=True),
        plan.Step(f"else request it: {launch.accelerator_type} ({chips} chips)",
                  (*qr, "create", launch.name, f"--node-id={launch.name}", *where,
                   f"--accelerator-type={launch.accelerator_type}",
                   f"--runtime-version={version}", *(["--spot"] if launch.spot else []))),
        plan.Step("wait until the queued resource is ACTIVE (polled every 30 s)", state,
                  wait_until="ACTIVE", fail_states=("FAILED", "SUSPENDED")),
    ]
  else:
    vm = ("gcloud", "compute", "tpus", "tpu-vm")
    steps += [
        plan.Step(f"reuse TPU VM {launch.name} if it exists (exit status 0)",
                  (*vm, "describe", launch.name, *where, "--format=value(state)"),
                  probe=True),
        plan.Step(f"else create it: {launch.accelerator_type} ({chips} chips)",
                  (*vm, "create", launch.name, *where,
                   f"--accelerator-type={launch.accelerator_type}", f"--version={version}",
                   *(["--spot"] if launch.spot else []))),
    ]
  code_dir = f"~/scaling-{launch.commit[:12]}"
  install = (f"set -e; if [ ! -d {code_dir} ]; then git clone --quiet "
             f"{shlex.quote(launch.repo)} {code_dir}; fi; cd {code_dir}; "
             f"git checkout --quiet --detach {shlex.quote(launch.commit)}; {launch.install}")
  steps.append(_ssh(launch, f"clone commit {launch.commit[:12]} and install it on every worker",
                    install))
  env = (("SCALING_DISTRIBUTED", "tpu"), *launch.env)
  run = (f"cd {code_dir} && {plan.shell_env_prefix(env)}"
         f"{shlex.join(plan.python_command(launch.scaling_args))}")
  steps.append(_ssh(launch, "run on every worker (jax.distributed finds the slice), "
                    "streaming output", run))
  if launch.delete:
    steps += delete_steps(launch, only_if_created=True)
  return steps


def main(args, scaling_args: Sequence[str], out=None) -> int:
  """Runs ``scaling launch tpu`` from parsed flags (see launch.cli); returns the exit status.

  Raises:
    plan.LaunchError: bad flags or a dirty tree (the CLI exits 2).
  """
  if args.teardown:
    launch = TpuLaunch(args.name, args.zone, args.accelerator_type or "", (), "", "",
                       project=args.project, queued=args.queued)
    steps = delete_steps(launch, only_if_created=False)
  else:
    if not scaling_args:
      raise plan.LaunchError("give the scaling command after --, e.g. "
                             "-- sweep chinchilla_isoflop --workdir gs://BUCKET/sweeps")
    if not args.accelerator_type:
      raise plan.LaunchError("--accelerator-type is required (e.g. v5litepod-256)")
    repo, commit = plan.code_version(args.repo, args.commit, args.allow_dirty)
    check_reachable(args.accelerator_type, scaling_args, repo, repo_flag=bool(args.repo))
    launch = TpuLaunch(
        name=args.name, zone=args.zone, accelerator_type=args.accelerator_type,
        scaling_args=tuple(scaling_args), repo=repo, commit=commit, project=args.project,
        version=args.version, queued=args.queued, spot=args.spot,
        install=args.install or DEFAULT_INSTALL, env=tuple(plan.parse_env(args.env)),
        delete=args.delete, check=args.check)
    steps = build_plan(launch)
  if args.dry_run:
    print(plan.format_plan("scaling launch tpu: commands in order (dry run: nothing is run)",
                           steps), end="", file=out)
    return 0
  return plan.execute(steps, out=out)
