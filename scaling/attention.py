"""Attention implementations behind one signature, chosen by ``model.attention``.

Every implementation computes, for each example and query head,
``out[q] = sum_k softmax_k(scale * q.k)[k] v[k]`` over the keys the model's
one mask rule allows (DESIGN.md §4; :mod:`scaling.model`)::

    allow(q, k) = seg[q] == seg[k] != 0 and (k <= q or prefix_mask[k])

``prefix_mask`` all False is causal attention, all True bidirectional (masked
LM), and a per-example prefix gives prefix LM, UL2's S denoiser and the
span-corruption inputs. Shapes: B batch, L seq_len, H n_heads, K n_kv_heads
(H % K == 0; query head h reads KV head h // (H // K): grouped-query
attention, Ainslie et al. 2023), Dh d_head. ``scale`` is explicit (d_head^-0.5
today, Vaswani et al. 2017 eq. 1; a parameter under μP later).

Padding (segment id 0) attends nothing under the rule; its output never
enters the loss, and every implementation keeps it finite: the reference and
``dot_product`` give a uniform average over all values (every key masked),
splash lets padding attend padding. Outputs of real tokens and all
gradients through them are the same in every implementation.

| ``model.attention`` | what runs | largest per-layer temporary |
|---|---|---|
| ``reference`` | the einsum below (heads-major, GQA by repeating KV heads: the fastest layout on XLA:CPU) | scores and probabilities, [B, H, L, L] float32 |
| ``splash`` | Pallas splash attention (TPU; Pallas interpret mode elsewhere, for tests) | O(B H L): nothing [L, L] |
| ``dot_product`` | ``jax.nn.dot_product_attention``: cuDNN flash attention on GPU, its XLA version elsewhere | the [B, 1, L, L] bool mask (cuDNN: as an additive bias in the compute dtype) |
| ``auto`` | :func:`resolve`: reference on CPU, splash on TPU, dot_product on GPU where cuDNN can run it, else reference | |

Decoding with a key/value cache (:func:`attend_cached`): the reference
einsum for ``reference`` and ``splash`` (the kernel's square 128-tiles cannot
take a 1-token query), ``jax.nn.dot_product_attention``'s XLA version for
``dot_product``.

Choosing before a run: :func:`resolve_config` returns the config with
``auto`` replaced by the implementation this platform runs (call it before
the identity hash); :func:`validate_config` (from ``config.validate``) refuses
what can never run.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from scaling import config as config_lib
from scaling.config import ConfigError

IMPLEMENTATIONS = ("auto", "reference", "splash", "dot_product")
_NEG_INF = -1e30
# Splash tiles: multiples of the TPU lane width (128) that divide seq_len,
# the largest up to this size (larger tiles amortise the per-tile overhead).
_SPLASH_LANES = 128
_SPLASH_MAX_BLOCK = 512
# cuDNN flash attention (jax._src.cudnn.fused_attention_stablehlo): fp16/bf16
# inputs, d_head a multiple of 8 and <= 128 (256 from Hopper on), even L
# when a bias (our mask) is trained through.
_CUDNN_DTYPES = ("bfloat16",)
_CUDNN_MAX_D_HEAD = 128
_said: set = set()


def _say_once(message: str) -> None:
  """Prints ``message`` the first time it is seen in this process."""
  if message not in _said:
    _said.add(message)
    print(message, flush=True)


class Masking(NamedTuple):
  """What every layer's attention needs to apply the mask rule.

  ``allowed_Bx1xLxL`` is the materialised rule (:func:`dense_mask`), built
  once per forward pass for the implementations that use it (reference,
  dot_product); splash reads only the [B, L] arrays, and the unused dense
  mask is removed by dead-code elimination under ``jit``.
  """
  segment_ids_BxL: jax.Array
  prefix_mask_BxL: jax.Array
  allowed_Bx1xLxL: jax.Array


def dense_mask(segment_ids_BxL, prefix_mask_BxL):
  """Boolean [B, 1, L, L] mask: same non-zero segment and (k <= q or k in prefix)."""
  seg_q = segment_ids_BxL[:, :, None]
  seg_k = segment_ids_BxL[:, None, :]
  length = segment_ids_BxL.shape[1]
  causal = jnp.arange(length)[None, :, None] >= jnp.arange(length)[None, None, :]
  visible = causal | prefix_mask_BxL[:, None, :]
  return ((seg_q == seg_k) & (seg_q != 0) & visible)[:, None]


def masking(segment_ids_BxL, prefix_mask_BxL) -> Masking:
  """The :class:`Masking` of a batch: its [B, L] arrays and the dense rule."""
  return Masking(segment_ids_BxL, prefix_mask_BxL,
                 dense_mask(segment_ids_BxL, prefix_mask_BxL))


# ----------------------------------------------------------------------------
# The implementations: one signature
# ----------------------------------------------------------------------------


def attend_reference(q_BxLxHxDh, k_BxLxKxDh, v_BxLxKxDh, segment_ids_BxL,
                     prefix_mask_BxL, *, scale: float, mask_Bx1xLxL=None):
  """Masked softmax attention as two einsums (materialises [B, H, L, L]).

  Logits in float32 (``preferred_element_type``), probabilities cast back to
  the compute dtype of ``q`` before the value product. Masked logits are
  -1e30, so a fully masked row (padding) is a uniform average.

  Args:
    q_BxLxHxDh, k_BxLxKxDh, v_BxLxKxDh: queries, keys, values (RoPE applied).
    segment_ids_BxL: int, 0 = padding. prefix_mask_BxL: bool.
    scale: multiplies q before the score product (d_head^-0.5).
    mask_Bx1xLxL: the precomputed :func:`dense_mask`, built here when None.
  Returns:
    [B, L, H, Dh] in the dtype of ``q``.
  """
  if mask_Bx1xLxL is None:
    mask_Bx1xLxL = dense_mask(segment_ids_BxL, prefix_mask_BxL)
  h, k = q_BxLxHxDh.shape[2], k_BxLxKxDh.shape[2]
  dtype = q_BxLxHxDh.dtype
  # Heads-major layout [B, H, L, Dh]: its backward pass is about twice as
  # fast on XLA:CPU as contracting in the [B, L, H, Dh] layout. Grouped KV
  # heads are repeated to the query heads (same FLOPs, G x KV activations).
  q_BxHxLxDh = jnp.swapaxes(q_BxLxHxDh, 1, 2) * scale
  k_BxHxLxDh = jnp.repeat(jnp.swapaxes(k_BxLxKxDh, 1, 2), h // k, axis=1)
  v_BxHxLxDh = jnp.repeat(jnp.swapaxes(v_BxLxKxDh, 1, 2), h // k, axis=1)
  logits_BxHxLxL = jnp.einsum("bhqd,bhsd->bhqs", q_BxHxLxDh, k_BxHxLxDh,
                              preferred_element_type=jnp.float32)
  logits_BxHxLxL = jnp.where(mask_Bx1xLxL, logits_BxHxLxL, _NEG_INF)
  probs_BxHxLxL = jax.nn.softmax(logits_BxHxLxL, axis=-1).astype(dtype)
  out_BxHxLxDh = jnp.einsum("bhqs,bhsd->bhqd", probs_BxHxLxL, v_BxHxLxDh)
  return jnp.swapaxes(out_BxHxLxDh, 1, 2)


def dot_product_backend(platform: str, dtype) -> str | None:
  """``implementation=`` for ``jax.nn.dot_product_attention``: ``"cudnn"`` on
  GPU with a cuDNN dtype (bfloat16), else None (its XLA version)."""
  return "cudnn" if platform == "gpu" and jnp.dtype(dtype).name in _CUDNN_DTYPES \
      else None


def attend_dot_product(q_BxLxHxDh, k_BxLxKxDh, v_BxLxKxDh, segment_ids_BxL,
                       prefix_mask_BxL, *, scale: float, mask_Bx1xLxL=None,
                       backend: str | None = None):
  """``jax.nn.dot_product_attention`` with the mask rule passed as ``mask``.

  It takes no segment ids, and our rule (packed documents, per-example
  prefixes) is none of its built-in masks (``is_causal``, sequence lengths,
  local windows), so the rule is materialised as a [B, 1, L, L] bool mask
  shared by all heads (1 byte per entry; cuDNN turns it into an additive
  bias of that shape in the compute dtype, and visits every tile since the
  causal skip needs ``is_causal``). GQA is native (no KV repeat). The scale
  multiplies the float32 logits rather than q, so results differ from the
  reference by rounding only.

  cuDNN (``backend="cudnn"``, GPU only) needs float16/bfloat16 inputs,
  d_head a multiple of 8 and <= 128 (<= 256 on Hopper and later) and, when
  training through a bias, even L; it raises NotImplementedError otherwise.
  cuDNN's packed layout (``q_offsets``/``kv_offsets``, Hopper and later)
  would avoid the dense mask but is not part of the public
  ``jax.nn.dot_product_attention``.

  Args:
    as :func:`attend_reference`; ``backend``: None (XLA) or ``"cudnn"``.
  Returns:
    [B, L, H, Dh] in the dtype of ``q``.
  """
  if mask_Bx1xLxL is None:
    mask_Bx1xLxL = dense_mask(segment_ids_BxL, prefix_mask_BxL)
  return jax.nn.dot_product_attention(
      q_BxLxHxDh, k_BxLxKxDh, v_BxLxKxDh, mask=mask_Bx1xLxL, scale=scale,
      implementation=backend)


def splash_block_size(seq_len: int) -> int | None:
  """The splash tile (queries and keys) for ``seq_len``, or None if none fits.

  The largest multiple of 128 (the TPU lane width, which the kernel needs of
  every tile when segment ids are used) that divides ``seq_len``, capped at
  512.
  """
  for block in range(min(_SPLASH_MAX_BLOCK, seq_len), 0, -_SPLASH_LANES):
    if block % _SPLASH_LANES == 0 and seq_len % block == 0:
      return block
  return None


def _splash_kernel(mask, n_heads: int, block: int, interpret: bool):
  from jax.experimental.pallas.ops.tpu import splash_attention as splash  # pylint: disable=import-outside-toplevel
  sizes = splash.BlockSizes(
      block_q=block, block_kv=block, block_kv_compute=block,
      block_q_dkv=block, block_kv_dkv=block, block_kv_dkv_compute=block,
      block_q_dq=block, block_kv_dq=block)
  return splash.make_splash_mha(
      splash.MultiHeadMask([mask] * n_heads), block_sizes=sizes,
      head_shards=1, q_seq_shards=1, interpret=interpret)


def _splash_local(q_BxLxHxDh, k_BxLxKxDh, v_BxLxKxDh, segment_ids_BxL,
                  prefix_mask_BxL, *, scale: float, interpret: bool,
                  block_size: int | None):
  """Splash attention on this device's rows and heads (no mesh inside)."""
  from jax.experimental.pallas.ops.tpu import splash_attention as splash  # pylint: disable=import-outside-toplevel
  _, length, h, _ = q_BxLxHxDh.shape
  block = splash_block_size(length) if block_size is None else block_size
  if block is None or block % _SPLASH_LANES or length % block:
    raise ValueError(
        f"splash attention tiles the sequence in blocks of a multiple of "
        f"{_SPLASH_LANES} dividing seq_len; seq_len {length}, block {block}")
  # The kernel works on one example: q [H, L, Dh], k and v [K, L, Dh]
  # (query head h reads KV head h // (H // K): GQA without a repeat). It has
  # no scale argument: q is scaled first, as in the reference.
  q_BxHxLxDh = jnp.swapaxes(q_BxLxHxDh, 1, 2) * scale
  k_BxKxLxDh = jnp.swapaxes(k_BxLxKxDh, 1, 2)
  v_BxKxLxDh = jnp.swapaxes(v_BxLxKxDh, 1, 2)
  shape = (length, length)

  def run(mask, q_ids_BxL, kv_ids_BxL):
    kernel = _splash_kernel(mask, h, block, interpret)
    per_example = lambda q, k, v, qi, ki: kernel(  # noqa: E731
        q, k, v, segment_ids=splash.SegmentIds(qi, ki))
    return jax.vmap(per_example)(q_BxHxLxDh, k_BxKxLxDh, v_BxKxLxDh,
                                 q_ids_BxL, kv_ids_BxL)

  seg, prefix = segment_ids_BxL.astype(jnp.int32), prefix_mask_BxL

  def causal():  # seg equal and k <= q
    return run(splash.CausalMask(shape), seg, seg)

  def bidirectional():  # seg equal
    return run(splash.FullMask(shape), seg, seg)

  def with_prefix():
    # With each segment's prefix an initial run of it, a prefix query sees
    # exactly its segment's prefix keys and a later query sees its segment
    # causally: two passes over disjoint QUERY sets, each the kernel's own
    # (differentiable) attention. Prefix pass: key ids -1 outside the
    # prefix, which no query carries. Rows left without keys there are
    # finite averages and discarded with zero cotangent.
    kv_ids = jnp.where(prefix, seg, -1)
    out_prefix = run(splash.FullMask(shape), seg, kv_ids)
    return jnp.where(prefix[:, None, :, None], out_prefix, causal())

  real = seg != 0
  index = jnp.where(jnp.all(prefix | ~real), 1,
                    jnp.where(jnp.any(prefix & real), 2, 0))
  out_BxHxLxDh = jax.lax.switch(index, (causal, bidirectional, with_prefix))
  return jnp.swapaxes(out_BxHxLxDh, 1, 2)


