"""Sweep-level MFU beside the step-only MFU of the same runs (issue: use the machine).

    python bench/bench_sweep.py [--experiment quickstart] [--sweep-dir DIR]
        [--workers auto] [--steps 15] [--baseline REV]

For an experiment's runs it prints, measured in one run against one peak (a
fresh matmul measurement on all CPUs here):

* step-only MFU of each distinct run shape: the run's own compiled train
  step (``scaling.program``) on a batch of its shape, best of ``--steps``
  timed steps, one process on the whole machine;
* their FLOP-weighted harmonic mean H = sum(f_i) / sum(f_i / mfu_i) over the
  runs (f_i = a run's training FLOPs): the sweep-level MFU if the sweep did
  nothing but train steps, one run after another;
* the sweep-level MFU: exact training FLOPs of the runs / the sweep's wall
  time / the peak, from a sweep trained now in a temporary directory
  (``scaling sweep NAME --workers W``) or read from ``--sweep-dir``;
* their ratio (overhead = 1 - ratio; above 1 when parallel workers use cores
  a single step leaves idle).

``--baseline REV`` first measures the same for the code at git revision REV
(a temporary worktree, its own quickstart and its ``bench/bench_train.py``),
and the step time of this experiment's smallest shape under REV's code and
this code alternately, ``--repeats`` times in fresh processes, with their
medians, so both stand side by side. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import pandas as pd

from experiments import registry
from scaling import accounting
from scaling import peak
from scaling import program as program_lib
from scaling import sharding
from scaling import validation

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
import bench_train  # pylint: disable=wrong-import-position
from bench_train import random_batch  # pylint: disable=wrong-import-position


def _overrides(flags: list[str]) -> list[tuple[str, str]]:
  """``--config.KEY=VALUE`` flags as (KEY, VALUE) pairs."""
  return [tuple(f[len("--config."):].split("=", 1)) for f in flags]


def shape_flops(flags: list[str]) -> float:
  """Exact training FLOPs of one step of ``bench_train``'s config with
  ``flags`` (this code's count, for both sides: REV's bench prints its
  GFLOP rounded to 2 decimals, too coarse for the smallest shapes)."""
  return accounting.flops_per_step(bench_train.bench_config(
      _overrides(flags)))["flops"]


def shape_key(config) -> str:
  """What fixes a run's step program (not its lr, length or seeds)."""
  d = config.to_dict()
  return json.dumps({k: d[k] for k in ("model", "batch_size", "seq_len",
                                       "tokenizer")} | {
      "objective": d["objective"]["name"],
      "microbatches": d["train"]["microbatches"]}, sort_keys=True)


def step_seconds(config, steps: int) -> float:
  """Best wall seconds of one train step of ``config`` (after a warm-up)."""
  validation.validate(config, jax.device_count())
  mesh = sharding.make_mesh(config)
  program = program_lib.build(config, mesh)
  compiled = program.compile()
  state = program.init_state()
  with program.context():
    batch = sharding.to_global(random_batch(config, np.random.default_rng(0)),
                               mesh)
    for _ in range(3):  # warm-up: the first calls of a process run slow
      state, m = compiled(state, batch, program.hp)
      jax.block_until_ready(m)
    best = float("inf")
    for _ in range(steps):
      t0 = time.perf_counter()
      state, m = compiled(state, batch, program.hp)
      jax.block_until_ready(m)
      best = min(best, time.perf_counter() - t0)
  return best


def harmonic_mfu(runs, step_mfu: dict) -> float:
  """sum f_i / sum (f_i / mfu_i) over runs, f_i = a run's training FLOPs."""
  flops = np.array([r.flops for r in runs])
  mfu = np.array([step_mfu[shape_key(r.config)] for r in runs])
  return float(flops.sum() / (flops / mfu).sum())


def sweep_rate(sweep_dir: pathlib.Path) -> tuple[float, float, float]:
  """(exact FLOPs, wall seconds, FLOP/s) of a trained sweep directory."""
  summary = json.loads((sweep_dir / "sweep_summary.json").read_text())
  if summary.get("flops_here"):
    return (summary["flops_here"], summary["sweep_wall_seconds"],
            summary["flops_here"] / summary["sweep_wall_seconds"])
  # An older sweep directory: its results and the sum of run wall times.
  results = pd.read_csv(sweep_dir / "results.csv")
  done = results[results["status"] == "finished"]
  flops = float(done["flops"].sum())
  wall = float(summary["sweep_wall_seconds"])
  return flops, wall, flops / wall


