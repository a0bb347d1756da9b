"""Prints the peak FLOP/s that MFU is measured against on this machine.

Usage: python bench/bench_peak.py [--refresh] [--cache-dir DIR]

For each compute dtype (float32, bfloat16): the peak of all jax devices and
its source (datasheet, or a measured matmul rate on CPU, cached).
"""

from __future__ import annotations

import argparse
import sys

import jax

from scaling import peak


def main(argv: list[str]) -> int:
  """Prints float32 and bfloat16 peaks of jax.devices() with their sources."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--refresh", action="store_true",
                      help="measure again instead of reading the cache")
  parser.add_argument("--cache-dir", default=None,
                      help="cache directory (default: ~/.cache/scaling)")
  args = parser.parse_args(argv)
  devices = jax.devices()
  print(f"devices: {len(devices)} x {devices[0].device_kind} "
        f"({devices[0].platform}), jax {jax.__version__}")
  for dtype in ("float32", "bfloat16"):
    rate, source = peak.peak_flops(devices, dtype, cache_dir=args.cache_dir,
                                   refresh=args.refresh)
    print(f"{dtype:>8}: {rate / 1e9:10.1f} GFLOP/s  [{source}]")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
