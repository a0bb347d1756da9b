"""Training and evaluation batches (grain) as host arrays.

The batch at step ``k`` holds global rows ``[k B, (k+1) B)`` of the job (B =
global ``batch_size``), so it is a pure function of ``(data seed, k)``:
resuming, or changing the number of processes, sees the same data. With
``data.row_order=shuffled`` (the default) job row ``j`` is row ``π_w(j)`` of
the packed row source, ``π_w`` a seeded permutation of each window of
``ROW_WINDOW`` consecutive rows (:class:`WindowShuffle`), so a batch draws
its rows from all over the corpus instead of one stretch of one document;
``stream`` (what every run did before the field existed) reads the source in
order. Each
process builds only its own contiguous block of rows (its block comes from
``scaling.sharding.process_shard``; ``scaling.sharding.to_global`` assembles
the global array, DESIGN.md §2.3).
"""

from __future__ import annotations

import math
import threading
from typing import Protocol

import grain
import numpy as np

from scaling import objectives
from scaling.data.packing import BATCH_KEYS
from scaling.data.packing import CausalRows
from scaling.data.packing import cap_documents
from scaling.data.packing import pack_sequential
from scaling.data.packing import padding_row
from scaling.tokenizer import ByteTokenizer

_MAX_ROWS = 2**62  # the row index space of a job: unbounded in practice
_EVAL_ORDER_SEED = 0  # fixed: every run is scored on the same eval rows
ROW_WINDOW = 2**16  # rows permuted together (8.5M tokens at seq_len 128)
_WINDOW_STREAM = 1  # the permutations' random stream (packing uses 0)
_WINDOWS_CACHED = 2  # a batch spans at most two windows
ROW_ORDERS = ("shuffled", "stream")


class RowSource(Protocol):
  """Row ``k`` of the job (a dict of [L] arrays) and the rows per epoch."""
  rows_per_epoch: float

  def row(self, k: int) -> dict[str, np.ndarray]:
    ...


class WindowShuffle:
  """A row source read in a seeded order within windows of rows.

  Row ``j`` is row ``w W + π_w(j − w W)`` of ``source``, ``w = j // W``,
  ``π_w`` a permutation of ``range(W)`` drawn from ``(seed, w)``: a bijection
  on the row indices, so every source row is read exactly once per pass and
  epochs are counted as before. ``W = min(ROW_WINDOW, rows per epoch)`` (at
  least 1), so a batch's rows come from anywhere in about an epoch of the
  stream: with the stream read in order, consecutive rows are consecutive
  stretches of the same documents, one batch of 16 x 129 bytes holds 2 KB
  of one file, and the end of a run is fitted to the last few files it read.
  """

  def __init__(self, source: RowSource, seed: int):
    self.source = source
    self.rows_per_epoch = source.rows_per_epoch
    self.window = int(max(1, min(ROW_WINDOW, source.rows_per_epoch)))
    self.seed = seed
    self._perms: dict[int, np.ndarray] = {}
    self._lock = threading.Lock()

  def _perm(self, w: int) -> np.ndarray:
    with self._lock:  # grain may read rows from several threads
      perm = self._perms.get(w)
      if perm is None:
        perm = self._perms[w] = np.random.default_rng(
            [self.seed, _WINDOW_STREAM, w]).permutation(self.window)
        while len(self._perms) > _WINDOWS_CACHED:
          self._perms.pop(next(iter(self._perms)))
      return perm

  def source_row(self, j: int) -> int:
    """The source row that job row ``j`` reads."""
    w, i = divmod(j, self.window)
    return w * self.window + int(self._perm(w)[i])

  def row(self, j: int) -> dict[str, np.ndarray]:
    return self.source.row(self.source_row(j))


