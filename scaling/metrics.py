"""Run-directory writers: ``metrics.jsonl``, TensorBoard events, atomic JSON.

Only process 0 writes. On resume from step k, ``metrics.jsonl`` is cut back to
the records with ``step <= k`` and TensorBoard is told to purge events from
step k+1 on (``purge_step``), so no step is logged twice. A run started from
another run's checkpoint at step k (``--init-from``) begins its
``metrics.jsonl`` with that run's records up to k (:func:`branch_history`),
so a WSD decay branch holds its whole curve, as an uninterrupted run would.
"""

from __future__ import annotations

import json
import math
import os

from etils import epath
import jax


def duration(seconds: float) -> str:
  """``42 s``, ``12 min``, ``3.5 h`` or ``4 days``: a duration for people."""
  if seconds < 90:
    return f"{seconds:.0f} s"
  if seconds < 5400:
    return f"{seconds / 60:.0f} min"
  if seconds < 2 * 86400:
    return f"{seconds / 3600:.1f} h"
  return f"{seconds / 86400:.0f} days"


def write_json_atomic(path, obj) -> None:
  """Writes JSON to ``path`` through a temporary file and a rename."""
  path = epath.Path(path)
  tmp = path.parent / f".{path.name}.tmp"
  tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_default))
  tmp.replace(path)


def _default(x):
  try:
    return x.item()
  except AttributeError:
    return str(x)


def _clean(value):
  if value is None:
    return None
  value = _default(value) if not isinstance(value, (int, float, str)) else value
  if isinstance(value, float) and not math.isfinite(value):
    return None if math.isnan(value) else value
  return value


# Keys of a train-step record besides the counters; every other key of a
# record at a logged step comes from an eval (``scaling.evaluation``).
COUNTER_KEYS = ("step", "tokens", "flops")
TRAIN_KEYS = ("loss_tokens", "train_loss", "lr", "grad_norm", "tokens_per_sec",
              "mfu", "epoch")


def branch_history(records: list[dict], step: int, log_every: int,
                   eval_every: int) -> list[dict]:
  """The source run's records up to the branch point ``step``, as logged by
  a run whose cadences are ``log_every`` / ``eval_every``.

  Records before ``step`` are kept as they are (branch and source share
  their cadences). The record at ``step`` keeps its train keys only if
  ``step % log_every == 0`` and its eval keys only if
  ``step % eval_every == 0``: the source may have logged and evaluated it
  only because it was the source's last step. A record left with nothing
  but its counters is dropped.

  Args:
    records: the source's ``metrics.jsonl`` records.
    step: the branch point k (the source checkpoint's step).
    log_every, eval_every: the branch's ``train.log_every``, ``eval.every``.

  Returns:
    The records with ``step <= k``, in order.
  """
  out = []
  for record in records:
    s = int(record.get("step", 0))
    if s > step:
      continue
    if s == step:
      record = {k: v for k, v in record.items()
                if k in COUNTER_KEYS
                or (k in TRAIN_KEYS and s % log_every == 0)
                or (k not in TRAIN_KEYS and s % eval_every == 0)}
      if set(record) <= set(COUNTER_KEYS):
        continue
    out.append(record)
  return out


def read_jsonl(path) -> list[dict]:
  path = epath.Path(path)
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class MetricsLog:
  """Appends metric records to ``metrics.jsonl`` and TensorBoard.

  Args:
    workdir: the run directory.
    resume_step: the restored step (0 for a fresh run); records after it are
      removed.
    history: for a run started from another run's checkpoint, the records
      it begins with (:func:`branch_history`), replacing any in the file;
      they go to TensorBoard too.
  """

  def __init__(self, workdir, resume_step: int = 0,
               history: list[dict] | None = None):
    self.enabled = jax.process_index() == 0
    self.path = epath.Path(workdir) / "metrics.jsonl"
    self._tb = None
    if not self.enabled:
      return
    if history is not None:
      kept = list(history)
    else:
      kept = [r for r in read_jsonl(self.path)
              if r.get("step", 0) <= resume_step]
    tmp = self.path.parent / f".{self.path.name}.tmp"
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(self.path)
    self._file = self.path.open("a")
    try:
      from tensorboardX import SummaryWriter
      self._tb = SummaryWriter(
          os.fspath(epath.Path(workdir) / "tensorboard"),
          purge_step=resume_step + 1 if resume_step else None)
    except ImportError:  # pragma: no cover - tensorboardX is a dependency
      self._tb = None
    if history is not None:
      for record in kept:
        self._scalars(record, flush=False)
      if self._tb is not None:
        self._tb.flush()

  def _scalars(self, record: dict, flush: bool = True) -> None:
    if self._tb is None:
      return
    step = record["step"]
    for k, v in record.items():
      if k != "step" and isinstance(v, (int, float)) and v is not None:
        self._tb.add_scalar(k, v, step)
    if flush:
      self._tb.flush()  # a SIGKILL must not lose logged steps

  def write(self, record: dict) -> None:
    if not self.enabled:
      return
    record = {k: _clean(v) for k, v in record.items()}
    self._file.write(json.dumps(record) + "\n")
    self._file.flush()
    self._scalars(record)

  def close(self) -> None:
    if not self.enabled:
      return
    self._file.close()
    if self._tb is not None:
      self._tb.close()
