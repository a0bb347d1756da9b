"""Shared fixtures: tiny configs that train in seconds on a 2-core CPU."""

import os
import subprocess
import sys

import pytest

from scaling import config as config_lib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**overrides):
  """A 2-layer, d_model 32 model on seq_len 32 rows of the stdlib corpus."""
  c = config_lib.default_config()
  c.batch_size = 8
  c.seq_len = 32
  c.model.d_model = 32
  c.model.n_layers = 2
  c.model.n_heads = 4
  c.model.n_kv_heads = 2
  c.model.d_ff = 64
  c.train.steps = 8
  c.train.log_every = 1
  c.eval.every = 4
  c.eval.batches = 2
  c.eval.batch_size = 8
  c.checkpoint.every = 4
  c.checkpoint.async_save = False
  c.schedule.warmup_steps = 2
  for key, value in overrides.items():
    node = c
    *path, last = key.split(".")
    for part in path:
      node = node[part]
    node[last] = value
  return c


def run_subprocess(code: str, devices: int = 8, timeout: int = 600, env=None):
  """Runs Python ``code`` in a fresh interpreter with ``devices`` fake CPUs."""
  full_env = dict(os.environ)
  full_env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
  full_env.update(env or {})
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, timeout=timeout, env=full_env, cwd=REPO)
  if proc.returncode != 0:
    raise AssertionError(f"subprocess failed ({proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
  return proc.stdout


@pytest.fixture
def tiny():
  return tiny_config
