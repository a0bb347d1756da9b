"""Claims: an exclusive lock file that a dead owner does not hold forever.

Used by the trainer (one claim per run directory, so two commands never
train one workdir at once) and by the sweep runner (one claim per run of a
shared sweep directory, so several workers train each run once). A claim is
taken by creating the lock file with ``O_CREAT | O_EXCL`` (atomic on POSIX
filesystems, NFS v3+ included). The file holds the owner's token, pid, host
name and start time; a heartbeat thread touches it every
``heartbeat_seconds``. Another worker may take the claim over when the lock is
*stale*:

* the owner ran on this host and its pid is gone (or a zombie), or
* the lock's mtime is older than ``stale_seconds`` (the owner stopped beating:
  killed on another host, machine lost).

Taking over renames the stale file to a unique name first (only one taker's
rename succeeds), checks that the renamed file is the one judged stale (and
puts it back otherwise), then claims afresh with ``O_EXCL``.

Claims need a POSIX filesystem shared by the claimants (local disk, NFS, a
FUSE mount). Object stores such as ``gs://`` offer no exclusive create through
a file API, so nothing here works on them: the trainer takes no claim on a
``gs://`` run directory (it says so), and a sweep on ``gs://`` keeps its
claims in ``--lock-dir`` on a shared POSIX filesystem.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid


def _pid_alive(pid: int) -> bool:
  """True if process ``pid`` exists on this host and is not a zombie."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  try:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
      state = f.read().rsplit(")", 1)[1].split()[0]
    return state not in ("Z", "X")
  except (OSError, IndexError):
    return True


def describe(info: dict | None) -> str:
  """``host pid 1234 (since 12:00:01)`` for a lock's contents."""
  if not info:
    return "another process (lock being written)"
  since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
  return f"{info.get('host', '?')} pid {info.get('pid', '?')} (since {since})"


def read(path: str) -> tuple[dict | None, float | None]:
  """(lock contents or None if unreadable/partial, mtime or None if gone)."""
  try:
    mtime = os.stat(path).st_mtime
  except FileNotFoundError:
    return None, None
  try:
    with open(path, encoding="utf-8") as f:
      return json.loads(f.read()), mtime
  except (OSError, ValueError):
    return None, mtime


class Claim:
  """An exclusive, heartbeating claim (on a run directory or a sweep's run).

  Args:
    path: the lock file (its directory is created).
    stale_seconds: a lock whose mtime is older than this is stale.
    heartbeat_seconds: how often the owner touches the lock.

  Use ``acquire()`` (non-blocking, True when claimed) and ``release()``, or
  ``with lock:`` after a successful ``acquire()``.
  """

  def __init__(self, path: str, stale_seconds: float = 120.0,
               heartbeat_seconds: float = 10.0):
    if heartbeat_seconds >= stale_seconds:
      raise ValueError("heartbeat_seconds must be < stale_seconds")
    self.path = os.fspath(path)
    self.stale_seconds = float(stale_seconds)
    self.heartbeat_seconds = float(heartbeat_seconds)
    self.token = uuid.uuid4().hex
    self.host = socket.gethostname()
    self.owned = False
    self.lost = False  # set if another worker took the claim while we held it
    self.broke: dict | None = None  # the stale owner we took over from, if any
    self._stop = threading.Event()
    self._thread: threading.Thread | None = None

  # ----------------------------------------------------------------- state

  def owner(self) -> dict | None:
    """The current lock contents (None when free or being written)."""
    return read(self.path)[0]

  def is_stale(self, info: dict | None, mtime: float | None) -> bool:
    """Whether a lock with these contents and mtime may be taken over."""
    if mtime is None:
      return False  # gone: not stale, just free
    if info is not None and info.get("host") == self.host:
      pid = info.get("pid")
      if isinstance(pid, int) and pid != os.getpid() and not _pid_alive(pid):
        return True
    return time.time() - mtime > self.stale_seconds

  # -------------------------------------------------------------- claiming

  def _create(self) -> bool:
    os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
    try:
      fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
      return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      json.dump(dict(token=self.token, pid=os.getpid(), host=self.host,
                     since=time.time()), f)
    return True

  def _take_over(self, info: dict | None) -> bool:
    """Moves a stale lock aside; False if someone else got there first."""
    aside = f"{self.path}.stale.{self.token}"
    try:
      os.rename(self.path, aside)
    except FileNotFoundError:
      return False
    moved, _ = read(aside)
    if (moved or {}).get("token") != (info or {}).get("token"):
      # We moved a fresh claim made after our check: put it back.
      try:
        os.link(aside, self.path)
      except FileExistsError:
        pass
      os.unlink(aside)
      return False
    os.unlink(aside)
    self.broke = info or {}
    return True

  def acquire(self) -> bool:
    """Claims the run; False if a live owner holds it. Never blocks."""
    if self.owned:
      return True
    for _ in range(3):
      if self._create():
        self.owned, self.lost = True, False
        self._start_heartbeat()
        return True
      info, mtime = read(self.path)
      if not self.is_stale(info, mtime):
        if mtime is None:
          continue  # released meanwhile: try again
        return False
      if not self._take_over(info):
        return False
    return False

  def release(self) -> None:
    """Stops the heartbeat and removes the lock if we still own it."""
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
      self._thread = None
    if self.owned and (self.owner() or {}).get("token") == self.token:
      try:
        os.unlink(self.path)
      except FileNotFoundError:
        pass
    self.owned = False

  def __enter__(self):
    if not self.acquire():
      raise RuntimeError(f"{self.path} is held by {self.owner()}")
    return self

  def __exit__(self, *_):
    self.release()

  # ------------------------------------------------------------- heartbeat

  def _start_heartbeat(self) -> None:
    self._stop.clear()
    self._thread = threading.Thread(target=self._beat, daemon=True,
                                    name=f"heartbeat:{os.path.basename(self.path)}")
    self._thread.start()

  def _beat(self) -> None:
    while not self._stop.wait(self.heartbeat_seconds):
      if (self.owner() or {}).get("token") != self.token:
        info, mtime = read(self.path)
        if mtime is None or (info is not None and info.get("token") != self.token):
          self.lost = True
          return
        continue  # being rewritten: check again next beat
      try:
        os.utime(self.path)
      except FileNotFoundError:
        self.lost = True
        return
