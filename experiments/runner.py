"""The sweep runner: trains every run of an experiment into a sweep directory.

``run_sweep(name, workdir)`` trains the runs of experiment ``name`` into
``workdir/name/<short-name>-<identity>/`` in-process (``scaling.train.train``,
so one process reuses its compiled code, and JAX's persistent compilation
cache serves runs that differ only in traced hyperparameters), and:

* skips runs whose ``summary.json`` says ``finished`` (and, unless
  ``retry_failed``, ``failed``); a run directory with a checkpoint is resumed
  by the trainer;
* claims each run with a lock file (:mod:`experiments.locks`) so several
  workers can share one sweep directory, each run trained once;
* records a run that fails (a ``failed`` summary, or an exception inside
  ``train``, whose traceback goes to ``error.txt``) and goes on;
* shows overall progress in FLOPs with an ETA (tqdm);
* writes ``results.csv`` and ``curves.csv`` (:mod:`experiments.tables`) and
  ``sweep_summary.json`` (compile time against training time), then calls
  ``analysis.report.analyze(sweep_dir, sweep_dir/analysis)``; an analysis
  error is recorded, never fatal.

Events (claim, finish, fail, skip, takeover) are appended to
``sweep_log.jsonl`` with the worker's host and pid.

Claims and the event log need a POSIX filesystem shared by the workers (local
disk, NFS, a FUSE mount). Run directories and tables go through etils.epath,
so a ``gs://`` workdir works when ``lock_dir`` names such a filesystem; the
event log then lives in ``lock_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import sys
import time
import traceback
from typing import Any, TextIO

from etils import epath
import jax
import numpy as np

from experiments import locks
from experiments.compile_cache import compile_stats, enable_compile_cache
from experiments import registry
from experiments import tables



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
    analysis: what ``analysis.report.analyze`` returned, or None.
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


# ----------------------------------------------------------------- helpers


def _worker() -> str:
  return f"{socket.gethostname()}:{os.getpid()}"


def _log_event(log_dir: epath.Path, event: str, run: str, **extra) -> None:
  """Appends one JSON line to log_dir/sweep_log.jsonl (O_APPEND: lines never mix).

  Only process 0 of a multi-host job logs.
  """
  if jax.process_index() != 0:
    return
  record = dict(event=event, run=run, worker=_worker(), time=time.time(), **extra)
  line = (json.dumps(record, sort_keys=True) + "\n").encode()
  os.makedirs(os.fspath(log_dir), exist_ok=True)
  path = os.fspath(log_dir / "sweep_log.jsonl")
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    os.write(fd, line)
  finally:
    os.close(fd)


def read_log(sweep_dir) -> list[dict]:
  """The events of ``sweep_dir/sweep_log.jsonl`` (or of ``lock_dir``'s)."""
  path = epath.Path(sweep_dir) / "sweep_log.jsonl"
  if not path.exists():
    return []
  return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


def select(experiment: registry.Experiment, only: str | None) -> list[registry.Run]:
  """The runs whose short name or full name matches regex ``only`` (all if None)."""
  if not only:
    return list(experiment.runs)
  from scaling.config import ConfigError  # pylint: disable=import-outside-toplevel
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
  return runs


def _failure_summary(run_dir: epath.Path, reason: str, tb: str) -> dict:
  from scaling import metrics  # pylint: disable=import-outside-toplevel
  run_dir.mkdir(parents=True, exist_ok=True)
  (run_dir / "error.txt").write_text(tb)
  summary = dict(status="failed", reason=reason)
  metrics.write_json_atomic(run_dir / "summary.json", summary)
  return summary


def _train_one(run: registry.Run, run_dir: epath.Path) -> dict:
  """Trains one run; an exception becomes a ``failed`` summary."""
  from scaling import train as train_lib  # pylint: disable=import-outside-toplevel
  try:
    summary = train_lib.train(run.config, os.fspath(run_dir))
  except Exception as e:  # pylint: disable=broad-except
    reason = f"{type(e).__name__}: {e}".strip()
    return _failure_summary(run_dir, reason, traceback.format_exc())
  if summary.get("status") == train_lib.TERMINATED:
    raise SweepInterrupted(summary.get("reason", "SIGTERM"))
  return summary


# -------------------------------------------------------------------- sweep


def dry_run(experiment: registry.Experiment, runs: list[registry.Run],
            sweep_dir: epath.Path, out: TextIO | None = None) -> list[dict]:
  """Prints the runs (name, budget, size, steps, tokens, FLOPs, status).

  Returns:
    One dict per run with the printed values.
  """
  from scaling import accounting  # pylint: disable=import-outside-toplevel
  from scaling import config as config_lib  # pylint: disable=import-outside-toplevel
  from experiments.generators import (  # pylint: disable=import-outside-toplevel
      tokens_per_step)
  out = out or sys.stdout
  rows = []
  print(f"{experiment.name}: {experiment.description}", file=out)
  header = (f"{'run':<40} {'budget':>9} {'N_total':>10} {'steps':>7} "
            f"{'tokens':>11} {'flops':>10}  status")
  print(header, file=out)
  for run in runs:
    name = run.name()
    status, _ = tables.run_status(sweep_dir / name)
    counts = accounting.param_counts(run.config.model,
                                     config_lib.vocab_size(run.config),
                                     run.config.seq_len)
    tokens = run.steps * tokens_per_step(run.config)
    row = dict(run=name, budget=run.budget, params_total=counts["params_total"],
               steps=run.steps, tokens=tokens, flops=run.flops, status=status)
    rows.append(row)
    budget = f"{run.budget:.3g}" if run.budget else "-"
    print(f"{name:<40} {budget:>9} {counts['params_total']:>10,} "
          f"{run.steps:>7,} {tokens:>11,} {run.flops:>10.3g}  {status}", file=out)
  total = sum(r["flops"] for r in rows)
  print(f"{len(rows)} runs, {total:.3g} FLOPs (exact count)", file=out)
  for note in experiment.notes:
    print(f"note: {note}", file=out)
  return rows


def run_sweep(experiment: str | registry.Experiment, workdir: str, *,
              only: str | None = None, dry: bool = False,
              cache_dir: str | None = None, lock_dir: str | None = None,
              retry_failed: bool = False, wait: bool = True,
              analyze: bool = True, progress: bool = True,
              stale_seconds: float = 120.0, heartbeat_seconds: float = 10.0,
              poll_seconds: float = 5.0, out: TextIO | None = None) -> SweepResult:
  """Runs (or, with ``dry``, lists) an experiment's runs into ``workdir/name``.

  Args:
    experiment: a registered name or an :class:`registry.Experiment`.
    workdir: the sweep root; the sweep directory is ``workdir/<name>``.
    only: regex; train only runs whose short or full name matches.
    dry: print the runs and their FLOPs; train nothing, write nothing.
    cache_dir: JAX persistent compilation cache (default
      ``workdir/.jax_cache``, or ``lock_dir/.jax_cache`` for a ``gs://``
      workdir).
    lock_dir: where run claims (and then the event log) live (default
      ``sweep_dir/locks``); a POSIX filesystem shared by the workers,
      required when ``workdir`` is not a POSIX path.
    retry_failed: train again runs that failed in an earlier sweep call.
    wait: when runs are claimed by other live workers, wait for them so the
      tables and analysis cover the whole sweep.
    analyze: call ``analysis.report.analyze`` at the end.
    progress: show the FLOP progress bar.
    stale_seconds, heartbeat_seconds, poll_seconds: claim staleness, the
      owner's heartbeat period and the waiting poll period.
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
  runs = select(experiment, only)
  sweep_dir = epath.Path(workdir) / experiment.name
  if dry:
    rows = dry_run(experiment, runs, sweep_dir, out)
    return SweepResult(os.fspath(sweep_dir), rows, [], [], [], [], 0.0, 0.0,
                       None, "dry run")
  t_sweep = time.time()
  posix = not re.match(r"^[a-z0-9]+://", os.fspath(workdir))
  if lock_dir is None and not posix:
    from scaling import config as config_lib  # pylint: disable=import-outside-toplevel
    raise config_lib.ConfigError(
        "lock_dir", f"{sweep_dir} is not a POSIX path: give --lock-dir on a "
        "filesystem all workers share (run claims need atomic file creation)")
  sweep_dir.mkdir(parents=True, exist_ok=True)
  lock_root = lock_dir or os.fspath(sweep_dir / "locks")
  log_dir = sweep_dir if lock_dir is None else epath.Path(lock_root)
  cache = enable_compile_cache(cache_dir or os.path.join(
      os.fspath(workdir) if posix else lock_root, ".jax_cache"))
  names = {id(r): r.name() for r in runs}

  def done(run, status):
    """Finished, or failed and not to be retried (again) by this call."""
    if status != "failed":
      return status == "finished"
    name = names[id(run)]
    if not (retry_failed and name in failed_before):
      return True
    try:  # a retry by any worker during this call counts as the retry
      return os.stat(os.fspath(sweep_dir / name / "summary.json")).st_mtime >= t_sweep
    except FileNotFoundError:
      return False

  failed_before = {names[id(r)] for r in runs
                   if tables.run_status(sweep_dir / names[id(r)])[0] == "failed"}
  is_main = jax.process_index() == 0
  # Every decision below is process 0's, broadcast, so the processes of a
  # multi-host job train the same run at the same time (DESIGN.md §3).
  todo = _agree([not done(r, tables.run_status(sweep_dir / names[id(r)])[0])
                 for r in runs])
  pending = [r for r, t in zip(runs, todo) if t]
  skipped = [names[id(r)] for r in runs if r not in pending]
  for name in skipped:
    _log_event(log_dir, "skip", name)
  print(f"sweep {experiment.name}: {len(runs)} runs selected, {len(skipped)} "
        f"already done, {len(pending)} to run; compile cache {cache}", file=out)

  bar = None
  if progress:
    from tqdm import tqdm  # pylint: disable=import-outside-toplevel
    bar = tqdm(total=sum(r.flops for r in pending), unit="FLOP",
               unit_scale=True, desc=f"sweep {experiment.name}", position=0,
               file=sys.stderr)
  trained, failed = [], []
  compile_s = train_s = 0.0
  attempted: set[str] = set()
  try:
    while pending:
      progressed = False
      for run in list(pending):
        name = names[id(run)]
        run_dir = sweep_dir / name
        if _agree(done(run, tables.run_status(run_dir)[0])) or name in attempted:
          pending.remove(run)
          if name not in attempted:
            if bar is not None:
              bar.total -= run.flops
              bar.refresh()
          continue
        lock = (locks.RunLock(os.path.join(lock_root, f"{name}.lock"),
                              stale_seconds, heartbeat_seconds)
                if is_main else None)
        if not _agree(lock is not None and lock.acquire()):
          continue
        try:
          if lock is not None and lock.broke is not None:
            _log_event(log_dir, "takeover", name, previous=lock.broke)
          # Another worker may have finished it between our check and claim.
          if _agree(done(run, tables.run_status(run_dir)[0])):
            continue
          attempted.add(name)
          before = compile_stats()
          _log_event(log_dir, "claim", name)
          summary = _train_one(run, run_dir)
          after = compile_stats()
          extra = dict(xla_compiles=after["xla_compiles"] - before["xla_compiles"],
                       cache_hits=after["cache_hits"] - before["cache_hits"],
                       compile_seconds=summary.get("compile_seconds"),
                       wall_seconds=summary.get("wall_seconds"))
          trained.append(name)
          compile_s += float(summary.get("compile_seconds") or 0.0)
          train_s += float(summary.get("wall_seconds") or 0.0)
          if summary.get("status") == "finished":
            _log_event(log_dir, "finish", name, **extra)
          else:
            failed.append(name)
            _log_event(log_dir, "fail", name, reason=summary.get("reason"), **extra)
            print(f"run {name} failed: {summary.get('reason')}", file=out)
          if lock is not None and lock.lost:
            _log_event(log_dir, "lost_claim", name)
        finally:
          if lock is not None:
            lock.release()
          progressed = True
        pending.remove(run)
        if bar is not None:
          bar.update(run.flops)
          bar.set_postfix(runs=f"{len(trained)}", failed=len(failed))
      if pending and not progressed:
        if not wait:
          break
        time.sleep(poll_seconds)  # the rest are claimed by live workers
  finally:
    if bar is not None:
      bar.close()

  return _finish(experiment, runs, sweep_dir, names, trained, skipped, failed,
                 compile_s, train_s, t_sweep, lock_root, analyze,
                 stale_seconds, heartbeat_seconds, out)


def _agree(value):
  """Process 0's ``value`` (a bool or list of bools) on every process."""
  if jax.process_count() == 1:
    return value
  from jax.experimental import multihost_utils  # pylint: disable=import-outside-toplevel
  arr = multihost_utils.broadcast_one_to_all(np.asarray(value, np.int32))
  return [bool(x) for x in arr] if isinstance(value, list) else bool(arr)


def _finish(experiment, runs, sweep_dir, names, trained, skipped, failed,
            compile_s, train_s, t_sweep, lock_root, analyze, stale_seconds,
            heartbeat_seconds, out) -> SweepResult:
  """Writes the tables and the sweep summary, then runs the analysis.

  Only process 0 of a multi-host job writes them.
  """
  if jax.process_index() != 0:
    return SweepResult(os.fspath(sweep_dir), [], trained, skipped, failed, [],
                       compile_s, train_s, None, "written by process 0")
  rows, curves = [], []
  for run in experiment.runs:
    name = names.get(id(run)) or run.name()
    status, summary = tables.run_status(sweep_dir / name)
    if status in ("partial", "pending"):
      holder = locks.RunLock(os.path.join(lock_root, f"{name}.lock"),
                             stale_seconds, heartbeat_seconds)
      info, mtime = locks.read(holder.path)
      if mtime is not None and not holder.is_stale(info, mtime):
        status = "running"
    rows.append(tables.result_row(run, name, status, summary))
    curves.extend(tables.curve_rows(name, sweep_dir / name))
  tables.write_csv_atomic(sweep_dir / "results.csv", rows)
  tables.write_csv_atomic(sweep_dir / "curves.csv", curves, tables.CURVE_COLUMNS)
  selected = {names[id(r)] for r in runs}
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
    analysis, analysis_error = _analyze(sweep_dir, lock_root, stale_seconds,
                                        heartbeat_seconds, experiment.analyze)

  compile_total = sum(float(r.get("compile_seconds") or 0) for r in rows)
  wall_total = sum(float(r.get("wall_seconds") or 0) for r in rows)
  summary = dict(
      experiment=experiment.name, runs=len(rows), finished=n_finished,
      failed=sum(r["status"] == "failed" for r in rows),
      unfinished=len(unfinished), trained_here=len(trained),
      failed_here=len(failed), skipped_here=len(skipped),
      compile_seconds_here=compile_s, train_wall_seconds_here=train_s,
      compile_seconds_all=compile_total, train_wall_seconds_all=wall_total,
      compile_fraction_all=compile_total / wall_total if wall_total else None,
      sweep_wall_seconds=time.time() - t_sweep, analysis_error=analysis_error,
      worker=_worker())
  from scaling import metrics  # pylint: disable=import-outside-toplevel
  metrics.write_json_atomic(sweep_dir / "sweep_summary.json", summary)
  _report(summary, sweep_dir, failed, out)
  return SweepResult(os.fspath(sweep_dir), rows, trained, skipped, failed,
                     unfinished, compile_s, train_s, analysis, analysis_error)


def _analyze(sweep_dir, lock_root, stale_seconds, heartbeat_seconds,
             custom=None):
  """Runs the analysis once (one worker at a time); never raises.

  ``custom(sweep_dir, out_dir)`` is the experiment's own analysis, if any.
  """
  lock = locks.RunLock(os.path.join(lock_root, "analysis.lock"), stale_seconds,
                       heartbeat_seconds)
  if not lock.acquire():
    return None, "another worker is analysing this sweep"
  try:
    from analysis import report  # pylint: disable=import-outside-toplevel
    analyze = custom or report.analyze
    result = analyze(os.fspath(sweep_dir), os.fspath(sweep_dir / "analysis"))
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
  for name in failed:
    print(f"failed: {name}", file=out)
  print(f"results: {sweep_dir / 'results.csv'}\ncurves:  {sweep_dir / 'curves.csv'}",
        file=out)
  if s["analysis_error"]:
    print(f"analysis: not written ({s['analysis_error']})", file=out)
  else:
    print(f"analysis: {sweep_dir / 'analysis'}", file=out)
