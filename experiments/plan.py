"""What a sweep call trains: its runs, their directories and which are done.

A run's directory is ``<sweep_dir>/<short-name>-<identity>`` and its status
comes from the directory (:func:`experiments.tables.run_status`). A run is
*done* for this call when it finished, or failed for a reason of its own
(a NaN loss, an invalid config) and is not to be retried. A failure that is
the machine's (``failure: machine`` in its summary: a mesh that does not fit
the devices, out of memory, a dead peer process) is never done: the next
sweep call trains the run again, without ``--retry-failed``.

A WSD decay branch (``Run.init_from``) starts from its stable run's
directory, ``<sweep_dir>/<stable-run>@<step>``: it is *ready* once the stable
run finished (:meth:`SweepPlan.source_state`), and selecting a branch
(``--only``) selects its stable run too.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time
from typing import TextIO

from etils import epath

from experiments import registry
from experiments import tables
from scaling import accounting
from scaling import config as config_lib
from scaling.config import ConfigError

MACHINE = "machine"  # failure kinds recorded in a failed run's summary
RUN = "run"


@dataclasses.dataclass(frozen=True)
class PlannedRun:
  """One run of the sweep and where it lives.

  ``source`` is the stable run a branch starts from (None otherwise).
  """

  run: registry.Run
  name: str  # <short-name>-<identity>
  run_dir: epath.Path
  source: "PlannedRun | None" = None

  @property
  def flops(self) -> float:
    """What training this run costs here (a branch: its own steps only)."""
    return self.run.flops

  @property
  def init_from(self) -> str | None:
    """``RUN_DIR@STEP`` of the stable run's checkpoint, for a branch."""
    if self.source is None:
      return None
    return f"{os.fspath(self.source.run_dir)}@{self.run.branch_step}"


def select(experiment: registry.Experiment, only: str | None) -> list[registry.Run]:
  """The runs whose short name or full name matches regex ``only`` (all if
  None), plus the stable runs of the selected branches, in experiment order.

  Raises:
    ConfigError: (``--only``) not a regular expression, or no run matches.
  """
  if not only:
    return list(experiment.runs)
  try:
    pattern = re.compile(only)
  except re.error as e:
    raise ConfigError("--only", f"'{only}' is not a regular expression: {e}.") from e
  runs = [r for r in experiment.runs
          if pattern.search(r.short_name) or pattern.search(r.name())]
  if not runs:
    raise ConfigError("--only", f"'{only}' matches none of the "
                      f"{len(experiment.runs)} runs of {experiment.name} (see "
                      "--dry-run for their names).")
  wanted = {r.short_name for r in runs}
  for run in reversed(experiment.runs):  # sources precede their branches
    if run.short_name in wanted and run.init_from is not None:
      wanted.add(run.init_from[0])
  return [r for r in experiment.runs if r.short_name in wanted]


class SweepPlan:
  """The selected runs of one sweep call and the rule of which are done.

  Args:
    experiment: the experiment.
    runs: the selected runs (:func:`select`).
    sweep_dir: ``workdir/<experiment name>``.
    retry_failed: train again runs that failed for a reason of their own
      before this call (once per call).
  """

  def __init__(self, experiment: registry.Experiment,
               runs: list[registry.Run], sweep_dir: epath.Path,
               retry_failed: bool = False):
    self.experiment = experiment
    self.sweep_dir = sweep_dir
    self.retry_failed = retry_failed
    self.t_start = time.time()
    by_short: dict[str, PlannedRun] = {}
    self.runs = []
    for r in runs:
      source = by_short.get(r.init_from[0]) if r.init_from else None
      if r.init_from and source is None:
        raise ValueError(f"run '{r.short_name}' branches from "
                         f"'{r.init_from[0]}', which is not selected before it")
      planned = PlannedRun(r, r.name(), sweep_dir / r.name(), source)
      by_short[r.short_name] = planned
      self.runs.append(planned)
    self._failed_before = {p.name for p in self.runs
                           if self.status(p)[0] == "failed"}

  def status(self, planned: PlannedRun) -> tuple[str, dict | None]:
    return tables.run_status(planned.run_dir)

  def source_state(self, planned: PlannedRun) -> tuple[str, dict | None]:
    """Whether a run can start: ``ready`` (no stable run, or it finished),
    ``waiting`` (its stable run is not done yet) or ``failed`` (the stable
    run failed and is not retried by this call; its summary is returned)."""
    if planned.source is None:
      return "ready", None
    status, summary = self.status(planned.source)
    if status == "finished":
      return "ready", None
    if status == "failed" and self.done(planned.source):
      return "failed", summary
    return "waiting", None

  def done(self, planned: PlannedRun) -> bool:
    """Finished, or failed (not the machine's) and not retried by this call."""
    status, summary = self.status(planned)
    if status != "failed":
      return status == "finished"
    machine = (summary or {}).get("failure") == MACHINE
    if not machine and not (self.retry_failed and planned.name in self._failed_before):
      return True
    return self._retried_during_this_call(planned)

  def _retried_during_this_call(self, planned: PlannedRun) -> bool:
    """A failure written after this call started (by any worker) counts as
    this call's one retry."""
    try:
      return os.stat(os.fspath(planned.run_dir / "summary.json")).st_mtime >= self.t_start
    except FileNotFoundError:
      return False


def dry_run(plan: SweepPlan, out: TextIO | None = None) -> list[dict]:
  """Prints the runs (name, budget, size, steps, tokens, FLOPs, status).

  Returns:
    One dict per run with the printed values.
  """
  out = out or sys.stdout
  experiment = plan.experiment
  rows = []
  print(f"{experiment.name}: {experiment.description}", file=out)
  print(f"{'run':<40} {'budget':>9} {'N_total':>10} {'steps':>7} "
        f"{'tokens':>11} {'flops':>10}  status", file=out)
  if any(p.source is not None for p in plan.runs):
    print("(a branch trains only its steps after the branch point: 'steps' "
          "and 'flops' are its own; 'from' names its stable run)", file=out)
  for planned in plan.runs:
    run = planned.run
    status, _ = plan.status(planned)
    counts = accounting.param_counts(run.config.model,
                                     config_lib.vocab_size(run.config),
                                     run.config.seq_len)
    tokens = run.steps * accounting.tokens_per_step(run.config)
    own = run.steps - run.branch_step
    rows.append(dict(run=planned.name, budget=run.budget,
                     params_total=counts["params_total"], steps=own,
                     tokens=tokens, flops=run.flops, status=status))
    budget = f"{run.budget:.3g}" if run.budget else "-"
    origin = (f"  from {run.init_from[0]}@{run.branch_step}"
              if run.init_from else "")
    print(f"{planned.name:<40} {budget:>9} {counts['params_total']:>10,} "
          f"{own:>7,} {tokens:>11,} {run.flops:>10.3g}  {status}{origin}",
          file=out)
  total = sum(r["flops"] for r in rows)
  print(f"{len(rows)} runs, {total:.3g} FLOPs (exact count)", file=out)
  ledger = tables.flop_ledger([p.run for p in plan.runs])
  if ledger["branches"]:
    print(tables.ledger_line(ledger), file=out)
  for note in experiment.notes:
    print(f"note: {note}", file=out)
  return rows
