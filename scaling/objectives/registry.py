"""The objectives by name: attention kind, per-example lengths, validation.

An objective here is a pure function of ``(raw tokens, fold_in(key, g))``
(DESIGN.md §4, Objectives). For the data plan each example first draws a
*mode* from its folded key (UL2's denoiser, FIM's layout; a single mode for
the others), which fixes its transformed length as a function of its raw
length; the plan then chooses raw lengths so examples fit ``seq_len``
(:mod:`scaling.objectives.rows`), and :meth:`ObjectiveSpec.apply` builds the
example with the same mode.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from scaling import tokenizer as tok
from scaling.config import ConfigError
from scaling.objectives import denoise, fill_in_middle, keys, lm, masks

OBJECTIVES = ("causal_lm", "masked_lm", "prefix_lm", "span_corruption", "ul2",
              "fim")
_ATTENTION = {
    "causal_lm": "causal",
    "masked_lm": "bidirectional",
    "prefix_lm": "prefix",
    "span_corruption": "prefix",
    "ul2": "prefix",
    "fim": "causal",
}


def _unknown(name) -> ConfigError:
  return ConfigError(
      "objective.name", f"unknown objective {name!r}; use one of "
      f"{', '.join(OBJECTIVES)}")


def attention_kind(objective_name: str) -> str:
  """``"causal"``, ``"prefix"`` or ``"bidirectional"`` for an objective.

  Raises:
    ConfigError: (``objective.name``) unknown objective.
  """
  if objective_name not in _ATTENTION:
    raise _unknown(objective_name)
  return _ATTENTION[objective_name]


def zero_shot_attention(objective_name: str) -> str | None:
  """How an objective's model reads a task row to score its answer zero-shot
  (``eval.tasks``): ``"causal"`` for causal attention (causal LM, FIM),
  ``"prefix"`` for a trained bidirectional prefix over the input (prefix LM,
  span corruption, UL2), None for a masked LM, which gives no likelihood of
  an answer.

  Raises:
    ConfigError: (``objective.name``) unknown objective.
  """
  kind = attention_kind(objective_name)
  return None if kind == "bidirectional" else kind


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
  """An objective with its settings, as the data plan uses it.

  Attributes:
    name: one of :data:`OBJECTIVES`.
    tokenizer: the byte tokenizer (sentinel ids).
    mlm_rate, noise_density, mean_span_length, fim_rate, ul2_rates: the
      ``objective`` config fields.
  """
  name: str
  tokenizer: tok.ByteTokenizer
  mlm_rate: float = 0.15
  noise_density: float = 0.15
  mean_span_length: float = 3.0
  fim_rate: float = 0.5
  ul2_rates: tuple = (1.0, 1.0, 1.0)

  @property
  def n_modes(self) -> int:
    return {"ul2": len(denoise.UL2_DENOISERS),
            "fim": len(fill_in_middle.FIM_MODES)}.get(self.name, 1)

  @property
  def min_raw(self) -> int:
    """Fewest raw tokens of an example (masked LM 1; the rest need a target)."""
    return 1 if self.name == "masked_lm" else 2

  def modes(self, words: np.ndarray) -> np.ndarray:
    """Mode index of each example from its folded key, int64 [...]."""
    if self.name == "ul2":
      return denoise.ul2_mode_indices(words, self.ul2_rates)
    if self.name == "fim":
      return fill_in_middle.fim_mode_indices(words, self.fim_rate)
    return np.zeros(np.shape(words)[:-1], dtype=np.int64)

  def length(self, raw: int, mode: int = 0) -> int:
    """Positions the example of ``raw`` tokens occupies in a row.

    Span corruption ``L + 2 spans + 1`` (:mod:`masks`), UL2 R/X one more
    (mode token), UL2 S ``L + 1``, FIM ``L + 3`` when transformed, else L.
    """
    if self.name == "span_corruption":
      return sum(masks.span_corruption_lengths(
          raw, self.noise_density, self.mean_span_length))
    if self.name == "ul2":
      d = denoise.UL2_DENOISERS[mode]
      if d.paradigm == "S":
        return raw + 1
      return 1 + sum(masks.span_corruption_lengths(
          raw, d.noise_density, d.mean_span_length))
    if self.name == "fim" and fill_in_middle.FIM_MODES[mode] != "none":
      return raw + fill_in_middle.FIM_EXTRA_TOKENS
    return raw

  def max_raw(self, seq_len: int, mode: int = 0) -> int:
    """Largest raw length whose example fits ``seq_len`` (0 if none >= min)."""
    if self.name == "span_corruption":
      return masks.decoder_only_raw_length(seq_len, self.noise_density,
                                           self.mean_span_length)
    if self.name == "ul2" and denoise.UL2_DENOISERS[mode].paradigm != "S":
      d = denoise.UL2_DENOISERS[mode]
      return masks.decoder_only_raw_length(seq_len, d.noise_density,
                                           d.mean_span_length, extra_tokens=1)
    raw = seq_len - (self.length(seq_len, mode) - seq_len)  # constant extra
    return raw if raw >= self.min_raw else 0

  def apply(self, tokens: np.ndarray, words: np.ndarray, mode: int) -> dict:
    """The example of ``tokens`` with folded key ``words`` and its mode."""
    if self.name == "causal_lm":
      return lm.causal_lm(tokens)
    if self.name == "masked_lm":
      return lm.apply_masked_lm(tokens, keys.example_rng(words), self.mlm_rate)
    if self.name == "prefix_lm":
      return lm.apply_prefix_lm(tokens, keys.example_rng(words))
    if self.name == "span_corruption":
      return denoise.apply_span_corruption(
          tokens, keys.example_rng(words), self.noise_density,
          self.mean_span_length, self.tokenizer)
    if self.name == "ul2":
      return denoise.apply_ul2(tokens, words, denoise.UL2_DENOISERS[mode],
                               self.tokenizer)
    return fill_in_middle.apply_fim(tokens, words,
                                    fill_in_middle.FIM_MODES[mode])

  def __call__(self, tokens: np.ndarray, key, example_index: int) -> dict:
    """Example g = ``example_index``: mode and content from fold_in(key, g)."""
    words = keys.fold_in(key, example_index)
    return self.apply(tokens, words, int(self.modes(words)))


def make_spec(objective_cfg, tokenizer: tok.ByteTokenizer) -> ObjectiveSpec:
  """:class:`ObjectiveSpec` from ``config.objective`` (fields may be missing).

  Raises:
    ConfigError: unknown ``objective.name``.
  """
  name = objective_cfg.name
  if name not in _ATTENTION:
    raise _unknown(name)
  get = lambda field, default: objective_cfg.get(field, default)  # noqa: E731
  return ObjectiveSpec(
      name=name, tokenizer=tokenizer,
      mlm_rate=float(get("mlm_rate", 0.15)),
      noise_density=float(get("noise_density", 0.15)),
      mean_span_length=float(get("mean_span_length", 3.0)),
      fim_rate=float(get("fim_rate", 0.5)),
      ul2_rates=tuple(float(r) for r in get("ul2_rates", (1.0, 1.0, 1.0))))


def transform(objective_cfg, tokenizer: tok.ByteTokenizer, tokens: np.ndarray,
              key, example_index: int) -> dict:
  """One example of the configured objective (see each objective's function).

  Args:
    objective_cfg: ``config.objective``.
    tokenizer: the byte tokenizer.
    tokens: int [n] raw tokens.
    key: base key (:func:`keys.as_key`).
    example_index: global example index g; randomness from fold_in(key, g).

  Returns:
    The per-example fields and ``attention``.
  """
  return make_spec(objective_cfg, tokenizer)(tokens, key, example_index)


def max_span_count(spec: ObjectiveSpec, seq_len: int) -> tuple[int, str]:
  """Most noise spans any example can have at ``seq_len``, and which denoiser.

  Span counts grow with the raw length, so the maximum is at the largest raw
  length that fits (:func:`masks.decoder_only_raw_length`). UL2 counts only
  denoisers whose paradigm has a positive rate. Non-span objectives: (0, "").
  """
  if spec.name == "span_corruption":
    denoisers = [denoise.Denoiser("R", spec.mean_span_length,
                                  spec.noise_density)]
    extra = 0
  elif spec.name == "ul2":
    active = {p for p, r in zip(denoise.PARADIGMS, spec.ul2_rates) if r > 0}
    denoisers = [d for d in denoise.UL2_DENOISERS
                 if d.paradigm != "S" and d.paradigm in active]
    extra = 1
  else:
    return 0, ""
  best = (0, "")
  for d in denoisers:
    raw = masks.decoder_only_raw_length(seq_len, d.noise_density,
                                        d.mean_span_length, extra)
    spans = masks.noise_counts(raw, d.noise_density, d.mean_span_length)[1]
    name = (d.name if spec.name == "ul2" else
            f"mu={d.mean_span_length:g}, r={d.noise_density:g}")
    best = max(best, (spans, name))
  return best


def _largest_seq_len(spec: ObjectiveSpec, n_sentinels: int,
                     seq_len: int) -> int:
  """Largest seq_len' <= seq_len whose max span count is <= n_sentinels."""
  lo, hi = 0, seq_len
  while lo < hi:
    mid = (lo + hi + 1) // 2
    if max_span_count(spec, mid)[0] <= n_sentinels:
      lo = mid
    else:
      hi = mid - 1
  return lo


def _check_range(field: str, value: float, lo: float, hi: float,
                 bounds: str, hint: str) -> None:
  """Raises ConfigError unless value is in the interval; bounds e.g. "(]"."""
  above = value > lo if bounds[0] == "(" else value >= lo
  below = value < hi if bounds[1] == ")" else value <= hi
  if not (math.isfinite(value) and above and below):
    raise ConfigError(field, f"is {value}; {hint}")


def validate(config) -> None:
  """Checks the objective section against seq_len and the tokenizer.

  Rejects (before anything is compiled) an unknown objective, rates out of
  range, a seq_len too short for one example, and an objective whose largest
  span count at ``seq_len`` exceeds ``tokenizer.n_sentinels`` (DESIGN.md §4:
  never wrapped onto other ids).

  Args:
    config: the run config (``objective``, ``tokenizer``, ``seq_len``).

  Raises:
    ConfigError: naming the field and the fix.
  """
  cfg = config.objective
  spec = make_spec(cfg, tok.ByteTokenizer(config.tokenizer.n_sentinels))
  seq_len = int(config.seq_len)
  if spec.name == "masked_lm":
    _check_range("objective.mlm_rate", spec.mlm_rate, 0.0, 1.0, "(]",
                 "use a selection rate in (0, 1], e.g. 0.15 (BERT)")
  if spec.name == "span_corruption":
    _check_range("objective.noise_density", spec.noise_density, 0.0, 1.0,
                 "()", "use a noise density in (0, 1), e.g. 0.15 (T5)")
    _check_range("objective.mean_span_length", spec.mean_span_length, 1.0,
                 float("inf"), "[)", "use a mean span length >= 1, e.g. 3 (T5)")
  if spec.name == "fim":
    _check_range("objective.fim_rate", spec.fim_rate, 0.0, 1.0, "[]",
                 "use a probability in [0, 1], e.g. 0.5 (Bavarian et al.)")
  if spec.name == "ul2":
    rates = spec.ul2_rates
    if (len(rates) != 3 or not all(math.isfinite(r) and r >= 0 for r in rates)
        or sum(rates) <= 0):
      raise ConfigError(
          "objective.ul2_rates", f"is {rates}; give three non-negative "
          "relative rates of the R, X, S paradigms, not all 0, e.g. (1, 1, 1)")
  for mode in range(spec.n_modes):
    if spec.max_raw(seq_len, mode) < spec.min_raw:
      raise ConfigError(
          "seq_len", f"{seq_len} is too short for one {spec.name} example "
          f"of {spec.min_raw} raw tokens; use a longer seq_len")
  spans, which = max_span_count(spec, seq_len)
  n_sentinels = spec.tokenizer.n_sentinels
  if spans > n_sentinels:
    fits = _largest_seq_len(spec, n_sentinels, seq_len)
    raise ConfigError(
        "tokenizer.n_sentinels",
        f"{spec.name} at seq_len {seq_len} makes up to {spans} noise spans "
        f"({which}) but the tokenizer has {n_sentinels} sentinels; set "
        f"tokenizer.n_sentinels >= {spans} or seq_len <= {fits}")
