"""Generation with a key/value cache: greedy decoding and temperature sampling.

A batch of prompts is decoded together, one sequence per row (DESIGN.md §4,
packing: a row's tokens are one segment, id 1; padding has segment id 0 and
is never attended). Prompts are **left-padded** to a common length P, so
that every row writes the same cache slot at every step; positions count
each row's own tokens from 0, so RoPE, learned and sinusoidal positions are
exactly those of the row unpadded (:class:`scaling.model.KVCache`).

:func:`generate`: one prefill of the P prompt slots, then one token per step
(T = 1) into a cache of ``P + max_new_tokens`` slots, inside one jitted
``lax.while_loop`` that stops when every row is done. A row is done after
EOS, or after ``max_new_tokens`` tokens, or when its next token would sit at
position ``seq_len`` (the row length the model was trained on, and the size
of a learned position table). Tokens are chosen among the tokenizer's real
ids other than PAD (padded vocabulary ids are never produced, DESIGN.md §4):
``temperature`` 0 takes the argmax (ties: the lowest id), above 0 samples
``softmax(logits / temperature)`` with the key ``fold_in(fold_in(key(seed),
row), step)``, so a row's sample does not depend on the other rows.

:func:`generate_uncached` is the same greedy decoder by full recomputation
(one forward pass of the whole row per token): the reference the cache is
tested against.

Cost: the prefill is one forward pass over [B, P]; each step is a forward
pass over [B, 1] whose attention reads the [B, P + max_new_tokens] cache
(O(S) per token instead of O(S^2) for recomputation).
"""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from scaling import model as model_lib
from scaling import sharding
from scaling import tokenizer as tok


def prompt_batch(prompts: Sequence, prefix_lengths: Sequence[int] | None = None,
                 slots: int | None = None) -> dict[str, np.ndarray]:
  """Left-padded prompt rows for :func:`generate`.

  Args:
    prompts: per row, int token ids [n_b] (n_b >= 1).
    prefix_lengths: per row, how many leading prompt tokens are in the
      bidirectional prefix (``prefix_mask``; 0: causal); default all 0.
    slots: P, the padded prompt length (default the longest prompt; a fixed
      value keeps one compiled program for batches of varying prompts).

  Returns:
    ``inputs, segment_ids, positions`` (int32) and ``prefix_mask`` (bool),
    each [B, P]: row b's tokens in its last n_b slots, segment 1, positions
    0 … n_b - 1; padding first (PAD, segment 0, position 0).

  Raises:
    ValueError: an empty prompt, a prompt longer than ``slots``, or a
      prefix longer than its prompt.
  """
  prompts = [np.asarray(p, np.int32).reshape(-1) for p in prompts]
  prefix_lengths = ([0] * len(prompts) if prefix_lengths is None
                    else list(prefix_lengths))
  if not prompts or any(p.size == 0 for p in prompts):
    raise ValueError("every prompt needs at least one token")
  width = max(p.size for p in prompts) if slots is None else int(slots)
  out = dict(inputs=np.full((len(prompts), width), tok.PAD, np.int32),
             segment_ids=np.zeros((len(prompts), width), np.int32),
             positions=np.zeros((len(prompts), width), np.int32),
             prefix_mask=np.zeros((len(prompts), width), bool))
  for b, (p, n_prefix) in enumerate(zip(prompts, prefix_lengths)):
    n = p.size
    if n > width:
      raise ValueError(f"prompt {b} has {n} tokens, more than the {width} "
                       "prompt slots")
    if not 0 <= n_prefix <= n:
      raise ValueError(f"prompt {b}: prefix of {n_prefix} tokens, but the "
                       f"prompt has {n}")
    out["inputs"][b, width - n:] = p
    out["segment_ids"][b, width - n:] = 1
    out["positions"][b, width - n:] = np.arange(n)
    out["prefix_mask"][b, width - n:width - n + n_prefix] = True
  return out


def _allowed_ids(vocab_size: int, n_real: int) -> jax.Array:
  """[V] bool: the ids generation may produce (real ids other than PAD)."""
  ids = jnp.arange(vocab_size)
  return (ids < n_real) & (ids != tok.PAD)


def _pick(logits_BxV, allowed_V, temperature, keys_B, step, greedy: bool):
  """The next token of every row: argmax, or a sample at ``temperature``."""
  logits_BxV = jnp.where(allowed_V[None], logits_BxV, -jnp.inf)
  if greedy:
    return jnp.argmax(logits_BxV, axis=-1).astype(jnp.int32)

  def sample(key, logits_V):
    return jax.random.categorical(jax.random.fold_in(key, step),
                                  logits_V / temperature)

  return jax.vmap(sample)(keys_B, logits_BxV).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("model", "max_new_tokens",
                                             "n_real", "greedy"))