def attend_splash(q_BxLxHxDh, k_BxLxKxDh, v_BxLxKxDh, segment_ids_BxL,
                  prefix_mask_BxL, *, scale: float, interpret: bool = False,
                  block_size: int | None = None, mask_Bx1xLxL=None):
  """Pallas splash attention (block-sparse flash attention for TPU).

  The kernel (``jax.experimental.pallas.ops.tpu.splash_attention``) applies
  a static per-head mask (``CausalMask``, ``FullMask``) and'ed with
  ``SegmentIds`` equality, per example (vmapped over the batch), forward and
  backward in O(L) memory per head. Our rule maps onto it as
  - no prefix in the batch: ``CausalMask`` with the segment ids (tiles above
    the diagonal are skipped: half the work);
  - every real token in the prefix (masked LM): ``FullMask``;
  - per-example prefixes: the kernel's masks are static per head, not per
    example, so a prefix query runs in a second ``FullMask`` pass whose key
    segment ids are -1 outside the prefix, and the two outputs are selected
    per query. Exact when each segment's prefix is an initial run of it
    (``prefix_mask`` True then False within a segment), which every
    objective here produces (``objectives.lm.shifted_example``); such a
    batch costs 1.5x full attention FLOPs.
  The choice is a ``lax.switch`` on the (local) batch, so a causal-LM batch
  never pays for the prefix pass.

  Under a mesh (``jax.set_mesh``) the kernel runs in ``shard_map`` over the
  batch and head axes that the active logical-axis rules give ``batch`` and
  ``heads``/``kv_heads`` (sequence never sharded: the kernel needs whole
  keys), so n_heads and n_kv_heads must divide by the head axis (config
  validation checks the tensor axis).

  Args:
    as :func:`attend_reference` (``mask_Bx1xLxL`` is ignored);
    interpret: run the kernel in Pallas interpret mode (CPU, tests).
    block_size: the query and key tile; None: :func:`splash_block_size`.
  Returns:
    [B, L, H, Dh] in the dtype of ``q``.
  Raises:
    ValueError: L is not a multiple of 128 (the kernel's tile width), or
      ``block_size`` is not a multiple of 128 dividing L.
  """
  del mask_Bx1xLxL
  local = functools.partial(_splash_local, scale=scale, interpret=interpret,
                            block_size=block_size)
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or mesh.size == 1:
    return local(q_BxLxHxDh, k_BxLxKxDh, v_BxLxKxDh, segment_ids_BxL,
                 prefix_mask_BxL)
  import flax.linen as nn  # pylint: disable=import-outside-toplevel
  from jax.sharding import PartitionSpec as P  # pylint: disable=import-outside-toplevel

  def spec(shape, *logical):
    # A dimension the mesh axes do not divide (the batch of 1 that model
    # init traces) stays whole on every device.
    axes = nn.logical_to_mesh_axes(logical) or (None,) * len(logical)
    out = []
    for size, ax in zip(shape, axes):
      names = () if ax is None else (ax,) if isinstance(ax, str) else tuple(ax)
      n = 1
      for name in names:
        n *= mesh.shape[name]
      out.append(ax if size % n == 0 else None)
    return P(*out)

  q_spec = spec(q_BxLxHxDh.shape, "batch", None, "heads", None)
  kv_spec = spec(k_BxLxKxDh.shape, "batch", None, "kv_heads", None)
  row_spec = spec(segment_ids_BxL.shape, "batch", None)
  if q_spec[2] != kv_spec[2]:  # query and KV heads must split alike (GQA map)
    q_spec = P(q_spec[0], None, None, None)
    kv_spec = P(kv_spec[0], None, None, None)
  return jax.shard_map(
      local, mesh=mesh, in_specs=(q_spec, kv_spec, kv_spec, row_spec, row_spec),
      out_specs=q_spec, check_vma=False)(
          q_BxLxHxDh, k_BxLxKxDh, v_BxLxKxDh, segment_ids_BxL, prefix_mask_BxL)


