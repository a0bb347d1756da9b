"""Reruns of one run are bitwise equal (issue: "Reruns of one run differ").

The same tiny run, trained with a cold JAX persistent compilation cache,
again in the same process with that cache now warm (its executables come
from the cache), in a new process from the warm cache, and in a new process
without any persistent cache, writes the same ``metrics.jsonl``: every field
except the wall-clock ones (``tokens_per_sec``, ``mfu``) is equal, floats
exactly as written in JSON. A run with another seed differs (the comparison
can fail).

Equality holds for one config on one mesh, one process count and one set of
CPUs. XLA:CPU splits a matmul's contraction by the number of CPUs the
process may run on, so a process pinned to fewer CPUs rounds differently:
:func:`test_cpu_count_changes_matmul_rounding_only` is the minimal
reproducer, with the measured tolerance.

Every subprocess gets its own temporary workdirs, compilation cache and
``XDG_CACHE_HOME`` (the MFU peak figure), and one CPU device.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tests.conftest import run_subprocess

WALL_CLOCK = ("tokens_per_sec", "mfu")

# Trains tiny_config(train.seed=SEED) into each WORKDIR in turn, in one
# process; from the first run with USE_CACHE on, with the sweep runner's
# compilation cache. Prints each cached run's compile counts
# (experiments.compile_cache counts jax.monitoring events), None otherwise.
_TRAIN = r'''
import json, sys
from experiments import compile_cache
from scaling import train
from tests.conftest import tiny_config

cache_dir, runs = sys.argv[1], json.loads(sys.argv[2])
stats = []
for workdir, seed, use_cache in runs:
  if use_cache:
    compile_cache.enable_compile_cache(cache_dir)
  before = compile_cache.compile_stats()
  summary = train.train(tiny_config(**{"train.seed": seed}), workdir)
  after = compile_cache.compile_stats()
  assert summary["status"] == "finished", summary
  stats.append({k: after[k] - before[k] for k in ("xla_compiles", "cache_hits")}
               if use_cache else None)
print("STATS" + json.dumps(stats))
'''


def _train(cache_dir, xdg, runs) -> list[dict | None]:
  """Trains ``runs`` [(workdir, seed, use_cache)] in one new process.

  Returns:
    Per run, its compile counts (``xla_compiles``, ``cache_hits``), or None
    for a run without the persistent cache.
  """
  code = (f"import sys; sys.argv = ['-', {str(cache_dir)!r}, "
          f"{json.dumps([[str(w), s, c] for w, s, c in runs])!r}]\n" + _TRAIN)
  # Without the session's compilation cache: each process has only the
  # cache it enables itself.
  out = run_subprocess(code, devices=1, timeout=300,
                       env={"XDG_CACHE_HOME": str(xdg),
                            "JAX_COMPILATION_CACHE_DIR": None})
  return json.loads(out.split("STATS", 1)[1].strip().splitlines()[0])


def _records(workdir) -> list[dict]:
  """metrics.jsonl without the wall-clock fields."""
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [{k: v for k, v in json.loads(line).items() if k not in WALL_CLOCK}
          for line in lines if line.strip()]


def _differences(a: list[dict], b: list[dict]) -> list[tuple]:
  """(step, field, a, b) for every field that is not exactly equal."""
  diffs = [("lines", len(a), len(b))] if len(a) != len(b) else []
  for x, y in zip(a, b):
    for key in sorted(set(x) | set(y)):
      if x.get(key, "missing") != y.get(key, "missing"):
        diffs.append((x.get("step"), key, x.get(key, "missing"),
                      y.get(key, "missing")))
  return diffs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The tiny run four ways in two processes, plus another seed."""
  root = tmp_path_factory.mktemp("repro")
  cache, xdg = root / "jax_cache", root / "xdg"
  dirs = {n: root / n for n in ("cold", "warm", "no_cache", "new_process",
                                "seed1")}
  first = _train(cache, xdg, [(dirs["cold"], 0, True), (dirs["warm"], 0, True)])
  second = _train(cache, xdg, [(dirs["no_cache"], 0, False),
                               (dirs["new_process"], 0, True),
                               (dirs["seed1"], 1, True)])
  stats = dict(cold=first[0], warm=first[1], new_process=second[1])
  return dirs, stats


@pytest.mark.slow
def test_cold_warm_new_process_and_uncached_runs_are_bitwise_equal(runs):
  dirs, stats = runs
  assert stats["cold"]["xla_compiles"] > 0, stats
  # The warm runs compiled nothing: every executable came from the cache.
  for way in ("warm", "new_process"):
    assert stats[way]["xla_compiles"] == 0 and stats[way]["cache_hits"] > 0, stats
  reference = _records(dirs["cold"])
  assert [r["step"] for r in reference] == list(range(1, 9))
  assert sum("eval_loss" in r for r in reference) == 2  # steps 4 and 8
  for way in ("warm", "new_process", "no_cache"):
    assert _differences(reference, _records(dirs[way])) == [], way


@pytest.mark.slow
def test_another_seed_is_caught(runs):
  """Negative control: the comparison sees a real difference."""
  dirs, _ = runs
  diffs = _differences(_records(dirs["cold"]), _records(dirs["seed1"]))
  fields = {d[1] for d in diffs}
  assert {"train_loss", "grad_norm", "eval_loss"} <= fields, diffs[:5]
  assert not fields & {"step", "tokens", "flops", "lr"}  # same data, schedule


# One [2048, 96]^T [2048, 96] matmul (the weight-gradient shape of a
# projection over B*L = 2048 rows), run with the CPUs given.
_MATMUL = r'''
import os, sys
os.sched_setaffinity(0, set(map(int, sys.argv[1].split(","))))
import jax, numpy as np
rng = np.random.default_rng(0)
x = rng.standard_normal((2048, 96), dtype=np.float32)
y = rng.standard_normal((2048, 96), dtype=np.float32)
out = np.asarray(jax.jit(lambda a, b: a.T @ b)(x, y))
np.save(sys.argv[2], out)
'''


def test_cpu_count_changes_matmul_rounding_only(tmp_path):
  """The XLA:CPU residual: a process's CPU count changes a matmul's rounding.

  Measured on 2 cores (jax 0.10.2): 1 CPU vs 2 CPUs differ by 4.2e-7 of the
  largest entry (not bitwise equal); the same CPU count is bitwise equal,
  whichever CPUs (0 or 1) and whether the executable came from the cache.
  No XLA flag tried (``--xla_cpu_multi_thread_eigen=false``,
  ``--xla_cpu_use_thunk_runtime=false``, ``--xla_cpu_use_xnnpack=false``)
  removes the dependence. Tolerance: 1e-6 relative to the largest entry.
  """
  if not hasattr(os, "sched_getaffinity"):
    pytest.skip("needs os.sched_getaffinity (Linux)")
  cpus = sorted(os.sched_getaffinity(0))
  if len(cpus) < 2:
    pytest.skip("needs at least 2 CPUs")
  env = {"XDG_CACHE_HOME": str(tmp_path)}
  results = {}
  for label, chosen in (("one", cpus[:1]), ("all", cpus)):
    path = tmp_path / f"{label}.npy"
    code = (f"import sys; sys.argv = ['-', {','.join(map(str, chosen))!r}, "
            f"{str(path)!r}]\n" + _MATMUL)
    run_subprocess(code, devices=1, timeout=120, env=env)
    results[label] = np.load(path)
  one, full = results["one"], results["all"]
  scale = np.abs(full).max()
  assert scale > 10  # sums of 2048 products of unit normals
  assert np.abs(one - full).max() <= 1e-6 * scale
