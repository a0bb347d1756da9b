"""What a sweep shows and records as it goes: the FLOP progress bar and the event log.

Events (claim, finish, fail, skip, takeover, lost_claim) are appended to
``sweep_log.jsonl`` with the worker's host and pid; only process 0 of a
multi-host job shows the bar or logs.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time

from etils import epath
import jax
from tqdm import tqdm


def worker() -> str:
  """``host:pid`` of this process."""
  return f"{socket.gethostname()}:{os.getpid()}"


class EventLog:
  """Appends one JSON line per event to ``log_dir/sweep_log.jsonl``.

  Lines are written with ``O_APPEND`` in one ``write``, so lines of
  concurrent workers never mix.
  """

  def __init__(self, log_dir):
    self.path = os.fspath(epath.Path(log_dir) / "sweep_log.jsonl")

  def __call__(self, event: str, run: str, **extra) -> None:
    if jax.process_index() != 0:
      return
    record = dict(event=event, run=run, worker=worker(), time=time.time(), **extra)
    line = (json.dumps(record, sort_keys=True) + "\n").encode()
    os.makedirs(os.path.dirname(self.path), exist_ok=True)
    fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
      os.write(fd, line)
    finally:
      os.close(fd)


def read_log(sweep_dir) -> list[dict]:
  """The events of ``sweep_dir/sweep_log.jsonl``."""
  path = epath.Path(sweep_dir) / "sweep_log.jsonl"
  if not path.exists():
    return []
  return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


class FlopBar:
  """Overall sweep progress in FLOPs with an ETA (tqdm), or nothing.

  Args:
    name: the experiment name (the bar's label).
    total_flops: FLOPs of the runs this call expects to train.
    enabled: show the bar (only process 0 ever does).
  """

  def __init__(self, name: str, total_flops: float, enabled: bool = True):
    self._bar = None
    if enabled and jax.process_index() == 0:
      self._bar = tqdm(total=total_flops, unit="FLOP", unit_scale=True,
                       desc=f"sweep {name}", position=0, file=sys.stderr)

  def trained(self, flops: float, trained: int, failed: int) -> None:
    if self._bar is not None:
      self._bar.update(flops)
      self._bar.set_postfix(runs=f"{trained}", failed=failed)

  def dropped(self, flops: float) -> None:
    """A run another worker trained: no longer part of this call's work."""
    if self._bar is not None:
      self._bar.total -= flops
      self._bar.refresh()

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
