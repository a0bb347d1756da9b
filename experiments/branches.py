"""WSD decay branches: when a run may start from a stable run's checkpoint.

A warmup-stable-decay (WSD) family trains one *stable* run per model size
(warmup, then the peak learning rate; ``schedule.name = constant``) and
starts each *branch* (a ``wsd`` run of its own total length) from the
stable run's checkpoint at the step where the branch's decay begins
(``Run.init_from``; Hu et al. 2024, MiniCPM, arXiv 2404.06395; Hägele et
al. 2024, arXiv 2405.18392). The branch is then the run its config describes
trained from scratch, only cheaper, provided that (:func:`check_branch`)

* everything that changes the result but the schedule and the length is
  the stable run's (model, data, objective, optimizer, seeds, batch);
* the two learning-rate schedules agree on every update before the branch
  point (so warmup is fixed in absolute steps, ``schedule.warmup_steps``,
  for every run of the family);
* the stable run keeps a checkpoint at the branch point
  (``checkpoint.at_steps``, or its last step);
* both log and evaluate at the same steps before the branch point, so the
  branch's ``metrics.jsonl`` (which begins with the stable run's records,
  ``scaling.metrics.branch_history``) is the one an uninterrupted run
  writes.

Nothing here trains; the registry calls :func:`check_branch` for every
branch when an experiment is looked up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scaling import accounting
from scaling import identity as identity_lib
from scaling import schedules

# Identity fields a branch may change: the schedule and the training length.
_FREE = ("schedule", "train")


def learning_rates(config: Any, steps: int) -> np.ndarray:
  """[steps] float32 learning rates of updates 0 … steps-1 of ``config``."""
  total = accounting.train_steps(config)
  s = config.schedule
  return np.asarray(schedules.learning_rate(
      np.arange(steps), schedule=s.name, peak_lr=config.optimizer.peak_lr,
      warmup_steps=schedules.resolve_warmup(s, total), total_steps=total,
      min_lr_ratio=s.min_lr_ratio, decay_fraction=s.decay_fraction,
      decay_shape=s.decay_shape))


def _first_difference(a: dict, b: dict, prefix: str = "") -> str | None:
  for key in sorted(set(a) | set(b)):
    if key in _FREE and not prefix:
      continue
    va, vb = a.get(key), b.get(key)
    if isinstance(va, dict) and isinstance(vb, dict):
      found = _first_difference(va, vb, f"{prefix}{key}.")
      if found:
        return found
    elif va != vb:
      return f"{prefix}{key}"
  return None


def check_branch(run: Any, source: Any, experiment: str) -> None:
  """Refuses a branch that would not equal its run trained from scratch.

  Args:
    run: the branch (``registry.Run`` with ``init_from = (name, step)``).
    source: the stable run it names.
    experiment: the experiment's name (for messages).

  Raises:
    ValueError: naming the experiment, the branch and the fix: a branch
      point outside (0, steps), no checkpoint kept there, an identity field
      other than the schedule and length that differs, learning rates that
      differ before the branch point, or other log / eval steps.
  """
  step = int(run.init_from[1])
  where = f"experiment '{experiment}', branch '{run.short_name}'"
  if not 0 < step < run.steps or step > source.steps:
    raise ValueError(
        f"{where}: branch step {step} must lie in (0, {run.steps}) and not "
        f"beyond the {source.steps} steps of '{source.short_name}'")
  if step != source.steps and step not in tuple(source.config.checkpoint.at_steps):
    raise ValueError(
        f"{where}: '{source.short_name}' keeps no checkpoint at step {step}; "
        "add it to the stable run's checkpoint.at_steps")
  field = _first_difference(identity_lib.identity_fields(run.config),
                            identity_lib.identity_fields(source.config))
  if field is not None:
    raise ValueError(
        f"{where}: config.{field} differs from '{source.short_name}'; a "
        "branch may change only the schedule and the training length")
  lr_run = learning_rates(run.config, step)
  lr_src = learning_rates(source.config, step)
  if not np.array_equal(lr_run, lr_src):
    s = int(np.flatnonzero(lr_run != lr_src)[0])
    raise ValueError(
        f"{where}: its learning rate at update {s} is {lr_run[s]:.6g}, "
        f"'{source.short_name}' has {lr_src[s]:.6g}; the schedules must agree "
        "before the branch point: fix the warmup in absolute steps "
        "(schedule.warmup_steps) for the stable run and every branch")
  before = np.arange(1, step)
  for label, a, b in (
      ("train.log_every", run.config.train.log_every,
       source.config.train.log_every),
      ("eval.every", run.config.eval.every, source.config.eval.every)):
    if not np.array_equal(before % a == 0, before % b == 0):
      raise ValueError(
          f"{where}: config.{label} = {a} logs other steps before the branch "
          f"point than '{source.short_name}' ({b}); its metrics.jsonl begins "
          "with the stable run's records, so give both the same cadence")
