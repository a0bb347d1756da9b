"""Checkpoints with orbax: save every N steps, keep the last K (and any steps
named to be kept, such as the branch points of a stable run), resume from the
newest step that really restores.

Each checkpoint holds the train state (params, optimizer state, step) and a
small JSON item ``meta`` with the host counters (``tokens``, ``flops``,
``loss_tokens``) so they continue across a resume.

Orbax ignores unfinalised temporary directories, but a finalised step whose
files were truncated or lost is still listed and then fails to restore, and a
later ``save`` of the same step number would silently do nothing. So a step
that fails to restore is moved aside (``checkpoints/corrupt/<step>-<time>``)
with a warning naming it, and the previous step is tried.
"""

from __future__ import annotations

import logging
import sys
import time

from etils import epath
import jax
import numpy as np
import orbax.checkpoint as ocp

from scaling import agree
from scaling.config import ConfigError



def _param_name(path) -> str:
  """``blocks/attn/q`` for a tree path."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


_ORBAX_DIR = epath.Path(ocp.__file__).parent.as_posix()


def _from_abandoned_read(exc, tb) -> bool:
  """Whether an unraisable error is the aftermath of an abandoned read: the
  closed event loop, or a read coroutine of orbax closed by the collector."""
  if isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed":
    return True
  while tb is not None:
    if tb.tb_frame.f_code.co_filename.startswith(_ORBAX_DIR):
      return True
    tb = tb.tb_next
  return False


class _AbandonedRestoreFilter(logging.Filter):
  """Drops asyncio's "<class> exception was never retrieved" (Task, Future,
  and the ``_GatheringFuture`` of ``asyncio.gather``) for the abandoned
  tensorstore reads of orbax (see :func:`_quiet_abandoned_reads`)."""

  def filter(self, record):
    msg = record.getMessage()
    if not msg.partition("\n")[0].endswith("exception was never retrieved"):
      return True
    exc_info = record.exc_info or (None, None, None)
    return not (_ORBAX_DIR in msg or "tensorstore_spec" in msg
                or _from_abandoned_read(exc_info[1], exc_info[2]))


def _quiet_abandoned_reads() -> None:
  """Silences the aftermath of a restore that failed on one array.

  When one array of a step fails to read, orbax stops waiting and closes its
  event loop while tensorstore still completes the step's other reads. They
  then report, each with a traceback on stderr and after the failure was
  handled (the step is moved aside with one warning): ``RuntimeError('Event
  loop is closed')`` and read coroutines closed by the garbage collector
  (through ``sys.unraisablehook``), and "Task (or Future) exception was never
  retrieved" (asyncio's log). Only those reports are dropped; every other
  error still reaches the previous hook and the log.
  """
  previous = sys.unraisablehook
  if getattr(previous, "_scaling_filter", False):
    return

  def hook(unraisable):
    if not _from_abandoned_read(unraisable.exc_value,
                                getattr(unraisable, "exc_traceback", None)):
      previous(unraisable)

  hook._scaling_filter = True  # pylint: disable=protected-access
  sys.unraisablehook = hook
  logging.getLogger("asyncio").addFilter(_AbandonedRestoreFilter())


class Checkpointer:
  """Thin wrapper over ``ocp.CheckpointManager`` for one run directory.

  Args:
    directory: ``<workdir>/checkpoints`` (local path or ``gs://``).
    keep: number of most recent checkpoints kept.
    async_save: save in a background thread (orbax async checkpointing).
    keep_steps: steps kept whatever ``keep`` says (``checkpoint.at_steps``:
      the points where WSD decay branches start).
  """

  def __init__(self, directory, keep: int = 3, async_save: bool = True,
               keep_steps=()):
    self.directory = epath.Path(directory)
    policy = ocp.checkpoint_managers
    preserve = policy.LatestN(n=keep)
    if keep_steps:
      preserve = policy.AnyPreservationPolicy([
          preserve, policy.CustomSteps(steps=sorted(int(k) for k in keep_steps))])
    self._options = ocp.CheckpointManagerOptions(
        preservation_policy=preserve, enable_async_checkpointing=async_save,
        create=True)
    self._manager = self._new_manager()

  def _new_manager(self):
    return ocp.CheckpointManager(
        self.directory, options=self._options,
        item_handlers=dict(state=ocp.StandardCheckpointHandler(),
                           meta=ocp.JsonCheckpointHandler()))

  def steps(self) -> list[int]:
    """Saved steps, ascending; process 0's list on every process, so all
    processes of a multi-host job try to restore the same step."""
    return [int(s) for s in agree.broadcast(sorted(self._manager.all_steps()))]

  def check_shapes(self, step: int, abstract_state, source: str) -> None:
    """Refuses a checkpoint whose parameters do not fit ``abstract_state``.

    Compares the stored shape and dtype of every parameter with the
    requested one before anything is restored (orbax would fail deep inside an
    asynchronous restore, with hundreds of lines of tracebacks).

    Raises:
      ConfigError: (``--init-from``) naming ``source`` and the first
        parameter whose stored shape or dtype differs, or that is missing
        on one side.
    """
    stored = self._manager.item_metadata(step)["state"]
    stored = getattr(stored, "tree", stored)["params"]
    want = {_param_name(k): v for k, v in
            jax.tree_util.tree_leaves_with_path(abstract_state["params"])}
    have = {_param_name(k): v for k, v in
            jax.tree_util.tree_leaves_with_path(stored)}
    for key in sorted(set(want) | set(have)):
      if key not in have or key not in want:
        side = "has no" if key not in have else "has an extra"
        raise ConfigError("--init-from", (
            f"{source} {side} parameter {key}; it was trained with another "
            "architecture than this config (compare its config.json)."))
      a, b = want[key], have[key]
      if tuple(a.shape) != tuple(b.shape) or np.dtype(a.dtype) != np.dtype(b.dtype):
        raise ConfigError("--init-from", (
            f"{source} stores {key} as {tuple(b.shape)} {np.dtype(b.dtype)}, "
            f"but this config needs {tuple(a.shape)} {np.dtype(a.dtype)}; "
            "start from a checkpoint of the same model shape (compare its "
            "config.json)."))

  def save(self, step: int, state, meta: dict, force: bool = False) -> bool:
    """Starts saving ``state`` and ``meta`` at ``step`` (asynchronous)."""
    return self._manager.save(
        step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                      meta=ocp.args.JsonSave(meta)),
        force=force)

  def restore(self, step: int, abstract_state):
    """Restores ``step`` into the shardings of ``abstract_state``.

    ``abstract_state`` is a tree of ``jax.ShapeDtypeStruct`` with shardings,
    so a checkpoint written on another mesh or device count is resharded.

    Returns:
      (state, meta).
    """
    restored = self._manager.restore(
        step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state),
            meta=ocp.args.JsonRestore()))
    return restored["state"], dict(restored["meta"])

  def restore_params(self, step: int, abstract_params):
    """Restores only the parameters of ``step`` (not its optimizer state).

    Args:
      step: a saved step.
      abstract_params: the parameters as ``jax.ShapeDtypeStruct`` with
        shardings (resharded like :meth:`restore`).

    Returns:
      The parameter tree.
    """
    item = dict(params=abstract_params)
    with ocp.PyTreeCheckpointer() as reader:
      restored = reader.restore(
          self.directory / str(step) / "state",
          args=ocp.args.PyTreeRestore(
              item, restore_args=ocp.checkpoint_utils.construct_restore_args(
                  item), partial_restore=True))
    return restored["params"]

  def restore_latest(self, abstract_state, max_step: int | None = None):
    """Restores the newest step that restores, moving broken ones aside.

    Returns:
      (step, state, meta), or None when no step restores.
    """
    _quiet_abandoned_reads()
    for step in reversed(self.steps()):
      if max_step is not None and step > max_step:
        continue
      try:
        self._check_committed(step)
        state, meta = self.restore(step, abstract_state)
        return step, state, meta
      except Exception as e:  # pylint: disable=broad-except
        self._move_aside(step, e)
    return None

  def _check_committed(self, step: int) -> None:
    """Raises when a listed step lacks its commit marker or metadata."""
    step_dir = self.directory / str(step)
    for marker in ("commit_success.txt", "_CHECKPOINT_METADATA"):
      if not (step_dir / marker).exists():
        raise FileNotFoundError(f"{step_dir} has no {marker}")

  def _move_aside(self, step: int, error: Exception):
    if jax.process_index() == 0:
      aside = self.directory.parent / "corrupt_checkpoints"
      aside.mkdir(parents=True, exist_ok=True)
      target = aside / f"{step}-{time.strftime('%Y%m%d-%H%M%S')}"
      (self.directory / str(step)).rename(target)
      print(f"WARNING: checkpoint step {step} failed to restore "
            f"({type(error).__name__}); moved aside to {target}", flush=True)
    agree.barrier(f"move_aside_{step}")
    self._manager.close()
    self._manager = self._new_manager()

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()
