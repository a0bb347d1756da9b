"""Attention implementations and remat policies inside the real model.

A model with ``attention=splash`` (Pallas interpret mode) or ``dot_product``
gives the reference's loss and gradients on packed training batches; remat
policies give the no-remat loss and gradients, and rematerialising uses
less temporary memory in the compiled train step.
"""

import functools

import flax.linen as nn
import jax
import numpy as np
import pytest

from scaling import aot
from scaling import model as model_lib
from scaling import objectives as obj
from scaling import loss as loss_lib
from tests.conftest import run_subprocess, tiny_config
from tests.test_objectives_model import _stream

SEQ_LEN = 128  # the splash tile width
# At the default init (std 0.02) the logits are near uniform and attention
# barely moves the loss; at 0.3 a wrong mask moves it by ~1e-2 (checked).
BASE = {"seq_len": SEQ_LEN, "objective.name": "ul2", "model.init_std": 0.3}


def _init(config):
  model = model_lib.build(config)
  params = jax.jit(lambda: nn.unbox(model_lib.init_params(model, 0)))()
  return model, params


def _loss_and_grads(config, batch):
  """Mean NLL over loss tokens (``loss.nll_sums``) and its gradients."""
  model, params = _init(config)

  def loss(p):
    nll, _, count = loss_lib.nll_sums(model, p, batch)
    return nll.sum() / count.sum()

  value, grads = jax.jit(jax.value_and_grad(loss))(params)
  return float(value), grads


def _max_grad_diff(a, b):
  return max(float(np.abs(x - y).max())
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@functools.lru_cache(maxsize=None)
def _ul2_batch():
  """A packed UL2 batch: prefix (S), span (R, X) examples, padding."""
  batch = _stream("ul2", seq_len=SEQ_LEN, batch_size=4).local_batch(0)
  seg, prefix = batch["segment_ids"], batch["prefix_mask"]
  assert (seg == 0).any() and (prefix & (seg > 0)).any() and (~prefix & (seg > 0)).any()
  assert all(len(np.unique(r[r > 0])) >= 2 for r in seg)
  return batch


_CACHE = {}


def _reference(batch, **overrides):
  """The reference model's (loss, grads), cached per batch and overrides."""
  key = (id(batch["prefix_mask"]), tuple(sorted(overrides.items())))
  if key not in _CACHE:
    _CACHE[key] = _loss_and_grads(tiny_config(**BASE, **overrides), batch)
  return _CACHE[key]


@pytest.mark.parametrize("name", ["splash", "dot_product"])
def test_model_loss_and_gradients_equal_the_reference(name):
  batch = _ul2_batch()
  ref_loss, ref_grads = _reference(batch)
  loss, grads = _loss_and_grads(
      tiny_config(**BASE, **{"model.attention": name}), batch)
  assert loss == pytest.approx(ref_loss, rel=1e-6)
  assert _max_grad_diff(grads, ref_grads) < 1e-5


def test_negative_control_a_row_made_causal_moves_loss_and_gradients():
  batch = _ul2_batch()
  broken = dict(batch)
  broken["prefix_mask"] = batch["prefix_mask"].copy()
  broken["prefix_mask"][0] = False
  ref_loss, ref_grads = _reference(batch)
  bad_loss, bad_grads = _reference(broken)
  assert abs(bad_loss - ref_loss) > 1e-3
  assert _max_grad_diff(bad_grads, ref_grads) > 1e-3


@pytest.mark.parametrize("name", obj.OBJECTIVES)
def test_every_objective_prefix_is_an_initial_run_of_its_segment(name):
  """What splash's prefix pass assumes (scaling.attention.attend_splash)."""
  source = _stream(name, seq_len=SEQ_LEN).source
  for k in range(20):
    row = source.row(k)
    seg, prefix = row["segment_ids"], row["prefix_mask"]
    for s in np.unique(seg[seg > 0]):
      p = prefix[seg == s]
      n = int(p.sum())
      assert p[:n].all() and not p[n:].any(), (name, k, s, p.astype(int))
    assert not prefix[seg == 0].any()


@pytest.mark.slow
def test_remat_policies_give_the_no_remat_loss_and_gradients():
  batch = _ul2_batch()
  ref_loss, ref_grads = _reference(batch)
  for policy in ("full", "dots_saveable"):
    loss, grads = _loss_and_grads(tiny_config(
        **BASE, **{"model.remat": True, "model.remat_policy": policy}), batch)
    assert loss == pytest.approx(ref_loss, rel=1e-6), policy
    assert _max_grad_diff(grads, ref_grads) < 1e-6, policy
  with pytest.raises(ValueError, match="unknown remat policy"):
    model_lib.remat_policy("everything")


@pytest.mark.slow
def test_remat_lowers_the_compiled_train_steps_temporary_bytes():
  temp = {}
  for remat, policy in ((False, "full"), (True, "full"),
                        (True, "dots_saveable")):
    report = aot.check(tiny_config(**{"model.remat": remat,
                                      "model.remat_policy": policy}))
    temp[remat and policy] = report["temp_bytes_per_device"]
  # XLA:CPU, tiny config: about 4.3 MB, 1.6 MB and 1.9 MB.
  assert temp["full"] < temp["dots_saveable"] < temp[False], temp


@pytest.mark.slow
def test_splash_under_a_sharded_mesh_equals_the_reference():
  """shard_map over (data, fsdp) x tensor on 8 fake CPU devices."""
  out = run_subprocess("""
import jax, numpy as np
from scaling import sharding as sharding_lib
from tests.conftest import tiny_config
from tests.test_attention_model import (BASE, _ul2_batch, _loss_and_grads,
                                        _max_grad_diff)
batch = _ul2_batch()
batch = {k: np.concatenate([v, v]) for k, v in batch.items()}  # 8 rows
res = {}
for name in ("reference", "splash"):
  c = tiny_config(**BASE, **{"mesh.data": 2, "mesh.fsdp": 2,
                             "mesh.tensor": 2, "model.attention": name})
  mesh = sharding_lib.make_mesh(c)
  with jax.set_mesh(mesh), sharding_lib.rules_context():
    b = {k: jax.device_put(v, sharding_lib.batch_sharding(mesh))
         for k, v in batch.items()}
    res[name] = _loss_and_grads(c, b)
print("LOSS", res["reference"][0], res["splash"][0])
print("GRAD", _max_grad_diff(res["reference"][1], res["splash"][1]))
""")
  lines = dict(line.split(" ", 1) for line in out.splitlines()
               if line.startswith(("LOSS", "GRAD")))
  ref, splash = map(float, lines["LOSS"].split())
  assert splash == pytest.approx(ref, rel=1e-6)
  assert float(lines["GRAD"]) < 1e-5
