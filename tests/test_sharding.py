"""Sharded versus single device: the same 4 steps give the same losses.

Runs in a subprocess with 8 fake CPU devices. Also checks that parameters
really are split over the fsdp and tensor axes.
"""

import json

from tests.conftest import run_subprocess

_SCRIPT = r'''
import json
import jax, numpy as np
from scaling import sharding as S, step as St, model as M, tokenizer as T
from scaling import config as C
from scaling.data import sources, pipeline
from tests.conftest import tiny_config

def run(mesh_sizes, devices):
  c = tiny_config(**{"model.d_model": 64, "model.n_heads": 4,
                     "model.n_kv_heads": 2, "model.d_ff": 128,
                     "model.mlp": "swiglu", "batch_size": 16})
  c.mesh.data, c.mesh.fsdp, c.mesh.tensor = mesh_sizes
  C.validate(c, len(devices))
  mesh = S.make_mesh(c, devices)
  model = M.build(c)
  init_fn, abstract, shardings = St.abstract_state(model, mesh, 0)
  corpus = sources.load_corpus(c.data)
  data = pipeline.TrainStream(corpus, T.ByteTokenizer(), c.seq_len, c.batch_size, 0)
  hp = St.hyperparams(c, 8, 2)
  with jax.set_mesh(mesh), S.rules_context():
    state = jax.jit(init_fn, out_shardings=shardings)()
    step = jax.jit(St.make_train_step(model, "cosine", 1, False),
                   out_shardings=(shardings, None), donate_argnums=(0,))
    losses = []
    for k in range(4):
      batch = pipeline.to_global(data.local_batch(k), mesh, S.BATCH_SPEC)
      state, m = step(state, batch, hp)
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
