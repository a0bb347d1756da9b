"""``scaling launch local``: P real JAX processes on this machine, coordinated by jax.distributed.

Each process gets D devices: D fake CPU devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=D``, ``JAX_PLATFORMS=cpu``), or on a
GPU box (``platform="gpu"``) GPUs ``[i*D, (i+1)*D)``. Process i sees::

  SCALING_DISTRIBUTED=env            (``none`` when P == 1)
  SCALING_COORDINATOR_ADDRESS=127.0.0.1:<free port>
  SCALING_NUM_PROCESSES=P
  SCALING_PROCESS_ID=i
  SCALING_LOCAL_DEVICE_IDS=...       (gpu only)

which :func:`launch.distributed.initialize` reads (it also selects gloo CPU
collectives). All output is prefixed ``[p<i>] `` and collected (optionally also into
``<log_dir>/process_<i>.log``). When a process exits non-zero or is killed, the
others are stopped (SIGTERM, then SIGKILL after a grace period) and the launch
returns non-zero naming the failing process and printing its last lines: it never
waits on a job that cannot finish. This module does not import JAX.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pathlib
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TextIO

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
PREFIX = "launch local"


def free_port() -> int:
  """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def scaling_command(scaling_args: Sequence[str]) -> list[str]:
  """``python -m scaling.cli <scaling_args>`` with this interpreter (what `scaling` runs)."""
  return [sys.executable, "-m", "scaling.cli", *scaling_args]


def process_env(process_id: int, num_processes: int, devices_per_process: int,
                coordinator_address: str, base_env: Mapping[str, str],
                platform: str = "cpu") -> dict[str, str]:
  """Environment of local process ``process_id`` (pure; see the module docstring).

  Raises:
    ValueError: platform not "cpu" or "gpu", or counts < 1.
  """
  if platform not in ("cpu", "gpu"):
    raise ValueError(f"platform must be cpu or gpu, got {platform!r}")
  if num_processes < 1 or devices_per_process < 1:
    raise ValueError("--processes and --devices-per-process must be >= 1")
  env = dict(base_env)
  path = env.get("PYTHONPATH", "")
  env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + path if path else "")
  env["PYTHONUNBUFFERED"] = "1"
  for key in ("SCALING_COORDINATOR_ADDRESS", "SCALING_NUM_PROCESSES",
              "SCALING_PROCESS_ID", "SCALING_LOCAL_DEVICE_IDS"):
    env.pop(key, None)
  if platform == "cpu":
    flags = [f for f in env.get("XLA_FLAGS", "").split()
             if not f.startswith("--xla_force_host_platform_device_count")]
    env["XLA_FLAGS"] = " ".join(
        flags + [f"--xla_force_host_platform_device_count={devices_per_process}"])
    env["JAX_PLATFORMS"] = "cpu"
  else:
    first = process_id * devices_per_process
    env["SCALING_LOCAL_DEVICE_IDS"] = ",".join(
        str(d) for d in range(first, first + devices_per_process))
  if num_processes == 1:
    env["SCALING_DISTRIBUTED"] = "none"
    return env
  env.update(SCALING_DISTRIBUTED="env", SCALING_COORDINATOR_ADDRESS=coordinator_address,
             SCALING_NUM_PROCESSES=str(num_processes), SCALING_PROCESS_ID=str(process_id))
  return env


def describe_status(returncode: int) -> str:
  """"exited with status 3" or "killed by signal SIGKILL" for a Popen returncode."""
  if returncode < 0:
    try:
      return f"killed by signal {signal.Signals(-returncode).name}"
    except ValueError:
      return f"killed by signal {-returncode}"
  return f"exited with status {returncode}"


def _exit_code(returncode: int) -> int:
  return 128 - returncode if returncode < 0 else returncode