def target_platform() -> str:
  """The platform being compiled for: that of the active mesh's devices
  (``jax.set_mesh``; a TPU topology compiles for TPU on a CPU host), else
  ``jax.default_backend()``."""
  device = getattr(jax.sharding.get_abstract_mesh(), "abstract_device", None)
  return device.platform if device is not None else jax.default_backend()


def attend(q_BxLxHxDh, k_BxLxKxDh, v_BxLxKxDh, segment_ids_BxL,
           prefix_mask_BxL, *, scale: float, implementation: str,
           interpret: bool | None = None, mask_Bx1xLxL=None):
  """Attention by implementation name (module docstring), one signature.

  Args:
    q_BxLxHxDh: queries; k_BxLxKxDh, v_BxLxKxDh: keys and values (K divides
      H); RoPE already applied.
    segment_ids_BxL: int, 0 = padding; prefix_mask_BxL: bool.
    scale: the score scale (d_head^-0.5).
    implementation: ``reference``, ``splash``, ``dot_product``, or ``auto``
      (:func:`resolve` for :func:`target_platform`).
    interpret: splash only; None: interpret mode unless compiling for TPU.
    mask_Bx1xLxL: optional precomputed :func:`dense_mask` (reference and
      dot_product use it instead of building their own).
  Returns:
    [B, L, H, Dh] in the dtype of ``q``.
  Raises:
    ValueError: unknown implementation; splash with L not a multiple of 128.
  """
  platform = target_platform()
  if implementation == "auto":
    implementation = resolve(implementation, platform,
                             dtype=q_BxLxHxDh.dtype.name,
                             seq_len=q_BxLxHxDh.shape[1],
                             d_head=q_BxLxHxDh.shape[-1])
  args = (q_BxLxHxDh, k_BxLxKxDh, v_BxLxKxDh, segment_ids_BxL, prefix_mask_BxL)
  if implementation == "reference":
    return attend_reference(*args, scale=scale, mask_Bx1xLxL=mask_Bx1xLxL)
  if implementation == "dot_product":
    backend = dot_product_backend(platform, q_BxLxHxDh.dtype)
    if backend is None and platform == "gpu":
      _say_once(f"model.attention=dot_product: cuDNN needs bfloat16 compute, "
                f"got {q_BxLxHxDh.dtype.name}; running its XLA version (the "
                "reference's memory, set model.dtype=bfloat16 for cuDNN)")
    return attend_dot_product(*args, scale=scale, mask_Bx1xLxL=mask_Bx1xLxL,
                              backend=backend)
  if implementation == "splash":
    if interpret is None:
      interpret = platform != "tpu"
      if interpret:
        _say_once(f"model.attention=splash on {platform}: the Pallas kernel "
                  "runs in interpret mode (correct but slow; for tests)")
    return attend_splash(*args, scale=scale, interpret=interpret)
  raise ValueError(f"unknown attention implementation {implementation!r}; "
                   f"use one of {', '.join(IMPLEMENTATIONS)}")


