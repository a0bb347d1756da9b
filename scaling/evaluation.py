"""Held-out evaluation: the shared scoring views of every objective.

Training losses of different objectives are not comparable, so every model is
scored on held-out plain text from the validation split (DESIGN.md §4,
Objectives; :mod:`scaling.objectives.views`):

* the causal view, ``eval_loss`` (nats per loss-bearing token) and
  ``eval_bpb``: causal, packed plain text (a prefix-attention model runs it
  as an empty prefix);
* the continuation view, ``eval_continuation_bpb``: bits per byte of the
  second half of a fixed-length window of held-out text given the first
  half, each objective in the form it was trained in
  (:func:`scaling.objectives.continuation_example`).

A view that does not apply to the objective (masked LM has neither), or
that is switched off (``config.eval.continuation``), is reported as None
with its reason under ``<key>_na``, never as a number.

Bits per byte (DESIGN.md §4) = Σ NLL / (ln 2 · Σ bytes) over the whole eval
set: numerator and denominator are summed separately, never averaged per
batch. Its standard error uses the delta method for a ratio estimator over
the eval rows: with per-row NLL n_i and bytes b_i, r = Σn/Σb and
SE(r) = sqrt(Σ (n_i − r b_i)² / (m (m − 1))) / mean(b), divided by ln 2.
"""

from __future__ import annotations

import math

import numpy as np

from scaling import objectives
from scaling import sharding
from scaling import tokenizer as tok_lib
from scaling.data import packing
from scaling.data import pipeline
from scaling.objectives import views

_WINDOW_ORDER_SEED = 0  # fixed: every run is scored on the same windows
_DISABLED = "not computed: config.eval.continuation is False"


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


