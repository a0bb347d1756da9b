"""The sweep runner: trains every run of an experiment into a sweep directory.

``run_sweep(name, workdir)`` trains the runs of experiment ``name`` into
``workdir/name/<short-name>-<identity>/`` in-process (``scaling.train.train``,
so one process reuses its compiled code, and JAX's persistent compilation
cache serves runs that differ only in traced hyperparameters). In three parts:

* plan (:mod:`experiments.plan`): which runs are done, which to train;
  finished runs are skipped, a run directory with a checkpoint is resumed by
  the trainer, a machine failure is retried; a WSD decay branch waits for
  its stable run and starts from its checkpoint (``init_from``), and is
  recorded as failed, with the stable run's failure kind, when that run
  failed;
* claim and train (:func:`_claim_and_train`): each run is claimed with a lock
  file (:mod:`scaling.claims`) so several workers share one sweep directory
  and each run is trained once; a run that fails (a ``failed`` summary, or an
  exception inside ``train``, whose traceback goes to ``error.txt``) is
  recorded with its kind (``machine`` or ``run``) and the sweep goes on;
* progress (:mod:`experiments.progress`): the FLOP bar with an ETA and the
  event log ``sweep_log.jsonl``.

At the end it writes ``results.csv`` and ``curves.csv``
(:mod:`experiments.tables`) and ``sweep_summary.json`` (compile time against
training time, exact FLOPs over wall time and over the peak, and for an
experiment with branches the FLOP ledger: each stable prefix counted once,
and the saving against training every branch from scratch), then calls the
analysis; an analysis error is recorded, never fatal.

Every decision of a multi-host job is process 0's, broadcast
(:mod:`scaling.agree`), so the processes train the same run at the same
time; only process 0 writes summaries, tables and the log.

Claims and the event log need a POSIX filesystem shared by the workers (local
disk, NFS, a FUSE mount). Run directories and tables go through etils.epath,
so a ``gs://`` workdir works when ``lock_dir`` names such a filesystem; the
event log then lives in ``lock_dir``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import time
import traceback
from typing import Any, TextIO

from etils import epath
import jax

from experiments import plan as plan_lib
from experiments import progress as progress_lib
from experiments import registry
from experiments import tables
from experiments.compile_cache import compile_stats, enable_compile_cache
from scaling import agree
from scaling import claims
from scaling import metrics
from scaling import peak
from scaling import train as train_lib
from scaling import validation
from scaling.config import ConfigError

read_log = progress_lib.read_log
# Text of errors that are the machine's, not the run's (XLA, gloo, the
# jax.distributed coordination service).
_MACHINE_ERRORS = re.compile(
    r"RESOURCE_EXHAUSTED|out of memory|Out of memory|DEADLINE_EXCEEDED|"
    r"UNAVAILABLE|Connection reset|coordination service|[Gg]loo|heartbeat")


class SweepInterrupted(Exception):
  """A run stopped on SIGTERM (checkpoint saved); the sweep stops too."""


@dataclasses.dataclass
class SweepResult:
  """What one ``run_sweep`` call did.

  Attributes:
    sweep_dir: ``workdir/name``.
    rows: the results.csv rows (every run of the experiment).
    trained, skipped, failed: run names this call trained / left alone /
      recorded as failed (``failed`` is a subset of ``trained``).
    unfinished: runs of the selection neither finished nor failed at the end.
    compile_seconds, train_seconds: sums over the runs trained by this call of
      the trainer's ``compile_seconds`` and ``wall_seconds``.
    analysis: what the analysis returned, or None.
    analysis_error: why the analysis did not run or failed, or None.
  """

  sweep_dir: str
  rows: list[dict]
  trained: list[str]
  skipped: list[str]
  failed: list[str]
  unfinished: list[str]
  compile_seconds: float
  train_seconds: float
  analysis: dict | None
  analysis_error: str | None


@dataclasses.dataclass
class _Tally:
  """What this call did, as it goes."""

  trained: list[str] = dataclasses.field(default_factory=list)
  skipped: list[str] = dataclasses.field(default_factory=list)
  failed: list[str] = dataclasses.field(default_factory=list)
  compile_seconds: float = 0.0
  train_seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class _Claims:
  """Where claims live and how long they last."""

  root: str
  stale_seconds: float
  heartbeat_seconds: float

  def of(self, name: str) -> claims.Claim:
    return claims.Claim(os.path.join(self.root, f"{name}.lock"),
                        self.stale_seconds, self.heartbeat_seconds)


# ------------------------------------------------------------ one run


def failure_kind(error: BaseException) -> str:
  """``machine`` for a failure of the devices at hand, else ``run``.

  Machine: the config does not fit the devices (``MeshMismatch``), out of
  memory, or a lost peer process / coordination service. Such a run is
  retried by the next sweep call; a run's own failure stays recorded.
  """
  if isinstance(error, (validation.MeshMismatch, MemoryError)):
    return plan_lib.MACHINE
  if not isinstance(error, ConfigError) and _MACHINE_ERRORS.search(str(error)):
    return plan_lib.MACHINE
  return plan_lib.RUN


def _train_one(planned: plan_lib.PlannedRun) -> dict:
  """Trains one run; an exception becomes a ``failed`` summary (process 0)."""
  try:
    summary = train_lib.train(planned.run.config, os.fspath(planned.run_dir),
                              init_from=planned.init_from)
  except Exception as e:  # pylint: disable=broad-except
    summary = dict(status="failed", reason=f"{type(e).__name__}: {e}".strip(),
                   failure=failure_kind(e))
    if jax.process_index() == 0:
      planned.run_dir.mkdir(parents=True, exist_ok=True)
      (planned.run_dir / "error.txt").write_text(traceback.format_exc())
      metrics.write_json_atomic(planned.run_dir / "summary.json", summary)
    return summary
  if summary.get("status") == train_lib.TERMINATED:
    raise SweepInterrupted(summary.get("reason", "SIGTERM"))
  if summary.get("status") == "failed":
    summary.setdefault("failure", plan_lib.RUN)
  return summary


def _claim_and_train(plan: plan_lib.SweepPlan, where: _Claims,
                     log: progress_lib.EventLog, bar: progress_lib.FlopBar,
                     tally: _Tally, wait: bool, poll_seconds: float,
                     out: TextIO) -> None:
  """Trains the plan's pending runs, each once across all workers."""
  pending = [p for p, todo in zip(plan.runs, agree.broadcast(
      [not plan.done(p) for p in plan.runs])) if todo]
  for planned in plan.runs:
    if planned not in pending:
      tally.skipped.append(planned.name)
      log("skip", planned.name)
  print(f"sweep {plan.experiment.name}: {len(plan.runs)} runs selected, "
        f"{len(tally.skipped)} already done, {len(pending)} to run", file=out)
  attempted: set[str] = set()
  while pending:
    progressed = False
    for planned in list(pending):
      if planned.name in attempted or agree.broadcast(plan.done(planned)):
        pending.remove(planned)
        if planned.name not in attempted:
          bar.dropped(planned.flops)  # another worker trained it
        continue
      state, source_summary = agree.broadcast(plan.source_state(planned))
      if state == "waiting":
        continue  # its stable run is not finished yet
      if state == "failed":
        _record_source_failure(planned, source_summary, log, tally, out)
        attempted.add(planned.name)
        pending.remove(planned)
        bar.trained(planned.flops, len(tally.trained), len(tally.failed))
        progressed = True
        continue
      claim = where.of(planned.name) if jax.process_index() == 0 else None
      if not agree.broadcast(claim is not None and claim.acquire()):
        continue  # a live worker holds it
      try:
        if claim is not None and claim.broke is not None:
          log("takeover", planned.name, previous=claim.broke)
        # Another worker may have finished it between our check and claim.
        if agree.broadcast(plan.done(planned)):
          continue
        attempted.add(planned.name)
        _train_and_record(planned, log, tally, out)
        if claim is not None and claim.lost:
          log("lost_claim", planned.name)
      finally:
        if claim is not None:
          claim.release()
        progressed = True
      pending.remove(planned)
      bar.trained(planned.flops, len(tally.trained), len(tally.failed))
    if pending and not progressed:
      if not wait:
        break
      time.sleep(poll_seconds)  # the rest are claimed by live workers