def attend_cached(q_BxTxHxDh, k_BxSxKxDh, v_BxSxKxDh, mask_Bx1xTxS, *,
                  scale: float, implementation: str):
  """Attention of T new queries over the S slots of a key/value cache.

  The decoding path (:class:`scaling.model.KVCache`): a prompt (T = its
  length) and then one token per step (T = 1) attend to every cached slot
  that ``mask_Bx1xTxS`` (:func:`scaling.model.cached_mask`, the model's
  rule on cache slots) allows. Per implementation:

  * ``reference``: :func:`attend_reference`'s einsums on the rectangular
    [B, H, T, S] scores (the same arithmetic as full recomputation);
  * ``dot_product``: ``jax.nn.dot_product_attention`` with the mask, its XLA
    version (cuDNN's fused kernel is not used for the cache: a 1-token query
    block reads each cached key once, which XLA does as well);
  * ``splash``: the reference einsums. The splash kernel tiles queries and
    keys in square blocks of 128 and cannot take a 1-token query, and a
    decoding step is memory-bound on the cache, which the einsum reads once;
  * ``auto``: resolved as in :func:`attend`, then as above.

  Args:
    q_BxTxHxDh: the new tokens' queries (RoPE applied).
    k_BxSxKxDh, v_BxSxKxDh: the cache's keys and values, the new tokens
      already written.
    mask_Bx1xTxS: bool, which slots each query may attend.
    scale: the score scale (the parametrisation's: d_head^-0.5 under SP).
    implementation: ``model.attention``.
  Returns:
    [B, T, H, Dh] in the dtype of ``q``.
  Raises:
    ValueError: unknown implementation.
  """
  if implementation == "auto":
    implementation = resolve(implementation, target_platform(),
                             dtype=q_BxTxHxDh.dtype.name,
                             d_head=q_BxTxHxDh.shape[-1])
  args = (q_BxTxHxDh, k_BxSxKxDh, v_BxSxKxDh, None, None)
  if implementation in ("reference", "splash"):
    return attend_reference(*args, scale=scale, mask_Bx1xLxL=mask_Bx1xTxS)
  if implementation == "dot_product":
    return attend_dot_product(*args, scale=scale, mask_Bx1xLxL=mask_Bx1xTxS)
  raise ValueError(f"unknown attention implementation {implementation!r}; "
                   f"use one of {', '.join(IMPLEMENTATIONS)}")


