"""A sweep's compute-optimal checkpoints fine-tuned on a task, inside the sweep.

T5 (Raffel et al. 2020, §3.3) compares pretraining objectives by the quality
of their fine-tuned models; this is that comparison at every compute budget
of a sweep. Once every run is finished (the runner's downstream stage,
``registry.register(downstream=...)``):

1. **Sources** (:func:`select`): per group (the ``objective``) and budget,
   the finished run with the least ``eval_loss``, the held-out loss of its
   own objective, which ranks runs of one objective (losses of different
   objectives are not comparable, DESIGN.md §4): the group's compute-optimal
   run of that budget (masked LM, which has no held-out loss, by its final
   training loss).
2. **Jobs** (:func:`plan`): each source's final checkpoint fine-tuned
   (``scaling.finetune``, parameters only) once per seed with one fixed
   recipe (``overrides``: the same steps, batch and learning rate for every
   source); and the **scratch baseline**: the same fine-tuning of a fresh
   init of each budget's model of ``scratch_group``, per seed (``train.seed``
   draws the fine-tuning order and, for scratch, the init).
3. **Run** (:func:`run`): each job is claimed (``claim(name)``), so sweep
   workers share the jobs; a finished job is read back, not retrained, and a
   failed one is recorded (``summary.json`` with ``status: failed``, the
   traceback in ``error.txt``) while the rest go on; delete its directory
   to run it again. Jobs live in ``SWEEP_DIR/downstream/<task>-<recipe
   hash>/<source run>_seed<s>`` (:func:`stage_dir`).
4. **Table** (:func:`collect`): one row per job with its source's compute,
   N, D and the test split's metrics (``test_accuracy``, ``test_gold_bpb``
   ...), for ``analysis.compare`` and ``analysis.downstream``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
import traceback
from typing import Callable, Sequence, TextIO

import pandas as pd

from experiments import tables
from scaling import finetune as finetune_lib
from scaling import metrics
from scaling import rundir

SCRATCH = "scratch"


@dataclasses.dataclass(frozen=True)
class Job:
  """One fine-tune of a sweep's downstream stage.

  Attributes:
    name: directory name under :func:`stage_dir`.
    group: the source's group (its objective), or ``"scratch"``.
    budget: the source's compute budget (exact ``flops``).
    source: the source run's name (``<short>-<hash>``).
    seed: ``train.seed`` of the fine-tune.
    scratch: True for a fresh init of the source's model.
  """

  name: str
  group: str
  budget: float
  source: str
  seed: int
  scratch: bool = False


def select(runs: pd.DataFrame, group_col: str = "objective",
           loss_col: str = "eval_loss", fallback_col: str = "train_loss"
           ) -> pd.DataFrame:
  """Per (group, budget), the finished run with the least ``loss_col``.

  A group with no ``loss_col`` at all (masked LM: ``scaling.evaluation``
  has no held-out view of its objective) is ranked by ``fallback_col``
  instead, its final training loss: at most one pass over the corpus at
  these budgets, so it estimates the held-out loss of its own objective.

  Args:
    runs: one row per run with columns ``run``, ``status``, ``budget``,
      ``group_col``, ``loss_col`` and optionally ``fallback_col``
      (``results.csv``).

  Returns:
    The chosen rows (index reset), ordered by group then budget, with
    ``selected_by`` naming the column that ranked them.
  """
  if "budget" not in runs or loss_col not in runs:
    return runs.iloc[:0]
  done = runs[(runs["status"] == "finished") & runs["budget"].notna()]
  chosen = []
  for _, part in done.groupby(group_col, sort=True):
    col = loss_col
    if part[loss_col].isna().all() and fallback_col in part:
      col = fallback_col
    part = part[part[col].notna()]
    if part.empty:
      continue
    best = part.loc[part.groupby("budget")[col].idxmin()]
    chosen.append(best.assign(selected_by=col))
  if not chosen:
    return done.iloc[:0]
  return pd.concat(chosen).sort_values([group_col, "budget"]).reset_index(
      drop=True)


def plan(selected: pd.DataFrame, seeds: Sequence[int], group_col: str =
         "objective", scratch_group: str | None = "causal_lm") -> list[Job]:
  """The fine-tunes of the selected sources and the scratch baseline."""
  jobs = []
  for _, row in selected.iterrows():
    source = str(row["run"])  # with its identity hash: a new source, a new job
    for seed in seeds:
      jobs.append(Job(f"{source}_seed{seed}", str(row[group_col]),
                      float(row["budget"]), source, int(seed)))
      if scratch_group is not None and row[group_col] == scratch_group:
        jobs.append(Job(f"{SCRATCH}_{source}_seed{seed}", SCRATCH,
                        float(row["budget"]), source, int(seed),
                        scratch=True))
  return jobs


def stage_dir(sweep_dir: str, task: str,
              overrides: Sequence[tuple[str, str]]) -> str:
  """``SWEEP_DIR/downstream/<task>-<recipe hash>``: another task or recipe
  (``overrides``) is another directory, never a silent reuse."""
  recipe = hashlib.sha256(json.dumps([task, [list(o) for o in overrides]])
                          .encode()).hexdigest()[:8]
  return os.path.join(os.fspath(sweep_dir), "downstream", f"{task}-{recipe}")


def job_dir(sweep_dir: str, task: str, overrides, job: Job) -> str:
  """A job's run directory, inside :func:`stage_dir`."""
  return os.path.join(stage_dir(sweep_dir, task, overrides), job.name)


