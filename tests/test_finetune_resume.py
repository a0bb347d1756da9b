"""`scaling finetune` killed with SIGKILL resumes to the uninterrupted metrics.

A real ``scaling finetune`` process is killed once its checkpoint at step 4
is final, the same command runs again, and its ``metrics.jsonl`` (each step
once, every field but the wall-clock ``tokens_per_sec`` and ``mfu``: losses,
learning rates, counters, epochs and the validation-split task metrics) and
its summary's test-split metrics equal an uninterrupted fine-tune's exactly.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from scaling import train as train_lib
from tests.conftest import REPO, tiny_config

WALL_CLOCK = ("tokens_per_sec", "mfu")
FLAGS = ["--task", "stdlib_package", "--config.train.steps=12",
         "--config.train.log_every=1", "--config.eval.every=4",
         "--config.checkpoint.every=4", "--config.checkpoint.keep=5",
         "--config.batch_size=8", "--config.eval.batch_size=16"]

pytestmark = pytest.mark.slow  # three fine-tuning processes, about a minute


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("source")
  c = tiny_config(seq_len=64, **{"eval.continuation": False})
  assert train_lib.train(c, workdir)["status"] == "finished"
  return workdir


def _cmd(source, workdir):
  return [sys.executable, "-m", "scaling.cli", "finetune", "--init-from",
          f"{source}@8", "--workdir", str(workdir), *FLAGS]


def _env(sleep=0.0):
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="")
  env["SCALING_TEST_STEP_SLEEP"] = str(sleep)
  return env


def _run(source, workdir):
  proc = subprocess.run(_cmd(source, workdir), capture_output=True, text=True,
                        timeout=300, env=_env(), cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def _records(workdir):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK}
          for line in lines]


def _test_metrics(workdir):
  summary = json.loads((workdir / "summary.json").read_text())
  return {k: v for k, v in summary.items() if k.startswith(("test_", "val_"))}


def test_sigkill_then_resume_matches_uninterrupted(source, tmp_path):
  reference = tmp_path / "uninterrupted"
  _run(source, reference)
  killed = tmp_path / "killed"
  proc = subprocess.Popen(_cmd(source, killed), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          env=_env(sleep=0.4), cwd=REPO)
  marker = killed / "checkpoints" / "4" / "commit_success.txt"
  deadline = time.time() + 240
  while not marker.exists():
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    assert time.time() < deadline, "checkpoint 4 never appeared"
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.communicate(timeout=120)
  assert proc.returncode == -signal.SIGKILL
  assert not (killed / "summary.json").exists()
  assert _records(killed)[-1]["step"] < 12
  out = _run(source, killed).stdout
  assert "Resuming" in out and "Initialised" not in out
  got, want = _records(killed), _records(reference)
  assert [r["step"] for r in got] == list(range(1, 13))  # each step once
  assert got == want
  assert any("val_accuracy" in r for r in got)
  assert _test_metrics(killed) == _test_metrics(reference)
  assert "test_accuracy" in _test_metrics(reference)
