"""experiments.downstream: the sweep stage that fine-tunes compute-optimal
checkpoints (real pretraining, real fine-tunes, through the sweep runner)."""

from __future__ import annotations

import io
import json
import pathlib

import pandas as pd
import pytest

from experiments import downstream
from experiments import registry
from experiments import runner
from scaling import config as config_lib


def _results() -> pd.DataFrame:
  rows = [("causal_lm_C1_a-h1", "causal_lm", 1e11, "finished", 2.0),
          ("causal_lm_C1_b-h2", "causal_lm", 1e11, "finished", 1.9),
          ("causal_lm_C1_c-h3", "causal_lm", 1e11, "failed", 0.1),
          ("causal_lm_C3_a-h4", "causal_lm", 3e11, "finished", 1.8),
          ("masked_lm_C1_a-h5", "masked_lm", 1e11, "finished", None),
          ("masked_lm_C1_b-h6", "masked_lm", 1e11, "finished", None)]
  frame = pd.DataFrame(rows, columns=["run", "objective", "budget", "status",
                                      "eval_loss"])
  # train losses rank the other way round: only masked LM may use them
  return frame.assign(train_loss=[1.0, 3.0, 0.0, 1.0, 2.6, 2.5])


def test_select_picks_each_objectives_least_own_loss_per_budget():
  chosen = downstream.select(_results())
  # the failed run never; masked LM (no held-out loss) by its train loss
  assert list(chosen["run"]) == ["causal_lm_C1_b-h2", "causal_lm_C3_a-h4",
                                 "masked_lm_C1_b-h6"]
  assert list(chosen["selected_by"]) == ["eval_loss"] * 2 + ["train_loss"]
  assert downstream.select(_results().drop(columns="eval_loss")).empty
  assert list(downstream.select(_results().drop(columns="train_loss"))[
      "run"]) == ["causal_lm_C1_b-h2", "causal_lm_C3_a-h4"]


def test_plan_fine_tunes_every_source_per_seed_and_a_scratch_per_budget():
  jobs = downstream.plan(downstream.select(_results()), seeds=(0, 1))
  names = [j.name for j in jobs]
  assert len(names) == len(set(names)) == 3 * 2 + 2 * 2
  scratch = [j for j in jobs if j.scratch]
  assert {(j.group, j.source, j.seed) for j in scratch} == {
      ("scratch", s, k) for s in ("causal_lm_C1_b-h2", "causal_lm_C3_a-h4")
      for k in (0, 1)}
  assert {j.group for j in jobs} == {"causal_lm", "masked_lm", "scratch"}


OVERRIDES = (("train.steps", "4"), ("eval.every", "4"),
             ("checkpoint.every", "4"), ("checkpoint.async_save", "False"),
             ("batch_size", "4"), ("eval.batch_size", "8"))


def _experiment(seen: list) -> registry.Experiment:
  base = config_lib.default_config()
  for key, value in {"batch_size": 4, "seq_len": 64, "model.d_model": 16,
                     "model.n_layers": 2, "model.n_heads": 2,
                     "model.n_kv_heads": 2, "model.d_ff": 32,
                     "model.scan_layers": False, "train.steps": 8,
                     "train.log_every": 4, "schedule.warmup_steps": 2,
                     "checkpoint.every": 8, "checkpoint.async_save": False,
                     "eval.every": 8, "eval.batches": 1,
                     "eval.batch_size": 4}.items():
    config_lib.set_dotted(base, key, value)
  runs = [registry.Run(f"{name}_C1", config_lib.with_overrides(
      base, {"objective.name": name}), budget=1.0)
          for name in ("causal_lm", "masked_lm")]

  def stage(experiment, sweep_dir, claim, out):
    seen.append(sweep_dir)
    rows = [dict(run=r.name(), objective=r.config.objective.name,
                 budget=r.budget, status="finished", eval_loss=1.0)
            for r in experiment.runs]
    downstream.run(downstream.plan(pd.DataFrame(rows), (0,)), sweep_dir,
                   "stdlib_package", OVERRIDES, claim, out)

  return registry.Experiment("ds", "test", "", base, runs, downstream=stage)


@pytest.mark.slow
def test_the_sweep_fine_tunes_after_training_and_resumes(tmp_path):
  seen = []
  experiment = _experiment(seen)
  overrides = OVERRIDES
  out = io.StringIO()
  runner.run_sweep(experiment, str(tmp_path), progress=False, analyze=False,
                   out=out)
  sweep_dir = tmp_path / "ds"
  assert seen == [str(sweep_dir)]
  results = pd.read_csv(sweep_dir / "results.csv")
  jobs = downstream.plan(downstream.select(results.assign(eval_loss=1.0)), (0,))
  table = downstream.collect(str(sweep_dir), "stdlib_package", overrides,
                             jobs, results)
  assert list(table["status"]) == ["finished"] * 3
  assert set(table["group"]) == {"causal_lm", "masked_lm", "scratch"}
  assert table["test_accuracy"].between(0, 1).all()
  assert (table["test_gold_bpb"] > 0).all()
  # each fine-tune started from its source's final checkpoint (or none)
  for job in jobs:
    record = json.loads(pathlib.Path(downstream.job_dir(
        str(sweep_dir), "stdlib_package", overrides, job), "config.json")
                        .read_text())
    assert (record["source"] is None) == job.scratch
    if not job.scratch:
      assert record["source"]["step"] == 8
      assert record["source"]["run_dir"].endswith(job.source)
  assert "downstream: 3 fine-tunes on stdlib_package, 0 already done" in (
      out.getvalue())
  # a second sweep call trains nothing and fine-tunes nothing
  out = io.StringIO()
  runner.run_sweep(experiment, str(tmp_path), progress=False, analyze=False,
                   out=out)
  assert "3 already done" in out.getvalue()
  again = downstream.collect(str(sweep_dir), "stdlib_package", overrides,
                             jobs, results)
  pd.testing.assert_frame_equal(table, again)
