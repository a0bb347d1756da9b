"""The README's multi-process examples, run as written, on an empty cache.

Also: a sweep launched on a mesh that does not fit records its runs as the
machine's failures, and the same sweep on a mesh that fits trains them
without ``--retry-failed``.
"""

import json
import os
import re
import shlex
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def readme_launch_examples() -> list[list[str]]:
  """The command lines between the README's launch-examples markers."""
  text = open(os.path.join(REPO, "README.md"), encoding="utf-8").read()
  block = re.search(r"<!-- launch-examples.*?-->\s*```bash\n(.*?)```", text, re.S)
  assert block, "README.md lost its launch-examples block"
  return [shlex.split(line) for line in block.group(1).splitlines() if line.strip()]


def _scaling(argv, cwd, timeout=600):
  assert argv[0] == "scaling"
  env = dict(os.environ, PYTHONPATH=REPO)
  env.pop("XLA_FLAGS", None)
  return subprocess.run([sys.executable, "-m", "scaling.cli", *argv[1:]],
                        cwd=cwd, capture_output=True, text=True,
                        timeout=timeout, env=env)


def test_readme_launch_examples_run_as_written(tmp_path):
  examples = readme_launch_examples()
  assert len(examples) == 2 and all(e[1:3] == ["launch", "local"] for e in examples)
  for argv in examples:
    proc = _scaling(argv, tmp_path)
    assert proc.returncode == 0, (shlex.join(argv), proc.stdout[-4000:],
                                  proc.stderr[-2000:])
  summary = json.loads((tmp_path / "runs" / "mp" / "summary.json").read_text())
  assert summary["status"] == "finished" and summary["step"] == 20
  results = pd.read_csv(tmp_path / "sweeps" / "tiny" / "results.csv")
  assert len(results) == 3 and (results["status"] == "finished").all()


def test_a_mesh_that_does_not_fit_is_the_machines_failure_and_retried(tmp_path):
  too_many = ["scaling", "launch", "local", "--processes", "2",
              "--devices-per-process", "4", "--", "sweep", "tiny", "--workdir",
              "sweeps", "--no-analysis"]
  proc = _scaling(too_many, tmp_path)
  out = proc.stdout + proc.stderr
  assert proc.returncode == 1, out[-4000:]  # no run finished
  assert "FileNotFoundError" not in out  # only process 0 writes summaries
  results = pd.read_csv(tmp_path / "sweeps" / "tiny" / "results.csv")
  assert (results["status"] == "failed").all()
  assert (results["failure"] == "machine").all()
  assert results["reason"].str.contains("data\\*fsdp = 8").all()
  fits = list(too_many)
  fits[fits.index("4")] = "2"
  proc = _scaling(fits, tmp_path)
  assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
  results = pd.read_csv(tmp_path / "sweeps" / "tiny" / "results.csv")
  assert (results["status"] == "finished").all()
  events = [json.loads(l) for l in
            (tmp_path / "sweeps" / "tiny" / "sweep_log.jsonl").read_text().splitlines()]
  assert sum(e["event"] == "finish" for e in events) == 3