def _reader(index: int, stream, lines: queue.Queue, progress_seconds: float = 10.0) -> None:
  """Queues (index, line) per output line, then (index, None) at end of stream.

  Carriage-return updates (progress bars) become lines too, at most one per
  ``progress_seconds``, so a progress bar neither floods nor hides the output.
  """
  buffer, last_progress = b"", float("-inf")
  while chunk := stream.read1(65536):
    buffer += chunk
    while (cut := min((i for i in (buffer.find(b"\n"), buffer.find(b"\r")) if i >= 0),
                      default=-1)) >= 0:
      if buffer[cut:cut + 1] == b"\r" and cut + 1 == len(buffer):
        break  # a "\r\n" may be split across reads: wait for the next byte
      segment, sep, buffer = buffer[:cut], buffer[cut:cut + 1], buffer[cut + 1:]
      if sep == b"\r" and buffer[:1] == b"\n":
        sep, buffer = b"\n", buffer[1:]
      text = segment.decode(errors="replace").rstrip()
      if sep == b"\n":
        lines.put((index, text))
      elif text and time.monotonic() - last_progress >= progress_seconds:
        last_progress = time.monotonic()
        lines.put((index, text))
  if buffer:
    lines.put((index, buffer.decode(errors="replace").rstrip()))
  lines.put((index, None))


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
  with contextlib.suppress(ProcessLookupError, PermissionError):
    os.killpg(proc.pid, sig)


