"""T5 span-corruption noise masks and their length arithmetic.

Raffel et al. 2020 (T5, arXiv 1910.10683) §3.1.4 and their reference
preprocessors ``random_spans_noise_mask`` and ``random_spans_helper``: an
example of ``L`` raw tokens gets exactly ``round(L r)`` noise tokens (noise
density r) in ``round(noise / mu)`` spans (mean span length mu); the span
lengths and the gap lengths are uniformly random compositions, each part at
least one token; the mask starts with a gap and ends with a span (T5's
default, no random roll). Rounding is Python's ``round`` (half to even, as
``tf.round``) of the float64 product.

Each noise span becomes one sentinel in the inputs and ``sentinel + span`` in
the targets, so with one extra token per span on each side and one EOS:

* encoder-decoder (T5): inputs ``L - noise + spans + 1`` (EOS), targets
  ``noise + spans + 1``;
* decoder-only ``[inputs ; targets]`` (this codebase): inputs
  ``L - noise + spans`` (the encoder's EOS is dropped: sentinel 0 opening the
  targets marks the boundary), targets ``noise + spans + 1``, one sequence of
  ``L + 2 spans + 1`` tokens (+1 for a UL2 mode token).
"""

from __future__ import annotations

import numpy as np


def noise_counts(length: int, noise_density: float,
                 mean_span_length: float) -> tuple[int, int]:
  """Noise tokens and noise spans of an example (T5's clamps included).

  ``noise = round(L r)`` clamped to ``[1, L - 1]`` and
  ``spans = round(noise / mu)`` clamped to ``[1, L - noise]``, computed on
  ``max(L, 2)`` as T5 does. The upper clamp on spans (every gap non-empty)
  never binds for ``mu >= 1, r <= 0.5`` at ``L >= 2`` except at degenerate
  sizes where T5's own segmentation would fail.

  Args:
    length: L, raw tokens of the example (>= 0).
    noise_density: r in (0, 1).
    mean_span_length: mu >= 1.

  Returns:
    ``(num_noise_tokens, num_noise_spans)``.
  """
  n = max(int(length), 2)
  noise = min(max(int(round(n * noise_density)), 1), n - 1)
  spans = max(int(round(noise / mean_span_length)), 1)
  spans = min(spans, n - noise)
  return noise, spans


def _random_segmentation(rng: np.random.Generator, num_items: int,
                         num_segments: int) -> np.ndarray:
  """Uniformly random composition of ``num_items`` into ``num_segments`` parts.

  Each part >= 1: the ``num_segments - 1`` cut points are a random subset of
  the ``num_items - 1`` gaps between items (T5's ``_random_segmentation``).

  Returns:
    int64 [num_segments] part lengths summing to ``num_items``.
  """
  first = np.zeros(num_items - 1, dtype=bool)
  first[:num_segments - 1] = True
  rng.shuffle(first)
  segment_id = np.concatenate([[0], np.cumsum(first)])
  return np.bincount(segment_id, minlength=num_segments)


def random_spans_noise_mask(length: int, noise_density: float,
                            mean_span_length: float,
                            rng: np.random.Generator) -> np.ndarray:
  """T5's ``random_spans_noise_mask`` (Raffel et al. 2020 §3.1.4).

  Args:
    length: L, raw tokens (>= 1).
    noise_density: r, fraction of tokens that are noise.
    mean_span_length: mu, mean noise-span length in tokens.
    rng: the example's generator (:func:`keys.example_rng`).

  Returns:
    bool [L]: True at noise tokens. For L >= 2 exactly
    :func:`noise_counts` ``(L, r, mu)`` noise tokens in that many spans,
    alternating gap, span, gap, …, span (first a gap, last a span).
  """
  n = max(int(length), 2)
  noise, spans = noise_counts(n, noise_density, mean_span_length)
  noise_lengths = _random_segmentation(rng, noise, spans)
  gap_lengths = _random_segmentation(rng, n - noise, spans)
  interleaved = np.stack([gap_lengths, noise_lengths], axis=1).reshape(-1)
  is_noise = np.tile([False, True], spans)
  return np.repeat(is_noise, interleaved)[:length]


def random_spans_helper(inputs_length: int, noise_density: float,
                        mean_span_length: float,
                        extra_tokens_per_span_inputs: int = 1,
                        extra_tokens_per_span_targets: int = 1
                        ) -> tuple[int, int]:
  """T5's encoder-decoder length helper: raw tokens for a given inputs length.

  The largest raw length whose inputs (non-noise tokens, one sentinel per
  span, one EOS) fit ``inputs_length``, and the matching targets length
  (noise tokens, one sentinel per span, one EOS); as in T5, at noise density
  0.5 the raw length is lowered by one when the targets would be longer than
  the inputs. T5 (C4 span corruption): 512 → (568, 114).

  Args:
    inputs_length: encoder input tokens.
    noise_density: r.
    mean_span_length: mu.
    extra_tokens_per_span_inputs: sentinel tokens per span in the inputs.
    extra_tokens_per_span_targets: sentinel tokens per span in the targets.

  Returns:
    ``(raw_tokens_length, targets_length)``.
  """
  def lengths(raw: int) -> tuple[int, int]:
    noise = int(round(raw * noise_density))
    spans = int(round(noise / mean_span_length))
    return (raw - noise + spans * extra_tokens_per_span_inputs + 1,
            noise + spans * extra_tokens_per_span_targets + 1)

  raw = inputs_length - 1
  while lengths(raw + 1)[0] <= inputs_length:
    raw += 1
  inputs, targets = lengths(raw)
  if noise_density == 0.5 and targets > inputs:
    raw -= 1
    targets -= 1
  return raw, targets


def span_corruption_lengths(length: int, noise_density: float,
                            mean_span_length: float) -> tuple[int, int]:
  """Decoder-only ``(inputs, targets)`` lengths of an example of L raw tokens.

  Inputs ``L - noise + spans`` (non-noise tokens and one sentinel per span),
  targets ``noise + spans + 1`` (sentinel + span per span, then EOS), with
  :func:`noise_counts`. A UL2 mode token adds one to the inputs.
  """
  noise, spans = noise_counts(length, noise_density, mean_span_length)
  return length - noise + spans, noise + spans + 1


def decoder_only_raw_length(seq_len: int, noise_density: float,
                            mean_span_length: float,
                            extra_tokens: int = 0) -> int:
  """Largest raw length L whose ``[inputs ; targets]`` (+ extras) fits seq_len.

  ``L + 2 spans(L) + 1 + extra_tokens <= seq_len`` with spans from
  :func:`noise_counts`; the left side is strictly increasing in L, so L + 1
  does not fit. E.g. seq_len 512, r 0.15, mu 3: L = 465 (70 noise tokens in
  23 spans: 418 + 94 = 512).

  Args:
    seq_len: tokens per sequence.
    noise_density: r.
    mean_span_length: mu.
    extra_tokens: tokens added to every example (1 for a UL2 mode token).

  Returns:
    L, or 0 when not even a 2-token example fits.
  """
  def total(raw: int) -> int:
    inputs, targets = span_corruption_lengths(raw, noise_density,
                                              mean_span_length)
    return inputs + targets + extra_tokens

  if total(2) > seq_len:
    return 0
  lo, hi = 2, int(seq_len)  # total(raw) > raw, so the answer is < seq_len
  while lo < hi:  # invariant: total(lo) <= seq_len; answer in [lo, hi]
    mid = (lo + hi + 1) // 2
    if total(mid) <= seq_len:
      lo = mid
    else:
      hi = mid - 1
  return lo
