"""Payload of the local-launch tests: a real multi-process JAX job (not a test module).

Usage: ``python tests/launch/launch_payload.py MODE`` under ``launch.cli local --exec``.
MODE:
  ok       psum over every device, a cross-process sharded sum, agree.broadcast
           and agree.any_process; prints one ``RESULT ...`` line per process.
  exit     process 1 exits with status 3 (through finish) while process 0 waits
           in a barrier.
  raise    process 1 raises an uncaught exception while process 0 waits.
  kill     process 1 SIGKILLs itself while process 0 waits in a barrier.
  preempt WORKDIR [TRAIN FLAGS]  the real ``scaling train`` (scaling.cli.main);
           process 1 sends itself SIGTERM once WORKDIR/metrics.jsonl shows step
           2, and every process must stop at the same step (the trainer's own
           agree.StopSignal).
"""

import json
import os
import signal
import sys
import threading
import time

from launch import distributed
from scaling import agree


def run_ok() -> None:
  import jax
  import jax.numpy as jnp
  import numpy as np
  from jax.sharding import NamedSharding, PartitionSpec as P

  n = jax.device_count()
  mesh = jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  # psum of each device's global index: every shard holds 0 + 1 + ... + (n-1).
  ids = jax.make_array_from_callback((n,), NamedSharding(mesh, P("data")),
                                     lambda idx: np.arange(n, dtype=np.float32)[idx])
  summed = jax.jit(jax.shard_map(lambda x: jax.lax.psum(x, "data"), mesh=mesh,
                                 in_specs=P("data"), out_specs=P("data")))(ids)
  psums = sorted({float(s.data[0]) for s in summed.addressable_shards})
  # A global [8, 4] array built from each process's own rows, then a global sum
  # and a matmul whose result needs rows held by the other process.
  x = np.arange(32, dtype=np.float32).reshape(8, 4)
  rows = 8 // jax.process_count()
  local = x[jax.process_index() * rows:(jax.process_index() + 1) * rows]
  arr = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), local, (8, 4))
  total = float(jax.jit(jnp.sum)(arr))
  gram = jax.jit(lambda a: a.T @ a, out_shardings=NamedSharding(mesh, P()))(arr)
  gram_ok = bool(np.allclose(np.asarray(gram), x.T @ x))
  decision = agree.broadcast(
      {"resume_step": 7 if jax.process_index() == 0 else -1, "run": "a/b"})
  anyone = agree.any_process(jax.process_index() == 1)
  print(f"RESULT process_index={jax.process_index()} process_count={jax.process_count()} "
        f"device_count={n} local_device_count={jax.local_device_count()} "
        f"psum={psums} sum={total:g} gram_ok={gram_ok} decision={decision} any={anyone}")


def main(mode: str) -> int:
  distributed.initialize()
  import jax
  me = jax.process_index()
  if mode == "ok":
    run_ok()
  elif mode in ("exit", "kill", "raise"):
    print(f"process {me} started", flush=True)
    if me == 1:
      print("process 1 about to fail", flush=True)
      if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
      if mode == "raise":
        raise RuntimeError("payload failure in process 1")
      return 3
    agree.barrier("never-reached-by-process-1")  # blocks: process 1 is gone
  elif mode == "preempt":
    workdir, flags = sys.argv[2], sys.argv[3:]
    if me == 1:
      threading.Thread(target=_sigterm_at_step, args=(workdir, 2),
                       daemon=True).start()
    from scaling import cli
    return cli.main(["train", "--workdir", workdir, *flags])
  return 0


def _sigterm_at_step(workdir: str, step: int) -> None:
  """Sends this process SIGTERM once process 0 has logged ``step``."""
  path = os.path.join(workdir, "metrics.jsonl")
  while True:
    try:
      with open(path, encoding="utf-8") as f:
        steps = [json.loads(l)["step"] for l in f if l.strip()]
    except (OSError, ValueError):
      steps = []
    if steps and max(steps) >= step:
      os.kill(os.getpid(), signal.SIGTERM)
      return
    time.sleep(0.05)


if __name__ == "__main__":
  sys.exit(distributed.finish(main(sys.argv[1])))