def run(jobs: Sequence[Job], sweep_dir: str, task: str,
        overrides: Sequence[tuple[str, str]],
        claim: Callable[[str], object], out: TextIO) -> None:
  """Runs the jobs not yet done (module docstring, step 3); never raises for
  a job's own failure."""
  todo = [j for j in jobs
          if tables.read_json(os.path.join(job_dir(sweep_dir, task, overrides, j),
                                        "summary.json")) is None]
  print(f"downstream: {len(jobs)} fine-tunes on {task}, {len(jobs) - len(todo)}"
        " already done", file=out, flush=True)
  for i, job in enumerate(todo):
    lock = claim(f"downstream_{task}_{job.name}")
    if not lock.acquire():
      continue  # another worker has it
    try:
      path = job_dir(sweep_dir, task, overrides, job)
      if tables.read_json(os.path.join(path, "summary.json")) is not None:
        continue
      t0 = time.time()
      source_dir = os.path.join(os.fspath(sweep_dir), job.source)
      record = rundir.read_run_config(source_dir)
      config = finetune_lib.finetune_config(
          record["config"], [*overrides, ("train.seed", str(job.seed))])
      step = (tables.read_json(os.path.join(source_dir, "summary.json"))
              or {}).get("step")
      init_from = None if job.scratch else f"{source_dir}@{step}"
      try:
        summary = finetune_lib.finetune(config, path, task, init_from)
      except Exception as e:  # pylint: disable=broad-except
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "error.txt"), "w") as f:
          f.write(traceback.format_exc())
        summary = dict(status="failed", reason=f"{type(e).__name__}: {e}")
        metrics.write_json_atomic(os.path.join(path, "summary.json"), summary)
      score = summary.get("test_accuracy", summary.get("test_gold_bpb"))
      print(f"downstream [{i + 1}/{len(todo)}] {job.name}: {summary['status']}"
            + (f", test {score:.3f}" if isinstance(score, float) else "")
            + f" ({time.time() - t0:.0f} s)", file=out, flush=True)
    finally:
      lock.release()


def _task_sizes(path: str) -> dict:
  """The task's split sizes recorded in a fine-tune's ``config.json``."""
  record = tables.read_json(os.path.join(path, "config.json")) or {}
  return dict((record.get("task") or {}).get("sizes") or {})


def collect(sweep_dir: str, task: str, overrides: Sequence[tuple[str, str]],
            jobs: Sequence[Job], runs: pd.DataFrame) -> pd.DataFrame:
  """One row per job: the job, its source's compute and size, its status,
  every ``test_*`` metric of its ``summary.json`` (NaN when not run), the
  test split's size ``test_examples`` and the binomial sampling error of
  its accuracies (``test_accuracy_se``; ``test_gold_bpb_se`` is the
  fine-tune's own).

  Args:
    runs: ``results.csv`` (for the source's ``flops``, ``params_total``,
      ``tokens``, ``eval_loss``).
  """
  by_run = runs.set_index("run")
  rows = []
  for job in jobs:
    path = job_dir(sweep_dir, task, overrides, job)
    summary = tables.read_json(os.path.join(path, "summary.json")) or {}
    source = by_run.loc[job.source] if job.source in by_run.index else {}
    row = dict(dataclasses.asdict(job), task=task,
               status=summary.get("status", "missing"),
               source_flops=source.get("flops"),
               params=source.get("params_total"), tokens=source.get("tokens"),
               source_eval_loss=source.get("eval_loss"),
               wall_seconds=summary.get("wall_seconds"))
    row.update({k: v for k, v in summary.items()
                if k.startswith("test_") and isinstance(v, (int, float))})
    n_test = _task_sizes(path).get("test")
    row["test_examples"] = n_test
    for key in ("test_accuracy", "test_accuracy_norm"):
      if key in row and n_test:  # the split's binomial sampling error
        row[f"{key}_se"] = math.sqrt(row[key] * (1 - row[key]) / n_test)
    rows.append(row)
  return pd.DataFrame(rows)