def _record_source_failure(planned: plan_lib.PlannedRun, source_summary,
                           log: progress_lib.EventLog, tally: _Tally,
                           out: TextIO) -> None:
  """A branch whose stable run failed fails too, with that failure's kind
  (a machine failure is retried with the stable run by the next call)."""
  source = planned.source
  summary = dict(status="failed", failure=(source_summary or {}).get(
      "failure", plan_lib.RUN), reason=(
          f"its stable run {source.name} failed: "
          f"{(source_summary or {}).get('reason', 'unknown reason')}"))
  if jax.process_index() == 0:
    planned.run_dir.mkdir(parents=True, exist_ok=True)
    metrics.write_json_atomic(planned.run_dir / "summary.json", summary)
  tally.trained.append(planned.name)
  tally.failed.append(planned.name)
  log("fail", planned.name, reason=summary["reason"],
      failure=summary["failure"])
  print(f"run {planned.name} failed: {summary['reason']}", file=out)


def _train_and_record(planned: plan_lib.PlannedRun, log: progress_lib.EventLog,
                      tally: _Tally, out: TextIO) -> None:
  before = compile_stats()
  log("claim", planned.name)
  summary = _train_one(planned)
  after = compile_stats()
  extra = dict(xla_compiles=after["xla_compiles"] - before["xla_compiles"],
               cache_hits=after["cache_hits"] - before["cache_hits"],
               compile_seconds=summary.get("compile_seconds"),
               wall_seconds=summary.get("wall_seconds"))
  tally.trained.append(planned.name)
  tally.compile_seconds += float(summary.get("compile_seconds") or 0.0)
  tally.train_seconds += float(summary.get("wall_seconds") or 0.0)
  if summary.get("status") == "finished":
    log("finish", planned.name, **extra)
    return
  tally.failed.append(planned.name)
  log("fail", planned.name, reason=summary.get("reason"),
      failure=summary.get("failure"), **extra)
  retry = (" (the machine's: the next sweep call retries it)"
           if summary.get("failure") == plan_lib.MACHINE else "")
  print(f"run {planned.name} failed{retry}: {summary.get('reason')}", file=out)


