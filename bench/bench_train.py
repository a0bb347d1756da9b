"""Train-step throughput and MFU, next to this machine's measured matmul peak.

    python bench/bench_train.py [--steps 10] [--dtypes float32,bfloat16]
        [--depths 2,4,8] [--config.KEY=VALUE ...]

Default shape (issue 2): d_model 512, 8 heads, 4 layers, d_ff 2048, seq_len 256,
batch 16, AdamW. For each compute dtype it measures, in one run: the peak
(datasheet for accelerators, a fresh matmul measurement on CPU), the best
step time over ``--steps`` timed steps after one warm-up, tokens/s, model
TFLOP/s (``flops``, the exact count, no rematerialisation) and MFU. Then
compile seconds of the train step at several depths, scanned over layers and
unrolled. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time

import jax
import numpy as np

from scaling import accounting, cli, peak
from scaling import config as config_lib
from scaling import program as program_lib
from scaling import sharding
from scaling import validation
from scaling.data import BATCH_DTYPES


def bench_config(overrides):
  c = cli.build_config(None, [
      ("model.d_model", "512"), ("model.n_heads", "8"), ("model.n_kv_heads", "8"),
      ("model.n_layers", "4"), ("model.d_ff", "2048"), ("seq_len", "256"),
      ("batch_size", "16"), *overrides])
  return c


def random_batch(config, rng) -> dict:
  """A [batch_size, seq_len] batch of random bytes, one document per row."""
  shape = (config.batch_size, config.seq_len)
  batch = {k: np.zeros(shape, d) for k, d in BATCH_DTYPES.items()}
  batch["inputs"] = rng.integers(0, 256, shape).astype(np.int32)
  batch["targets"] = rng.integers(0, 256, shape).astype(np.int32)
  batch["loss_mask"][:] = 1.0
  batch["segment_ids"][:] = 1
  batch["positions"][:] = np.arange(config.seq_len)
  return batch


def _compiled_step(config):
  """The run's own program (scaling.program.build), on a random-token batch."""
  validation.validate(config, jax.device_count())
  mesh = sharding.make_mesh(config)
  program = program_lib.build(config, mesh)
  batch = random_batch(config, np.random.default_rng(0))
  t0 = time.perf_counter()
  compiled = program.compile()
  compile_s = time.perf_counter() - t0
  state = program.init_state()
  with program.context():
    batch = sharding.to_global(batch, mesh)
  return compiled, state, batch, program.hp, compile_s


def time_steps(config, steps: int):
  compiled, state, batch, hp, compile_s = _compiled_step(config)
  state, m = compiled(state, batch, hp)  # warm-up
  jax.block_until_ready(m)
  best = float("inf")
  for _ in range(steps):
    t0 = time.perf_counter()
    state, m = compiled(state, batch, hp)
    jax.block_until_ready(m)
    best = min(best, time.perf_counter() - t0)
  return best, compile_s


def main(argv):
  rest, overrides = cli.split_overrides(argv)
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--dtypes", default="float32,bfloat16")
  parser.add_argument("--depths", default="2,4,8")
  args = parser.parse_args(rest)
  devices = jax.devices()
  print(f"devices: {len(devices)} x {devices[0].device_kind}, jax {jax.__version__}")
  for dtype in args.dtypes.split(","):
    config = bench_config(overrides + [("model.dtype", dtype)])
    per_step = accounting.flops_per_step(config)["flops"]
    counts = accounting.param_counts(config.model,
                                     config_lib.vocab_size(config),
                                     config.seq_len)
    if devices[0].platform == "cpu":
      rate = peak.measure_matmul_flops(devices, dtype)["flops_per_sec"]
      source = "measured matmul, this run"
    else:
      rate, source = peak.peak_flops(devices, dtype)
    seconds, _ = time_steps(config, args.steps)
    achieved = per_step / seconds
    tokens = config.batch_size * config.seq_len
    print(f"\n[{dtype}] params {counts['params_total'] / 1e6:.2f}M, "
          f"{per_step / 1e9:.2f} GFLOP per step")
    print(f"  peak        {rate / 1e9:10.1f} GFLOP/s  [{source}]")
    print(f"  step time   {seconds * 1e3:10.1f} ms (best of {args.steps})")
    print(f"  tokens/s    {tokens / seconds:10.0f}")
    print(f"  model       {achieved / 1e9:10.1f} GFLOP/s")
    print(f"  MFU         {achieved / rate:10.1%} of the peak above")
  print("\ncompile seconds of the train step by depth (float32):")
  for scan in (True, False):
    row = []
    for depth in [int(d) for d in args.depths.split(",")]:
      config = bench_config(overrides + [("model.n_layers", str(depth)),
                                         ("model.scan_layers", str(scan))])
      row.append(f"{depth} layers {_compiled_step(config)[4]:6.2f} s")
    print(f"  {'scanned ' if scan else 'unrolled'}: " + ", ".join(row))
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
