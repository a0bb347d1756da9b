"""A sweep's tables: ``results.csv`` (one final row per run) and ``curves.csv``
(every logged step of every run), DESIGN.md §3.

``results.csv`` columns, in order: ``run`` (``<short-name>-<identity>``),
``short_name``, ``status`` (finished | failed | partial | running | pending),
``reason``, ``budget`` (isoFLOP C in ``flops``, empty otherwise), the runs'
tags, the planned config columns (:data:`CONFIG_COLUMNS`, ``steps_planned``,
``flops_planned``), then every key of the runs' ``summary.json`` (``step``,
``tokens``, ``flops``, ``flops_6nd``, ``flops_kaplan``, ``params_*``,
``train_loss``, ``eval_loss``, ``eval_bpb``, ``wall_seconds``,
``compile_seconds``, ...). ``curves.csv``: ``run, step, tokens, flops,
train_loss, eval_loss``, then the in-loop task scores (``eval.tasks``: every
``task_*`` key logged, empty where a run logged none).

An experiment with WSD decay branches adds ``branch_of`` (the full name of
a branch's stable run, empty for other runs: the analysis resamples a
branch with its stable run and leaves stable runs out of the fits),
``branch_step`` and ``flops_at_branch`` (the branch's FLOPs counter at its
branch point: its shared prefix). A branch's ``flops`` and ``tokens``
count from step 0, prefix included, as for the same run trained from
scratch; the FLOP ledger (:func:`flop_ledger`) counts each prefix once.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Sequence

from etils import epath
import pandas as pd

from experiments.registry import Experiment
from experiments.registry import Run
from scaling.config import get_dotted

# (column, dotted config key) of the planned configuration.
CONFIG_COLUMNS = (
    ("d_model", "model.d_model"), ("n_layers", "model.n_layers"),
    ("n_heads", "model.n_heads"), ("n_kv_heads", "model.n_kv_heads"),
    ("d_ff", "model.d_ff"), ("mlp", "model.mlp"),
    ("batch_size", "batch_size"), ("seq_len", "seq_len"),
    ("objective", "objective.name"), ("peak_lr", "optimizer.peak_lr"),
    ("b2", "optimizer.b2"), ("schedule", "schedule.name"),
    ("warmup_fraction", "schedule.warmup_fraction"),
    ("max_tokens", "data.max_tokens"), ("seed", "train.seed"),
)
CURVE_COLUMNS = ("run", "step", "tokens", "flops", "train_loss", "eval_loss")
# Columns that measure time (differ between otherwise identical runs).
WALL_CLOCK_COLUMNS = ("wall_seconds", "compile_seconds", "peak_flops_per_sec",
                      "peak_source")


def read_json(path) -> dict | None:
  """A JSON file's contents, or None if missing or unreadable."""
  path = epath.Path(path)
  try:
    return json.loads(path.read_text())
  except (FileNotFoundError, ValueError, OSError):
    return None


def run_status(run_dir) -> tuple[str, dict | None]:
  """(status, summary) of a run directory.

  Status is the summary's ``status`` when ``summary.json`` exists, else
  ``partial`` when the directory holds metrics or checkpoints, else
  ``pending``.
  """
  run_dir = epath.Path(run_dir)
  summary = read_json(run_dir / "summary.json")
  if summary is not None:
    return str(summary.get("status", "failed")), summary
  if (run_dir / "metrics.jsonl").exists() or (run_dir / "checkpoints").exists():
    return "partial", None
  return "pending", None


def _scalar(value: Any) -> Any:
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  return json.dumps(value, sort_keys=True)