# -------------------------------------------------------------- sweep


def run_sweep(experiment: str | registry.Experiment, workdir: str, *,
              only: str | None = None, dry: bool = False,
              cache_dir: str | None = None, lock_dir: str | None = None,
              retry_failed: bool = False, wait: bool = True,
              analyze: bool = True, progress: bool = True,
              stale_seconds: float = 120.0, heartbeat_seconds: float = 10.0,
              poll_seconds: float = 5.0, train: bool = True,
              started_at: float | None = None,
              out: TextIO | None = None) -> SweepResult:
  """Runs (or, with ``dry``, lists) an experiment's runs into ``workdir/name``.

  Args:
    experiment: a registered name or an :class:`registry.Experiment`.
    workdir: the sweep root; the sweep directory is ``workdir/<name>``.
    only: regex; train only runs whose short or full name matches (and skip
      the experiment's downstream stage, which picks from all its runs).
    dry: print the runs and their FLOPs; train nothing, write nothing.
    cache_dir: JAX persistent compilation cache (default
      ``workdir/.jax_cache``, or ``lock_dir/.jax_cache`` for a ``gs://``
      workdir).
    lock_dir: where run claims (and then the event log) live (default
      ``sweep_dir/locks``); a POSIX filesystem shared by the workers,
      required when ``workdir`` is not a POSIX path.
    retry_failed: train again runs that failed (for a reason of their own)
      in an earlier sweep call; machine failures are always retried.
    wait: when runs are claimed by other live workers, wait for them so the
      tables and analysis cover the whole sweep.
    analyze: run the analysis at the end.
    progress: show the FLOP progress bar.
    stale_seconds, heartbeat_seconds, poll_seconds: claim staleness, the
      owner's heartbeat period and the waiting poll period.
    train: False trains nothing: only the tables, summary and analysis of
      what is there (after a sweep's workers finished).
    started_at: when the sweep command started (``time.time()``; default
      now): the sweep's wall time, and so its throughput, counts from it.
    out: where the report goes (default sys.stdout).

  Returns:
    A :class:`SweepResult` (for ``dry``, only ``rows`` is filled).

  Raises:
    UnknownExperiment: unknown name.  ConfigError: an invalid run config,
      or a non-POSIX workdir without ``lock_dir``.
    SweepInterrupted: a run got SIGTERM (its checkpoint is saved).
  """
  out = out or sys.stdout
  if isinstance(experiment, str):
    experiment = registry.lookup(experiment)
  sweep_dir = epath.Path(workdir) / experiment.name
  posix = not re.match(r"^[a-z0-9]+://", os.fspath(workdir))
  if lock_dir is None and not posix and not dry:
    raise ConfigError(
        "lock_dir", f"{sweep_dir} is not a POSIX path: give --lock-dir on a "
        "filesystem all workers share (run claims need atomic file creation)")
  plan = plan_lib.SweepPlan(experiment, plan_lib.select(experiment, only),
                            sweep_dir, retry_failed)
  started_at = plan.t_start if started_at is None else started_at
  if dry:
    rows = plan_lib.dry_run(plan, out)
    return SweepResult(os.fspath(sweep_dir), rows, [], [], [], [], 0.0, 0.0,
                       None, "dry run")
  if jax.process_index() == 0:
    sweep_dir.mkdir(parents=True, exist_ok=True)
  where = _Claims(lock_dir or os.fspath(sweep_dir / "locks"), stale_seconds,
                  heartbeat_seconds)
  cache = enable_compile_cache(cache_dir or os.path.join(
      os.fspath(workdir) if posix else where.root, ".jax_cache"))
  print(f"compile cache {cache}", file=out)
  log = progress_lib.EventLog(sweep_dir if lock_dir is None else where.root)
  tally = _Tally()
  if train:
    bar = progress_lib.FlopBar(experiment.name, sum(
        p.flops for p in plan.runs if not plan.done(p)), progress)
    try:
      _claim_and_train(plan, where, log, bar, tally, wait, poll_seconds, out)
    finally:
      bar.close()
    if only is None:  # a partial sweep would pick from part of the runs
      _downstream(experiment, sweep_dir, where, wait, out)
  return _finish(plan, where, tally, analyze, started_at, out)


