"""Attention implementations against the reference (scaling.attention).

Splash runs in Pallas interpret mode here (no TPU), dot_product with its XLA
implementation (no GPU). Equality is asserted on what the model uses: the
outputs of real tokens and the gradients of a loss over them, 1e-5 in
float32, for causal, per-example prefix and bidirectional masks on rows with
several packed documents and trailing padding, with grouped KV heads.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from scaling import attention
from scaling import config as config_lib
from scaling import identity
from scaling import validation
from tests.conftest import tiny_config

TOL = 1e-5


def _rows(length: int):
  """Two packed rows: (segment lengths, prefix lengths) per row, then padding.

  Row 0: three documents with prefixes 30, 1 and 0 (a causal document packed
  with prefix ones); row 1: two documents, one all prefix but its last token,
  one all prefix. Both rows end in padding.
  """
  plan = [[(90, 30), (100, 1), (length - 226, 0)],
          [(length - 128, length - 129), (100, 100)]]
  seg = np.zeros((2, length), np.int32)
  prefix = np.zeros((2, length), bool)
  for r, docs in enumerate(plan):
    start = 0
    for s, (n, p) in enumerate(docs, start=1):
      seg[r, start:start + n] = s
      prefix[r, start:start + p] = True
      start += n
    assert start < length  # trailing padding
  return seg, prefix


def _prefix_for(kind, seg, prefix):
  if kind == "causal":
    return np.zeros_like(prefix)
  if kind == "bidirectional":
    return seg != 0
  return prefix


def _inputs(length, h, k, dh=16, seed=0):
  rng = np.random.default_rng(seed)
  q = rng.normal(size=(2, length, h, dh)).astype(np.float32)
  kk = rng.normal(size=(2, length, k, dh)).astype(np.float32)
  v = rng.normal(size=(2, length, k, dh)).astype(np.float32)
  cot = rng.normal(size=(2, length, h, dh)).astype(np.float32)
  return q, kk, v, cot


def _outputs_and_grads(fn, q, k, v, seg, prefix, cot):
  """fn's outputs and the gradients (q, k, v) of sum(cot * out) over real rows."""
  real = jnp.asarray(seg != 0)[:, :, None, None]

  def loss(q, k, v):
    out = fn(q, k, v, seg, prefix)
    return jnp.sum(jnp.where(real, out * cot, 0.0)), out

  (_, out), grads = jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2),
                                               has_aux=True))(q, k, v)
  return np.asarray(out), [np.asarray(g) for g in grads]


def _impl(name, **kw):
  fns = dict(reference=attention.attend_reference,
             splash=functools.partial(attention.attend_splash, interpret=True),
             dot_product=attention.attend_dot_product)
  return functools.partial(fns[name], scale=16 ** -0.5, **kw)


@functools.lru_cache(maxsize=None)
def _result(name, kind="prefix", h=4, k=2, length=256, block_size=None,
            prefix_bytes=None):
  """(seg, outputs, grads) of one implementation on the standard rows.

  ``prefix_bytes``: a different prefix mask (negative controls), as bytes.
  """
  seg, prefix = _rows(length)
  prefix = _prefix_for(kind, seg, prefix)
  if prefix_bytes is not None:
    prefix = np.frombuffer(prefix_bytes, bool).reshape(prefix.shape)
  kw = {} if block_size is None else dict(block_size=block_size)
  q, kk, v, cot = _inputs(length, h, k)
  out, grads = _outputs_and_grads(_impl(name, **kw), q, kk, v, seg, prefix,
                                  cot)
  return seg, out, grads


def _max_diffs(a, b):
  """Largest |a - b| over real-token outputs, and over each gradient
  (relative to the reference gradient's largest entry when above 1)."""
  seg, out, grads = a
  _, ref_out, ref_grads = b
  assert np.isfinite(out).all()  # padding rows too
  assert min(np.abs(g).max() for g in ref_grads) > 0.1  # gradients are real
  diffs = [np.abs(out - ref_out)[seg != 0].max()]
  diffs += [np.abs(g - r).max() / max(1.0, np.abs(r).max())
            for g, r in zip(grads, ref_grads)]
  return diffs


@pytest.mark.parametrize("kind", ["causal", "prefix", "bidirectional"])
@pytest.mark.parametrize("name", ["splash", "dot_product"])
def test_equals_the_reference_forward_and_gradients(name, kind):
  # 4 query heads on 2 KV heads (GQA, query head h reads KV head h // 2)
  diffs = _max_diffs(_result(name, kind), _result("reference", kind))
  assert max(diffs) < TOL, diffs


def test_splash_multi_tile_and_multi_head_attention():
  # 128-wide tiles on L 256: the causal pass skips the tile above the
  # diagonal and accumulates over two key tiles; K == H (no grouping).
  diffs = _max_diffs(_result("splash", h=2, k=2, block_size=128),
                     _result("reference", h=2, k=2))
  assert max(diffs) < TOL, diffs


def test_a_wrong_mask_fails_the_comparison():
  """Negative control: off by one at a prefix boundary, or the prefix lost."""
  seg, prefix = _rows(256)
  longer = prefix.copy()
  longer[0, 30] = True  # document 1 of row 0: prefix 31 instead of 30
  diffs = _max_diffs(_result("splash"),
                     _result("reference", prefix_bytes=longer.tobytes()))
  assert diffs[0] > 1e-3 and max(diffs[1:]) > 1e-3, diffs
  causal = _max_diffs(_result("splash"), _result("reference", "causal"))
  assert causal[0] > 1e-3, causal