# ----------------------------------------------------------------------------
# Choosing an implementation
# ----------------------------------------------------------------------------


def resolve(name: str, platform: str, *, dtype: str = "float32",
            seq_len: int | None = None, d_head: int | None = None) -> str:
  """The implementation ``name`` runs on ``platform`` (``auto`` resolved).

  ``auto``: ``cpu`` -> reference (fastest on XLA:CPU at our sizes); ``tpu``
  -> splash when a splash tile divides ``seq_len`` (a multiple of 128), else
  reference; ``gpu`` -> dot_product when cuDNN can run it (``dtype``
  bfloat16, ``d_head`` a multiple of 8 and <= 128, even ``seq_len``), else
  reference; any other platform -> reference. Other names are returned as
  they are. ``seq_len`` and ``d_head`` None mean "assume they fit".

  Raises:
    ValueError: unknown name.
  """
  if name not in IMPLEMENTATIONS:
    raise ValueError(f"unknown attention implementation {name!r}; use one "
                     f"of {', '.join(IMPLEMENTATIONS)}")
  if name != "auto":
    return name
  if platform == "tpu":
    if seq_len is None or splash_block_size(seq_len) is not None:
      return "splash"
    return "reference"
  if platform == "gpu":
    fits = (dtype in _CUDNN_DTYPES
            and (d_head is None or (d_head % 8 == 0 and d_head <= _CUDNN_MAX_D_HEAD))
            and (seq_len is None or seq_len % 2 == 0))
    return "dot_product" if fits else "reference"
  return "reference"


