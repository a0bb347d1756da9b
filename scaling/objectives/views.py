"""The shared scoring views that make objectives comparable (DESIGN.md §4).

Training losses of different objectives are not comparable, so every model
is also scored on held-out plain text:

* ``causal_bpb``: causal bits per byte of plain packed text (causal
  attention, which a prefix-attention model runs as an empty prefix);
* ``continuation_bpb``: bits per byte of the second half of a fixed-length
  window given the first half, each objective in the form it was trained in
  (:func:`continuation_example`): causal for causal LM and FIM, the first
  half as a bidirectional prefix for prefix LM, UL2's S mode for UL2, and the
  span-corruption form ``[first half, sentinel 0 ; sentinel 0, second half,
  EOS]`` (the second half is one final noise span, a layout the span
  masks produce: they end in noise with probability about r). Loss, and so bits per byte, falls on exactly the second half's
  tokens in every form.

Masked LM has neither: a view that does not apply is reported with its
reason, never as a number.
"""

from __future__ import annotations

import numpy as np

from scaling import tokenizer as tok
from scaling.objectives import lm, registry

CONTINUATION_OVERHEAD = 3  # most tokens a form adds to the window (span form)
_MLM_REASON = (
    "not applicable: masked LM is trained with bidirectional attention to "
    "predict masked tokens in place; under its own attention every target is "
    "visible, and causal attention is a pattern it never trained on, so it "
    "defines no next-token probability of plain text")
_FORMS = {"causal_lm": "causal", "fim": "causal", "prefix_lm": "prefix",
          "ul2": "ul2_s", "span_corruption": "span"}


def scoring_views(objective_name: str) -> dict:
  """Which shared views apply to an objective, and why.

  Returns:
    ``{"causal_bpb": {"applicable": bool, "reason": str},
    "continuation_bpb": {"applicable": bool, "reason": str, "form": str or
    None}}`` with form ``causal``, ``prefix``, ``ul2_s`` or ``span`` (see the
    module docstring).

  Raises:
    ConfigError: (``objective.name``) unknown objective.
  """
  kind = registry.attention_kind(objective_name)
  if objective_name == "masked_lm":
    return dict(causal_bpb=dict(applicable=False, reason=_MLM_REASON),
                continuation_bpb=dict(applicable=False, reason=_MLM_REASON,
                                      form=None))
  causal = ("applicable: trained with causal attention" if kind == "causal"
            else "applicable: causal attention is its prefix attention with "
            "an empty prefix (a mode it trains on only in its targets part)")
  form = _FORMS[objective_name]
  return dict(
      causal_bpb=dict(applicable=True, reason=causal),
      continuation_bpb=dict(
          applicable=True, form=form,
          reason=f"applicable: the first half given in its trained {form} "
          "form, loss on the second half's tokens"))


def continuation_window(seq_len: int) -> int:
  """Window length W for the continuation view at ``seq_len``, one for all.

  The largest even W with ``W + CONTINUATION_OVERHEAD <= seq_len``, so every
  form fits a row and every objective is scored on the same windows.
  """
  return max(0, (seq_len - CONTINUATION_OVERHEAD) // 2 * 2)


def continuation_example(objective_name: str, window: np.ndarray,
                         tokenizer: tok.ByteTokenizer) -> dict:
  """One continuation-view example: the window's second half given its first.

  Args:
    objective_name: the objective the model was trained with.
    window: int [W] plain-text tokens (W >= 2); the first half is
      ``window[:W // 2]``.
    tokenizer: gives sentinel 0 for the span form.

  Returns:
    Per-example fields (:func:`lm.shifted_example`) of length W (causal,
    prefix), W + 1 (ul2_s) or W + 3 (span), whose loss-bearing targets are
    exactly ``window[W // 2:]``; and ``attention``.

  Raises:
    ValueError: masked LM (with the reason), or W < 2.
    ConfigError: unknown objective.
  """
  views = scoring_views(objective_name)["continuation_bpb"]
  if not views["applicable"]:
    raise ValueError(f"continuation_bpb for {objective_name}: "
                     f"{views['reason']}")
  window = np.asarray(window, dtype=np.int32)
  w = window.shape[0]
  if w < 2:
    raise ValueError(f"the continuation window needs >= 2 tokens, got {w}")
  half = w // 2
  form = views["form"]
  if form == "causal":
    return lm.shifted_example(window, 0, half - 1, "causal")
  if form == "prefix":
    return lm.shifted_example(window, half, half - 1, "prefix")
  if form == "ul2_s":
    z = np.concatenate([[tok.MODE_S], window])
    return lm.shifted_example(z, half + 1, half, "prefix")
  s0 = tokenizer.sentinel(0)
  z = np.concatenate([window[:half], [s0, s0], window[half:], [tok.EOS]])
  example = lm.shifted_example(z, half + 1, half + 1, "prefix")
  example["loss_mask"][-2] = 0.0  # the last token predicting EOS
  return example
