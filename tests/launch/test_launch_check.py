"""The ahead-of-time check compiles a big run for a 256-chip slice on this CPU.

``scaling launch tpu ... --check`` runs ``plan.check_step``: ``scaling check``
with 256 fake CPU devices (v5e-256). It must compile the largest run of
``chinchilla_isoflop`` and report bytes per device.
"""

import os
import re
import subprocess

import pytest

from launch import plan
from tests.conftest import REPO


@pytest.mark.slow
def test_check_compiles_chinchilla_largest_run_for_256_chips():
  step = plan.check_step(["sweep", "chinchilla_isoflop", "--workdir", "gs://b/s"], 256)
  env = dict(os.environ, PYTHONPATH=REPO, **dict(step.env))
  proc = subprocess.run(list(step.argv), cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
  assert re.search(r"devices: 256\b", proc.stdout)
  params = float(re.search(r"param_bytes_per_device: ([\d.]+) GiB", proc.stdout)[1])
  # ~1.3B float32 parameters (~5 GiB) sharded 128 ways over fsdp.
  assert 0.02 < params < 0.06


def test_check_names_the_sharding_problem():
  """A mesh that cannot shard the model is named before anything compiles."""
  env = dict(os.environ, PYTHONPATH=REPO,
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  proc = subprocess.run(
      ["python3", "-m", "scaling.cli", "check", "train", "--config.mesh.data=1",
       "--config.mesh.tensor=8", "--config.model.n_heads=4"],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2
  assert "config.model.n_heads" in proc.stderr and "tensor" in proc.stderr
