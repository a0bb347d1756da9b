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

Workers share no disk: give a ``gs://`` ``--workdir``. The ``--check`` step compiles
the step for the slice's chip count on this CPU first.
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
    steps.append(plan.check_step(launch.scaling_args, chips))
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