def _generate(model, params, batch, temperature, seed, *, max_new_tokens: int,
              n_real: int, greedy: bool):
  b, p = batch["inputs"].shape
  cache = model_lib.empty_cache(model.cfg, b, p + max_new_tokens)
  logits, cache = model.apply({"params": params}, batch["inputs"],
                              batch["segment_ids"], batch["positions"],
                              batch["prefix_mask"], cache=cache)
  length_B = jnp.sum(batch["segment_ids"] != 0, axis=1).astype(jnp.int32)
  # Row b's new tokens sit at positions n_b, n_b + 1, ... < seq_len.
  limit_B = jnp.minimum(max_new_tokens, model.seq_len - length_B)
  allowed_V = _allowed_ids(logits.shape[-1], n_real)
  keys_B = jax.vmap(lambda r: jax.random.fold_in(jax.random.key(seed), r))(
      jnp.arange(b))
  out = jnp.full((b, max_new_tokens), tok.PAD, jnp.int32)
  state = (jnp.zeros((), jnp.int32), cache, logits[:, -1], length_B,
           limit_B <= 0, out)

  def cond(state):
    i, _, _, _, done, _ = state
    return (i < max_new_tokens) & ~jnp.all(done)

  def body(state):
    i, cache, logits_BxV, pos_B, done_B, out = state
    token_B = _pick(logits_BxV, allowed_V, temperature, keys_B, i, greedy)
    token_B = jnp.where(done_B, tok.PAD, token_B)
    out = out.at[:, i].set(token_B)
    done_B = done_B | (token_B == tok.EOS) | (i + 1 >= limit_B)
    # A finished row writes an empty slot (segment 0): attended by nothing.
    seg_B = jnp.where(done_B, 0, 1).astype(jnp.int32)
    pos_B1 = jnp.minimum(pos_B, model.seq_len - 1)[:, None]
    logits, cache = model.apply(
        {"params": params}, token_B[:, None], seg_B[:, None], pos_B1,
        jnp.zeros((b, 1), bool), cache=cache)
    return i + 1, cache, logits[:, 0], pos_B + 1, done_B, out

  return jax.lax.while_loop(cond, body, state)[-1]


def generate(model, params, batch: dict, *, max_new_tokens: int, n_real: int,
             temperature: float = 0.0, seed: int = 0) -> np.ndarray:
  """Decodes every row of a prompt batch with the key/value cache.

  Args:
    model: the Transformer (``scaling.model.build``).
    params: its parameters.
    batch: :func:`prompt_batch` arrays [B, P] (host arrays, or global
      arrays sharded over the batch: ``scaling.sharding.to_global``).
    max_new_tokens: the most tokens generated per row (>= 1).
    n_real: the tokenizer's real ids (``ByteTokenizer.n_real``); ids from it
      up (the vocabulary's padding) and PAD are never produced.
    temperature: 0 for greedy decoding, > 0 to sample.
    seed: the sampling seed (unused when greedy).

  Returns:
    int32 [B, max_new_tokens] on the host (every process): each row's
    tokens, its EOS included when it emitted one, then PAD.

  Raises:
    ValueError: ``max_new_tokens`` < 1 or a negative temperature.
  """
  if max_new_tokens < 1:
    raise ValueError(f"max_new_tokens is {max_new_tokens}; generate at least "
                     "one token")
  if not temperature >= 0:
    raise ValueError(f"temperature is {temperature}; use 0 (greedy) or a "
                     "positive number")
  batch = {k: jnp.asarray(v) for k, v in batch.items()}
  out = _generate(model, params, batch, jnp.float32(max(temperature, 1e-6)),
                  jnp.uint32(seed), max_new_tokens=int(max_new_tokens),
                  n_real=int(n_real), greedy=temperature == 0)
  return sharding.to_host(out)


@functools.partial(jax.jit, static_argnums=0)
def _forward(model, params, inputs, segment_ids, positions, prefix_mask):
  return model.apply({"params": params}, inputs, segment_ids, positions,
                     prefix_mask)


def generate_uncached(model, params, prompts: Sequence,
                      prefix_lengths: Sequence[int] | None = None, *,
                      max_new_tokens: int, n_real: int) -> np.ndarray:
  """Greedy decoding by full recomputation: the reference for :func:`generate`.

  Each step runs the whole row (the prompt and the tokens so far,
  right-padded to ``model.seq_len``) through the model and takes the argmax
  at its last token, with the same stopping rules and allowed ids as
  :func:`generate`.

  Args:
    model, params, max_new_tokens, n_real: as :func:`generate`.
    prompts, prefix_lengths: as :func:`prompt_batch`.

  Returns:
    int32 [B, max_new_tokens], as :func:`generate`.
  """
  prompts = [np.asarray(p, np.int32).reshape(-1) for p in prompts]
  prefix_lengths = ([0] * len(prompts) if prefix_lengths is None
                    else list(prefix_lengths))
  length = model.seq_len
  allowed = np.asarray(_allowed_ids(model.vocab_size, n_real))
  out = np.full((len(prompts), max_new_tokens), tok.PAD, np.int32)
  for b, (p, n_prefix) in enumerate(zip(prompts, prefix_lengths)):
    row = list(p)
    for i in range(min(max_new_tokens, length - p.size)):
      n = len(row)
      inputs = np.full((1, length), tok.PAD, np.int32)
      inputs[0, :n] = row
      segs = np.zeros((1, length), np.int32)
      segs[0, :n] = 1
      positions = np.zeros((1, length), np.int32)
      positions[0, :n] = np.arange(n)
      prefix = np.zeros((1, length), bool)
      prefix[0, :n_prefix] = True
      logits = np.asarray(_forward(model, params, inputs, segs, positions,
                                   prefix))[0, n - 1]
      token = int(np.argmax(np.where(allowed, logits, -np.inf)))
      out[b, i] = token
      if token == tok.EOS:
        break
      row.append(token)
  return out


def texts(tokens_BxN: np.ndarray) -> list[str]:
  """Each row's generated text: its bytes before the first EOS, as UTF-8
  (invalid bytes replaced; special ids dropped)."""
  out = []
  tokenizer = tok.ByteTokenizer()
  for row in np.asarray(tokens_BxN):
    end = np.flatnonzero(row == tok.EOS)
    out.append(tokenizer.decode(row[:end[0]] if end.size else row))
  return out
