"""Language-model objectives on one example: causal LM, prefix LM, masked LM.

Every objective maps one example's raw tokens (int32 [n]: bytes, and EOS when
the example ends its document) to the per-example fields of the batch-dict
contract, ``inputs, targets, loss_mask, positions, prefix_mask`` (arrays of
one length), plus ``attention`` (a str: ``causal``, ``prefix`` or
``bidirectional``). Randomness comes from ``fold_in(key, example_index)``
(:mod:`scaling.objectives.keys`), nothing else.

Shift convention (all but masked LM): the example is one token sequence
``z``; position t reads ``z[t]`` and predicts ``z[t + 1]``; the last position
predicts nothing (target PAD, no loss), as EOS does in causal packing. With a
bidirectional prefix of ``P`` tokens (``prefix_mask[:P]``), a prediction is
in the loss iff its target lies after the prefix: the first loss-bearing
position is ``P - 1``, the last prefix position, which predicts the first
suffix token while seeing exactly the prefix; positions before it see their
own target through the bidirectional prefix and bear no loss.
"""

from __future__ import annotations

import numpy as np

from scaling import tokenizer as tok
from scaling.objectives import keys


def shifted_example(z: np.ndarray, n_prefix: int, loss_start: int,
                    attention: str) -> dict:
  """Builds the per-example fields of a next-token objective.

  Args:
    z: int [n] the example's token sequence (n >= 1).
    n_prefix: P, tokens of the bidirectional prefix (``prefix_mask[:P]``).
    loss_start: first position whose prediction bears loss; every later
      position but the last bears loss too.
    attention: the attention kind reported with the example.

  Returns:
    Dict of [n] arrays ``inputs = z``, ``targets`` (z shifted left, PAD
    last; int32), ``loss_mask`` (float32, 1 on ``[loss_start, n - 1)``),
    ``positions`` (0 … n-1), ``prefix_mask`` (bool), and ``attention``.
  """
  z = np.asarray(z, dtype=np.int32)
  n = z.shape[0]
  targets = np.full(n, tok.PAD, dtype=np.int32)
  targets[:-1] = z[1:]
  loss_mask = np.zeros(n, dtype=np.float32)
  loss_mask[loss_start:n - 1] = 1.0
  prefix_mask = np.zeros(n, dtype=bool)
  prefix_mask[:n_prefix] = True
  return dict(inputs=z.copy(), targets=targets, loss_mask=loss_mask,
              positions=np.arange(n, dtype=np.int32), prefix_mask=prefix_mask,
              attention=attention)


def causal_lm(tokens: np.ndarray, key=0, example_index: int = 0) -> dict:
  """Causal LM: position t predicts token t + 1 from tokens <= t.

  Args:
    tokens: int [n] raw tokens.
    key, example_index: accepted for a uniform signature; unused (no
      randomness).

  Returns:
    The fields of :func:`shifted_example` with no prefix; loss on positions
    ``0 … n-2``; ``attention="causal"``.
  """
  del key, example_index
  return shifted_example(tokens, 0, 0, "causal")


def apply_prefix_lm(tokens: np.ndarray, rng: np.random.Generator,
                    mode_token: int | None = None) -> dict:
  """Prefix LM on a generator; ``mode_token`` (UL2 S) is prepended to it."""
  tokens = np.asarray(tokens, dtype=np.int32)
  n = tokens.shape[0]
  if n < 2:
    raise ValueError(f"prefix LM needs at least 2 tokens, got {n}")
  split = int(rng.integers(1, n))  # uniform in [1, n)
  if mode_token is None:
    return shifted_example(tokens, split, split - 1, "prefix")
  z = np.concatenate([[mode_token], tokens])
  return shifted_example(z, split + 1, split, "prefix")


def prefix_lm(tokens: np.ndarray, key, example_index: int) -> dict:
  """Prefix LM: bidirectional over a prefix, causal after, loss on the suffix.

  The split s is uniform in [1, n): prefix ``tokens[:s]`` (``prefix_mask``
  True), suffix ``tokens[s:]``. Loss on positions ``s-1 … n-2``, i.e. on
  every suffix token: the last prefix position (s - 1) predicts the first
  suffix token and is in the loss (see the module docstring). Raffel et al.
  2020 §3.2.1 (prefix LM: fully-visible attention over the prefix, causal
  after it).

  Args:
    tokens: int [n] raw tokens, n >= 2.
    key: base key (see :func:`keys.as_key`).
    example_index: global example index g; randomness from fold_in(key, g).

  Returns:
    The fields of :func:`shifted_example`; ``attention="prefix"``.

  Raises:
    ValueError: n < 2.
  """
  return apply_prefix_lm(tokens, keys.example_rng(
      keys.fold_in(key, example_index)))


def apply_masked_lm(tokens: np.ndarray, rng: np.random.Generator,
                    rate: float = 0.15) -> dict:
  """Masked LM on a generator (see :func:`masked_lm`)."""
  tokens = np.asarray(tokens, dtype=np.int32)
  n = tokens.shape[0]
  candidates = np.flatnonzero(tokens < tok.N_BYTES)
  n_select = 0
  if candidates.size:
    n_select = min(max(1, int(round(candidates.size * rate))),
                   candidates.size)
  selected = rng.permutation(candidates)[:n_select]
  action = rng.random(n_select)  # < 0.8 MASK, < 0.9 keep, else random byte
  random_bytes = rng.integers(0, tok.N_BYTES, size=n_select)
  inputs = tokens.copy()
  replace = np.where(action < 0.8, tok.MASK,
                     np.where(action < 0.9, tokens[selected], random_bytes))
  inputs[selected] = replace
  loss_mask = np.zeros(n, dtype=np.float32)
  loss_mask[selected] = 1.0
  return dict(inputs=inputs, targets=tokens.copy(), loss_mask=loss_mask,
              positions=np.arange(n, dtype=np.int32),
              prefix_mask=np.ones(n, dtype=bool), attention="bidirectional")


def masked_lm(tokens: np.ndarray, key, example_index: int,
              rate: float = 0.15) -> dict:
  """BERT masked LM (Devlin et al. 2019 §3.1 and its create_pretraining_data).

  Exactly ``max(1, round(rate · c))`` of the c non-special tokens (byte ids)
  are selected, uniformly without replacement (0 when c = 0); each selected
  token independently becomes MASK with probability 0.8, a uniform random
  byte id (0 … 255; it may equal the original) with probability 0.1, and
  stays unchanged with probability 0.1. No shift: ``targets`` are the
  original tokens at the same positions, loss only on the selected ones;
  attention is bidirectional (``prefix_mask`` all True). BERT's cap
  ``max_predictions_per_seq`` is not applied.

  Args:
    tokens: int [n] raw tokens.
    key: base key.
    example_index: global example index g; randomness from fold_in(key, g).
    rate: selection rate (``objective.mlm_rate``).

  Returns:
    Dict of [n] arrays ``inputs`` (corrupted), ``targets`` (original),
    ``loss_mask``, ``positions``, ``prefix_mask``; ``attention``.
  """
  return apply_masked_lm(tokens, keys.example_rng(
      keys.fold_in(key, example_index)), rate)
