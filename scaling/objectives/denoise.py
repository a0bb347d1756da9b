"""Span corruption (T5) and the UL2 mixture of denoisers, decoder-only form.

One example of ``L`` raw tokens becomes one sequence ``[inputs ; targets]``
(the field conventions are in :mod:`scaling.objectives.lm`):

* inputs: the non-noise tokens with each noise span replaced by one sentinel,
  span i → sentinel i (sentinel 0 = the highest real id, counting down;
  :meth:`ByteTokenizer.sentinel`); for UL2 the paradigm's mode token first;
* targets: ``sentinel i, span i`` for every span in order, then EOS
  (Raffel et al. 2020 §3.1.4, T5's ``noise_span_to_unique_sentinel`` /
  ``nonnoise_span_to_unique_sentinel``).

The inputs are the bidirectional prefix (``prefix_mask`` True), the targets
are predicted causally with loss on every target token: the last input token
(a sentinel) predicts sentinel 0, …, the last noise token predicts EOS.
Lengths: :func:`scaling.objectives.masks.span_corruption_lengths`. The mask
may start with a noise span and may end with kept tokens
(:func:`scaling.objectives.masks.random_spans_noise_mask` is position-fair,
unlike T5's, which always ends in noise), so in an example that ends its
document the document's EOS is either the last input token or the last noise
token, and then the targets end ``…, EOS, EOS`` (the document's end, then
the end of the targets).

UL2 (Tay et al. 2022, arXiv 2205.05131, §3.1, the final mixture of denoisers):
R = {(mu 3, r 0.15), (8, 0.15)}, X = {(3, 0.5), (8, 0.5), (64, 0.15),
(64, 0.5)}, S = prefix LM with the split of :func:`lm.prefix_lm` (the paper's
S-denoiser keeps 25% of the tokens as targets; DESIGN.md §4 fixes the split
uniform instead); one mode token per paradigm (MODE_R, MODE_X, MODE_S)
prepended to the inputs. A paradigm is drawn with probability proportional to
``objective.ul2_rates`` (R, X, S), then one of its denoisers uniformly.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from scaling import tokenizer as tok
from scaling.objectives import keys, lm, masks


@dataclasses.dataclass(frozen=True)
class Denoiser:
  """One UL2 denoiser: paradigm R, X or S, and its span settings.

  Attributes:
    paradigm: ``"R"``, ``"X"`` or ``"S"``.
    mean_span_length: mu (0 for S, which is a prefix LM).
    noise_density: r (0 for S).
  """
  paradigm: str
  mean_span_length: float
  noise_density: float

  @property
  def mode_token(self) -> int:
    return {"R": tok.MODE_R, "X": tok.MODE_X, "S": tok.MODE_S}[self.paradigm]

  @property
  def name(self) -> str:
    if self.paradigm == "S":
      return "S"
    mu, r = self.mean_span_length, self.noise_density
    return f"{self.paradigm}(mu={mu:g},r={r:g})"


PARADIGMS = ("R", "X", "S")
UL2_DENOISERS = (
    Denoiser("R", 3.0, 0.15), Denoiser("R", 8.0, 0.15),
    Denoiser("X", 3.0, 0.5), Denoiser("X", 8.0, 0.5),
    Denoiser("X", 64.0, 0.15), Denoiser("X", 64.0, 0.5),
    Denoiser("S", 0.0, 0.0),
)


def apply_span_corruption(tokens: np.ndarray, rng: np.random.Generator,
                          noise_density: float, mean_span_length: float,
                          tokenizer: tok.ByteTokenizer,
                          mode_token: int | None = None) -> dict:
  """Span corruption on a generator (see :func:`span_corruption`)."""
  tokens = np.asarray(tokens, dtype=np.int32)
  n = tokens.shape[0]
  if n < 2:
    raise ValueError(f"span corruption needs at least 2 tokens, got {n}")
  noise = masks.random_spans_noise_mask(n, noise_density, mean_span_length,
                                        rng)
  starts = noise & ~np.concatenate([[False], noise[:-1]])
  n_spans = int(starts.sum())
  if n_spans > tokenizer.n_sentinels:
    raise ValueError(
        f"{n_spans} noise spans but only {tokenizer.n_sentinels} sentinels; "
        "raise tokenizer.n_sentinels or lower seq_len (config validation "
        "should have rejected this)")
  sentinels = tokenizer.n_real - 1 - np.arange(n_spans, dtype=np.int32)
  span_of = np.cumsum(starts) - 1  # span index of each noise token
  inputs = np.where(starts, sentinels[np.maximum(span_of, 0)],
                    tokens)[~noise | starts]
  # each span's first token, as an index into tokens[noise]
  first_in_noise = (np.cumsum(noise) - 1)[starts]
  targets = np.insert(tokens[noise], first_in_noise, sentinels)
  head = [] if mode_token is None else [mode_token]
  z = np.concatenate([head, inputs, targets, [tok.EOS]]).astype(np.int32)
  n_prefix = len(head) + inputs.shape[0]
  return lm.shifted_example(z, n_prefix, n_prefix - 1, "prefix")


def span_corruption(tokens: np.ndarray, key, example_index: int, *,
                    tokenizer: tok.ByteTokenizer, noise_density: float = 0.15,
                    mean_span_length: float = 3.0) -> dict:
  """T5 span corruption in decoder-only form ``[inputs ; targets]``.

  Exactly :func:`masks.noise_counts` ``(L, r, mu)`` noise tokens in that many
  spans (``round(L r)`` and ``round(noise / mu)``), every span whole and
  every two spans at least one kept token apart, placed so that each
  position is noise with probability close to r
  (:func:`masks.random_spans_noise_mask`).

  Args:
    tokens: int [L] raw tokens, L >= 2.
    key: base key.
    example_index: global example index g; randomness from fold_in(key, g).
    tokenizer: gives the sentinel ids.
    noise_density: r.
    mean_span_length: mu.

  Returns:
    Per-example fields (:func:`lm.shifted_example`) of length
    ``L + 2 spans + 1``; ``prefix_mask`` True on the inputs part, loss on
    every target token; ``attention="prefix"``.

  Raises:
    ValueError: L < 2, or more spans than ``tokenizer.n_sentinels`` (never
      wrapped onto other ids).
  """
  rng = keys.example_rng(keys.fold_in(key, example_index))
  return apply_span_corruption(tokens, rng, noise_density, mean_span_length,
                               tokenizer)


def ul2_mode_indices(words: np.ndarray, rates=(1.0, 1.0, 1.0)) -> np.ndarray:
  """Which of :data:`UL2_DENOISERS` each example uses, from its folded key.

  The paradigm is the interval of ``u0 · sum(rates)`` in the cumulative rates
  (R, X, S); the denoiser within it is ``floor(u1 · count)``
  (:func:`keys.key_uniforms`).

  Args:
    words: folded keys, uint32 [..., 2].
    rates: non-negative relative rates of R, X, S (not all 0).

  Returns:
    int64 [...] indices into :data:`UL2_DENOISERS`.
  """
  u0, u1 = keys.key_uniforms(words)
  rates = np.asarray(rates, dtype=np.float64)
  cum = np.cumsum(rates)
  paradigm = np.searchsorted(cum, u0 * cum[-1], side="right")
  members = [[i for i, d in enumerate(UL2_DENOISERS) if d.paradigm == p]
             for p in PARADIGMS]
  first = np.array([m[0] for m in members])
  count = np.array([len(m) for m in members])
  return first[paradigm] + np.floor(u1 * count[paradigm]).astype(np.int64)


def ul2_denoiser(key, example_index: int, rates=(1.0, 1.0, 1.0)) -> Denoiser:
  """The denoiser example ``g`` of ``key`` is drawn with (see :func:`ul2`)."""
  return UL2_DENOISERS[int(ul2_mode_indices(
      keys.fold_in(key, example_index), rates))]


def apply_ul2(tokens: np.ndarray, words: np.ndarray, denoiser: Denoiser,
              tokenizer: tok.ByteTokenizer) -> dict:
  """UL2 with the denoiser already drawn from the folded key ``words``."""
  rng = keys.example_rng(words)
  if denoiser.paradigm == "S":
    return lm.apply_prefix_lm(tokens, rng, tok.MODE_S)
  return apply_span_corruption(tokens, rng, denoiser.noise_density,
                               denoiser.mean_span_length, tokenizer,
                               denoiser.mode_token)


def ul2(tokens: np.ndarray, key, example_index: int, *,
        tokenizer: tok.ByteTokenizer, rates=(1.0, 1.0, 1.0)) -> dict:
  """UL2 mixture of denoisers (Tay et al. 2022), one mode token per paradigm.

  Args:
    tokens: int [L] raw tokens, L >= 2.
    key: base key.
    example_index: global example index g; the denoiser
      (:func:`ul2_denoiser`) and the corruption come from fold_in(key, g).
    tokenizer: gives the sentinel ids.
    rates: relative rates of the R, X, S paradigms (``objective.ul2_rates``).

  Returns:
    Per-example fields: R/X ``[mode, inputs ; targets]`` of length
    ``L + 2 spans + 2``, S ``[MODE_S, prefix ; suffix]`` of length L + 1;
    the mode token is part of the bidirectional prefix; ``attention="prefix"``.

  Raises:
    ValueError: L < 2, or more spans than sentinels.
  """
  words = keys.fold_in(key, example_index)
  denoiser = UL2_DENOISERS[int(ul2_mode_indices(words, rates))]
  return apply_ul2(tokens, words, denoiser, tokenizer)
