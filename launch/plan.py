"""A remote launch as an ordered list of shell commands, printed (``--dry-run``) or run.

The TPU, Slurm and GKE launchers build a plan of :class:`Step` and either print it
exactly (every argv shell-quoted, so it can be pasted) or execute it. Also here:
what every launched process runs (``python3 -m scaling.cli ...``), ``--env``
parsing, the git state of the code being shipped, and the ahead-of-time check step.
This module does not import JAX.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO



class LaunchError(ValueError):
  """A launch cannot proceed as asked; the message names the flag and the fix (exit 2)."""


@dataclasses.dataclass(frozen=True)
class Step:
  """One command of a plan.

  Attributes:
    comment: what the step does (printed as ``# n. comment``).
    argv: the command.
    env: extra environment for the command (printed as ``KEY=VALUE`` prefixes).
    probe: exit status 0 means the resource exists: the next step (its creation) is
      skipped and the resource counts as reused, not created.
    wait_until: run repeatedly until its output is this value (e.g. "ACTIVE").
    fail_states: outputs that end the waiting with a failure.
    only_if_created: skip when the probe found an existing resource.
    always: run even after an earlier step failed (clean-up).
  """

  comment: str
  argv: tuple[str, ...]
  env: tuple[tuple[str, str], ...] = ()
  probe: bool = False
  wait_until: str | None = None
  fail_states: tuple[str, ...] = ()
  only_if_created: bool = False
  always: bool = False


def python_command(scaling_args: Sequence[str], python: str = "python3") -> list[str]:
  """What a launched process runs: ``python3 -m scaling.cli <scaling_args>``."""
  return [python, "-m", "scaling.cli", *scaling_args]


def parse_env(assignments: Sequence[str]) -> list[tuple[str, str]]:
  """``["KEY=VALUE", ...]`` from repeated ``--env`` flags, validated.

  Raises:
    LaunchError: an item is not NAME=VALUE with a shell-variable NAME.
  """
  pairs = []
  for item in assignments:
    key, sep, value = item.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
      raise LaunchError(f"--env {item!r}: expected NAME=VALUE")
    pairs.append((key, value))
  return pairs


def shell_env_prefix(pairs: Sequence[tuple[str, str]]) -> str:
  """``"A=1 B='x y' "`` (shell-quoted assignments before a command), or ""."""
  return "".join(f"{k}={shlex.quote(v)} " for k, v in pairs)


def experiment_name(scaling_args: Sequence[str]) -> str:
  """A name for jobs and workloads: the sweep's experiment name, else the subcommand."""
  if len(scaling_args) >= 2 and scaling_args[0] == "sweep" and not scaling_args[1].startswith("-"):
    return scaling_args[1]
  return scaling_args[0] if scaling_args else "run"


def scaling_flag(scaling_args: Sequence[str], flag: str) -> str | None:
  """The value of ``flag`` in the scaling args (``--workdir DIR`` or ``--workdir=DIR``).

  The last occurrence wins, as in argparse; None when the flag is absent or has no value.
  """
  value = None
  for i, arg in enumerate(scaling_args):
    if arg == flag:
      value = scaling_args[i + 1] if i + 1 < len(scaling_args) else None
    elif arg.startswith(flag + "="):
      value = arg[len(flag) + 1:]
  return value


def is_local_repo(url: str, cwd: str | None = None) -> bool:
  """Whether a git repository URL names this machine's disk, which no remote host can clone.

  Local: ``file://`` URLs, paths (absolute, ``./``, ``../``, ``~``, or an existing path
  relative to ``cwd``) and anything without a ``:`` (git reads it as a path). Remote:
  ``scheme://`` URLs (https, ssh, git) and scp-like ``user@host:path``, which git
  recognises by a colon before the first slash.
  """
  url = url.strip()
  if url.startswith("file://") or url.startswith(("/", "./", "../", "~")) or url in (".", ".."):
    return True
  if os.path.exists(os.path.join(cwd or os.getcwd(), os.path.expanduser(url))):
    return True
  if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", url):
    return False
  colon, slash = url.find(":"), url.find("/")
  return colon == -1 or (slash != -1 and slash < colon)


def quote_arg(arg: str) -> str:
  """``shlex.quote`` that keeps ``--flag=`` outside the quotes: ``--command='a b'``."""
  match = re.fullmatch(r"(--[A-Za-z0-9][A-Za-z0-9_.-]*=)(.*)", arg, re.S)
  if match:
    return match.group(1) + shlex.quote(match.group(2))
  return shlex.quote(arg)


def format_command(argv: Sequence[str], env: Sequence[tuple[str, str]] = ()) -> str:
  """Exact shell text of a command (pasteable).

  Longer than 80 characters, it is wrapped before each ``--flag`` with ``\\``
  newline continuations (still valid shell); a flag's separate value stays on its line.
  """
  words = [quote_arg(a) for a in argv]
  text = shell_env_prefix(env) + " ".join(words)
  if len(text) <= 80:
    return text
  lines = [shell_env_prefix(env) + words[0]]
  for word, arg in zip(words[1:], argv[1:]):
    if arg.startswith("--"):
      lines.append(word)
    else:
      lines[-1] += " " + word
  return " \\\n    ".join(lines)


def format_plan(title: str, steps: Sequence[Step]) -> str:
  """The dry-run text of a plan: a title line, then each step's comment and command."""
  out = [f"# {title}"]
  for n, step in enumerate(steps, 1):
    out.append(f"# {n}. {step.comment}")
    out.append(format_command(step.argv, step.env))
  return "\n".join(out) + "\n"


def check_step(scaling_args: Sequence[str], n_devices: int, python: str = "python3",
               topology: str | None = None) -> Step:
  """The ahead-of-time check, run on this machine first: ``scaling check <args>``.

  With ``topology`` (a TPU slice: ``v5litepod-256``, ``v5e:16x16``) the step compiles
  with XLA:TPU for that slice (``--topology``; needs libtpu, ``pip install -e '.[tpu]'``)
  and the check fails (exit 2) if it does not fit the chips' HBM; without it, for
  ``n_devices`` fake CPU devices (XLA:CPU's figures).
  """
  if topology is not None:
    env = (("JAX_PLATFORMS", "cpu"), ("SCALING_DISTRIBUTED", "none"))
    return Step(f"ahead-of-time check here: compile for {topology} with XLA:TPU (libtpu)",
                tuple(python_command(["check", *scaling_args, "--topology", topology],
                                     python)), env=env)
  env = (("JAX_PLATFORMS", "cpu"), ("SCALING_DISTRIBUTED", "none"),
         ("XLA_FLAGS", f"--xla_force_host_platform_device_count={n_devices}"))
  return Step(f"ahead-of-time check here: compile for {n_devices} devices (fake CPU devices)",
              tuple(python_command(["check", *scaling_args], python)), env=env)


def git_state(cwd: str | None = None) -> dict:
  """Commit, dirty flag and origin URL of the git checkout at ``cwd``.

  Returns:
    dict(commit=str, dirty=bool, remote=str | None).

  Raises:
    LaunchError: not a git checkout or no commit yet.
  """
  def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)

  head = git("rev-parse", "HEAD")
  if head.returncode != 0:
    raise LaunchError("the code to ship must be a git checkout with a commit "
                      "(or pass --repo URL --commit SHA)")
  remote = git("remote", "get-url", "origin")
  return dict(commit=head.stdout.strip(),
              dirty=bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip()),
              remote=remote.stdout.strip() if remote.returncode == 0 else None)