def continuation_windows(val_docs: list[bytes], tokenizer: tok_lib.ByteTokenizer,
                         window: int, n_windows: int) -> np.ndarray:
  """Fixed windows of held-out plain text for the continuation view.

  Each validation document (in an order fixed once, independent of the data
  seed) is cut into non-overlapping windows of ``window`` tokens from its
  start (a remainder shorter than a window is unused); windows are taken
  round-robin over the documents (every document's first window, then every
  second window, ...), so a few long documents do not fill the set. A window
  never crosses a document boundary and holds no special token.

  Args:
    val_docs: validation documents (bytes), e.g. ``corpus.val``.
    tokenizer: the byte tokenizer.
    window: W, tokens per window (>= 2).
    n_windows: at most this many windows; -1: all of them.

  Returns:
    int32 [n, W] token windows, n <= ``n_windows`` (0 when no document
    holds W tokens).
  """
  order = np.random.default_rng(_WINDOW_ORDER_SEED).permutation(len(val_docs))
  docs = [tokenizer.encode(val_docs[i]) for i in order]
  counts = np.array([len(d) // window for d in docs], dtype=np.int64)
  picks = sorted((j, i) for i, c in enumerate(counts) for j in range(c))
  if n_windows >= 0:
    picks = picks[:n_windows]
  out = np.zeros((len(picks), window), dtype=np.int32)
  for row, (j, i) in enumerate(picks):
    out[row] = docs[i][j * window:(j + 1) * window]
  return out


def continuation_batches(val_docs: list[bytes], objective_name: str,
                         tokenizer: tok_lib.ByteTokenizer, seq_len: int,
                         batch_size: int,
                         n_batches: int) -> list[dict[str, np.ndarray]]:
  """GLOBAL batches of the continuation view, one window per row.

  Windows of W = ``views.continuation_window(seq_len)`` tokens
  (:func:`continuation_windows`) become :func:`objectives.continuation_example`
  in the objective's trained form, each alone in a row (segment 1, the rest
  padding: segment 0, no loss); a last batch short of windows gets padding
  rows. The loss-bearing targets are exactly each window's second half.

  Args:
    val_docs: validation documents (bytes).
    objective_name: the objective the model was trained with (not masked LM).
    tokenizer: the byte tokenizer.
    seq_len: L (rows are [L]).
    batch_size: global rows per batch.
    n_batches: at most this many batches; -1: every window.

  Returns:
    List of batch dicts with arrays [batch_size, L]; empty when no
    validation document holds a window.

  Raises:
    ValueError: masked LM (the view does not apply; with the reason), or
      ``seq_len`` too short for a window of 2 tokens.
  """
  window = views.continuation_window(seq_len)
  if window < 2:
    raise ValueError(f"seq_len {seq_len} is too short for the continuation "
                     f"view (needs >= {2 + views.CONTINUATION_OVERHEAD})")
  limit = -1 if n_batches < 0 else n_batches * batch_size
  rows = []
  for w in continuation_windows(val_docs, tokenizer, window, limit):
    ex = objectives.continuation_example(objective_name, w, tokenizer)
    row = packing.padding_row(seq_len)
    n = ex["inputs"].shape[0]
    for field in ("inputs", "targets", "loss_mask", "positions", "prefix_mask"):
      row[field][:n] = ex[field]
    row["segment_ids"][:n] = 1
    rows.append(row)
  if not rows:
    return []
  n = -(-len(rows) // batch_size)
  rows += [packing.padding_row(seq_len)] * (n * batch_size - len(rows))
  return [{k: np.stack([r[k] for r in rows[i:i + batch_size]])
           for k in packing.BATCH_KEYS} for i in range(0, len(rows), batch_size)]


def row_sums(eval_step, params, local_batches, mesh):
  """Per-row (NLL nats, bytes, loss tokens) of the model over eval batches.

  Args:
    eval_step: the program's jitted ``(params, batch) -> (nll_B, bytes_B,
      count_B)`` (:func:`scaling.loss.eval_sums`).
    params: the parameters.
    local_batches: this process's rows of each global batch.
    mesh: the device mesh.

  Returns:
    ``(nll, n_bytes, n_tokens)``, each [total global rows], on every process.
  """
  nll, nbytes, count = [], [], []
  for local in local_batches:
    out = eval_step(params, sharding.to_global(local, mesh))
    out = [sharding.to_host(x) for x in out]
    nll.append(out[0])
    nbytes.append(out[1])
    count.append(out[2])
  if not nll:
    return np.zeros(0), np.zeros(0), np.zeros(0)
  return tuple(np.concatenate(x) for x in (nll, nbytes, count))


class Evaluator:
  """Scores params on the shared views (module docstring), fixed batches.

  ``Evaluator(config, corpus, program)(params)`` returns a dict
  (``program`` from :func:`scaling.program.build`, whose jitted eval step
  scores every batch):

  * ``eval_loss`` (nats per loss-bearing token), ``eval_bpb`` and
    ``eval_bpb_se`` of the causal view, or None for all three plus
    ``eval_bpb_na`` (the reason) when the view does not apply;
  * ``eval_continuation_bpb`` and ``eval_continuation_bpb_se``, or None
    for both plus ``eval_continuation_bpb_na``.

  Every process holds its own rows of each global batch. Both views run
  through the program's eval step on [eval.batch_size, seq_len] batches.
  """

  def __init__(self, config, corpus, program):
    tokenizer = tok_lib.ByteTokenizer(config.tokenizer.n_sentinels)
    name = config.objective.name
    applicable = objectives.scoring_views(name)
    self.mesh = program.mesh
    self.na: dict[str, str] = {}
    batch_size, n_batches = config.eval.batch_size, config.eval.batches
    causal = applicable["causal_bpb"]
    if causal["applicable"]:
      causal_batches = pipeline.eval_batches(
          corpus.val, tokenizer, config.seq_len, batch_size, n_batches)
    else:
      causal_batches = []
      self.na["eval_bpb"] = causal["reason"]
    cont = applicable["continuation_bpb"]
    cont_batches = []
    if not config.eval.get("continuation", True):
      self.na["eval_continuation_bpb"] = _DISABLED
    elif not cont["applicable"]:
      self.na["eval_continuation_bpb"] = cont["reason"]
    elif views.continuation_window(config.seq_len) < 2:
      self.na["eval_continuation_bpb"] = (
          f"not computed: seq_len {config.seq_len} is too short for a window")
    else:
      cont_batches = continuation_batches(
          corpus.val, name, tokenizer, config.seq_len, batch_size, n_batches)
      if not cont_batches:
        self.na["eval_continuation_bpb"] = (
            "not computed: no validation document holds a window of "
            f"{views.continuation_window(config.seq_len)} tokens")
    self.batches = causal_batches
    self.continuation = cont_batches
    shard = sharding.process_shard(self.mesh)
    self._local = {
        view: [sharding.local_rows(b, *shard) for b in batches]
        for view, batches in (("causal", causal_batches),
                              ("continuation", cont_batches))}
    self._fn = program.eval_step

  def _sums(self, params, view: str):
    """Per-row (NLL nats, bytes, loss tokens) over a view's batches."""
    return row_sums(self._fn, params, self._local[view], self.mesh)

  def __call__(self, params) -> dict:
    out = {}
    if "eval_bpb" in self.na:
      out.update(eval_loss=None, eval_bpb=None, eval_bpb_se=None,
                 eval_bpb_na=self.na["eval_bpb"])
    else:
      nll, nbytes, count = self._sums(params, "causal")
      bpb, se = bits_per_byte(nll, nbytes)
      out.update(eval_loss=float(nll.sum() / max(count.sum(), 1)),
                 eval_bpb=float(bpb), eval_bpb_se=float(se))
    if "eval_continuation_bpb" in self.na:
      out.update(eval_continuation_bpb=None, eval_continuation_bpb_se=None,
                 eval_continuation_bpb_na=self.na["eval_continuation_bpb"])
    else:
      nll, nbytes, _ = self._sums(params, "continuation")
      bpb, se = bits_per_byte(nll, nbytes)
      out.update(eval_continuation_bpb=float(bpb),
                 eval_continuation_bpb_se=float(se))
    return out