def resolve_config(config, platform: str | None = None):
  """A copy of a run config with ``model.attention`` resolved for ``platform``.

  Called by :func:`scaling.identity.resolved` before hashing, so a run's identity
  names the attention that computes it rather than ``auto``.

  Args:
    config: the run config (``ml_collections.ConfigDict``), validated.
    platform: ``cpu``, ``gpu`` or ``tpu``; None: ``jax.default_backend()``.
  Returns:
    A new ConfigDict; ``config`` is not modified.
  """
  platform = jax.default_backend() if platform is None else platform
  out = ml_collections.ConfigDict(config.to_dict())
  m = out.model
  m.attention = resolve(m.attention, platform,
                        dtype=config_lib.compute_dtype(m.dtype, platform),
                        seq_len=out.seq_len, d_head=config_lib.d_head(m))
  return out


def validate_config(config) -> None:
  """Refuses an attention choice that can never run (platform-independent).

  The name itself is checked with the other choices in
  ``scaling.validation.validate``.

  Raises:
    ConfigError: (``seq_len``) splash with a seq_len that is not a multiple
      of 128.
  """
  if config.model.attention == "splash" and splash_block_size(config.seq_len) is None:
    raise ConfigError(
        "seq_len", f"model.attention=splash tiles the sequence in blocks of "
        f"a multiple of {_SPLASH_LANES}, which seq_len={config.seq_len} is "
        f"not; use a seq_len that is a multiple of {_SPLASH_LANES} or "
        "model.attention=reference (or auto).")
