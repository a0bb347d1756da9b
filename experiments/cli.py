"""``scaling experiments`` and ``scaling sweep`` (dispatched from scaling/cli.py).

    scaling experiments [NAME ...] [--verbose]
    scaling sweep NAME --workdir DIR [--dry-run] [--only REGEX] [--workers N]
                  [--cache-dir DIR] [--lock-dir DIR] [--retry-failed]
                  [--no-wait] [--no-analysis] [--no-progress]

Exit status: 0 done; 1 runs left unfinished (``--no-wait``); 2 unknown
experiment or invalid config; 143 a run was stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import os
import sys

from etils import epath
import jax

from experiments import cost
from experiments import plan as plan_lib
from experiments import registry
from experiments import runner
from scaling import metrics
from scaling.config import ConfigError

def main_list(argv: list[str]) -> int:
  """``scaling experiments``: name, runs, total FLOPs, estimated time here.

  Returns:
    0, or 2 for an unknown name (the known names go to stderr).
  """
  parser = argparse.ArgumentParser(
      prog="scaling experiments",
      description="List the registered experiments.")
  parser.add_argument("names", nargs="*", help="only these experiments")
  parser.add_argument("--verbose", "-v", action="store_true",
                      help="also print each experiment's cost note and notes")
  args = parser.parse_args(argv)
  known = registry.list_experiments()
  for name in args.names:
    if name not in known:
      print(f"error: {registry.UnknownExperiment(name, known)}", file=sys.stderr)
      return 2
  rate, step_seconds, how = cost.throughput()
  print(f"{'name':<20} {'runs':>5} {'total FLOPs':>12} {'est. here':>10}  description")
  for name in args.names or known:
    experiment = registry.lookup(name)
    seconds = cost.estimate_seconds(experiment.runs, rate, step_seconds)
    print(f"{name:<20} {len(experiment.runs):>5} "
          f"{experiment.total_flops:>12.3g} {metrics.duration(seconds):>10}  "
          f"{experiment.description}")
    if args.verbose:
      if experiment.cost:
        print(f"{'':<20} cost: {experiment.cost}")
      for note in experiment.notes:
        print(f"{'':<20} note: {note}")
  print(f"\nFLOPs: exact count (scaling.accounting, training = 3 x forward). "
        f"Estimated time here: {how}, {cost.SECONDS_PER_RUN:g} s per run and "
        f"{cost.COMPILE_SECONDS_PER_SHAPE:g} s per model shape (cold compile "
        "cache).")
  return 0


def sweep_parser() -> argparse.ArgumentParser:
  """The ``scaling sweep`` argument parser."""
  parser = argparse.ArgumentParser(
      prog="scaling sweep", description="Train every run of an experiment, "
      "skipping finished runs and resuming partial ones, then analyse.")
  parser.add_argument("name", help="a registered experiment (scaling experiments)")
  parser.add_argument("--workdir", required=True,
                      help="sweep root; runs go to WORKDIR/NAME/<run>")
  parser.add_argument("--dry-run", action="store_true",
                      help="print the runs and their FLOPs; train nothing")
  parser.add_argument("--only", default=None,
                      help="regex: only runs whose name matches")
  parser.add_argument("--workers", default="auto", metavar="N|auto",
                      help="worker processes on this machine, each pinned to "
                      "its share of the CPUs (auto: one per CPU on a CPU "
                      "backend with several runs to train, else 1)")
  parser.add_argument("--cache-dir", default=None, help="JAX compilation "
                      "cache (default WORKDIR/.jax_cache)")
  parser.add_argument("--lock-dir", default=None, help="run claims (default "
                      "WORKDIR/NAME/locks; a filesystem all workers share)")
  parser.add_argument("--retry-failed", action="store_true",
                      help="train again runs that failed before")
  parser.add_argument("--no-wait", action="store_true", help="do not wait for "
                      "runs other workers are training")
  parser.add_argument("--no-analysis", action="store_true",
                      help="write the tables but do not fit")
  parser.add_argument("--no-progress", action="store_true",
                      help="no sweep progress bar")
  return parser


def resolve_workers(args: argparse.Namespace, n_cpus: int) -> int:
  """The worker count of ``--workers N|auto``.

  ``auto`` is ``n_cpus`` (capped at the runs left to train, unless the
  experiment has a downstream stage) on a CPU backend in a single-process
  job, else 1; a dry run uses 1.

  Raises:
    ConfigError: (``--workers``) not a positive integer or ``auto``.
  """
  if args.workers != "auto":
    try:
      n = int(args.workers)
    except ValueError:
      n = 0
    if n < 1:
      raise ConfigError("--workers", f"'{args.workers}' is not a positive "
                        "integer or auto.")
    return n
  if args.dry_run or n_cpus < 2 or os.environ.get("SCALING_DISTRIBUTED", "none") != "none":
    return 1
  if jax.default_backend() != "cpu":
    return 1
  try:
    experiment = registry.lookup(args.name)
  except registry.UnknownExperiment:
    return 1  # run() says so
  plan = plan_lib.SweepPlan(experiment, plan_lib.select(experiment, args.only),
                            epath.Path(args.workdir) / experiment.name,
                            args.retry_failed)
  left = sum(not plan.done(p) for p in plan.runs)
  if experiment.downstream is not None and args.only is None:
    left = n_cpus  # its downstream stage has jobs of its own for the workers
  return max(1, min(n_cpus, left))


def run(args: argparse.Namespace, train: bool = True,
        started_at: float | None = None) -> int:
  """Runs a parsed ``scaling sweep`` in this process; returns the exit status.

  With ``train=False`` it trains nothing: it writes the tables and runs the
  analysis of what the sweep's workers trained (since ``started_at``).
  """
  try:
    result = runner.run_sweep(
        args.name, args.workdir, only=args.only, dry=args.dry_run,
        cache_dir=args.cache_dir, lock_dir=args.lock_dir,
        retry_failed=args.retry_failed, wait=not args.no_wait,
        analyze=not args.no_analysis, progress=not args.no_progress,
        train=train, started_at=started_at)
  except registry.UnknownExperiment as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except runner.SweepInterrupted as e:
    print(f"sweep stopped: {e}; run the same command to resume",
          file=sys.stderr)
    return 143
  if result.unfinished:
    return 1
  if (not args.dry_run and result.rows
      and not any(r["status"] == "finished" for r in result.rows)):
    print("error: no run of the sweep finished (see results.csv for the "
          "reasons)", file=sys.stderr)
    return 1
  return 0


def main_sweep(argv: list[str]) -> int:
  """``scaling sweep NAME --workdir DIR [...]`` in this process (one worker).

  Returns:
    The exit status (module docstring).
  """
  return run(sweep_parser().parse_args(argv))
