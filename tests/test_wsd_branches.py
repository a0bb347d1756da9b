"""WSD decay branches end to end (the registered ``tiny_branches``).

The sweep trains the stable run first; a branch started from its checkpoint
(``init_from``) writes the same ``metrics.jsonl``, in every field but the
wall-clock ones, as the same WSD run trained from scratch; the FLOP ledger
counts the shared prefix once; branches that would not be that run are
refused before anything trains.
"""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from experiments import plan as plan_lib
from experiments import registry
from experiments import runner
from experiments.families import tiny_branches
from scaling import config as config_lib
from scaling import metrics
from scaling import train as train_lib

WALL_CLOCK = ("tokens_per_sec", "mfu")
STABLE, SHORT, LONG = "L1_d32_stable", "L1_d32_D1.28e3", "L1_d32_D1.92e3"
SCRATCH = LONG + "_scratch"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("branches")
  out = io.StringIO()
  result = runner.run_sweep("tiny_branches", str(workdir),
                            cache_dir=str(workdir / ".jax_cache"),
                            progress=False, analyze=False, out=out)
  experiment = registry.lookup("tiny_branches")
  names = {r.short_name: r.name() for r in experiment.runs}
  return workdir / "tiny_branches", result, out.getvalue(), names


def _records(run_dir):
  return [{k: v for k, v in r.items() if k not in WALL_CLOCK}
          for r in metrics.read_jsonl(run_dir / "metrics.jsonl")]


@pytest.mark.slow  # the module's sweep: about 40 s
def test_the_stable_run_trains_first_and_keeps_its_branch_points(swept):
  sweep_dir, result, _, names = swept
  assert not result.failed and not result.unfinished
  claims = [e["run"] for e in runner.read_log(sweep_dir) if e["event"] == "claim"]
  assert claims[0] == names[STABLE]
  kept = sorted(int(p.name) for p in (sweep_dir / names[STABLE] / "checkpoints"
                                      ).iterdir() if p.name.isdigit())
  assert kept == [6, 9]  # step 3 went (keep = 1); branch points stay


@pytest.mark.slow  # the module's sweep: about 40 s
def test_a_branch_equals_the_same_run_trained_from_scratch(swept):
  sweep_dir, _, _, names = swept
  branch = _records(sweep_dir / names[LONG])
  scratch = _records(sweep_dir / names[SCRATCH])
  assert [r["step"] for r in branch] == list(range(1, 16))
  assert branch == scratch  # every field but tokens_per_sec and mfu
  assert names[LONG].split("-")[1] == names[SCRATCH].split("-")[1]  # identity
  # Its history is the stable run's, up to the branch point.
  stable = _records(sweep_dir / names[STABLE])
  assert branch[:9] == stable[:9]
  short = _records(sweep_dir / names[SHORT])
  assert short[:6] == stable[:6] and len(short) == 10
  assert short[6]["lr"] < stable[6]["lr"]  # the short branch decays from 7
  rows = pd.read_csv(sweep_dir / "results.csv").set_index("short_name")
  for col in ("eval_loss", "train_loss", "tokens", "flops", "step"):
    assert rows.loc[LONG, col] == rows.loc[SCRATCH, col], col


@pytest.mark.slow  # the module's sweep: about 40 s
def test_negative_control_a_stable_run_with_another_warmup(swept, tmp_path):
  # The deliberately broken variant: the stable prefix warms up for 3 steps
  # instead of 2, so the branch from it is not the run from scratch.
  sweep_dir, _, _, names = swept
  _, runs = tiny_branches.build_runs()
  by_name = {r.short_name: r for r in runs}
  bad = config_lib.with_overrides(by_name[STABLE].config,
                                  {"schedule.warmup_steps": 3})
  train_lib.train(bad, tmp_path / "bad_stable")
  train_lib.train(by_name[LONG].config, tmp_path / "branch",
                  init_from=f"{tmp_path / 'bad_stable'}@9")
  branch = _records(tmp_path / "branch")
  scratch = _records(sweep_dir / names[SCRATCH])
  assert [r["step"] for r in branch] == [r["step"] for r in scratch]
  assert branch[0]["lr"] != scratch[0]["lr"]
  assert branch[-1]["eval_loss"] != scratch[-1]["eval_loss"]
  # ...and an experiment pairing them is refused before anything trains.
  stable = registry.Run(STABLE, bad)
  with pytest.raises(ValueError, match="learning rate at update 0"):
    registry.Experiment("x", "", "", bad, [stable, by_name[LONG]]).check()


