"""Real multi-process training on localhost (issue 6, Done-when 1 and 2).

A 2-process x 2-device run gives the same per-step losses, and the same
in-loop zero-shot task scores (``eval.tasks``), as a 1-process x 4-device
run, each process loading only its own rows; its checkpoint restores in a
1-process run on another mesh and continues with the same losses.
"""

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

TRAIN = ["train", "--config.batch_size=8", "--config.seq_len=64",
         "--config.model.d_model=32", "--config.model.n_layers=2",
         "--config.model.n_heads=4", "--config.model.n_kv_heads=2",
         "--config.model.d_ff=64", "--config.train.steps=8",
         "--config.train.log_every=1", "--config.eval.every=4",
         "--config.eval.batches=1", "--config.eval.batch_size=8",
         "--config.checkpoint.every=4", "--config.checkpoint.keep=3",
         "--config.schedule.warmup_steps=2",
         "--config.eval.tasks=stdlib_package,stdlib_docstring"]
TASK_KEYS = ("task_stdlib_package_gold_bpb", "task_stdlib_package_loss",
             "task_stdlib_docstring_gold_bpb")


def _launch(processes, devices, workdir, *extra):
  cmd = [sys.executable, "-m", "scaling.cli", "launch", "local", "--processes",
         str(processes), "--devices-per-process", str(devices), "--grace-seconds",
         "2", "--", *TRAIN, "--workdir", str(workdir), *extra]
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=400)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
  return proc.stdout + proc.stderr


def _losses(workdir, key="train_loss"):
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  return {r["step"]: r[key] for r in rows if r.get(key) is not None}


def _close(a, b):
  assert a.keys() == b.keys()
  for step in a:
    assert abs(a[step] - b[step]) <= 1e-5 * abs(b[step]), (step, a[step], b[step])


def test_two_processes_match_one_and_restore_on_another_mesh(tmp_path):
  out = _launch(2, 2, tmp_path / "two")
  assert "[p0] data: process 0 loads rows [0, 4) of each global batch of 8" in out
  assert "[p1] data: process 1 loads rows [4, 8) of each global batch of 8" in out
  _launch(1, 4, tmp_path / "one", "--config.mesh.data=2", "--config.mesh.fsdp=2")
  two, one = _losses(tmp_path / "two"), _losses(tmp_path / "one")
  assert sorted(two) == list(range(1, 9))
  _close(two, one)
  _close(_losses(tmp_path / "two", "eval_loss"), _losses(tmp_path / "one", "eval_loss"))
  for key in TASK_KEYS:  # the in-loop task evals, at steps 4 and 8
    assert sorted(_losses(tmp_path / "two", key)) == [4, 8], key
    _close(_losses(tmp_path / "two", key), _losses(tmp_path / "one", key))
  for key in ("task_stdlib_package_accuracy", "task_stdlib_package_macro_f1"):
    assert _losses(tmp_path / "two", key) == _losses(tmp_path / "one", key)

  # Restore the 2-process checkpoint at step 4 in one process on a 1-device mesh.
  resumed = tmp_path / "resumed"
  shutil.copytree(tmp_path / "two", resumed)
  shutil.rmtree(resumed / "checkpoints" / "8")
  (resumed / "summary.json").unlink()
  out = _launch(1, 1, resumed)
  assert "Resuming" in out and "from step 4" in out
  _close(_losses(resumed), two)
