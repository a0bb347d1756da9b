"""Fill-in-the-middle (Bavarian et al. 2022, arXiv 2207.14255).

With probability ``rate`` (0.5) an example's content (its tokens without a
final EOS) is cut at two points drawn uniformly — two integers in [0, n],
sorted (§3 draws them at the character level; ours are bytes) — into
prefix, middle and suffix, and rearranged, 50/50:

* PSM: ``PRE prefix SUF suffix MID middle`` (§3);
* SPM: ``PRE SUF suffix MID prefix middle`` — the SPM variant of Appendix D
  that the paper uses for joint PSM+SPM training (not ``SUF suffix PRE
  prefix MID middle``): after MID the model writes prefix then middle as
  one contiguous text, so no token is split at the prefix/middle boundary;

an EOS that ended the example stays at the end (the paper's EOT). The
sequence is trained with plain causal loss on every next-token prediction
(FIM tokens included); examples not transformed are plain causal LM.
"""

from __future__ import annotations

import numpy as np

from scaling import tokenizer as tok
from scaling.objectives import keys, lm

FIM_MODES = ("none", "psm", "spm")
FIM_EXTRA_TOKENS = 3  # PRE, SUF, MID


def fim_mode_indices(words: np.ndarray, rate: float = 0.5) -> np.ndarray:
  """Index into :data:`FIM_MODES` of each example, from its folded key.

  FIM iff ``u0 < rate``; then PSM iff ``u1 < 0.5``, else SPM
  (:func:`keys.key_uniforms`).

  Returns:
    int64 [...]: 0 none, 1 PSM, 2 SPM.
  """
  u0, u1 = keys.key_uniforms(words)
  return np.where(u0 < rate, np.where(u1 < 0.5, 1, 2), 0).astype(np.int64)


def fim_mode(key, example_index: int, rate: float = 0.5) -> str:
  """``"none"``, ``"psm"`` or ``"spm"``: the layout :func:`fim` uses."""
  return FIM_MODES[int(fim_mode_indices(keys.fold_in(key, example_index),
                                        rate))]


def apply_fim(tokens: np.ndarray, words: np.ndarray, mode: str) -> dict:
  """FIM with the layout already drawn from the folded key ``words``."""
  tokens = np.asarray(tokens, dtype=np.int32)
  if mode == "none":
    return lm.causal_lm(tokens)
  ends_doc = tokens.shape[0] > 0 and tokens[-1] == tok.EOS
  content = tokens[:-1] if ends_doc else tokens
  n = content.shape[0]
  cut = np.sort(keys.example_rng(words).integers(0, n + 1, size=2))
  prefix, middle, suffix = np.split(content, cut)
  if mode == "psm":
    parts = [[tok.PRE], prefix, [tok.SUF], suffix, [tok.MID], middle]
  elif mode == "spm":
    parts = [[tok.PRE, tok.SUF], suffix, [tok.MID], prefix, middle]
  else:
    raise ValueError(f"unknown FIM mode {mode!r}; use one of {FIM_MODES}")
  if ends_doc:
    parts.append([tok.EOS])
  return lm.shifted_example(np.concatenate(parts), 0, 0, "causal")


def fim(tokens: np.ndarray, key, example_index: int,
        rate: float = 0.5) -> dict:
  """Fill-in-the-middle transform of one example (see the module docstring).

  Args:
    tokens: int [n] raw tokens.
    key: base key.
    example_index: global example index g; the layout (:func:`fim_mode`) and
      the cut points come from fold_in(key, g).
    rate: probability of a FIM layout (``objective.fim_rate``).

  Returns:
    Per-example fields (:func:`lm.shifted_example`), length n + 3 when
    transformed, else n; loss on every prediction; ``attention="causal"``.
  """
  words = keys.fold_in(key, example_index)
  return apply_fim(tokens, words, FIM_MODES[int(fim_mode_indices(words,
                                                                 rate))])