@pytest.mark.slow  # the module's sweep: about 40 s
def test_the_ledger_counts_the_shared_prefix_once(swept):
  sweep_dir, _, out, names = swept
  assert ("FLOP ledger: 2 branches of 1 stable runs cost" in out
          and "saved (24.0%)" in out)
  summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
  ledger = summary["flop_ledger"]
  per_step = registry.lookup("tiny_branches").runs[0].flops_per_step
  # Stable 9 steps + branches 4 and 6 steps, against 10 + 15 from scratch.
  assert ledger["flops_branching"] == pytest.approx(19 * per_step)
  assert ledger["flops_if_independent"] == pytest.approx(25 * per_step)
  assert ledger["saving_fraction"] == pytest.approx(6 / 25)
  # What was trained: 9 + 4 + 6 + 15 steps (the scratch run in full).
  assert summary["flops_all"] == 34 * int(per_step)
  rows = pd.read_csv(sweep_dir / "results.csv").set_index("short_name")
  assert rows.loc[LONG, "branch_of"] == names[STABLE]
  assert rows.loc[LONG, "branch_step"] == 9
  assert rows.loc[LONG, "flops_at_branch"] == 9 * int(per_step)
  assert pd.isna(rows.loc[SCRATCH, "branch_of"])
  assert rows.loc[LONG, "flops_planned"] == rows.loc[LONG, "flops"]


def test_selecting_a_branch_selects_its_stable_run():
  experiment = registry.lookup("tiny_branches")
  picked = plan_lib.select(experiment, "D1.28e3$")
  assert [r.short_name for r in picked] == [STABLE, SHORT]


def _experiment(runs):
  return registry.Experiment("x", "", "", runs[0].config, runs)


@pytest.mark.parametrize("change, match", [
    (lambda r: r[0].config.checkpoint.update(dict(at_steps=(9,))),
     "keeps no checkpoint at step 6"),
    (lambda r: r[1].config.model.update(dict(d_ff=128)),
     "config.model.d_ff differs"),
    (lambda r: r[1].config.train.update(dict(log_every=2)),
     "train.log_every"),
    (lambda r: r.insert(0, r.pop(1)), "not a run listed before it"),
])
def test_broken_branches_are_refused(change, match):
  _, runs = tiny_branches.build_runs()
  _experiment(runs).check()  # the family itself is fine
  change(runs)
  with pytest.raises(ValueError, match=match):
    _experiment(runs).check()


def test_a_branch_of_a_failed_stable_run_fails_with_it(tmp_path):
  experiment = registry.lookup("tiny_branches")
  names = {r.short_name: r.name() for r in experiment.runs}
  taken = tmp_path / "tiny_branches" / names[STABLE]
  taken.mkdir(parents=True)  # a directory of another run: train() raises
  (taken / "config.json").write_text(json.dumps({"identity": "0123456789ab"}))
  result = runner.run_sweep(experiment, str(tmp_path), only="D1.28e3$|D1.92e3$",
                            progress=False, analyze=False, out=io.StringIO())
  assert sorted(result.failed) == sorted(names[n] for n in (STABLE, SHORT, LONG))
  summary = json.loads((tmp_path / "tiny_branches" / names[SHORT] /
                        "summary.json").read_text())
  assert summary["failure"] == "run"
  assert summary["reason"].startswith(f"its stable run {names[STABLE]} failed")
