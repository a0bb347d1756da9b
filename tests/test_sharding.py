"""Sharding: sharded versus single device, process topology, abstract meshes.

The mesh comparison runs in a subprocess with 8 fake CPU devices and checks
that parameters really are split over the fsdp and tensor axes.
"""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from scaling import program as program_lib
from scaling import sharding
from scaling import validation
from tests.conftest import run_subprocess, tiny_config

_SCRIPT = r'''
import json
import jax, numpy as np
from scaling import program, sharding, tokenizer, validation
from scaling.data import sources, pipeline
from tests.conftest import tiny_config

def run(mesh_sizes, devices):
  c = tiny_config(**{"model.d_model": 64, "model.n_heads": 4,
                     "model.n_kv_heads": 2, "model.d_ff": 128,
                     "model.mlp": "swiglu", "batch_size": 16,
                     "schedule.warmup_steps": 2})
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = mesh_sizes
  validation.validate(c, len(devices))
  mesh = sharding.make_mesh(c, devices)
  p = program.build(c, mesh)
  corpus = sources.load_corpus(c.data)
  data = pipeline.TrainStream(corpus, tokenizer.ByteTokenizer(), c.seq_len,
                              c.batch_size, 0)
  state = p.init_state()
  step = p.compile()
  losses = []
  with p.context():
    for k in range(4):
      batch = sharding.to_global(data.local_batch(k), mesh)
      state, m = step(state, batch, p.hp)
      losses.append(float(m["train_loss"]))
  wq = state["params"]["blocks"]["attn"]["q"]  # [layers, d_model, heads, d_head]
  shard = wq.addressable_shards[0].data.shape
  return dict(losses=losses, wq_shape=list(wq.shape), wq_shard=list(shard),
              spec=str(wq.sharding.spec))

out = {"single": run((1, 1, 1), jax.devices()[:1])}
for sizes in [(8, 1, 1), (2, 4, 1), (2, 2, 2), (1, 4, 2)]:
  out[str(sizes)] = run(sizes, jax.devices())
print("RESULT" + json.dumps(out))
'''


@pytest.mark.slow
def test_meshes_give_the_same_losses_and_shard_params():
  stdout = run_subprocess(_SCRIPT, devices=8)
  out = json.loads(stdout.split("RESULT", 1)[1])
  ref = out.pop("single")["losses"]
  assert len(ref) == 4 and ref[0] > ref[-1]
  for mesh, r in out.items():
    for a, b in zip(r["losses"], ref):
      assert abs(a - b) <= 1e-5 * abs(b), (mesh, r["losses"], ref)
  # q kernel [layers=2, d_model=64, heads=4, d_head=16]: embed over fsdp, heads over tensor.
  assert out["(8, 1, 1)"]["wq_shard"] == [2, 64, 4, 16]
  assert out["(2, 4, 1)"]["wq_shard"] == [2, 16, 4, 16]
  assert out["(2, 2, 2)"]["wq_shard"] == [2, 32, 2, 16]
  assert out["(1, 4, 2)"]["wq_shard"] == [2, 16, 2, 16]


def test_train_step_lowers_for_an_abstract_mesh():
  """No concrete devices: the state and batch come from shapes alone."""
  c = tiny_config(**{"mesh.data": 2, "mesh.fsdp": 4, "batch_size": 16})
  validation.validate(c, 8)
  program = program_lib.build(c, sharding.abstract_mesh(c, 8))
  text = program.lower(platform="cpu").as_text()
  assert "sharding" in text and "stablehlo" in text
  wq = program.abstract_state["params"]["blocks"]["attn"]["q"]
  assert wq.sharding.shard_shape(wq.shape) == (2, 8, 4, 8)  # embed over fsdp=4


def test_batch_shard_from_mesh_layout():
  names = ("data", "fsdp", "tensor")
  # 2 processes x 4 devices, data=2 fsdp=4: process p holds block p of 2.
  procs = np.repeat([0, 1], 4).reshape(2, 4, 1)
  for p in range(2):
    assert sharding.batch_shard(procs, names, ("data", "fsdp"), p) == (p, 2)
  # Tensor axis across processes: both hold the whole batch.
  procs = np.tile([0, 1], 4).reshape(4, 1, 2)
  assert sharding.batch_shard(procs, names, ("data", "fsdp"), 1) == (0, 1)
  # 4 processes on data=8: process 3 holds rows [6/8, 8/8).
  procs = np.repeat(np.arange(4), 2).reshape(8, 1, 1)
  assert sharding.batch_shard(procs, names, ("data",), 3) == (3, 4)
  procs = np.array([0, 1, 0, 1]).reshape(4, 1, 1)
  with pytest.raises(ValueError, match="contiguous"):
    sharding.batch_shard(procs, names, ("data",), 0)


def test_local_rows_are_the_process_block():
  batch = {"inputs": np.arange(8 * 3).reshape(8, 3)}
  np.testing.assert_array_equal(sharding.local_rows(batch, 1, 4)["inputs"],
                                batch["inputs"][2:4])


def test_to_global_single_process():
  n = jax.device_count()
  mesh = jax.make_mesh((n, 1, 1), ("data", "fsdp", "tensor"))
  pspec = P(("data", "fsdp"), None)
  assert sharding.process_shard(mesh, pspec) == (0, 1)
  rng = np.random.default_rng(0)
  local = {"inputs": rng.integers(0, 256, (8 * n, 32)).astype(np.int32),
           "loss_mask": rng.random((8 * n, 32)).astype(np.float32)}
  arrays = sharding.to_global(local, mesh, pspec)
  for key, value in local.items():
    assert arrays[key].shape == value.shape
    assert arrays[key].dtype == value.dtype
    assert arrays[key].sharding.spec == pspec
    np.testing.assert_array_equal(np.asarray(arrays[key]), value)


_EIGHT_DEVICES = r"""
import numpy as np, jax
from jax.sharding import PartitionSpec as P
from scaling import sharding
mesh = jax.make_mesh((2, 4, 1), ("data", "fsdp", "tensor"))
pspec = P(("data", "fsdp"), None)
local = {"inputs": np.arange(16 * 4, dtype=np.int32).reshape(16, 4)}
x = sharding.to_global(local, mesh, pspec)["inputs"]
assert sharding.process_shard(mesh, pspec) == (0, 1)
for shard in x.addressable_shards:
  d = shard.device
  coords = [int(c[0]) for c in np.nonzero(mesh.devices == d)]
  block = coords[0] * 4 + coords[1]  # data major, then fsdp
  assert shard.data.shape == (2, 4), shard.data.shape
  np.testing.assert_array_equal(np.asarray(shard.data),
                                local["inputs"][2 * block:2 * block + 2])
print("ok")
"""


def test_to_global_places_rows_on_eight_devices():
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", _EIGHT_DEVICES], env=env,
                       capture_output=True, text=True, timeout=120,
                       check=False)
  assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
