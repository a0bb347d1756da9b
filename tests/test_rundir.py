"""The run directory: exclusive claims, refused sources and paths, the MFU peak.

Real ``scaling train`` processes: two commands on one workdir (the second
exits 2 naming the holder and changes nothing), a SIGKILLed holder's claim
goes stale at once, an ``--init-from`` checkpoint of another shape and a
workdir under a file are one ``error:`` line each, and a peak figure planted
5x too low in the cache does not survive the next run's own measurement.
"""

import json
import os
import signal
import subprocess
import sys
import time

import jax
import pytest

from scaling import peak
from tests.conftest import REPO

ARGS = ["--config.batch_size=8", "--config.seq_len=32",
        "--config.model.d_model=32", "--config.model.n_layers=1",
        "--config.model.n_heads=2", "--config.model.n_kv_heads=2",
        "--config.model.d_ff=64", "--config.train.steps=8",
        "--config.train.log_every=1", "--config.eval.every=4",
        "--config.eval.batches=1", "--config.eval.batch_size=8",
        "--config.checkpoint.every=4", "--config.schedule.warmup_steps=2"]
WALL_CLOCK = ("tokens_per_sec", "mfu")


def _cmd(workdir, *extra):
  return [sys.executable, "-m", "scaling.cli", "train", "--workdir",
          str(workdir), *ARGS, *extra]


def _env(sleep=0.0, **extra):
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="",
             SCALING_TEST_STEP_SLEEP=str(sleep))
  env.update(extra)
  return env


def _run(workdir, *extra, env=None):
  return subprocess.run(_cmd(workdir, *extra), capture_output=True, text=True,
                        timeout=300, env=env or _env(), cwd=REPO)


def _metrics(workdir):
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  return [{k: v for k, v in r.items() if k not in WALL_CLOCK} for r in rows]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
  proc = _run(workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return workdir


def _start_slow(workdir, sleep=0.5):
  proc = subprocess.Popen(_cmd(workdir), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          env=_env(sleep=sleep), cwd=REPO)
  deadline = time.time() + 240
  while not (workdir / "metrics.jsonl").exists():
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    assert time.time() < deadline, "the first run never started training"
    time.sleep(0.05)
  return proc


@pytest.mark.slow
def test_a_second_command_on_a_live_workdir_exits_2_naming_the_holder(
    tmp_path, uninterrupted):
  workdir = tmp_path / "run"
  # 2 s per step: the first run still holds the workdir 16 s later, however
  # long the second command takes to start on a loaded machine.
  first = _start_slow(workdir, sleep=2.0)
  t0 = time.time()
  second = _run(workdir)
  assert time.time() - t0 < 10 + 5  # 10 s, plus the interpreter's start
  assert second.returncode == 2, second.stdout + second.stderr
  error = second.stderr.strip().splitlines()
  assert len(error) == 1 and error[0].startswith("error: --workdir: ")
  assert f"pid {first.pid}" in error[0] and os.uname().nodename in error[0]
  out, _ = first.communicate(timeout=300)
  assert first.returncode == 0, out[-3000:]
  assert _metrics(workdir) == _metrics(uninterrupted)
  assert not (workdir / ".claim").exists()  # released at the end


@pytest.mark.slow
def test_a_killed_holders_claim_is_stale_and_the_run_resumes(tmp_path,
                                                            uninterrupted):
  workdir = tmp_path / "run"
  first = _start_slow(workdir)
  while not (workdir / "checkpoints" / "4" / "commit_success.txt").exists():
    assert first.poll() is None
    time.sleep(0.05)
  first.send_signal(signal.SIGKILL)
  first.wait(timeout=60)
  assert (workdir / ".claim").exists()  # left behind by the dead holder
  proc = _run(workdir)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "Resuming" in proc.stdout and "from step 4" in proc.stdout
  assert _metrics(workdir) == _metrics(uninterrupted)


def test_init_from_a_checkpoint_of_another_shape_is_one_error_line(
    tmp_path, uninterrupted):
  proc = _run(tmp_path / "wide", "--config.model.d_model=64",
              f"--init-from={uninterrupted}@4")
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1, proc.stderr
  assert lines[0].startswith("error: --init-from: ")
  assert "blocks/attn/k" in lines[0] and "(1, 32, 2, 16)" in lines[0]
  assert not (tmp_path / "wide").exists()


@pytest.mark.parametrize("where", ["under_file", "file"])
def test_bad_workdir_paths_are_one_error_line(tmp_path, where):
  (tmp_path / "afile").write_text("x")
  workdir = tmp_path / "afile" / "run" if where == "under_file" else tmp_path / "afile"
  proc = _run(workdir)
  assert proc.returncode == 2
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: --workdir: "), proc.stderr
  assert "Traceback" not in proc.stderr


def test_a_peak_planted_too_low_is_replaced_by_the_runs_own_measurement(
    tmp_path, monkeypatch):
  cache = tmp_path / "cache"
  monkeypatch.setattr(peak, "_MEASURED", {})
  # The key this machine's runs use: 1 CPU device, float32 (as the run below).
  rate, _ = peak.peak_flops(jax.local_devices(backend="cpu")[:1], "float32",
                            cache_dir=cache / "scaling")
  path = cache / "scaling" / "peak_flops.json"
  table = json.loads(path.read_text())
  (key,) = table
  planted = rate / 5
  table[key].update(flops_per_sec=planted, measured_at=time.time() - 3 * 86400)
  path.write_text(json.dumps(table))
  proc = _run(tmp_path / "run", env=_env(XDG_CACHE_HOME=str(cache)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  summary = json.loads((tmp_path / "run" / "summary.json").read_text())
  assert summary["peak_flops_per_sec"] >= 2 * planted
  line = next(l for l in proc.stdout.splitlines() if l.startswith("mfu is measured"))
  assert "measured 0 s ago" in line or "measured 1 s ago" in line, line
  # Had the figure been the best seen, its age would be named.
  table[key].update(flops_per_sec=rate * 100, measured_at=time.time() - 3 * 86400)
  path.write_text(json.dumps(table))
  proc = _run(tmp_path / "again", env=_env(XDG_CACHE_HOME=str(cache)))
  line = next(l for l in proc.stdout.splitlines() if l.startswith("mfu is measured"))
  assert "measured 3 days ago" in line, line
