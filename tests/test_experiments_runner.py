"""The sweep runner on the registered ``tiny`` experiment (real training).

A module-scoped, uninterrupted in-process sweep is the reference; the other
tests interrupt, share, break or rerun sweeps and compare with it.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from experiments import generators
from experiments import registry
from experiments import runner
from experiments import tables
from experiments.families import tiny
from scaling import claims
from scaling import config as config_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("jax_cache"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
  workdir = tmp_path_factory.mktemp("reference")
  result = runner.run_sweep("tiny", str(workdir), cache_dir=cache_dir,
                            progress=False, out=io.StringIO())
  return workdir, result


def _sweep_subprocess(workdir, cache_dir, *extra):
  code = ("import sys; from experiments import cli; "
          "sys.exit(cli.main_sweep(sys.argv[1:]))")
  env = dict(os.environ,
             PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
  return subprocess.Popen(
      [sys.executable, "-c", code, "tiny", "--workdir", str(workdir),
       "--cache-dir", cache_dir, "--no-progress", *extra],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
  drop = [c for c in tables.WALL_CLOCK_COLUMNS if c in frame.columns]
  return frame.drop(columns=drop).sort_values("run").reset_index(drop=True)


def _assert_same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
  """Exactly equal but for wall-clock columns: the same run on the same mesh
  and CPUs is bitwise reproducible across processes, resumes and compilation
  caches (tests/test_reproducibility.py)."""
  pd.testing.assert_frame_equal(_comparable(a), _comparable(b),
                                check_exact=True)


def _events(sweep_dir, kind):
  counts = {}
  for event in runner.read_log(sweep_dir):
    if event["event"] == kind:
      counts[event["run"]] = counts.get(event["run"], 0) + 1
  return counts


def test_sweep_writes_results_and_curves(reference):
  workdir, result = reference
  sweep_dir = workdir / "tiny"
  experiment = registry.lookup("tiny")
  names = [r.name() for r in experiment.runs]
  assert result.trained == names and not result.failed and not result.unfinished
  results = pd.read_csv(sweep_dir / "results.csv")
  assert list(results["run"]) == names
  assert list(results.columns[:5]) == ["run", "short_name", "status", "reason",
                                       "budget"]
  assert set(results["status"]) == {"finished"}
  for _, row in results.iterrows():
    assert row["step"] == row["steps_planned"] == 12
    assert row["flops"] == pytest.approx(row["flops_planned"], rel=1e-12)
    assert row["identity"] == row["run"].rsplit("-", 1)[1]
  curves = pd.read_csv(sweep_dir / "curves.csv")
  assert list(curves.columns) == ["run", "step", "tokens", "flops",
                                  "train_loss", "eval_loss"]
  last = curves[curves["step"] == 12].set_index("run")
  for _, row in results.iterrows():
    assert last.loc[row["run"], "eval_loss"] == pytest.approx(row["eval_loss"])
    assert last.loc[row["run"], "flops"] == row["flops"]
  assert curves.groupby("run")["step"].apply(lambda s: s.is_unique).all()
  summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
  assert summary["finished"] == 3
  assert 0 < summary["compile_fraction_all"] < 1


def test_rerun_trains_nothing_and_keeps_rows(reference, cache_dir):
  workdir, _ = reference
  sweep_dir = workdir / "tiny"
  before = pd.read_csv(sweep_dir / "results.csv")
  result = runner.run_sweep("tiny", str(workdir), cache_dir=cache_dir,
                            progress=False, analyze=False, out=io.StringIO())
  assert result.trained == [] and len(result.skipped) == 3
  pd.testing.assert_frame_equal(  # same process, same files: exact
      _comparable(before), _comparable(pd.read_csv(sweep_dir / "results.csv")))


def test_same_shape_lr_runs_compile_once(tmp_path, cache_dir):
  """Done-when 6: the second run of a shape compiles nothing (cache hits)."""
  base = tiny.base_config()
  base.train.steps = 4
  shape = generators.Shape(d_model=40, n_layers=1, n_heads=2, d_ff=80)  # unique here
  runs = generators.lr_sweep(base, [shape], [1.0, 2.0],
                             generators.HParamRule(0.05, 0.3))
  experiment = registry.Experiment("lr_pair", "", "", base, runs)
  result = runner.run_sweep(experiment, str(tmp_path), cache_dir=cache_dir,
                            progress=False, analyze=False, out=io.StringIO())
  assert len(result.trained) == 2 and not result.failed
  finish = [e for e in runner.read_log(tmp_path / "lr_pair")
            if e["event"] == "finish"]
  assert finish[0]["xla_compiles"] > 0
  assert finish[1]["xla_compiles"] == 0 and finish[1]["cache_hits"] > 0


def test_failures_are_recorded_and_the_sweep_goes_on(tmp_path, cache_dir):
  """Done-when 5: a learning rate that makes the loss NaN, and an exception
  inside train()."""
  base = tiny.base_config()
  base.train.steps = 4
  good = registry.Run("good", base)
  nan = registry.Run("nan_lr", config_lib.with_overrides(
      base, {"optimizer.peak_lr": 1e30, "optimizer.grad_clip": 0.0}))
  broken = registry.Run("taken_dir", config_lib.with_overrides(
      base, {"train.seed": 7}))
  run_dir = tmp_path / "failing" / broken.name()
  run_dir.mkdir(parents=True)  # a directory of another run: train() raises
  (run_dir / "config.json").write_text(json.dumps({"identity": "0123456789ab"}))
  experiment = registry.Experiment("failing", "", "", base, [nan, broken, good])
  result = runner.run_sweep(experiment, str(tmp_path), cache_dir=cache_dir,
                            progress=False, out=io.StringIO())
  assert result.unfinished == []
  results = pd.read_csv(tmp_path / "failing" / "results.csv").set_index("short_name")
  assert results.loc["good", "status"] == "finished"
  assert results.loc["nan_lr", "status"] == "failed"
  assert "nan" in results.loc["nan_lr", "reason"].lower()
  assert results.loc["taken_dir", "status"] == "failed"
  assert results.loc["taken_dir", "reason"].startswith("IdentityMismatch")
  assert "Traceback" in (run_dir / "error.txt").read_text()
  assert len(result.failed) == 2
  # The analysis ran on the rest, or its failure was recorded; never raised.
  assert result.analysis is not None or result.analysis_error
  # A rerun does not retry recorded failures unless asked.
  again = runner.run_sweep(experiment, str(tmp_path), cache_dir=cache_dir,
                           progress=False, analyze=False, out=io.StringIO())
  assert again.trained == []
  retried = runner.run_sweep(experiment, str(tmp_path), cache_dir=cache_dir,
                             retry_failed=True, progress=False, analyze=False,
                             out=io.StringIO())
  assert sorted(retried.trained) == sorted(result.failed) == sorted(retried.failed)


@pytest.mark.slow
def test_sigkill_then_rerun_gives_the_same_rows(tmp_path, reference, cache_dir):
  """Done-when 2: no finished run is trained twice; rows as uninterrupted."""
  ref_dir, _ = reference
  sweep_dir = tmp_path / "tiny"
  names = [r.name() for r in registry.lookup("tiny").runs]
  proc = _sweep_subprocess(tmp_path, cache_dir)
  deadline = time.time() + 240
  while time.time() < deadline and proc.poll() is None:
    if (sweep_dir / names[1] / "checkpoints").exists() or (
        sweep_dir / names[1] / "summary.json").exists():
      break
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  finished_before = {n: (sweep_dir / n / "summary.json").read_bytes()
                     for n in names if (sweep_dir / n / "summary.json").exists()}
  assert names[0] in finished_before and len(finished_before) < 3
  result = runner.run_sweep("tiny", str(tmp_path), cache_dir=cache_dir,
                            progress=False, analyze=False, out=io.StringIO())
  assert set(result.skipped) == set(finished_before)
  for name, text in finished_before.items():  # untouched
    assert (sweep_dir / name / "summary.json").read_bytes() == text
  assert _events(sweep_dir, "finish") == {n: 1 for n in names}
  _assert_same_rows(pd.read_csv(ref_dir / "tiny" / "results.csv"),
                    pd.read_csv(sweep_dir / "results.csv"))


@pytest.mark.slow
def test_two_workers_run_each_run_once(tmp_path, reference, cache_dir):
  workers = [_sweep_subprocess(tmp_path, cache_dir, "--no-analysis")
             for _ in range(2)]
  outputs = [w.communicate(timeout=300)[0].decode() for w in workers]
  assert [w.returncode for w in workers] == [0, 0], outputs
  sweep_dir = tmp_path / "tiny"
  names = [r.name() for r in registry.lookup("tiny").runs]
  assert _events(sweep_dir, "claim") == {n: 1 for n in names}
  assert _events(sweep_dir, "finish") == {n: 1 for n in names}
  results = pd.read_csv(sweep_dir / "results.csv")
  assert set(results["status"]) == {"finished"}
  ref_dir, _ = reference
  _assert_same_rows(pd.read_csv(ref_dir / "tiny" / "results.csv"), results)


# ------------------------------------------------------------------ locks


def test_lock_is_exclusive_and_released(tmp_path):
  path = str(tmp_path / "locks" / "run.lock")
  a, b = claims.Claim(path), claims.Claim(path)
  assert a.acquire()
  assert not b.acquire()
  assert b.owner()["pid"] == os.getpid()
  a.release()
  assert not os.path.exists(path)
  assert b.acquire()
  b.release()


def test_dead_owner_and_silent_owner_do_not_hold_forever(tmp_path):
  path = str(tmp_path / "run.lock")
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  holder = claims.Claim(path)
  with open(path, "w", encoding="utf-8") as f:
    json.dump(dict(token="old", pid=dead.pid, host=holder.host, since=0), f)
  assert holder.acquire()  # same host, pid gone: stale at once
  assert holder.broke["token"] == "old"
  holder.release()
  # A live owner elsewhere that stopped beating: stale after stale_seconds.
  with open(path, "w", encoding="utf-8") as f:
    json.dump(dict(token="far", pid=1, host="another-host", since=0), f)
  fresh = claims.Claim(path, stale_seconds=60, heartbeat_seconds=1)
  assert not fresh.acquire()
  os.utime(path, (time.time() - 61, time.time() - 61))
  assert fresh.acquire() and fresh.broke["token"] == "far"
  fresh.release()


def test_heartbeat_keeps_the_lock_fresh(tmp_path):
  path = str(tmp_path / "run.lock")
  lock = claims.Claim(path, stale_seconds=1.0, heartbeat_seconds=0.05)
  assert lock.acquire()
  os.utime(path, (time.time() - 100, time.time() - 100))
  time.sleep(0.3)
  assert time.time() - os.stat(path).st_mtime < 1.0
  other = claims.Claim(path, stale_seconds=1.0, heartbeat_seconds=0.05)
  assert not other.acquire()
  lock.release()
  assert os.listdir(tmp_path) == []
