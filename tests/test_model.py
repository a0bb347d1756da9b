"""Model invariants: packing isolation, causality, parameter and FLOP counts."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from scaling import accounting
from scaling import config as config_lib
from scaling import model as model_lib
from tests.conftest import dummy_batch, tiny_config


def _init(config):
  model = model_lib.build(config)
  params = jax.jit(lambda: nn.unbox(model_lib.init_params(model, 0)))()
  return model, params


@functools.partial(jax.jit, static_argnums=0)
def _apply(model, params, *arrays):
  return model.apply({"params": params}, *arrays)


def _logits(model, params, inputs, segs, pos, prefix=None):
  prefix = np.zeros_like(inputs, bool) if prefix is None else prefix
  return np.asarray(_apply(model, params, inputs[None], segs[None], pos[None],
                          prefix[None])[0])


# Every attention implementation that runs here (scaling.attention): splash
# in Pallas interpret mode, on rows of 128 (its tile width); dot_product with
# its XLA version. Positions enter before attention, so the position kinds
# are crossed with the reference only.
CASES = [("rope", "reference"), ("learned", "reference"),
         ("sinusoidal", "reference"), ("rope", "dot_product"),
         ("rope", "splash")]


def _config(implementation, **overrides):
  seq_len = 128 if implementation == "splash" else 32
  return tiny_config(seq_len=seq_len,
                     **{"model.attention": implementation, **overrides})


@pytest.mark.parametrize("positions,implementation", CASES)
def test_packed_documents_do_not_see_each_other(positions, implementation):
  c = _config(implementation, **{"model.positions": positions})
  model, params = _init(c)
  L = c.seq_len
  rng = np.random.default_rng(0)
  inputs = rng.integers(0, 256, L).astype(np.int32)
  segs = np.array([1] * 10 + [2] * 12 + [3] * 7 + [0] * (L - 29), np.int32)
  pos = np.concatenate([np.arange(10), np.arange(12), np.arange(7),
                        np.zeros(L - 29)]).astype(np.int32)
  base = _logits(model, params, inputs, segs, pos)
  changed = inputs.copy()
  changed[10:22] = rng.integers(0, 256, 12)  # rewrite document 2
  out = _logits(model, params, changed, segs, pos)
  other = segs != 2
  np.testing.assert_array_equal(out[other & (segs != 0)], base[other & (segs != 0)])
  assert np.abs(out[segs == 2] - base[segs == 2]).max() > 1e-3
  # Positions restart per document: document 3 alone at the start of a row
  # gives the same logits as inside the packed row.
  alone = _logits(model, params, np.concatenate([inputs[22:29], inputs[:L - 7]]),
                  np.array([1] * 7 + [0] * (L - 7), np.int32),
                  np.concatenate([np.arange(7), np.zeros(L - 7)]).astype(np.int32))
  np.testing.assert_allclose(alone[:7], base[22:29], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", ["reference", "dot_product", "splash"])
def test_causal_future_tokens_are_invisible_and_prefix_is_not(implementation):
  c = _config(implementation)
  model, params = _init(c)
  L = c.seq_len
  inputs = np.arange(L, dtype=np.int32) % 200
  segs, pos = np.ones(L, np.int32), np.arange(L, dtype=np.int32)
  base = _logits(model, params, inputs, segs, pos)
  changed = inputs.copy()
  changed[20] = 250
  out = _logits(model, params, changed, segs, pos)
  np.testing.assert_array_equal(out[:20], base[:20])
  assert np.abs(out[20:] - base[20:]).max() > 1e-4  # the future does see it
  prefix = np.arange(L) < 24  # bidirectional over the first 24 tokens
  a = _logits(model, params, inputs, segs, pos, prefix)
  b = _logits(model, params, changed, segs, pos, prefix)
  assert np.abs(a[:20] - b[:20]).max() > 1e-4  # the prefix sees token 20
  later = inputs.copy()
  later[30] = 250  # after the prefix: invisible to every earlier position
  np.testing.assert_array_equal(
      _logits(model, params, later, segs, pos, prefix)[:30], a[:30])


@pytest.mark.parametrize("overrides", [
    {},
    {"model.tie_embeddings": True},
    {"model.positions": "learned", "model.norm": "layernorm"},
    {"model.mlp": "swiglu", "model.n_kv_heads": 1, "model.scan_layers": False},
])
def test_param_counts_match_the_parameter_tree(overrides):
  c = tiny_config(**overrides)
  _, params = _init(c)
  counts = accounting.param_counts(c.model, config_lib.vocab_size(c), c.seq_len)
  total = sum(x.size for x in jax.tree.leaves(params))
  assert counts["params_total"] == total
  emb = params["embedding"].size + (params["pos_embedding"].size
                                    if "pos_embedding" in params else 0)
  unemb = params["unembedding"].size if "unembedding" in params else 0
  assert counts["params_embedding"] == emb
  assert counts["params_unembedding"] == unemb
  assert counts["params_nonembedding"] == total - emb - unemb


def test_forward_flops_agree_with_xla_cost_analysis():
  c = tiny_config(**{"model.d_model": 128, "model.n_heads": 4,
                     "model.n_kv_heads": 2, "model.d_ff": 512,
                     "model.mlp": "swiglu", "model.scan_layers": False,
                     "seq_len": 128, "model.n_layers": 2})
  model, params = _init(c)
  B = 4
  b = dummy_batch(B, c.seq_len)
  fwd = jax.jit(lambda p: model.apply({"params": p}, b["inputs"], b["segment_ids"],
                                       b["positions"], b["prefix_mask"]))
  cost = fwd.lower(params).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  ours = accounting.forward_flops_per_token(c.model, config_lib.vocab_size(c),
                                            c.seq_len) * B * c.seq_len
  assert abs(cost["flops"] / ours - 1) < 0.10, (cost["flops"], ours)
