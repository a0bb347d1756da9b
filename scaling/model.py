"""Decoder-only Transformer (Flax linen) with logical axis names on every parameter.

Shapes use B = batch, L = seq_len, D = d_model, H = n_heads, K = n_kv_heads,
G = H // K (queries per KV head), Dh = d_head, F = d_ff, V = vocab_size.

Architecture (no biases anywhere): token embedding [V, D] (+ learned position
embedding [L, D] when ``positions == "learned"``; sinusoidal positions add a
fixed table, RoPE rotates queries and keys); ``n_layers`` pre-norm blocks
``x += Attn(Norm(x)); x += MLP(Norm(x))``; a final norm; logits in float32,
from the transposed embedding when ``tie_embeddings`` else from an
unembedding [D, V].

Attention for every kind uses one rule (DESIGN.md §4, packing and objectives):
``allow(q, k) = seg[q] == seg[k] != 0 and (k <= q or prefix_mask[k])``,
so packed documents never see each other; ``prefix_mask`` all False is causal
attention, all True is bidirectional (masked LM). ``model.attention`` picks
how it is computed (:mod:`scaling.attention`: reference einsum, Pallas splash,
``jax.nn.dot_product_attention``); ``model.remat`` with ``model.remat_policy``
rematerialises each block (:func:`remat_policy`).

Decoding (:mod:`scaling.decode`) calls the same model with a :class:`KVCache`:
``__call__(..., cache=cache)`` runs only the T new tokens (a prompt, then one
token per step) and returns ``(logits [B, T, V], updated cache)``. Their keys
and values are written into cache slots ``index … index + T - 1`` (the same
slots in every row) and they attend to every cached slot the same rule
allows, with slot numbers in place of row positions: ``allow(q, k) =
seg[q] == seg[k] != 0 and (slot_k <= slot_q or prefix[k])``. One sequence per
row (segment 1, left padding with segment 0), positions per token, so RoPE,
learned and sinusoidal positions are those of full recomputation.

``model.parametrization`` (:mod:`scaling.parametrization`: SP, μP,
CompleteP) sets every init std, the attention scale, the residual-branch and
logit multipliers; :func:`build` derives it from the run's and the base
model's parameter shapes (:func:`param_shapes`). Activations a coordinate
check reads are sown into the ``intermediates`` collection (``embed``,
``attn_out``, ``mlp_hidden``, ``mlp_out``, ``residual``, ``logits``); they
cost nothing unless ``apply`` is asked for that collection.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from scaling import attention as attention_lib
from scaling import config as config_lib
from scaling import parametrization as param_lib

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(cfg):
  """The jnp compute dtype of ``cfg.dtype`` (``config.model``) for the
  platform being traced for (``auto``: ``scaling.config.compute_dtype``)."""
  return _DTYPES[config_lib.compute_dtype(cfg.dtype,
                                          attention_lib.target_platform())]


def _dense_init(std):
  return nn.initializers.zeros if std == 0 else nn.initializers.normal(stddev=std)


def _param(module, name, shape, axes, std, dtype):
  return module.param(
      name, nn.with_logical_partitioning(_dense_init(std), axes), shape, dtype)


def _matmul(x, w, dtype):
  """``x[..., K] @ w[K..., N...]`` as one 2-D GEMM over all leading axes of x.

  XLA:CPU lowers the weight gradient of a 3-D ``einsum`` (contracting batch
  and length together) far slower than a plain 2-D GEMM, so every projection
  flattens its input rows first. ``w`` may have several input dims (matched
  to x's trailing dims) and several output dims.
  """
  n_in = x.ndim - 2 if w.ndim == 3 and x.ndim == 4 else 1
  lead, k = x.shape[:x.ndim - n_in], x.shape[x.ndim - n_in:]
  out = w.shape[n_in:]
  x2 = x.reshape(-1, math.prod(k)).astype(dtype)
  w2 = w.reshape(math.prod(k), math.prod(out)).astype(dtype)
  return (x2 @ w2).reshape(*lead, *out)


def _constrain(x, axes):
  return nn.with_logical_constraint(x, axes)


def _scaled(x, multiplier: float):
  """``x * multiplier``, left out of the program when it is exactly 1."""
  return x if multiplier == 1.0 else x * multiplier


class Norm(nn.Module):
  """RMSNorm (Zhang & Sennrich 2019) or LayerNorm over the last axis, in float32."""

  kind: str
  param_dtype: Any = jnp.float32
  eps: float = 1e-6

  @nn.compact
  def __call__(self, x_BxLxD):
    d = x_BxLxD.shape[-1]
    x = x_BxLxD.astype(jnp.float32)
    scale = self.param("scale", nn.with_logical_partitioning(
        nn.initializers.ones, ("embed",)), (d,), self.param_dtype)
    if self.kind == "rmsnorm":
      y = x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + self.eps)
      return (y * scale).astype(x_BxLxD.dtype)
    bias = self.param("bias", nn.with_logical_partitioning(
        nn.initializers.zeros, ("embed",)), (d,), self.param_dtype)
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    y = (x - mean) * jax.lax.rsqrt(var + self.eps)
    return (y * scale + bias).astype(x_BxLxD.dtype)


def rope(x_BxLxHxDh, positions_BxL, theta: float):
  """Rotary position embedding (Su et al. 2021), rotating half-split pairs."""
  dh = x_BxLxHxDh.shape[-1]
  freq = theta ** (-jnp.arange(0, dh // 2, dtype=jnp.float32) * 2.0 / dh)
  angle_BxLx1xF = (positions_BxL[..., None, None].astype(jnp.float32) * freq)
  sin, cos = jnp.sin(angle_BxLx1xF), jnp.cos(angle_BxLx1xF)
  x = x_BxLxHxDh.astype(jnp.float32)
  x1, x2 = x[..., : dh // 2], x[..., dh // 2:]
  out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
  return out.astype(x_BxLxHxDh.dtype)


def sinusoidal(positions_BxL, d_model: int):
  """Fixed sinusoidal position table (Vaswani et al. 2017, §3.5), [B, L, D]."""
  half = d_model // 2
  freq = 10000.0 ** (-jnp.arange(half, dtype=jnp.float32) / half)
  angle = positions_BxL[..., None].astype(jnp.float32) * freq
  table = jnp.concatenate([jnp.sin(angle), jnp.cos(angle)], axis=-1)
  if d_model % 2:
    table = jnp.pad(table, ((0, 0), (0, 0), (0, 1)))
  return table


def attention_mask(segment_ids_BxL, prefix_mask_BxL) -> attention_lib.Masking:
  """The mask rule's inputs for every layer: the [B, L] segment ids and prefix
  mask, and the boolean [B, 1, L, L] rule (same non-zero segment and
  (k <= q or k in prefix)), built once; an implementation that does not use
  the dense mask (splash) leaves it to dead-code elimination."""
  return attention_lib.masking(segment_ids_BxL, prefix_mask_BxL)


class KVCache(NamedTuple):
  """Keys and values of every layer for decoding, and the slots' mask inputs.

  N = n_layers, B rows, S slots, K = n_kv_heads, Dh = d_head. Slot s of row
  b holds the key and value of the token written there (RoPE applied), its
  segment id (0: empty or padding, never attended) and prefix flag.

  Attributes:
    k_NxBxSxKxDh, v_NxBxSxKxDh: per-layer keys and values (the compute
      dtype, :func:`compute_dtype`).
    segment_ids_BxS: int32.
    prefix_mask_BxS: bool.
    index: int32 scalar, the next slot to write.
  """
  k_NxBxSxKxDh: jax.Array
  v_NxBxSxKxDh: jax.Array
  segment_ids_BxS: jax.Array
  prefix_mask_BxS: jax.Array
  index: jax.Array


def empty_cache(cfg, batch: int, slots: int) -> KVCache:
  """An empty :class:`KVCache` of ``slots`` slots for ``batch`` rows.

  Args:
    cfg: ``config.model``.
    batch: B, rows decoded together.
    slots: S, the most tokens (prompt and generated) a row will hold.
  """
  shape = (cfg.n_layers, batch, slots, cfg.n_kv_heads, config_lib.d_head(cfg))
  dtype = compute_dtype(cfg)
  return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype),
                 jnp.zeros((batch, slots), jnp.int32),
                 jnp.zeros((batch, slots), bool), jnp.zeros((), jnp.int32))


def cached_mask(cache: KVCache, segment_ids_BxT, prefix_mask_BxT):
  """The cache after writing T new tokens' mask inputs at ``cache.index``, and
  the boolean [B, 1, T, S] rule of those queries over every slot.

  Returns:
    ``(segment_ids_BxS, prefix_mask_BxS, allowed_Bx1xTxS)``.
  """
  t = segment_ids_BxT.shape[1]
  start = (jnp.zeros((), jnp.int32), cache.index)
  seg_BxS = jax.lax.dynamic_update_slice(
      cache.segment_ids_BxS, segment_ids_BxT.astype(jnp.int32), start)
  prefix_BxS = jax.lax.dynamic_update_slice(
      cache.prefix_mask_BxS, prefix_mask_BxT.astype(bool), start)
  slot_q = cache.index + jnp.arange(t)
  slot_k = jnp.arange(seg_BxS.shape[1])
  earlier_TxS = slot_k[None, :] <= slot_q[:, None]
  seg_q = segment_ids_BxT[:, :, None]
  allowed = ((seg_q == seg_BxS[:, None, :]) & (seg_q != 0)
             & (earlier_TxS[None] | prefix_BxS[:, None, :]))
  return seg_BxS, prefix_BxS, allowed[:, None]


class Attention(nn.Module):
  """Multi-head attention with grouped KV heads (Ainslie et al. 2023).

  ``cfg.attention`` picks the implementation (:mod:`scaling.attention`;
  ``auto`` is resolved at trace time for the platform compiled for).
  """

  cfg: Any
  par: param_lib.Parametrization

  @nn.compact
  def __call__(self, x_BxLxD, positions_BxL, masks, layer_kv=None):
    """Training and scoring: ``masks`` a :class:`attention_lib.Masking`,
    returns [B, L, D]. Decoding: ``masks`` = (allowed [B, 1, T, S], write
    index), ``layer_kv`` this layer's cached (keys, values) [B, S, K, Dh];
    returns ([B, T, D], updated (keys, values))."""
    c, p = self.cfg, self.par
    dtype, pdtype = compute_dtype(c), _DTYPES[c.param_dtype]
    d, h, k, dh = c.d_model, c.n_heads, c.n_kv_heads, config_lib.d_head(c)
    wq = _param(self, "q", (d, h, dh), ("embed", "heads", "kv"),
                p.init_std("attn/q"), pdtype)
    wk = _param(self, "k", (d, k, dh), ("embed", "kv_heads", "kv"),
                p.init_std("attn/k"), pdtype)
    wv = _param(self, "v", (d, k, dh), ("embed", "kv_heads", "kv"),
                p.init_std("attn/v"), pdtype)
    wo = _param(self, "o", (h, dh, d), ("heads", "kv", "embed"),
                p.init_std("attn/o"), pdtype)
    x = x_BxLxD.astype(dtype)
    q_BxLxHxDh = _matmul(x, wq, dtype)
    k_BxLxKxDh = _matmul(x, wk, dtype)
    v_BxLxKxDh = _matmul(x, wv, dtype)
    if c.positions == "rope":
      q_BxLxHxDh = rope(q_BxLxHxDh, positions_BxL, c.rope_theta)
      k_BxLxKxDh = rope(k_BxLxKxDh, positions_BxL, c.rope_theta)
    q_BxLxHxDh = _constrain(q_BxLxHxDh, ("batch", "length", "heads", "kv"))
    if layer_kv is not None:
      allowed_Bx1xTxS, index = masks
      start = (0, index, 0, 0)
      k_BxSxKxDh = jax.lax.dynamic_update_slice(
          layer_kv[0], k_BxLxKxDh.astype(layer_kv[0].dtype), start)
      v_BxSxKxDh = jax.lax.dynamic_update_slice(
          layer_kv[1], v_BxLxKxDh.astype(layer_kv[1].dtype), start)
      out_BxLxHxDh = attention_lib.attend_cached(
          q_BxLxHxDh, k_BxSxKxDh, v_BxSxKxDh, allowed_Bx1xTxS,
          scale=p.attention_scale, implementation=c.attention)
      out_BxLxHxDh = _constrain(out_BxLxHxDh, ("batch", "length", "heads", "kv"))
      return _matmul(out_BxLxHxDh, wo, dtype), (k_BxSxKxDh, v_BxSxKxDh)
    out_BxLxHxDh = attention_lib.attend(
        q_BxLxHxDh, k_BxLxKxDh, v_BxLxKxDh, masks.segment_ids_BxL,
        masks.prefix_mask_BxL, scale=p.attention_scale, implementation=c.attention,
        mask_Bx1xLxL=masks.allowed_Bx1xLxL)
    out_BxLxHxDh = _constrain(out_BxLxHxDh, ("batch", "length", "heads", "kv"))
    return _matmul(out_BxLxHxDh, wo, dtype)


class Mlp(nn.Module):
  """Feed-forward block: gelu/relu (2 matrices) or SwiGLU (Shazeer 2020, 3 matrices)."""

  cfg: Any
  par: param_lib.Parametrization

  @nn.compact
  def __call__(self, x_BxLxD):
    c, p = self.cfg, self.par
    dtype, pdtype = compute_dtype(c), _DTYPES[c.param_dtype]
    x = x_BxLxD.astype(dtype)
    w_in = _param(self, "wi", (c.d_model, c.d_ff), ("embed", "mlp"),
                  p.init_std("mlp/wi"), pdtype)
    w_out = _param(self, "wo", (c.d_ff, c.d_model), ("mlp", "embed"),
                   p.init_std("mlp/wo"), pdtype)
    h_BxLxF = _matmul(x, w_in, dtype)
    if c.mlp == "swiglu":
      w_gate = _param(self, "wg", (c.d_model, c.d_ff), ("embed", "mlp"),
                      p.init_std("mlp/wg"), pdtype)
      h_BxLxF = jax.nn.silu(_matmul(x, w_gate, dtype)) * h_BxLxF
    elif c.mlp == "gelu":
      h_BxLxF = jax.nn.gelu(h_BxLxF)
    else:
      h_BxLxF = jax.nn.relu(h_BxLxF)
    h_BxLxF = _constrain(h_BxLxF, ("batch", "length", "mlp"))
    self.sow("intermediates", "mlp_hidden", h_BxLxF)
    return _matmul(h_BxLxF, w_out, dtype)


def remat_policy(name: str):
  """The ``jax.checkpoint`` policy of ``model.remat_policy`` (with remat on).

  ``full``: ``nothing_saveable``, every block activation is recomputed in the
  backward pass (the least memory; one more forward pass of FLOPs).
  ``dots_saveable``: ``dots_with_no_batch_dims_saveable``: the projection
  outputs are kept, since every projection here is a 2-D GEMM
  (:func:`_matmul`, no batch dims: q, k, v, output, MLP), while the
  attention score and value einsums (batch dims b, h) and elementwise ops
  are recomputed, so no [B, H, L, L] tensor is stored. Plain
  ``dots_saveable`` would also keep the float32 scores.

  Raises:
    ValueError: unknown name.
  """
  policies = {"full": jax.checkpoint_policies.nothing_saveable,
              "dots_saveable":
                  jax.checkpoint_policies.dots_with_no_batch_dims_saveable}
  if name not in policies:
    raise ValueError(f"unknown remat policy {name!r}; use one of "
                     f"{', '.join(policies)}")
  return policies[name]


class Block(nn.Module):
  """Pre-norm Transformer block; signature fits ``nn.scan`` (carry, broadcast).

  ``x += r·Attn(Norm(x)); x += r·MLP(Norm(x))`` with r the parametrisation's
  residual multiplier (CompleteP's m_L^(−α); 1 otherwise).
  """

  cfg: Any
  par: param_lib.Parametrization

  @nn.compact
  def __call__(self, x_BxLxD, positions_BxL, masks, layer_kv=None):
    c, p = self.cfg, self.par
    pdtype = _DTYPES[c.param_dtype]
    attn = Attention(c, p, name="attn")(
        Norm(c.norm, pdtype, name="attn_norm")(x_BxLxD), positions_BxL, masks,
        layer_kv)
    if layer_kv is not None:
      attn, layer_kv = attn
    self.sow("intermediates", "attn_out", attn)
    x = x_BxLxD + _scaled(attn, p.residual_mult)
    mlp = Mlp(c, p, name="mlp")(Norm(c.norm, pdtype, name="mlp_norm")(x))
    self.sow("intermediates", "mlp_out", mlp)
    x = x + _scaled(mlp, p.residual_mult)
    x = _constrain(x, ("batch", "length", "embed"))
    self.sow("intermediates", "residual", x)
    return x, layer_kv


class Transformer(nn.Module):
  """The language model. ``cfg`` is ``config.model``; ``vocab_size`` is padded.

  ``__call__(inputs_BxL, segment_ids_BxL, positions_BxL, prefix_mask_BxL)``
  returns float32 logits [B, L, V]. ``seq_len`` sizes the learned position
  table. ``par`` is the parametrisation (:func:`build` derives it; None
  means SP for ``cfg``). With ``cache=`` a :class:`KVCache` the arrays are
  the T new tokens [B, T] and it returns ``(logits [B, T, V], the cache with
  them written)`` (module docstring).
  """

  cfg: Any
  vocab_size: int
  seq_len: int
  par: param_lib.Parametrization | None = None

  @nn.compact
  def __call__(self, inputs_BxL, segment_ids_BxL, positions_BxL,
               prefix_mask_BxL=None, cache: KVCache | None = None):
    c = self.cfg
    p = self.par if self.par is not None else param_lib.standard(c)
    dtype, pdtype = compute_dtype(c), _DTYPES[c.param_dtype]
    if prefix_mask_BxL is None:
      prefix_mask_BxL = jnp.zeros(inputs_BxL.shape, bool)
    embedding = _param(self, "embedding", (self.vocab_size, c.d_model),
                       ("vocab", "embed"), p.init_std("embedding"), pdtype)
    x = jnp.take(embedding, inputs_BxL, axis=0).astype(dtype)
    if c.positions == "learned":
      pos_table = _param(self, "pos_embedding", (self.seq_len, c.d_model),
                         ("length", "embed"), p.init_std("pos_embedding"),
                         pdtype)
      x = x + jnp.take(pos_table, positions_BxL, axis=0).astype(dtype)
    elif c.positions == "sinusoidal":
      x = x + sinusoidal(positions_BxL, c.d_model).astype(dtype)
    x = _constrain(x, ("batch", "length", "embed"))
    self.sow("intermediates", "embed", x)
    if cache is None:
      mask, kv = attention_mask(segment_ids_BxL, prefix_mask_BxL), None
    else:
      seg_BxS, prefix_BxS, allowed = cached_mask(cache, segment_ids_BxL,
                                                 prefix_mask_BxL)
      mask, kv = (allowed, cache.index), (cache.k_NxBxSxKxDh,
                                          cache.v_NxBxSxKxDh)

    block = Block
    if c.remat:
      block = nn.remat(block, prevent_cse=not c.scan_layers,
                       policy=remat_policy(c.remat_policy))
    if c.scan_layers:
      # The cache's layer axis is scanned with the blocks' parameters.
      in_axes = (nn.broadcast, nn.broadcast) + ((0,) if kv is not None else ())
      x, kv = nn.scan(
          block, variable_axes={"params": 0, "intermediates": 0},
          split_rngs={"params": True},
          in_axes=in_axes, length=c.n_layers,
          metadata_params={nn.PARTITION_NAME: "layers"})(c, p, name="blocks")(
              x, positions_BxL, mask, *(() if kv is None else (kv,)))
    else:
      layers = []
      for i in range(c.n_layers):
        layer_kv = None if kv is None else (kv[0][i], kv[1][i])
        x, layer_kv = block(c, p, name=f"block_{i}")(x, positions_BxL, mask,
                                                     layer_kv)
        layers.append(layer_kv)
      if kv is not None:
        kv = tuple(jnp.stack([layer[j] for layer in layers]) for j in (0, 1))
    x = Norm(c.norm, pdtype, name="final_norm")(x)
    if c.tie_embeddings:
      w_DxV = embedding.T
    else:
      w_DxV = _param(self, "unembedding", (c.d_model, self.vocab_size),
                     ("embed", "vocab"), p.init_std("unembedding"), pdtype)
    b, length, d = x.shape
    logits = jnp.dot(x.reshape(b * length, d).astype(dtype), w_DxV.astype(dtype),
                     preferred_element_type=jnp.float32).reshape(b, length, -1)
    logits = _scaled(logits, p.logit_mult)
    self.sow("intermediates", "logits", logits)
    logits = _constrain(logits, ("batch", "length", "vocab"))
    if cache is None:
      return logits
    return logits, KVCache(kv[0], kv[1], seg_BxS, prefix_BxS,
                           cache.index + inputs_BxL.shape[1])


def init_params(model: Transformer, seed: int):
  """Flax init on a placeholder row: boxed parameters (logical axis names).

  Builds nothing concrete by itself: call it under ``jax.jit`` (parameters)
  or ``jax.eval_shape`` (shapes only, for any mesh).
  """
  shape = (1, model.seq_len)
  ids = jnp.zeros(shape, jnp.int32)
  variables = model.init(jax.random.key(seed), ids, jnp.ones(shape, jnp.int32),
                         ids, jnp.zeros(shape, bool))
  return variables["params"]


def param_shapes(model_cfg, vocab_size: int, seq_len: int) -> dict:
  """``{parameter key: shape}`` of a model section, from shapes alone.

  Keys as :func:`scaling.parametrization.key_of` (``attn/q``, ``embedding``,
  ...); a scanned parameter's shape has its leading layers dim.
  """
  return dict(_param_shapes(ml_collections.FrozenConfigDict(model_cfg),
                            vocab_size, seq_len))


@functools.lru_cache(maxsize=64)
def _param_shapes(cfg, vocab_size: int, seq_len: int):
  model = Transformer(cfg, vocab_size, seq_len, param_lib.standard(cfg))
  boxed = jax.eval_shape(lambda: init_params(model, 0))
  shapes = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(
      boxed, is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned)):
    shapes[param_lib.key_of(path)[0]] = tuple(nn.unbox(leaf).shape)
  return tuple(shapes.items())


def build(config) -> Transformer:
  """The model for a run config (``config.model``, padded vocab, ``seq_len``)
  with its parametrisation (:func:`scaling.parametrization.for_model`).

  Raises:
    ConfigError: a μP/CompleteP config without a whole base shape.
  """
  vocab = config_lib.vocab_size(config)
  cfg = ml_collections.FrozenConfigDict(config.model)
  par = param_lib.for_model(
      cfg, lambda m: param_shapes(m, vocab, config.seq_len))
  return Transformer(cfg, vocab, config.seq_len, par)