def _downstream(experiment: registry.Experiment, sweep_dir, where: _Claims,
                wait: bool, out: TextIO) -> None:
  """The experiment's downstream stage, once its runs are finished (every
  worker runs it; each job is claimed, so each runs once). Single-process
  sweeps only: its jobs are not coordinated across ``jax.distributed``
  processes."""
  if experiment.downstream is None or not wait:
    return
  if jax.process_count() > 1:
    print(f"sweep {experiment.name}: downstream stage skipped (it runs in "
          "single-process sweeps; run `scaling sweep` on one host for it)",
          file=out)
    return
  experiment.downstream(experiment, os.fspath(sweep_dir), where.of, out)


def _finish(plan: plan_lib.SweepPlan, where: _Claims, tally: _Tally,
            analyze: bool, started_at: float, out: TextIO) -> SweepResult:
  """Writes the tables and the sweep summary, then runs the analysis.

  Only process 0 of a multi-host job writes them.
  """
  sweep_dir, experiment = plan.sweep_dir, plan.experiment
  if jax.process_index() != 0:
    return SweepResult(os.fspath(sweep_dir), [], tally.trained, tally.skipped,
                       tally.failed, [], tally.compile_seconds,
                       tally.train_seconds, None, "written by process 0")
  rows = tables.write_tables(experiment, sweep_dir, _is_running(where))
  selected = {p.name for p in plan.runs}
  unfinished = [r["run"] for r in rows if r["run"] in selected
                and r["status"] not in ("finished", "failed")]
  n_finished = sum(r["status"] == "finished" for r in rows)
  analysis, analysis_error = None, None
  if not analyze:
    analysis_error = "analysis not requested"
  elif unfinished:
    analysis_error = f"{len(unfinished)} runs unfinished; analysis skipped"
  elif not n_finished:
    analysis_error = "no finished runs to analyse"
  else:
    analysis, analysis_error = _analyze(sweep_dir, where, experiment.analyze)
  # The machine's peak, measured here with every CPU this command may use
  # (a sweep's workers are pinned to a share of them).
  peak_flops, peak_source = peak.peak_flops(
      jax.devices(), experiment.runs[0].config.model.dtype)
  summary = tables.sweep_summary(rows, _trained_since(plan, started_at),
                                 time.time() - started_at, peak_flops)
  summary["peak_source"] = peak_source
  ledger = tables.flop_ledger(experiment.runs)
  if ledger["branches"]:
    summary["flop_ledger"] = ledger
  summary.update(
      experiment=experiment.name, unfinished=len(unfinished),
      trained_here=len(tally.trained), failed_here=len(tally.failed),
      skipped_here=len(tally.skipped),
      compile_seconds_here=tally.compile_seconds,
      train_wall_seconds_here=tally.train_seconds,
      analysis_error=analysis_error, worker=progress_lib.worker())
  metrics.write_json_atomic(sweep_dir / "sweep_summary.json", summary)
  _report(summary, sweep_dir, tally.failed, out)
  return SweepResult(os.fspath(sweep_dir), rows, tally.trained, tally.skipped,
                     tally.failed, unfinished, tally.compile_seconds,
                     tally.train_seconds, analysis, analysis_error)


