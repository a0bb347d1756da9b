"""scaling launch local: environment per process, output collection, real 2 x 2 JAX jobs, failures."""

import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

from launch import cli
from launch import local

PAYLOAD = str(pathlib.Path(__file__).with_name("launch_payload.py"))
REPO = pathlib.Path(__file__).resolve().parents[2]


def launch(*args: str, timeout: float = 90,
           env: dict | None = None) -> tuple[int, str, float]:
  """Runs `python -m launch.cli local ...` in a subprocess: (exit status, output, seconds)."""
  start = time.monotonic()
  proc = subprocess.run([sys.executable, "-m", "launch.cli", "local", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout,
                        env=dict(os.environ, **(env or {})))
  return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def jax_job(mode: str, *args: str, timeout: float = 90,
            env: dict | None = None) -> tuple[int, str, float]:
  return launch("--processes", "2", "--devices-per-process", "2", "--grace-seconds", "2",
                "--exec", "--", sys.executable, PAYLOAD, mode, *args, timeout=timeout,
                env=env)


def test_process_env():
  base = {"XLA_FLAGS": "--xla_dump_to=/tmp/d --xla_force_host_platform_device_count=8",
          "PYTHONPATH": "elsewhere", "SCALING_PROCESS_ID": "7"}
  env = local.process_env(1, 2, 4, "127.0.0.1:999", base)
  assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/d --xla_force_host_platform_device_count=4"
  assert env["PYTHONPATH"] == str(REPO) + os.pathsep + "elsewhere"
  assert (env["SCALING_DISTRIBUTED"], env["SCALING_COORDINATOR_ADDRESS"],
          env["SCALING_NUM_PROCESSES"], env["SCALING_PROCESS_ID"]) == (
              "env", "127.0.0.1:999", "2", "1")
  assert env["JAX_PLATFORMS"] == "cpu" and base["SCALING_PROCESS_ID"] == "7"
  single = local.process_env(0, 1, 4, "127.0.0.1:999", base)
  assert single["SCALING_DISTRIBUTED"] == "none"
  assert "SCALING_PROCESS_ID" not in single and "SCALING_COORDINATOR_ADDRESS" not in single
  gpu = local.process_env(1, 2, 4, "127.0.0.1:999", {}, platform="gpu")
  assert gpu["SCALING_LOCAL_DEVICE_IDS"] == "4,5,6,7" and "XLA_FLAGS" not in gpu


def test_output_is_prefixed_collected_and_logged(tmp_path):
  code = "import os; print('hello from', os.environ['SCALING_PROCESS_ID'])"
  rc, out, _ = launch("--processes", "3", "--log-dir", str(tmp_path), "--exec", "--",
                      sys.executable, "-c", code)
  assert rc == 0
  for i in range(3):
    assert f"[p{i}] hello from {i}" in out.splitlines()
    assert (tmp_path / f"process_{i}.log").read_text() == f"hello from {i}\n"


def test_timeout_stops_everything():
  rc, out, seconds = launch("--processes", "2", "--timeout", "1", "--grace-seconds", "1",
                            "--exec", "--", sys.executable, "-c", "import time; time.sleep(60)")
  assert rc == 124 and seconds < 15
  assert "timed out after 1 s" in out


def test_missing_command_is_a_usage_error():
  rc, out, _ = launch("--processes", "2")
  assert rc == 2 and "after --" in out


def test_two_processes_two_devices_each():
  """A real jax.distributed job: 2 processes x 2 fake CPU devices, gloo collectives."""
  rc, out, _ = jax_job("ok")
  assert rc == 0, out
  results = sorted(re.findall(r"^\[p(\d)\] RESULT (.*)$", out, re.M))
  assert [p for p, _ in results] == ["0", "1"], out
  for p, line in results:
    fields = dict(kv.split("=", 1) for kv in re.findall(r"\w+=(?:\{[^}]*\}|\S+)", line))
    assert fields["process_index"] == p
    assert (fields["process_count"], fields["device_count"], fields["local_device_count"]) == (
        "2", "4", "2")
    assert fields["psum"] == "[6.0]"  # 0 + 1 + 2 + 3 over the 4 devices of both processes
    assert fields["sum"] == "496"  # sum(range(32)): both processes' rows
    assert fields["gram_ok"] == "True"
    assert fields["decision"] == "{'resume_step': 7, 'run': 'a/b'}"  # process 0's value
    assert fields["any"] == "True"  # true on process 1 only


@pytest.mark.parametrize("mode, status, words", [
    ("exit", 3, "exited with status 3"),
    ("kill", 128 + 9, "killed by signal SIGKILL"),
    ("raise", 1, "RuntimeError: payload failure in process 1"),
])
def test_a_failing_process_ends_the_launch(mode, status, words):
  """Process 0 waits in a barrier process 1 never reaches: the launch must still end."""
  rc, out, seconds = jax_job(mode)
  assert seconds < 60, out
  assert rc == status, out
  report = out[out.index("launch local: process 1 (pid"):]
  assert words in report
  assert "last" in report and "process 1 about to fail" in report


TRAIN = ["--config.batch_size=8", "--config.seq_len=32", "--config.model.d_model=32",
         "--config.model.n_layers=1", "--config.model.n_heads=2",
         "--config.model.n_kv_heads=2", "--config.model.d_ff=64",
         "--config.train.steps=40", "--config.train.log_every=1",
         "--config.eval.every=100", "--config.eval.batches=1",
         "--config.eval.batch_size=8", "--config.checkpoint.every=100",
         "--config.schedule.warmup_steps=2"]


@pytest.mark.slow
def test_sigterm_on_one_process_stops_all_at_the_same_step(tmp_path):
  """The trainer's own stop decision: SIGTERM reaches process 1 only."""
  workdir = str(tmp_path / "run")
  rc, out, _ = jax_job("preempt", workdir, *TRAIN, timeout=300,
                       env={"SCALING_TEST_STEP_SLEEP": "0.2"})
  assert rc == 143, out
  steps = dict(re.findall(r"^\[p(\d)\] stopped by a signal: saved step (\d+)", out, re.M))
  assert set(steps) == {"0", "1"} and steps["0"] == steps["1"], out
  saved = int(steps["0"])
  assert 2 <= saved < 40  # not before the SIGTERM at step 2, and before the end
  assert (tmp_path / "run" / "checkpoints" / str(saved) / "commit_success.txt").exists()
  assert not (tmp_path / "run" / "summary.json").exists()
  # The same command resumes from the saved step and finishes.
  rc, out, _ = launch("--processes", "2", "--devices-per-process", "2", "--", "train",
                      "--workdir", workdir, *TRAIN, timeout=300)
  assert rc == 0, out
  assert f"from step {saved}" in out


@pytest.mark.parametrize("counts, named", [
    (["--processes", "0"], "--processes 0"),
    (["--processes", "-1"], "--processes -1"),
    (["--processes", "2", "--devices-per-process", "0"], "--devices-per-process 0"),
    (["--processes", "0", "--devices-per-process", "0"], "--processes 0"),
    (["--processes", "0", "--dry-run"], "--processes 0"),
])
def test_counts_below_one_exit_2_before_anything_starts(counts, named, tmp_path, capsys):
  """In-process CLI: an error line naming the flag, exit 2, and no process ran."""
  marker = tmp_path / "started"
  argv = ["local", *counts, "--exec", "--", sys.executable, "-c",
          f"open({str(marker)!r}, 'w').close()"]
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  assert "scaling launch local: error:" in err and named in err and "at least 1" in err
  assert not marker.exists()
