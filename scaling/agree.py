"""Decisions every process of a job must take together.

In a multi-process job (``jax.distributed``), a decision that changes what
the processes do next (stop on a signal, skip or train a run, which
checkpoint to restore, whether a workdir is free) must be the same on every
process, or they deadlock in the next collective. This module is the one
place that makes them agree; every call is a collective, so every process
must make it at the same point. With one process each returns its argument.

* :func:`any_process`: a flag true on at least one process (collective OR),
  e.g. a SIGTERM that reached one host of a preempted slice;
* :func:`broadcast`: process 0's value (a JSON value), e.g. its choice of
  runs, steps or a claim;
* :func:`barrier`: wait until every process gets here;
* :class:`StopSignal`: SIGTERM and Ctrl-C as a flag, for :func:`any_process`.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import jax
from jax.experimental import multihost_utils
import numpy as np


def any_process(flag: bool) -> bool:
  """True on every process when ``flag`` is true on at least one."""
  if jax.process_count() == 1:
    return bool(flag)
  flags = multihost_utils.process_allgather(np.array([int(bool(flag))], np.int32))
  return bool(np.asarray(flags).any())


def broadcast(value: Any) -> Any:
  """Process 0's ``value`` on every process (other processes' is ignored).

  Args:
    value: anything ``json.dumps`` accepts (bool, int, float, str, None,
      list, dict); lists come back as lists.

  Raises:
    TypeError: ``value`` is not JSON-serialisable (raised on process 0).
  """
  if jax.process_count() == 1:
    return value
  payload = json.dumps(value).encode() if jax.process_index() == 0 else b""
  size = int(multihost_utils.broadcast_one_to_all(np.int32(len(payload))))
  buf = np.zeros(size, np.uint8)
  buf[:len(payload)] = np.frombuffer(payload, np.uint8)
  out = np.asarray(multihost_utils.broadcast_one_to_all(buf), dtype=np.uint8)
  return json.loads(out.tobytes().decode())


def barrier(name: str) -> None:
  """Blocks until every process reaches the barrier called ``name``."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


class StopSignal:
  """SIGTERM and SIGINT (Ctrl-C) become a flag checked between steps.

  ``with StopSignal() as stop:`` installs the handlers (main thread only;
  elsewhere the flag simply stays False) and restores the previous ones on
  exit. :meth:`agreed` is the collective decision: True on every process
  once any process got a signal. (JAX's own preemption sync point proved
  racy on CPU, so the decision is this explicit collective OR.)
  """

  _SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self._previous = {}

  def __enter__(self):
    try:
      for sig in self._SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    except ValueError:  # not the main thread
      self._previous = {}
    return self

  def _handle(self, *_):
    self.requested = True

  def __exit__(self, *_):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def agreed(self) -> bool:
    """True on every process when any process got a signal (collective)."""
    return any_process(self.requested)
