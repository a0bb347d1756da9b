"""The ahead-of-time check compiles a big run for a 256-chip slice on this CPU.

``scaling launch ... --check`` runs ``plan.check_step``: ``scaling check``
with fake CPU devices (Slurm, multislice) or, for one TPU slice, with
``--topology ACCELERATOR_TYPE`` (XLA:TPU from libtpu:
tests/test_check_tpu.py). With 256 fake CPU devices it must compile the
largest run of ``chinchilla_isoflop`` and report bytes per device.
"""

import dataclasses
import os
import re
import subprocess

import pytest

from launch import plan
from launch import tpu
from tests.conftest import REPO


@pytest.mark.slow
def test_check_compiles_chinchilla_largest_run_for_256_chips():
  step = plan.check_step(["sweep", "chinchilla_isoflop", "--workdir", "gs://b/s",
                          "--only", "C3e19_L30_d1920"], 256)
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


def test_tpu_launch_checks_with_xla_tpu_for_its_slice():
  """--check on a TPU slice compiles for the slice itself, not fake devices."""
  launch = tpu.TpuLaunch(name="n", zone="z", accelerator_type="v5litepod-256",
                         scaling_args=("sweep", "chinchilla_isoflop", "--workdir",
                                       "gs://b/s"),
                         repo="https://example.com/r.git", commit="0" * 40,
                         check=True)
  step = tpu.build_plan(launch)[0]
  assert step.argv[-4:] == ("--workdir", "gs://b/s", "--topology", "v5litepod-256")
  assert step.argv[:5] == ("python3", "-m", "scaling.cli", "check", "sweep")
  env = dict(step.env)
  assert env["JAX_PLATFORMS"] == "cpu" and "XLA_FLAGS" not in env
  # v3 is not a --topology family: fake CPU devices instead.
  old = tpu.build_plan(dataclasses.replace(launch, accelerator_type="v3-32"))[0]
  assert "--topology" not in old.argv
  assert "--xla_force_host_platform_device_count=" in dict(old.env)["XLA_FLAGS"]