def result_row(run: Run, name: str, status: str, summary: dict | None,
               branch_of: str | None = None) -> dict:
  """The results.csv row of one run (planned config + its summary).

  ``branch_of``: in an experiment with branches, the full name of this
  run's stable run ("" for a run that is not a branch); None otherwise (no
  branch columns).
  """
  row = dict(run=name, short_name=run.short_name, status=status,
             reason=(summary or {}).get("reason", "") or "",
             budget=run.budget)
  for key, value in run.tags.items():
    row[key] = _scalar(value)
  for column, dotted in CONFIG_COLUMNS:
    row[column] = _scalar(get_dotted(run.config, dotted))
  row["steps_planned"] = run.steps
  row["flops_planned"] = run.flops_endpoint
  if branch_of is not None:
    row["branch_of"] = branch_of
    row["branch_step"] = run.branch_step
    # The trainer's counter adds int(flops per step) per step.
    row["flops_at_branch"] = run.branch_step * int(run.flops_per_step)
  for key, value in (summary or {}).items():
    if key not in ("status", "reason"):
      row[key] = _scalar(value)
  return row


def curve_rows(name: str, run_dir) -> list[dict]:
  """One row per logged step of ``run_dir/metrics.jsonl`` (merged by step)."""
  path = epath.Path(run_dir) / "metrics.jsonl"
  if not path.exists():
    return []
  by_step: dict[int, dict] = {}
  for line in path.read_text().splitlines():
    if not line.strip():
      continue
    try:
      record = json.loads(line)
    except ValueError:
      continue  # a line cut short by a kill
    if "step" not in record:
      continue
    merged = by_step.setdefault(int(record["step"]), {})
    merged.update({k: v for k, v in record.items() if v is not None})
  rows = []
  for step in sorted(by_step):
    record = by_step[step]
    row = dict(run=name, step=step)
    for key in CURVE_COLUMNS[2:]:
      value = record.get(key)
      row[key] = math.nan if value is None else value
    row.update((k, v) for k, v in record.items() if k.startswith("task_"))
    rows.append(row)
  return rows


def write_csv_atomic(path, rows: Sequence[dict],
                     columns: Sequence[str] | None = None) -> None:
  """Writes rows as CSV through a temporary file and a rename.

  Columns are ``columns`` if given, else the union of the rows' keys in first
  seen order.
  """
  path = epath.Path(path)
  if columns is None:
    columns = []
    for row in rows:
      columns.extend(k for k in row if k not in columns)
  frame = pd.DataFrame(list(rows), columns=list(columns))
  tmp = path.parent / f".{path.name}.{os.getpid()}.tmp"
  tmp.write_text(frame.to_csv(index=False))
  tmp.replace(path)


def write_tables(experiment: Experiment, sweep_dir,
                 is_running: Callable[[str], bool]) -> list[dict]:
  """Writes ``results.csv`` and ``curves.csv`` for every run of the experiment.

  Args:
    experiment: the experiment (all its runs, not only a selection).
    sweep_dir: the sweep directory.
    is_running: whether a live worker holds a run's claim; a partial or
      pending run it holds is listed as ``running``.

  Returns:
    The results.csv rows.
  """
  sweep_dir = epath.Path(sweep_dir)
  rows, curves = [], []
  names = {run.short_name: run.name() for run in experiment.runs}
  branched = any(run.init_from for run in experiment.runs)
  for run in experiment.runs:
    name = names[run.short_name]
    status, summary = run_status(sweep_dir / name)
    if status in ("partial", "pending") and is_running(name):
      status = "running"
    branch_of = None
    if branched:
      branch_of = names[run.init_from[0]] if run.init_from else ""
    rows.append(result_row(run, name, status, summary, branch_of))
    curves.extend(curve_rows(name, sweep_dir / name))
  write_csv_atomic(sweep_dir / "results.csv", rows)
  tasks = sorted({k for row in curves for k in row} - set(CURVE_COLUMNS))
  write_csv_atomic(sweep_dir / "curves.csv", curves, [*CURVE_COLUMNS, *tasks])
  return rows


def _own_flops(row: dict) -> float:
  """A finished run's trained FLOPs (a branch's prefix left out)."""
  return _number(row, "flops") - _number(row, "flops_at_branch")


