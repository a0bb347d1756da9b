"""Pretraining objectives: pure, keyed per-example transforms and their rows.

DESIGN.md §4 (Objectives). Each objective maps one example's raw tokens and
``fold_in(key, global_example_index)`` to the batch-dict fields; see
:mod:`.lm` (causal, prefix, masked LM), :mod:`.denoise` (span corruption,
UL2), :mod:`.fill_in_middle`, :mod:`.masks` (T5 noise masks and length helpers),
:mod:`.rows` (packed rows for the data pipeline) and :mod:`.views` (the
shared scoring views).
"""

from scaling.objectives.denoise import (UL2_DENOISERS, span_corruption, ul2,
                                       ul2_denoiser)
from scaling.objectives.fill_in_middle import fim, fim_mode
from scaling.objectives.keys import fold_in
from scaling.objectives.lm import causal_lm, masked_lm, prefix_lm
from scaling.objectives.masks import (decoder_only_raw_length,
                                      random_spans_helper,
                                      random_spans_noise_mask)
from scaling.objectives.registry import (OBJECTIVES, ObjectiveSpec,
                                         attention_kind, make_spec, transform,
                                         validate, zero_shot_attention)
from scaling.objectives.rows import ExampleRows, example_rows
from scaling.objectives.views import continuation_example, scoring_views

__all__ = [
    "OBJECTIVES", "ObjectiveSpec", "ExampleRows", "UL2_DENOISERS",
    "attention_kind", "causal_lm", "continuation_example",
    "decoder_only_raw_length", "example_rows", "fim", "fim_mode", "fold_in",
    "make_spec", "masked_lm", "prefix_lm", "random_spans_helper",
    "random_spans_noise_mask", "scoring_views", "span_corruption",
    "transform", "ul2", "ul2_denoiser", "validate", "zero_shot_attention",
]
