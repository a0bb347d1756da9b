"""Shared fixtures: tiny configs that train in seconds on a 2-core CPU.

Every cache a test could read from the machine (the MFU peak figures under
``XDG_CACHE_HOME``, matplotlib's, JAX's persistent compilation cache) points
at a fresh temporary directory for the whole session, set before anything
is imported, so no test depends on or writes to the real home directory and
a machine's state cannot hide a failure. Subprocesses inherit it, and
``JAX_PLATFORMS=cpu`` unless it is set.
"""

import os
import shutil
import subprocess
import sys
import tempfile

# One directory per session, shared by pytest-xdist's workers (they inherit
# the controller's environment) and by every subprocess.
_CACHES = os.environ.get("SCALING_TEST_CACHES") or tempfile.mkdtemp(
    prefix="scaling-test-caches-")
os.environ["SCALING_TEST_CACHES"] = _CACHES
os.environ["XDG_CACHE_HOME"] = os.path.join(_CACHES, "xdg")
os.environ["MPLCONFIGDIR"] = os.path.join(_CACHES, "matplotlib")
# The session's own compilation cache, empty at its start: the many tests
# that compile the same tiny programs (often in subprocesses) compile each
# once per session. Tests of the cache itself pass their own directories.
os.environ["JAX_COMPILATION_CACHE_DIR"] = os.path.join(_CACHES, "jax")
os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
# The suite runs on the CPU. Where libtpu is installed (the `tpu` extra, for
# the --topology tests) JAX would otherwise try to open local TPU chips in
# every process, printing warnings and writing logs outside the test's
# directories; TPU topologies compile with JAX's backend on the CPU anyway.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Compile-only TPU topologies open no chip: libtpu's one-process lock (see
# scaling/cli.py) would only make concurrent test processes fail.
os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")

import numpy as np
import pytest

from scaling import config as config_lib
from scaling.data import BATCH_DTYPES

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
    config_lib.set_dotted(c, key, value)
  return c


def dummy_batch(batch_size: int, seq_len: int) -> dict:
  """A batch of zeros in one segment ([B, L] arrays of the batch contract)."""
  batch = {k: np.zeros((batch_size, seq_len), d) for k, d in BATCH_DTYPES.items()}
  batch["segment_ids"][:] = 1
  return batch


def run_subprocess(code: str, devices: int = 8, timeout: int = 600, env=None):
  """Runs Python ``code`` in a fresh interpreter with ``devices`` fake CPUs
  (``env``: variables to set, or with None to unset)."""
  full_env = dict(os.environ)
  full_env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  full_env["PYTHONPATH"] = REPO + os.pathsep + full_env.get("PYTHONPATH", "")
  for key, value in (env or {}).items():  # None: not set in the subprocess
    if value is None:
      full_env.pop(key, None)
    else:
      full_env[key] = value
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True,
                        text=True, timeout=timeout, env=full_env, cwd=REPO)
  if proc.returncode != 0:
    raise AssertionError(f"subprocess failed ({proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
  return proc.stdout


@pytest.fixture
def tiny():
  return tiny_config


def pytest_configure(config):
  """With pytest-xdist, files are handed out in the order below, not
  re-sorted by their number of tests (xdist's default, which would start the
  long one- or two-test files last)."""
  if hasattr(config.option, "loadscopereorder"):
    config.option.loadscopereorder = False


def pytest_unconfigure(config):
  if not hasattr(config, "workerinput"):  # the controller, after every worker
    shutil.rmtree(_CACHES, ignore_errors=True)


def pytest_collection_modifyitems(items):
  """Files with slow tests first, then the other files by their number of
  tests, most first (each file's tests stay together, in their order): with
  pytest-xdist (the README's ``-n 2``) the longest files start early, so no
  worker runs one alone at the end."""
  slow = {item.path for item in items if item.get_closest_marker("slow")}
  count = {}
  for item in items:
    count[item.path] = count.get(item.path, 0) + 1
  items.sort(key=lambda item: (item.path not in slow,
                               0 if item.path in slow else -count[item.path]))