def _trained_since(plan: plan_lib.SweepPlan, started_at: float) -> list[str]:
  """Runs whose summary was written since ``started_at`` (by any worker)."""
  names = []
  for planned in plan.runs:
    try:
      if os.stat(os.fspath(planned.run_dir / "summary.json")).st_mtime >= started_at:
        names.append(planned.name)
    except FileNotFoundError:
      pass
  return names


def _is_running(where: _Claims):
  """``is_running(name)``: a live worker holds the run's claim."""

  def is_running(name: str) -> bool:
    holder = where.of(name)
    info, mtime = claims.read(holder.path)
    return mtime is not None and not holder.is_stale(info, mtime)

  return is_running


def _analyze(sweep_dir, where: _Claims, custom=None):
  """Runs the analysis once (one worker at a time); never raises.

  ``custom(sweep_dir, out_dir)`` is the experiment's own analysis, if any.
  """
  lock = where.of("analysis")
  if not lock.acquire():
    return None, "another worker is analysing this sweep"
  try:
    if custom is None:  # imported here: it adds about 2 s to every worker
      from analysis import report  # pylint: disable=import-outside-toplevel
      custom = report.analyze
    result = custom(os.fspath(sweep_dir), os.fspath(sweep_dir / "analysis"))
    return result, None
  except Exception as e:  # pylint: disable=broad-except
    error = f"{type(e).__name__}: {e}"
    (sweep_dir / "analysis_error.txt").write_text(traceback.format_exc())
    return None, error
  finally:
    lock.release()


def _report(summary: dict[str, Any], sweep_dir, failed, out) -> None:
  s = summary
  print(f"sweep {s['experiment']}: {s['runs']} runs: {s['finished']} finished, "
        f"{s['failed']} failed, {s['unfinished']} unfinished (this worker "
        f"trained {s['trained_here']}, skipped {s['skipped_here']})", file=out)
  if s["train_wall_seconds_all"]:
    print(f"compile {s['compile_seconds_all']:.1f} s of "
          f"{s['train_wall_seconds_all']:.1f} s run wall time "
          f"({100 * s['compile_fraction_all']:.1f}% compiling); sweep wall "
          f"{s['sweep_wall_seconds']:.1f} s", file=out)
  if s.get("flop_ledger"):
    print(tables.ledger_line(s["flop_ledger"]), file=out)
  for name in failed:
    print(f"failed: {name}", file=out)
  print(f"results: {sweep_dir / 'results.csv'}\ncurves:  {sweep_dir / 'curves.csv'}",
        file=out)
  if s["analysis_error"]:
    print(f"analysis: not written ({s['analysis_error']})", file=out)
  else:
    print(f"analysis: {sweep_dir / 'analysis'}", file=out)