def run_processes(commands: Sequence[Sequence[str]], envs: Sequence[Mapping[str, str]], *,
                  out: TextIO | None = None, tail_lines: int = 30,
                  grace_seconds: float = 5.0, timeout: float | None = None,
                  log_dir: str | None = None) -> int:
  """Runs one command per process, prefixing and collecting output; stops all on a failure.

  Args:
    commands: argv of each process; envs: its environment.
    out: where prefixed lines go (default sys.stdout).
    tail_lines: how many last lines of a failing process to repeat in the report.
    grace_seconds: between SIGTERM and SIGKILL when stopping processes.
    timeout: seconds before the whole launch is stopped (None: no limit).
    log_dir: if set, each process's output also goes to ``log_dir/process_<i>.log``.

  Returns:
    0 when every process exited 0; else the failing process's exit status
    (128 + signal number when killed, 124 on timeout, 130 when interrupted,
    127 when a command cannot start).
  """
  out = out or sys.stdout
  lines: queue.Queue = queue.Queue()
  tails = [collections.deque(maxlen=tail_lines) for _ in commands]
  logs = []
  if log_dir:
    pathlib.Path(log_dir).mkdir(parents=True, exist_ok=True)
    logs = [open(pathlib.Path(log_dir) / f"process_{i}.log", "w") for i in range(len(commands))]
  procs = []
  for i, (cmd, env) in enumerate(zip(commands, envs)):
    try:
      proc = subprocess.Popen(list(cmd), env=dict(env), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              start_new_session=True)
    except OSError as e:
      for started in procs:
        _signal_group(started, signal.SIGKILL)
        started.wait()
      for f in logs:
        f.close()
      print(f"{PREFIX}: process {i} could not start: {e}", file=out, flush=True)
      return 127
    procs.append(proc)
    threading.Thread(target=_reader, args=(i, proc.stdout, lines), daemon=True).start()

  interrupted: list[int] = []
  old_handlers = {}
  for sig in (signal.SIGINT, signal.SIGTERM):
    with contextlib.suppress(ValueError):  # not the main thread: leave signals alone
      old_handlers[sig] = signal.signal(sig, lambda s, f: interrupted.append(s))

  def emit(index: int, line: str) -> None:
    tails[index].append(line)
    print(f"[p{index}] {line}", file=out, flush=True)
    if logs:
      logs[index].write(line + "\n")

  start, open_streams = time.monotonic(), len(procs)
  failed: list[int] = []  # indices in the order their failure was seen
  stopping_since = exited_since = None
  killed = False
  code, last_check = 0, 0.0
  try:
    while True:
      got_line = False
      try:
        index, line = lines.get(timeout=0.05)
        got_line = True
        if line is None:
          open_streams -= 1
        else:
          emit(index, line)
      except queue.Empty:
        pass
      now = time.monotonic()
      if got_line and now - last_check < 0.1:
        continue  # keep draining, but look at the processes at least every 0.1 s
      last_check = now
      if stopping_since is None:
        failed += [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
        reason = None
        if failed:
          reason = "process " + ", ".join(map(str, failed)) + " failed"
        elif interrupted:
          reason, code = "interrupted", 130
        elif timeout is not None and now - start > timeout:
          reason, code = f"timed out after {timeout:g} s", 124
        if reason:
          stopping_since = now
          alive = [i for i, p in enumerate(procs) if p.poll() is None]
          if alive:
            print(f"{PREFIX}: {reason}; stopping process(es) "
                  f"{', '.join(map(str, alive))}", file=out, flush=True)
          for proc in procs:
            _signal_group(proc, signal.SIGTERM)
      elif not killed and now - stopping_since > grace_seconds:
        killed = True
        for proc in procs:
          _signal_group(proc, signal.SIGKILL)
      if all(p.poll() is not None for p in procs):
        exited_since = exited_since or now
        if open_streams == 0 or now - exited_since > 2.0:
          break  # (2 s: output of leftover grandchildren is not waited for)
  finally:
    for proc in procs:
      if proc.poll() is None:
        _signal_group(proc, signal.SIGKILL)
      proc.wait()
    for sig, handler in old_handlers.items():
      signal.signal(sig, handler)
    while True:  # output still queued after the processes ended
      try:
        index, line = lines.get_nowait()
      except queue.Empty:
        break
      if line is not None:
        emit(index, line)
    for f in logs:
      f.close()

  if failed:
    first = failed[0]
    rc = procs[first].returncode
    print(f"{PREFIX}: process {first} (pid {procs[first].pid}) {describe_status(rc)}",
          file=out)
    for other in failed[1:]:
      print(f"{PREFIX}: process {other} also {describe_status(procs[other].returncode)}",
            file=out)
    print(f"{PREFIX}: last {len(tails[first])} lines of process {first}:", file=out)
    for line in tails[first]:
      print(f"  | {line}", file=out)
    out.flush()
    return _exit_code(rc)
  if code:
    print(f"{PREFIX}: {'interrupted' if code == 130 else 'timed out'}; "
          "all processes stopped", file=out, flush=True)
  return code


def launch_local(command_args: Sequence[str], processes: int, devices_per_process: int, *,
                 raw_command: bool = False, platform: str = "cpu", dry_run: bool = False,
                 out: TextIO | None = None, **run_kwargs) -> int:
  """Starts ``processes`` local processes of ``scaling <command_args>`` (or a raw command).

  Args:
    command_args: arguments of `scaling` (``["train", "--workdir", ...]``), or with
      ``raw_command`` a whole argv (``["python", "payload.py"]``).
    processes, devices_per_process: P and D.
    platform: "cpu" (fake CPU devices) or "gpu".
    dry_run: print each process's environment and command instead of running.
    run_kwargs: passed to :func:`run_processes`.

  Returns:
    The launch's exit status (see :func:`run_processes`).

  Raises:
    ValueError: ``processes`` or ``devices_per_process`` < 1 (before anything starts;
      the CLI exits 2).
  """
  for flag, value in (("--processes", processes), ("--devices-per-process",
                                                    devices_per_process)):
    if value < 1:
      raise ValueError(f"{flag} {value}: give at least 1 (e.g. {flag} 2); nothing was "
                       "started")
  out = out or sys.stdout
  command = list(command_args) if raw_command else scaling_command(command_args)
  coordinator = f"127.0.0.1:{free_port()}"
  envs = [process_env(i, processes, devices_per_process, coordinator, os.environ, platform)
          for i in range(processes)]
  if dry_run:
    for i, env in enumerate(envs):
      changed = {k: v for k, v in env.items() if os.environ.get(k) != v}
      assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(changed.items()))
      print(f"# process {i}\n{assignments} {shlex.join(command)}", file=out)
    return 0
  return run_processes([command] * processes, envs, out=out, **run_kwargs)
