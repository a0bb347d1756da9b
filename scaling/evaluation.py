"""Held-out evaluation: ``eval_loss`` (nats per token) and ``eval_bpb`` on plain text.

Bits per byte (DESIGN.md §4) = Σ NLL / (ln 2 · Σ bytes) over the whole eval
set: numerator and denominator are summed separately, never averaged per
batch. Its standard error uses the delta method for a ratio estimator over
the eval rows: with per-row NLL n_i and bytes b_i, r = Σn/Σb and
SE(r) = sqrt(Σ (n_i − r b_i)² / (m (m − 1))) / mean(b), divided by ln 2.
"""

from __future__ import annotations

import math

import jax
from jax.experimental import multihost_utils
import numpy as np

from scaling import sharding as sharding_lib
from scaling import step as step_lib
from scaling import tokenizer as tok_lib
from scaling.data import pipeline


def bits_per_byte(nll_rows, bytes_rows) -> tuple[float, float]:
  """(bpb, standard error) from per-row NLL sums (nats) and byte counts.

  Raises:
    ValueError: when the rows hold no bytes.
  """
  nll = np.asarray(nll_rows, np.float64)
  nbytes = np.asarray(bytes_rows, np.float64)
  total = nbytes.sum()
  if total <= 0:
    raise ValueError("eval set has no loss-bearing bytes")
  ratio = nll.sum() / total
  m = len(nll)
  se = 0.0
  if m > 1:
    se = math.sqrt(np.sum((nll - ratio * nbytes) ** 2) / (m * (m - 1))) / nbytes.mean()
  return ratio / math.log(2), se / math.log(2)


class Evaluator:
  """Scores params on fixed validation batches (the shared plain-text view).

  The batches are causal, packed plain text from the corpus's validation
  split; every process holds its own rows of each global batch.
  """

  def __init__(self, config, corpus, model, mesh):
    tokenizer = tok_lib.ByteTokenizer(config.tokenizer.n_sentinels)
    self.batches = pipeline.eval_batches(
        corpus.val, tokenizer, config.seq_len, config.eval.batch_size,
        config.eval.batches)
    self.mesh = mesh
    p, n = pipeline.process_shard(mesh, sharding_lib.BATCH_SPEC)
    rows = config.eval.batch_size // n
    self._local = [{k: v[p * rows:(p + 1) * rows] for k, v in b.items()}
                   for b in self.batches]
    self._fn = jax.jit(lambda params, batch: step_lib.eval_sums(model, params, batch))

  def __call__(self, params) -> dict:
    nll, nbytes, count = [], [], []
    for local in self._local:
      batch = pipeline.to_global(local, self.mesh, sharding_lib.BATCH_SPEC)
      out = self._fn(params, batch)
      out = [np.asarray(multihost_utils.process_allgather(x, tiled=True))
             if jax.process_count() > 1 else np.asarray(x) for x in out]
      nll.append(out[0])
      nbytes.append(out[1])
      count.append(out[2])
    nll, nbytes, count = map(np.concatenate, (nll, nbytes, count))
    bpb, se = bits_per_byte(nll, nbytes)
    return dict(eval_loss=float(nll.sum() / max(count.sum(), 1)),
                eval_bpb=bpb, eval_bpb_se=se)
