"""Causal-LM packing: concatenate documents, cut rows of ``seq_len + 1``.

DESIGN.md §4 (Packing). Each epoch lists the training documents in an order
drawn from ``(seed, epoch)``, each followed by EOS; the epochs are concatenated
into one stream and row ``k`` is stream tokens ``[k (L+1), (k+1) (L+1))``, so a
row is a pure function of ``(seed, k)`` over the whole job and rows run across
epoch boundaries. From a row, ``inputs = row[:-1]`` and ``targets = row[1:]``.

Every token belongs to one document occurrence (a document's EOS belongs to
that document). Within a row:

* ``segment_ids`` number the occurrences 1, 2, … (0 = padding);
* ``positions`` restart at 0 where a segment starts, including a document
  continued from the previous row;
* ``loss_mask`` is 1 exactly where input and target belong to the same
  occurrence: the last byte predicting EOS bears loss, EOS predicting the next
  document's first token does not, nor does any padding position;
* ``prefix_mask`` is all False (causal attention).

``max_tokens`` caps the unique training tokens: documents in an order drawn
from ``seed`` are taken until the cap is reached, the last one truncated (and
then given no EOS, as it does not end there); every epoch repeats that set in a
fresh order.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from scaling import tokenizer as tok

_SUBSET_STREAM = 1  # SeedSequence tags: the max_tokens subset vs epoch orders
_EPOCH_STREAM = 0
_EPOCHS_CACHED = 4  # epoch orders kept (a row spans at most a few epochs)

# The batch-dict contract: every row (and batch) holds these fields, [L]
# (and [B, L]) arrays of these dtypes; the train and eval steps take them.
BATCH_DTYPES = dict(inputs=np.int32, targets=np.int32, loss_mask=np.float32,
                    segment_ids=np.int32, positions=np.int32,
                    prefix_mask=np.bool_)
BATCH_KEYS = tuple(BATCH_DTYPES)


def segment_row(tokens: np.ndarray, doc: np.ndarray) -> dict[str, np.ndarray]:
  """Turns one packed row into the batch-dict fields.

  Args:
    tokens: int [L+1] token ids of the row (padding slots may hold any id).
    doc: int [L+1] document-occurrence id of each token; -1 marks padding.
      Equal ids must be contiguous (a document occupies one run of slots).

  Returns:
    Dict of [L] arrays: ``inputs``, ``targets`` (int32; PAD at padding),
    ``loss_mask`` (float32), ``segment_ids``, ``positions`` (int32) and
    ``prefix_mask`` (bool, all False), per the batch-dict contract.
  """
  tokens = np.asarray(tokens)
  doc = np.asarray(doc)
  length = tokens.shape[0] - 1
  real = doc >= 0
  ids = np.where(real, tokens, tok.PAD).astype(np.int32)
  d_in, d_tgt = doc[:-1], doc[1:]
  valid = real[:-1]
  starts = np.empty(length, dtype=bool)
  starts[0] = True
  starts[1:] = d_in[1:] != d_in[:-1]
  starts &= valid
  segment_ids = np.cumsum(starts, dtype=np.int32) * valid
  index = np.arange(length, dtype=np.int32)
  start_index = np.maximum.accumulate(np.where(starts, index, 0))
  positions = (index - start_index) * valid
  loss_mask = (valid & (d_tgt == d_in)).astype(np.float32)
  return dict(
      inputs=ids[:-1],
      targets=ids[1:],
      loss_mask=loss_mask,
      segment_ids=segment_ids.astype(np.int32),
      positions=positions.astype(np.int32),
      prefix_mask=np.zeros(length, dtype=bool),
  )


@dataclasses.dataclass(frozen=True)
class CappedDocuments:
  """The training documents under a ``max_tokens`` cap.

  Attributes:
    docs: token arrays, in the capped (seeded) order; the last one may be a
      truncated prefix of a document.
    truncated: whether the last document was cut by the cap (it then gets no
      EOS in the causal stream).
    unique_tokens: stream tokens per epoch: document tokens plus one EOS per
      complete document (= max_tokens whenever the cap binds).
  """
  docs: list[np.ndarray]
  truncated: bool
  unique_tokens: int


def cap_documents(docs: list[np.ndarray], max_tokens: int,
                  seed: int) -> CappedDocuments:
  """Applies the ``data.max_tokens`` cap (Muennighoff et al. 2023's D_unique).

  Args:
    docs: token arrays of the training documents (non-empty).
    max_tokens: cap on unique tokens (each complete document counts its
      length + 1 for its EOS); -1 keeps every document in its given order.
    seed: the data seed; the kept documents are the first ones in an order
      drawn from it, so different seeds see different subsets.

  Returns:
    A :class:`CappedDocuments`.

  Raises:
    ValueError: ``max_tokens`` is 0 or below -1, or ``docs`` is empty.
  """
  if not docs:
    raise ValueError("no training documents to pack")
  full = sum(len(d) + 1 for d in docs)
  if max_tokens == -1 or max_tokens >= full:
    return CappedDocuments(list(docs), False, full)
  if max_tokens < 1:
    raise ValueError(
        f"data.max_tokens is {max_tokens}; use -1 (whole corpus) or a "
        "positive token count")
  rng = np.random.default_rng([seed, _SUBSET_STREAM])
  kept, total = [], 0
  for i in rng.permutation(len(docs)):
    room = max_tokens - total
    if len(docs[i]) + 1 <= room:
      kept.append(docs[i])
      total += len(docs[i]) + 1
      if total == max_tokens:
        return CappedDocuments(kept, False, total)
    else:
      kept.append(docs[i][:room])  # truncated: no EOS after it
      return CappedDocuments(kept, True, max_tokens)
  raise AssertionError("unreachable: the cap is below the full stream")


class CausalRows:
  """Packed causal-LM rows, row ``k`` a pure function of ``(seed, k)``.

  Attributes:
    seq_len: L (row length after the one-token shift).
    unique_tokens: stream tokens per epoch (documents + EOS, after the cap).
    rows_per_epoch: ``unique_tokens / (L + 1)`` (fractional: rows cross
      epoch boundaries).
    n_docs: documents per epoch.
  """

  def __init__(self, docs: list[np.ndarray], seq_len: int, seed: int,
               max_tokens: int = -1):
    """Builds the per-epoch token buffer.

    Args:
      docs: token arrays of the training documents.
      seq_len: L, tokens per row fed to the model.
      seed: the data seed (>= 0).
      max_tokens: see :func:`cap_documents`.

    Raises:
      ValueError: bad ``seq_len``, ``seed`` or ``max_tokens``; no documents.
    """
    if seq_len < 1:
      raise ValueError(f"seq_len must be positive, got {seq_len}")
    if seed < 0:
      raise ValueError(f"data.seed must be >= 0, got {seed}")
    capped = cap_documents(docs, max_tokens, seed)
    self.seq_len = seq_len
    self.seed = seed
    self.n_docs = len(capped.docs)
    self.unique_tokens = capped.unique_tokens
    self.rows_per_epoch = self.unique_tokens / (seq_len + 1)
    # Span of each document in the buffer: its tokens then its EOS, except
    # that a truncated last document has no EOS.
    lengths = np.array([len(d) + 1 for d in capped.docs], dtype=np.int64)
    if capped.truncated:
      lengths[-1] -= 1
    self._span_len = lengths
    self._span_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    hi = max((int(d.max()) for d in capped.docs if len(d)), default=0)
    dtype = np.uint16 if max(hi, tok.EOS) < 2**16 else np.int32
    buf = np.full(int(lengths.sum()), tok.EOS, dtype=dtype)
    for d, s in zip(capped.docs, self._span_start):
      buf[s:s + len(d)] = d
    self._buf = buf
    self._epochs: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    self._lock = threading.Lock()

  def epoch_order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """Document order of one epoch and each document's stream offset.

    Returns:
      ``(order [n_docs], offsets [n_docs + 1])``: the epoch's documents and
      their start offsets within the epoch's stream (last = unique_tokens).
    """
    with self._lock:  # grain may read rows from several threads
      cached = self._epochs.get(epoch)
      if cached is None:
        cached = self._epochs[epoch] = self._draw_epoch(epoch)
        while len(self._epochs) > _EPOCHS_CACHED:
          self._epochs.pop(next(iter(self._epochs)))
      return cached

  def _draw_epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(
        [self.seed, _EPOCH_STREAM, epoch]).permutation(self.n_docs)
    offsets = np.zeros(self.n_docs + 1, dtype=np.int64)
    np.cumsum(self._span_len[order], out=offsets[1:])
    return order, offsets

  def row_tokens(self, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Row ``k``'s raw ``L + 1`` stream tokens and document-occurrence ids.

    Returns:
      ``(tokens int32 [L+1], occurrence int64 [L+1])`` where the occurrence
      id of a token is ``epoch * n_docs + rank in the epoch's order``.
    """
    width = self.seq_len + 1
    tokens = np.empty(width, dtype=np.int32)
    occurrence = np.empty(width, dtype=np.int64)
    pos, filled = k * width, 0
    while filled < width:
      epoch, offset = divmod(pos, self.unique_tokens)
      order, offsets = self.epoch_order(epoch)
      rank = int(np.searchsorted(offsets, offset, side="right")) - 1
      doc = order[rank]
      within = offset - offsets[rank]
      n = min(int(self._span_len[doc] - within), width - filled)
      src = self._span_start[doc] + within
      tokens[filled:filled + n] = self._buf[src:src + n]
      occurrence[filled:filled + n] = epoch * self.n_docs + rank
      filled += n
      pos += n
    return tokens, occurrence

  def row(self, k: int) -> dict[str, np.ndarray]:
    """Row ``k`` as the batch-dict fields, each of shape [L]."""
    return segment_row(*self.row_tokens(k))

  def epochs_at_rows(self, n_rows: int) -> float:
    """Epochs of the capped set consumed by the first ``n_rows`` rows."""
    return n_rows / self.rows_per_epoch


def padding_row(seq_len: int) -> dict[str, np.ndarray]:
  """A row of padding only: PAD ids, segment id 0, no loss ([L] arrays)."""
  return segment_row(np.full(seq_len + 1, tok.PAD, dtype=np.int32),
                     np.full(seq_len + 1, -1, dtype=np.int64))


def pack_sequential(docs: list[np.ndarray], seq_len: int) -> list[dict]:
  """Packs documents in the given order, once, padding the last row.

  Used for evaluation: each document is followed by EOS, the stream is cut
  into rows of ``seq_len + 1`` and the last row is padded (segment id 0, no
  loss).

  Args:
    docs: token arrays.
    seq_len: L.

  Returns:
    List of row dicts (each field of shape [L]); ``ceil(stream / (L+1))`` rows.
  """
  width = seq_len + 1
  lengths = np.array([len(d) + 1 for d in docs], dtype=np.int64)
  total = int(lengths.sum())
  n_rows = -(-total // width)
  tokens = np.full(n_rows * width, tok.PAD, dtype=np.int32)
  occurrence = np.full(n_rows * width, -1, dtype=np.int64)
  start = 0
  for i, d in enumerate(docs):
    tokens[start:start + len(d)] = d
    tokens[start + len(d)] = tok.EOS
    occurrence[start:start + len(d) + 1] = i
    start += len(d) + 1
  return [segment_row(tokens[r * width:(r + 1) * width],
                      occurrence[r * width:(r + 1) * width])
          for r in range(n_rows)]