def train_sweep(name: str, workdir: pathlib.Path, workers: str,
                python_path: pathlib.Path = ROOT) -> pathlib.Path:
  """Trains experiment ``name`` from scratch into ``workdir`` (subprocess)."""
  env = dict(os.environ, PYTHONPATH=str(python_path))
  argv = [sys.executable, "-m", "scaling.cli", "sweep", name, "--workdir",
          str(workdir), "--no-analysis", "--no-progress"]
  if workers and python_path == ROOT:
    argv += ["--workers", workers]
  subprocess.run(argv, check=True, env=env, cwd=python_path,
                 stdout=subprocess.DEVNULL)
  return workdir / name


def _bench_train_ms(cwd: pathlib.Path, flags: list[str], steps: int) -> float:
  """Best step time (ms) of ``bench/bench_train.py`` in the tree at ``cwd``,
  in a fresh process."""
  out = subprocess.run(
      [sys.executable, "bench/bench_train.py", "--dtypes", "float32",
       "--depths", "1", "--steps", str(steps), *flags], cwd=cwd,
      env=dict(os.environ, PYTHONPATH=str(cwd)), capture_output=True,
      text=True, check=True).stdout
  return float(re.search(r"step time\s+([\d.]+) ms", out)[1])


def smallest_side_by_side(tree: pathlib.Path, rev: str, shape_flags: list[str],
                          rate: float, steps: int, repeats: int) -> None:
  """The smallest shape's step, REV's code and this code alternately in
  fresh processes (``bench_train.py`` of each tree), ``repeats`` times:
  each time and the medians, with the same flags (the quickstart's
  vocabulary, no sentinels) and with REV's default vocabulary (128
  sentinels, what REV's quickstart ran at this shape)."""
  same = shape_flags
  rev_vocab = [f for f in shape_flags if "n_sentinels" not in f]
  rows = {"REV, same flags": (tree, same), "this code, same flags": (ROOT, same),
          "REV, its default vocabulary": (tree, rev_vocab)}
  times = {k: [] for k in rows}
  for _ in range(repeats):
    for label, (cwd, flags) in rows.items():
      times[label].append(_bench_train_ms(cwd, flags, steps))
  for label, (_, flags) in rows.items():
    ms = float(np.median(times[label]))
    flops = shape_flops(flags)
    print(f"[{label.replace('REV', rev)}] smallest shape, step only: median "
          f"{ms:.2f} ms of {', '.join(f'{t:.1f}' for t in times[label])}; "
          f"{flops / 1e6:.1f} MFLOP per step, MFU {flops / (ms / 1e3) / rate:.1%}")


