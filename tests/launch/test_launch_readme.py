"""The README's multi-process examples, run as written, on an empty cache.

Before them, the same sweep launched on a mesh that does not fit records its
runs as the machine's failures; the README's sweep, on a mesh that fits, then
trains them without ``--retry-failed``.
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


def _events(sweep_dir):
  return [json.loads(l) for l in
          (sweep_dir / "sweep_log.jsonl").read_text().splitlines()]


def test_readme_launch_examples_run_as_written(tmp_path):
  """First a sweep on a mesh that does not fit (2 x 4 devices for a batch of
  4): every run is the machine's failure, and only process 0 writes. Then
  the README's two lines as written: the train finishes, and the sweep on a
  mesh that fits trains the failed runs without ``--retry-failed``, each run
  claimed once by the two processes together."""
  examples = readme_launch_examples()
  assert len(examples) == 2 and all(e[1:3] == ["launch", "local"] for e in examples)
  sweep = examples[1]
  assert sweep[sweep.index("--") + 1:] == ["sweep", "tiny", "--workdir", "sweeps"]
  too_many = list(sweep)
  too_many[too_many.index("--devices-per-process") + 1] = "4"
  proc = _scaling(too_many + ["--no-analysis"], tmp_path)
  out = proc.stdout + proc.stderr
  assert proc.returncode == 1, out[-4000:]  # no run finished
  assert "FileNotFoundError" not in out  # only process 0 writes summaries
  sweep_dir = tmp_path / "sweeps" / "tiny"
  results = pd.read_csv(sweep_dir / "results.csv")
  assert len(results) == 3 and (results["status"] == "failed").all()
  assert (results["failure"] == "machine").all()
  assert results["reason"].str.contains("data\\*fsdp = 8").all()
  failed_claims = len(_events(sweep_dir))

  for argv in examples:
    proc = _scaling(argv, tmp_path)
    assert proc.returncode == 0, (shlex.join(argv), proc.stdout[-4000:],
                                  proc.stderr[-2000:])
  summary = json.loads((tmp_path / "runs" / "mp" / "summary.json").read_text())
  assert summary["status"] == "finished" and summary["step"] == 20
  results = pd.read_csv(sweep_dir / "results.csv")
  assert len(results) == 3 and (results["status"] == "finished").all()
  events = _events(sweep_dir)[failed_claims:]
  assert sum(e["event"] == "finish" for e in events) == 3
  claims = [e["run"] for e in events if e["event"] == "claim"]
  assert sorted(claims) == sorted(results["run"])  # each run claimed once