def code_version(repo: str | None, commit: str | None, allow_dirty: bool,
                 cwd: str | None = None, err: TextIO | None = None) -> tuple[str, str]:
  """(repo URL, commit) of the code to run remotely.

  Explicit ``repo``/``commit`` are used as given; otherwise they come from the git
  checkout at ``cwd``, whose tracked files must be clean unless ``allow_dirty``
  (uncommitted changes are never shipped: the remote runs the commit).

  Raises:
    LaunchError: dirty tree without allow_dirty, or no remote to clone from.
  """
  err = err or sys.stderr
  if repo and commit:
    return repo, commit
  state = git_state(cwd)
  if commit is None:
    if state["dirty"] and not allow_dirty:
      raise LaunchError(
          "the working tree has uncommitted changes, which the remote run would not "
          "include: commit them (and push), or pass --allow-dirty to run commit "
          f"{state['commit'][:12]} anyway")
    if state["dirty"]:
      print(f"warning: uncommitted changes are not shipped; running {state['commit'][:12]}",
            file=err)
    commit = state["commit"]
  repo = repo or state["remote"]
  if not repo:
    raise LaunchError("no git remote 'origin' to clone from: pass --repo URL")
  return repo, commit


def execute(steps: Sequence[Step], *, out: TextIO | None = None,
            run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
            poll_seconds: float = 30.0) -> int:
  """Runs a plan in order; returns 0 or the first failing step's exit status.

  Output of normal steps streams through; probes are quiet. After a failure only
  ``always`` steps (clean-up) run.
  """
  out = out or sys.stdout
  failed, created, skip_next = 0, True, False
  for n, step in enumerate(steps, 1):
    if failed and not step.always:
      continue
    if skip_next:
      skip_next = False
      print(f"# {n}. skipped (exists, reused): {step.comment}", file=out, flush=True)
      continue
    if step.only_if_created and not created:
      print(f"# {n}. skipped (not created by this launch): {step.comment}", file=out, flush=True)
      continue
    print(f"# {n}. {step.comment}\n{format_command(step.argv, step.env)}", file=out, flush=True)
    env = {**os.environ, **dict(step.env)} if step.env else None
    if step.probe:
      result = run(list(step.argv), env=env, capture_output=True, text=True)
      if result.returncode == 0:
        skip_next, created = True, False
      continue
    if step.wait_until is not None:
      last = None
      while True:
        result = run(list(step.argv), env=env, capture_output=True, text=True)
        state = result.stdout.strip()
        if state != last:
          print(f"  state: {state or '(none)'}", file=out, flush=True)
          last = state
        if state == step.wait_until:
          break
        if result.returncode != 0 or state in step.fail_states:
          failed = result.returncode or 1
          break
        time.sleep(poll_seconds)
      continue
    result = run(list(step.argv), env=env)
    if result.returncode != 0:
      print(f"# step {n} failed with exit status {result.returncode}", file=out, flush=True)
      failed = failed or result.returncode
  return failed
