"""T5 span-corruption noise masks and their length arithmetic.

Raffel et al. 2020 (T5, arXiv 1910.10683) §3.1.4 and their reference
preprocessors ``random_spans_noise_mask`` and ``random_spans_helper``: an
example of ``L`` raw tokens gets exactly ``round(L r)`` noise tokens (noise
density r) in ``round(noise / mu)`` spans (mean span length mu), the span
lengths a uniformly random composition, each span whole and every two spans
at least one kept token apart. Rounding is Python's ``round`` (half to even,
as ``tf.round``) of the float64 product.

T5's own mask always starts with a kept token and ends with a noise span
(google-research/text-to-text-transfer-transformer#905), so at short lengths
the last tokens are always noise and the first never are. Here the layout is
position-fair instead (:func:`random_spans_noise_mask`): the mask may start
with a span and end with kept tokens, and every position is noise with
probability close to ``noise / L``.

Each noise span becomes one sentinel in the inputs and ``sentinel + span`` in
the targets, so with one extra token per span on each side and one EOS:

* encoder-decoder (T5): inputs ``L - noise + spans + 1`` (EOS), targets
  ``noise + spans + 1``;
* decoder-only ``[inputs ; targets]`` (this codebase): inputs
  ``L - noise + spans`` (the encoder's EOS is dropped: sentinel 0 opening the
  targets marks the boundary), targets ``noise + spans + 1``, one sequence of
  ``L + 2 spans + 1`` tokens (+1 for a UL2 mode token).

These lengths depend only on the two counts, never on where the spans lie.
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
                         num_segments: int, copies: int = 1) -> np.ndarray:
  """Uniformly random compositions of ``num_items`` into ``num_segments`` parts.

  Each part >= 1: the ``num_segments - 1`` cut points are a random subset of
  the ``num_items - 1`` gaps between items (T5's ``_random_segmentation``),
  drawn independently for each of ``copies`` rows.

  Args:
    rng: the example's generator.
    num_items: tokens to divide (>= num_segments >= 1).
    num_segments: parts per composition.
    copies: independent compositions to draw.

  Returns:
    int64 [copies, num_segments] part lengths, each row summing to
    ``num_items``.
  """
  first = np.zeros((copies, num_items - 1), dtype=bool)
  first[:, :num_segments - 1] = True
  first = rng.permuted(first, axis=1)
  segment_id = np.concatenate(
      [np.zeros((copies, 1), dtype=np.int64), np.cumsum(first, axis=1)],
      axis=1) + num_segments * np.arange(copies)[:, None]
  return np.bincount(segment_id.reshape(-1),
                     minlength=copies * num_segments).reshape(
                         copies, num_segments)


def _kept_pieces(rng: np.random.Generator, kept: int, noise: int,
                 spans: int) -> np.ndarray:
  """The kept tokens cut into pieces drawn like the noise spans, shuffled.

  ``kept = q noise + rem``: q blocks, each a composition of ``noise`` into
  ``spans`` parts (the span lengths' own law), and the remainder in
  ``round(rem spans / noise)`` parts of its own; a remainder too small for
  one part of its own is folded into one block (``noise + rem`` into
  ``spans`` parts), except for a single span, whose fixed length would then
  leave positions that are never noise. With no whole block (``kept <
  noise``) the kept tokens make ``spans`` parts at least.

  Returns:
    int64 [pieces] lengths (each >= 1, summing to ``kept``), pieces >= spans.
  """
  q, rem = divmod(kept, noise)
  rem_parts = min(rem, int(round(rem * spans / noise)))
  if q == 0:  # fewer kept tokens than noise tokens (r > 0.5)
    pieces = _random_segmentation(rng, kept, max(rem_parts, spans))[0]
  elif rem and rem_parts == 0 and spans > 1:  # fold rem into one block
    pieces = np.concatenate([
        _random_segmentation(rng, noise + rem, spans)[0],
        _random_segmentation(rng, noise, spans, q - 1).reshape(-1)])
  else:
    pieces = _random_segmentation(rng, noise, spans, q).reshape(-1)
    if rem:
      pieces = np.concatenate(
          [pieces, _random_segmentation(rng, rem, max(rem_parts, 1))[0]])
  return rng.permutation(pieces)


def random_spans_noise_mask(length: int, noise_density: float,
                            mean_span_length: float,
                            rng: np.random.Generator) -> np.ndarray:
  """T5's ``random_spans_noise_mask`` counts with a position-fair layout.

  The counts are T5's (Raffel et al. 2020 §3.1.4): exactly
  :func:`noise_counts` ``(L, r, mu)`` noise tokens in exactly that many
  spans, span lengths a uniformly random composition of the noise tokens,
  each span whole (contiguous, never wrapped across the ends) and separated
  from the next by at least one kept token.

  The layout is not T5's "first a gap, last a span", under which position 0
  is never noise and position L-1 always is (T5 issue #905). The kept tokens
  are cut into pieces drawn like the spans (:func:`_kept_pieces`); spans and
  pieces (the arcs) are laid on a circle, each span followed by at least one
  piece (a uniform composition of the pieces into ``spans`` groups), and the
  circle is cut before one of its arcs, chosen uniformly. No cut falls
  inside a span and no two spans touch, so the mask has exactly ``spans``
  runs of noise; every arc is equally likely to come first, so position 0
  is noise with probability ``spans / arcs`` ~ ``noise / L``, and where
  spans and pieces share one length law so is every position. What is left
  comes from rounding lengths: one span of 3 tokens in L = 20 makes each
  position noise with probability 1/6 or 1/7 against a density of 0.15 (no
  distribution over the 18 placements of one whole 3-token span does better
  than 1/60, by a linear program); at r = 0.5 and odd L the noise and kept
  counts differ by one, and a single span of ``(L + 1) / 2`` tokens always
  covers the middle position.

  Args:
    length: L, raw tokens (>= 0).
    noise_density: r, fraction of tokens that are noise.
    mean_span_length: mu, mean noise-span length in tokens.
    rng: the example's generator (:func:`keys.example_rng`); the mask is a
      deterministic function of its state.

  Returns:
    bool [L]: True at noise tokens. For L >= 2 exactly :func:`noise_counts`
    ``(L, r, mu)`` noise tokens in that many runs; for L < 2 all False (no
    token can be noise with one kept), and ``rng`` is not used.
  """
  length = int(length)
  if length < 2:
    return np.zeros(length, dtype=bool)
  noise, spans = noise_counts(length, noise_density, mean_span_length)
  span_lengths = _random_segmentation(rng, noise, spans)[0]
  piece_lengths = _kept_pieces(rng, length - noise, noise, spans)
  pieces_after = _random_segmentation(rng, piece_lengths.shape[0], spans)[0]
  n_arcs = spans + piece_lengths.shape[0]
  is_span = np.zeros(n_arcs, dtype=bool)
  is_span[np.cumsum(pieces_after + 1) - pieces_after - 1] = True
  arc_lengths = np.empty(n_arcs, dtype=np.int64)
  arc_lengths[is_span] = span_lengths
  arc_lengths[~is_span] = piece_lengths
  cut = int(rng.integers(n_arcs))
  return np.repeat(np.roll(is_span, -cut), np.roll(arc_lengths, -cut))


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
