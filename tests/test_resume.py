"""Preemption and resume with real processes and real orbax checkpoints.

A run killed with SIGKILL after its checkpoint at step k, or stopped with
SIGTERM, continues from its checkpoint when the same command runs again, and
its metrics.jsonl (each step once) equals an uninterrupted run's. Finalised
checkpoints with a truncated array file or without their commit marker are
moved aside and the previous step is used.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO

KEYS = ("train_loss", "eval_loss", "grad_norm", "lr", "tokens", "flops")
ARGS = ["--config.batch_size=8", "--config.seq_len=32",
        "--config.model.d_model=32", "--config.model.n_layers=2",
        "--config.model.n_heads=4", "--config.model.n_kv_heads=2",
        "--config.model.d_ff=64", "--config.train.steps=12",
        "--config.train.log_every=1", "--config.eval.every=4",
        "--config.eval.batches=2", "--config.eval.batch_size=8",
        "--config.checkpoint.every=4", "--config.checkpoint.keep=5",
        "--config.schedule.warmup_steps=2"]


def _cmd(workdir):
  return [sys.executable, "-m", "scaling.cli", "train", "--workdir",
          str(workdir), *ARGS]


def _env(sleep=0.0):
  env = dict(os.environ, PYTHONPATH=REPO, XLA_FLAGS="")
  env["SCALING_TEST_STEP_SLEEP"] = str(sleep)
  return env


def _run(workdir):
  proc = subprocess.run(_cmd(workdir), capture_output=True, text=True,
                        timeout=300, env=_env(), cwd=REPO)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc


def _metrics(workdir):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [json.loads(line) for line in lines]


def _committed(workdir, step):
  return (workdir / "checkpoints" / str(step) / "commit_success.txt").exists()


def _start_and_stop_after(workdir, step, sig):
  """Starts a slowed run and sends ``sig`` once checkpoint ``step`` is final."""
  proc = subprocess.Popen(_cmd(workdir), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True,
                          env=_env(sleep=0.4), cwd=REPO)
  deadline = time.time() + 240
  while not _committed(workdir, step):
    assert proc.poll() is None, proc.stdout.read()[-3000:]
    assert time.time() < deadline, "checkpoint never appeared"
    time.sleep(0.05)
  proc.send_signal(sig)
  out, _ = proc.communicate(timeout=120)
  return proc.returncode, out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("uninterrupted")
  _run(workdir)
  return _metrics(workdir)


def _assert_same(workdir, reference):
  got = _metrics(workdir)
  assert [r["step"] for r in got] == list(range(1, 13))  # each step once
  for a, b in zip(got, reference):
    for key in KEYS:
      assert a.get(key) == b.get(key), (a["step"], key, a.get(key), b.get(key))
  summary = json.loads((workdir / "summary.json").read_text())
  assert summary["status"] == "finished" and summary["step"] == 12


@pytest.mark.slow  # real processes, killed and resumed
def test_sigkill_then_resume_matches_uninterrupted(tmp_path, reference):
  rc, _ = _start_and_stop_after(tmp_path, 4, signal.SIGKILL)
  assert rc == -signal.SIGKILL
  assert not (tmp_path / "summary.json").exists()
  proc = _run(tmp_path)
  assert "Resuming" in proc.stdout
  _assert_same(tmp_path, reference)


@pytest.mark.slow  # real processes, killed and resumed
def test_sigterm_saves_and_resumes(tmp_path, reference):
  rc, out = _start_and_stop_after(tmp_path, 4, signal.SIGTERM)
  assert rc == 143, out[-2000:]
  saved = json.loads((tmp_path / "config.json").read_text())["identity"]
  steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert steps[-1] >= 5 or steps == [4]  # the step reached when SIGTERM came
  assert steps[-1] < 12
  proc = _run(tmp_path)
  assert f"from step {steps[-1]}" in proc.stdout
  assert json.loads((tmp_path / "config.json").read_text())["identity"] == saved
  _assert_same(tmp_path, reference)


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncate_array", "remove_commit_marker"])
def test_broken_checkpoint_is_moved_aside(tmp_path, reference, damage):
  rc, _ = _start_and_stop_after(tmp_path, 8, signal.SIGKILL)
  ckpts = tmp_path / "checkpoints"
  latest = max(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
  step_dir = ckpts / str(latest)
  if damage == "truncate_array":
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file()
             and p.parent.name == "d"]
    biggest = max(files, key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[:10])
  else:
    (step_dir / "commit_success.txt").unlink()
  proc = _run(tmp_path)
  assert f"checkpoint step {latest} failed to restore" in proc.stdout
  assert "Resuming" in proc.stdout
  assert "Traceback" not in proc.stderr and "Event loop" not in proc.stderr
  aside = list((tmp_path / "corrupt_checkpoints").iterdir())
  assert len(aside) == 1 and aside[0].name.startswith(f"{latest}-")
  assert _committed(tmp_path, 12)  # later saves were written
  _assert_same(tmp_path, reference)


def test_abandoned_read_filter_keeps_other_errors():
  """The quieting of an abandoned restore drops only its own two reports."""
  import logging
  import sys
  import types
  from scaling import checkpoint
  seen = []
  previous = sys.unraisablehook
  sys.unraisablehook = seen.append
  try:
    checkpoint._quiet_abandoned_reads()  # pylint: disable=protected-access
    checkpoint._quiet_abandoned_reads()  # idempotent: one filter, not two
    hook = sys.unraisablehook
    for exc in (RuntimeError("Event loop is closed"), RuntimeError("other"),
                ValueError("Event loop is closed")):
      hook(types.SimpleNamespace(exc_type=type(exc), exc_value=exc))
    assert [str(u.exc_value) for u in seen] == ["other", "Event loop is closed"]
    assert type(seen[1].exc_value) is ValueError
  finally:
    sys.unraisablehook = previous
  flt = checkpoint._AbandonedRestoreFilter()  # pylint: disable=protected-access
  rec = lambda m: logging.LogRecord("asyncio", logging.ERROR, "", 0, m, None, None)
  assert not flt.filter(rec("Future exception was never retrieved\n"
                            "future: <... tensorstore_spec=...>"))
  assert not flt.filter(rec("Task exception was never retrieved\nfuture: <Task "
                            f"coro=<read() defined at {checkpoint._ORBAX_DIR}/x.py>"))
  try:  # asyncio.gather's future: the orbax frames are in the traceback
    _read_in_orbax = compile("raise ValueError('OUT_OF_RANGE')",
                             f"{checkpoint._ORBAX_DIR}/serialization.py", "exec")
    exec(_read_in_orbax)  # pylint: disable=exec-used
  except ValueError:
    gathered = logging.LogRecord(
        "asyncio", logging.ERROR, "", 0, "_GatheringFuture exception was never "
        "retrieved\nfuture: <_GatheringFuture finished exception=...>", None,
        sys.exc_info())
  assert not flt.filter(gathered)
  assert flt.filter(rec("_GatheringFuture exception was never retrieved\n"
                        "future: <_GatheringFuture finished exception=...>"))
  assert flt.filter(rec("Task exception was never retrieved\nfuture: <my_coro>"))
  assert flt.filter(rec("Unclosed client session"))