class TrainStream:
  """This process's slice of every training batch.

  Attributes:
    batch_size: global sequences per step.
    local_batch_size: ``batch_size // process_count`` rows built here.
    seq_len: L.
    unique_tokens: unique training tokens per epoch (after ``max_tokens``).
    source: the row source (causal packing or an objective's examples).
  """

  def __init__(self, corpus, tokenizer: ByteTokenizer, seq_len: int,
               batch_size: int, seed: int, max_tokens: int = -1,
               objective_cfg=None, process_index: int = 0,
               process_count: int = 1, row_order: str = "shuffled"):
    """Tokenizes the training split and builds the row source.

    Args:
      corpus: a :class:`scaling.data.sources.Corpus`.
      tokenizer: the byte tokenizer.
      seq_len: L, tokens per sequence.
      batch_size: GLOBAL sequences per step.
      seed: the data seed (``config.data.seed``).
      max_tokens: ``config.data.max_tokens`` (-1: the whole training split).
      objective_cfg: ``config.objective``; None or ``name == "causal_lm"``
        packs plain text, anything else asks
        ``scaling.objectives.example_rows`` for its rows.
      process_index: this process's block of each batch (see
        :func:`scaling.sharding.process_shard`).
      process_count: number of blocks each batch is split into.
      row_order: ``config.data.row_order``: ``shuffled`` (rows permuted
        within windows, :class:`WindowShuffle`) or ``stream`` (in order).

    Raises:
      ValueError: ``batch_size`` not divisible by ``process_count``,
        ``process_index`` out of range or an unknown ``row_order``
        (``scaling.validation`` checks the config's values before anything
        is built).
    """
    if row_order not in ROW_ORDERS:
      raise ValueError(f"row_order is {row_order!r}; use one of "
                       f"{', '.join(ROW_ORDERS)}")
    if batch_size % process_count or not 0 <= process_index < process_count:
      raise ValueError(
          f"process {process_index} of {process_count} cannot hold an equal "
          f"block of a batch of {batch_size} rows")
    self.batch_size = batch_size
    self.local_batch_size = batch_size // process_count
    self.seq_len = seq_len
    self.process_index = process_index
    self.process_count = process_count
    name = "causal_lm" if objective_cfg is None else objective_cfg.name
    if name == "causal_lm":
      # Byte ids are the bytes themselves: a zero-copy view is the encoding.
      docs = [np.frombuffer(d, dtype=np.uint8) for d in corpus.train]
      self.source: RowSource = CausalRows(docs, seq_len, seed, max_tokens)
      self.unique_tokens = self.source.unique_tokens
    else:
      docs = [tokenizer.encode(d) for d in corpus.train]
      capped = cap_documents(docs, max_tokens, seed)
      self.source = objectives.example_rows(objective_cfg, tokenizer,
                                            capped.docs, seq_len, seed,
                                            truncated=capped.truncated)
      self.unique_tokens = capped.unique_tokens
    if row_order == "shuffled":
      self.source = WindowShuffle(self.source, seed)
    self._dataset = grain.MapDataset.range(_MAX_ROWS).map(
        self._local_row).batch(self.local_batch_size, drop_remainder=True)

  def _local_row(self, j: int) -> dict[str, np.ndarray]:
    step, r = divmod(j, self.local_batch_size)
    return self.source.row(step * self.batch_size +
                           self.process_index * self.local_batch_size + r)

  def local_batch(self, step: int) -> dict[str, np.ndarray]:
    """This process's rows of the batch of optimizer step ``step``.

    Args:
      step: optimizer step, >= 0.

    Returns:
      The batch dict, every array [local_batch_size, L]: global rows
      ``step*B + process_index*b + [0, b)`` with b = local_batch_size.
    """
    if step < 0:
      raise ValueError(f"step must be >= 0, got {step}")
    return self._dataset[step]

  def epochs_at(self, step: int) -> float:
    """Epochs of the (capped) training set consumed by steps ``[0, step)``."""
    return step * self.batch_size / float(self.source.rows_per_epoch)


def eval_batches(val_docs: list[bytes], tokenizer: ByteTokenizer,
                 seq_len: int, batch_size: int,
                 n_batches: int) -> list[dict[str, np.ndarray]]:
  """Fixed causal plain-text GLOBAL batches from the validation split.

  The shared scoring view of every objective: the validation documents in an
  order fixed once (independent of the data seed), each followed by EOS,
  packed into rows of ``seq_len + 1`` (DESIGN.md §4 Packing); the last row is
  padded, and a last batch short of rows gets fully padded rows (segment 0,
  no loss). Bits per byte must be summed over all batches (DESIGN.md §4).

  Args:
    val_docs: validation documents (bytes), e.g. ``corpus.val``.
    tokenizer: the byte tokenizer.
    seq_len: L.
    batch_size: global rows per batch.
    n_batches: at most this many batches (fewer when the split is used up),
      their rows evenly spaced over the packed split; -1: the whole split.

  Returns:
    List of batch dicts with arrays [batch_size, L].

  Raises:
    ValueError: ``n_batches`` is 0 or below -1 (``eval.batches`` is checked
      by ``scaling.validation``).
  """
  if n_batches == 0 or n_batches < -1:
    raise ValueError(f"n_batches is {n_batches}; use > 0 or -1")
  order = np.random.default_rng(_EVAL_ORDER_SEED).permutation(len(val_docs))
  docs = [tokenizer.encode(val_docs[i]) for i in order]
  rows = pack_sequential(docs, seq_len)
  n = math.ceil(len(rows) / batch_size)
  if n_batches > 0:
    n = min(n, n_batches)
  if n * batch_size < len(rows):
    # Evenly spaced rows, so a few eval batches sample the whole split
    # rather than its first documents.
    pick = np.arange(n * batch_size) * len(rows) // (n * batch_size)
    rows = [rows[i] for i in pick]
  rows += [padding_row(seq_len)] * (n * batch_size - len(rows))
  return [{k: np.stack([r[k] for r in rows[i:i + batch_size]])
           for k in BATCH_KEYS} for i in range(0, len(rows), batch_size)]


def unigram_entropy_bits_per_byte(docs: list[bytes]) -> float:
  """Entropy of the byte unigram distribution, in bits per byte.

  H = -sum_b p(b) log2 p(b) over the 256 byte values (Shannon 1948), p the
  empirical frequencies over all ``docs``: the bits per byte of the best model
  that ignores context, the baseline for eval_bpb.

  Raises:
    ValueError: ``docs`` hold no bytes.
  """
  counts = np.zeros(256, dtype=np.int64)
  for d in docs:
    counts += np.bincount(np.frombuffer(d, dtype=np.uint8), minlength=256)
  total = counts.sum()
  if total == 0:
    raise ValueError("no bytes to measure the unigram entropy of")
  p = counts[counts > 0] / total
  return float(-(p * np.log2(p)).sum())