def baseline(rev: str, shape_flags: list[str], rate: float,
             steps: int, repeats: int) -> None:
  """REV's quickstart ratio, and REV's step-only MFU at our smallest shape."""
  tree = pathlib.Path(tempfile.mkdtemp(prefix="bench-baseline-"))
  subprocess.run(["git", "worktree", "add", "--detach", str(tree), rev],
                 cwd=ROOT, check=True, capture_output=True)
  try:
    env = dict(os.environ, PYTHONPATH=str(tree))
    smallest_side_by_side(tree, rev, shape_flags, rate, steps, repeats)
    sweep_dir = train_sweep("quickstart", tree / "_sweep", "", tree)
    flops, wall, fps = sweep_rate(sweep_dir)
    print(f"[{rev}] quickstart: {flops:.3g} FLOPs in {wall:.0f} s: sweep-level "
          f"MFU {fps / rate:.1%}")
    results = pd.read_csv(sweep_dir / "results.csv")
    times = {}
    for shape, rows in results.groupby(["d_model", "n_layers", "n_heads", "d_ff"]):
      flags = [f"--config.model.d_model={shape[0]}",
               f"--config.model.n_layers={shape[1]}",
               f"--config.model.n_heads={shape[2]}",
               f"--config.model.n_kv_heads={shape[2]}",
               f"--config.model.d_ff={shape[3]}", "--config.seq_len=128",
               f"--config.batch_size={int(rows['batch_size'].iloc[0])}"]
      o = subprocess.run(
          [sys.executable, "bench/bench_train.py", "--dtypes", "float32",
           "--depths", "1", "--steps", str(steps), *flags], cwd=tree, env=env,
          capture_output=True, text=True, check=True).stdout
      times[shape] = (float(re.search(r"step time\s+([\d.]+) ms", o)[1]) / 1e3,
                      shape_flops(flags))
    busy = sum(r["flops"] / times[(r["d_model"], r["n_layers"], r["n_heads"],
                                   r["d_ff"])][1] * times[(
        r["d_model"], r["n_layers"], r["n_heads"], r["d_ff"])][0]
               for _, r in results.iterrows())
    h = results["flops"].sum() / busy / rate
    print(f"[{rev}] harmonic mean of step-only MFU {h:.1%}; sweep-level / "
          f"harmonic = {fps / rate / h:.2f}\n")
  finally:
    subprocess.run(["git", "worktree", "remove", "--force", str(tree)],
                   cwd=ROOT, capture_output=True)


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--experiment", default="quickstart")
  parser.add_argument("--sweep-dir", default=None,
                      help="a trained sweep directory (default: train now)")
  parser.add_argument("--workers", default="auto")
  parser.add_argument("--steps", type=int, default=15)
  parser.add_argument("--baseline", default=None, metavar="REV")
  parser.add_argument("--repeats", type=int, default=5,
                      help="side-by-side repeats of the smallest shape's step")
  args = parser.parse_args(argv)
  devices = jax.devices()
  rate = peak.measure_matmul_flops(devices, "float32")["flops_per_sec"]
  print(f"peak: {rate / 1e9:.1f} GFLOP/s (float32 matmul on {len(devices)} "
        f"{devices[0].platform} device(s), measured now)\n")
  experiment = registry.lookup(args.experiment)
  runs = experiment.runs
  smallest = min(runs, key=lambda r: accounting.flops_per_step(r.config)["flops"])
  if args.baseline:
    m = smallest.config.model
    baseline(args.baseline, [
        f"--config.model.d_model={m.d_model}", f"--config.model.n_layers={m.n_layers}",
        f"--config.model.n_heads={m.n_heads}", f"--config.model.n_kv_heads={m.n_kv_heads}",
        f"--config.model.d_ff={m.d_ff}", f"--config.seq_len={smallest.config.seq_len}",
        f"--config.batch_size={smallest.config.batch_size}",
        f"--config.tokenizer.n_sentinels={smallest.config.tokenizer.n_sentinels}"],
             rate, args.steps, args.repeats)
  step_mfu = {}
  for run in sorted(runs, key=lambda r: accounting.flops_per_step(r.config)["flops"]):
    key = shape_key(run.config)
    if key in step_mfu:
      continue
    seconds = step_seconds(run.config, args.steps)
    step_mfu[key] = accounting.flops_per_step(run.config)["flops"] / seconds / rate
    print(f"{run.tags.get('shape', run.short_name):>10}: step {seconds * 1e3:7.1f} "
          f"ms, step-only MFU {step_mfu[key]:.1%}", flush=True)
  h = harmonic_mfu(runs, step_mfu)
  print(f"harmonic mean of step-only MFU over the {len(runs)} runs: {h:.1%}")
  if args.sweep_dir:
    sweep_dir = pathlib.Path(args.sweep_dir)
  else:
    sweep_dir = train_sweep(args.experiment, pathlib.Path(tempfile.mkdtemp(
        prefix="bench-sweep-")), args.workers)
  flops, wall, fps = sweep_rate(sweep_dir)
  print(f"sweep: {flops:.3g} FLOPs in {wall:.0f} s = {fps / 1e9:.1f} GFLOP/s: "
        f"sweep-level MFU {fps / rate:.1%}")
  print(f"sweep-level / harmonic mean of step-only = {fps / rate / h:.2f} "
        f"(overhead {max(0.0, 1 - fps / rate / h):.0%})")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