def _number(row: dict, key: str) -> float:
  try:
    value = float(row.get(key))
  except (TypeError, ValueError):
    return 0.0
  return value if math.isfinite(value) else 0.0


def flop_ledger(runs: Sequence[Run]) -> dict:
  """What the WSD branches of an experiment cost, and what they save.

  A stable run is one some branch starts from; a branch trains only its
  steps after its branch point (``Run.flops``), the prefix being the stable
  run's, so each prefix is counted once. Planned figures, exact ``flops``
  count:

  Returns:
    dict ``branches``, ``stable_runs`` (counts); ``flops_branching`` = the
    stable runs' FLOPs + the branches' own FLOPs; ``flops_if_independent`` =
    the branches' whole-run FLOPs (each trained from scratch);
    ``flops_saved`` = their difference and ``saving_fraction`` = saved /
    if-independent (None without branches); ``flops_total`` = every run's
    own FLOPs (what the whole experiment costs here).
  """
  sources = {r.init_from[0] for r in runs if r.init_from}
  branches = [r for r in runs if r.init_from]
  stable = [r for r in runs if r.short_name in sources]
  spent = sum(r.flops for r in stable) + sum(r.flops for r in branches)
  alone = sum(r.flops_endpoint for r in branches)
  return dict(branches=len(branches), stable_runs=len(stable),
              flops_branching=float(spent), flops_if_independent=float(alone),
              flops_saved=float(alone - spent),
              saving_fraction=(alone - spent) / alone if alone else None,
              flops_total=float(sum(r.flops for r in runs)))


def ledger_line(ledger: dict) -> str:
  """One line of :func:`flop_ledger` for the sweep report and dry runs."""
  return (f"FLOP ledger: {ledger['branches']} branches of "
          f"{ledger['stable_runs']} stable runs cost "
          f"{ledger['flops_branching']:.3g} FLOPs (each shared stable prefix "
          f"counted once) against {ledger['flops_if_independent']:.3g} if "
          f"every branch were trained from scratch: "
          f"{ledger['flops_saved']:.3g} saved "
          f"({100 * (ledger['saving_fraction'] or 0):.1f}%)")


def sweep_summary(rows: Sequence[dict], trained_here: Sequence[str],
                  sweep_wall_seconds: float, peak_flops_per_sec: float) -> dict:
  """Counts, compile share and throughput of a sweep, for sweep_summary.json.

  FLOPs are what training cost: a branch counts its own steps only
  (``flops - flops_at_branch``), its prefix being its stable run's.
  Throughput: ``flops_per_second_here`` = exact training FLOPs of the
  finished runs this command trained / its wall time (compile, eval,
  checkpoints, idle cores included; the analysis after it is not), and
  ``mfu_here`` = that over ``peak_flops_per_sec``, the machine's peak.
  """
  compile_total = sum(_number(r, "compile_seconds") for r in rows)
  wall_total = sum(_number(r, "wall_seconds") for r in rows)
  here = [r for r in rows if r["run"] in set(trained_here)
          and r["status"] == "finished"]
  flops_here = sum(_own_flops(r) for r in here)
  peak = peak_flops_per_sec
  rate = flops_here / sweep_wall_seconds if sweep_wall_seconds > 0 else None
  return dict(
      runs=len(rows), finished=sum(r["status"] == "finished" for r in rows),
      failed=sum(r["status"] == "failed" for r in rows),
      compile_seconds_all=compile_total, train_wall_seconds_all=wall_total,
      compile_fraction_all=compile_total / wall_total if wall_total else None,
      sweep_wall_seconds=sweep_wall_seconds,
      flops_all=sum(_own_flops(r) for r in rows
                    if r["status"] == "finished"),
      flops_here=flops_here, flops_per_second_here=rate,
      peak_flops_per_sec=peak or None,
      mfu_here=rate / peak if rate and peak else None)