def test_padding_attends_nothing_real_and_stays_finite():
  seg, prefix = _rows(256)
  q, k, v, _ = _inputs(256, 2, 1)
  # rows 2, 3: rows 0, 1 with the padding tokens' keys and values changed
  pad = seg == 0
  k2, v2 = k.copy(), v.copy()
  k2[pad], v2[pad] = 7.0, -7.0
  tile = lambda x, y: np.concatenate([x, y])  # noqa: E731
  args = (tile(q, q), tile(k, k2), tile(v, v2), tile(seg, seg),
          tile(prefix, prefix))
  for name in ("reference", "splash", "dot_product"):
    out = np.asarray(jax.jit(_impl(name))(*args))
    assert np.isfinite(out).all(), name
    np.testing.assert_array_equal(out[:2][~pad], out[2:][~pad], err_msg=name)


def test_attend_dispatches_by_name_and_rejects_unknown():
  seg, prefix = _rows(256)
  q, k, v, _ = _inputs(256, 2, 1)
  ref = np.asarray(_impl("reference")(q, k, v, seg, prefix))
  for name in ("auto", "reference", "dot_product", "splash"):
    out = np.asarray(jax.jit(functools.partial(
        attention.attend, scale=16 ** -0.5, implementation=name))(
            q, k, v, seg, prefix))
    np.testing.assert_allclose(out[seg != 0], ref[seg != 0], atol=TOL)
  with pytest.raises(ValueError, match="unknown attention"):
    attention.attend(q, k, v, seg, prefix, scale=1.0, implementation="flash")


def test_splash_rejects_lengths_without_a_tile():
  assert [attention.splash_block_size(n) for n in (128, 256, 384, 640, 1024,
                                                   2048, 100, 64)] == \
      [128, 256, 384, 128, 512, 512, None, None]
  seg, prefix = _rows(256)
  q, k, v, _ = _inputs(256, 2, 1)
  with pytest.raises(ValueError, match="multiple of 128"):
    _impl("splash")(q[:, :200], k[:, :200], v[:, :200], seg[:, :200],
                    prefix[:, :200])
  with pytest.raises(ValueError, match="block 192"):
    _impl("splash", block_size=192)(q, k, v, seg, prefix)


def test_resolve_auto_per_platform():
  r = attention.resolve
  assert r("auto", "cpu") == "reference"
  assert r("auto", "tpu", seq_len=2048) == "splash"
  assert r("auto", "tpu", seq_len=1000) == "reference"  # no 128-multiple tile
  assert r("auto", "gpu", dtype="bfloat16", seq_len=2048, d_head=64) == \
      "dot_product"
  assert r("auto", "gpu", dtype="float32", d_head=64) == "reference"
  assert r("auto", "gpu", dtype="bfloat16", d_head=12) == "reference"
  assert r("auto", "gpu", dtype="bfloat16", d_head=256) == "reference"
  for name in ("reference", "splash", "dot_product"):
    assert r(name, "cpu") == name
  with pytest.raises(ValueError, match="unknown attention"):
    r("flash", "cpu")
  assert attention.dot_product_backend("gpu", jnp.bfloat16) == "cudnn"
  assert attention.dot_product_backend("gpu", jnp.float32) is None
  assert attention.dot_product_backend("cpu", jnp.bfloat16) is None


def test_resolve_config_replaces_auto_and_leaves_the_input():
  c = tiny_config()
  assert c.model.attention == "auto"
  out = attention.resolve_config(c, "cpu")
  assert out.model.attention == "reference" and c.model.attention == "auto"
  assert attention.resolve_config(c, "tpu").model.attention == "reference"
  c.seq_len = 256
  assert attention.resolve_config(c, "tpu").model.attention == "splash"
  c.model.attention = "dot_product"
  assert attention.resolve_config(c, "tpu").model.attention == "dot_product"
  assert isinstance(out, ml_collections.ConfigDict)
  # the hash sees the resolved name: auto and reference on CPU are one run
  a, b = tiny_config(), tiny_config(**{"model.attention": "reference"})
  assert identity.identity_hash(a, platform="cpu") == \
      identity.identity_hash(b, platform="cpu")
  # ... and both are the run they were before the field existed
  # (tests/test_config.py pins that identity; rows read as before).
  b.data.row_order = "stream"
  assert identity.identity_hash(b, "h", platform="cpu") == "cab8599809a9"


def test_config_validation_names_the_field():
  validation.validate(tiny_config(**{"seq_len": 256,
                                     "model.attention": "splash"}))
  with pytest.raises(config_lib.ConfigError, match=r"config\.seq_len: .*"
                     r"multiple of 128"):
    validation.validate(tiny_config(**{"model.attention": "splash"}))
  with pytest.raises(config_lib.ConfigError, match=r"config\.model\.attention"):
    validation.validate(tiny_config(**{"model.attention": "flash"}))
  with pytest.raises(config_lib.ConfigError,
                     match=r"config\.model\.remat_policy"):
    validation.validate(tiny_config(**{"model.remat_policy": "dots"}))
  assert validation._CHOICES["model.attention"] == attention.IMPLEMENTATIONS  # pylint: disable=protected-access
