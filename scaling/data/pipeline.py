"""Training and evaluation batches (grain), and their global device arrays.

The batch at step ``k`` holds global rows ``[k B, (k+1) B)`` of the packed row
source (B = global ``batch_size``), so it is a pure function of ``(data seed,
k)``: resuming, or changing the number of processes, sees the same data. Each
process builds only its own contiguous block of rows and the global array is
assembled with ``jax.make_array_from_process_local_data`` (DESIGN.md §2.3).
"""

from __future__ import annotations

import math
from typing import Protocol

import grain
import jax
import numpy as np

from scaling.config import ConfigError
from scaling.data.packing import CausalRows
from scaling.data.packing import cap_documents
from scaling.data.packing import pack_sequential
from scaling.data.packing import padding_row
from scaling.tokenizer import ByteTokenizer

_MAX_ROWS = 2**62  # the row index space of a job: unbounded in practice
_EVAL_ORDER_SEED = 0  # fixed: every run is scored on the same eval rows
BATCH_KEYS = ("inputs", "targets", "loss_mask", "segment_ids", "positions",
              "prefix_mask")


class RowSource(Protocol):
  """Row ``k`` of the job (a dict of [L] arrays) and the rows per epoch."""
  rows_per_epoch: float

  def row(self, k: int) -> dict[str, np.ndarray]:
    ...


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
               process_count: int = 1):
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
        :func:`process_shard`).
      process_count: number of blocks each batch is split into.

    Raises:
      ConfigError: ``batch_size`` not divisible by ``process_count``;
        ``data.max_tokens`` or ``data.seed`` invalid.
      ValueError: ``process_index`` out of range.
    """
    if batch_size % process_count:
      raise ConfigError(
          "batch_size", f"{batch_size} is not divisible by the {process_count} "
          "data shards of the processes; use a multiple of "
          f"{process_count}")
    if not 0 <= process_index < process_count:
      raise ValueError(
          f"process_index {process_index} not in [0, {process_count})")
    if seed < 0:
      raise ConfigError("data.seed", f"is {seed}; use a seed >= 0")
    if max_tokens == 0 or max_tokens < -1:
      raise ConfigError(
          "data.max_tokens", f"is {max_tokens}; use -1 (whole corpus) or a "
          "positive number of unique training tokens")
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
      from scaling import objectives  # pylint: disable=import-outside-toplevel
      docs = [tokenizer.encode(d) for d in corpus.train]
      capped = cap_documents(docs, max_tokens, seed)
      self.source = objectives.example_rows(objective_cfg, tokenizer,
                                            capped.docs, seq_len, seed,
                                            truncated=capped.truncated)
      self.unique_tokens = capped.unique_tokens
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
    ConfigError: (``eval.batches``) ``n_batches`` is 0 or below -1.
  """
  if n_batches == 0 or n_batches < -1:
    raise ConfigError("eval.batches", f"is {n_batches}; use a positive "
                      "number of batches or -1 for the whole split")
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


def local_rows(global_batch: dict[str, np.ndarray], process_index: int,
               process_count: int) -> dict[str, np.ndarray]:
  """This process's contiguous block of a global host batch.

  Returns:
    Every array's rows ``[p b, (p+1) b)``, b = B / process_count.
  """
  b = next(iter(global_batch.values())).shape[0] // process_count
  return {k: v[process_index * b:(process_index + 1) * b]
          for k, v in global_batch.items()}


def batch_shard(process_of_device: np.ndarray, axis_names: tuple[str, ...],
                batch_axes: tuple[str, ...],
                process_index: int) -> tuple[int, int]:
  """Which block of the batch dimension one process holds (pure logic).

  A batch dimension sharded over mesh axes ``batch_axes`` is cut into
  ``prod(sizes)`` shards, the first axis major (as NamedSharding does); the
  process must hold a contiguous, aligned run of them.

  Args:
    process_of_device: int array shaped like the mesh: each device's process.
    axis_names: the mesh axis names, in order.
    batch_axes: mesh axes the batch dimension is sharded over (may be empty:
      replicated).
    process_index: the process asked about.

  Returns:
    ``(shard_index, shard_count)``: the process holds global rows
    ``[shard_index B/shard_count, (shard_index+1) B/shard_count)``.

  Raises:
    ValueError: the process holds no device, or a non-contiguous or
      misaligned set of batch shards (reorder the mesh's devices).
  """
  dims = [axis_names.index(a) for a in batch_axes]
  sizes = [process_of_device.shape[d] for d in dims]
  count = math.prod(sizes)
  coords = np.argwhere(process_of_device == process_index)
  if not len(coords):
    raise ValueError(f"process {process_index} holds no device of the mesh")
  held = sorted({int(np.ravel_multi_index(tuple(c[dims]), sizes))
                 if dims else 0 for c in coords})
  width = len(held)
  if held != list(range(held[0], held[0] + width)) or held[0] % width:
    raise ValueError(
        f"process {process_index} holds batch shards {held} of {count}, not "
        "one aligned contiguous block; build the mesh with jax.make_mesh so "
        "each process's devices are adjacent along the data axes")
  return held[0] // width, count // width


def _batch_axes(pspec) -> tuple[str, ...]:
  first = pspec[0] if len(pspec) else None
  if first is None:
    return ()
  return (first,) if isinstance(first, str) else tuple(first)


def process_shard(mesh: jax.sharding.Mesh, pspec) -> tuple[int, int]:
  """This process's ``(process_index, process_count)`` for :class:`TrainStream`.

  Derived from the mesh rather than ``jax.process_index()`` so that processes
  replicated along the batch (e.g. a tensor axis across hosts) load the same
  rows. Single process: ``(0, 1)``.

  Args:
    mesh: the device mesh.
    pspec: the batch's PartitionSpec, e.g. ``P(("data", "fsdp"), None)``.

  Raises:
    ValueError: see :func:`batch_shard`.
  """
  process_of_device = np.vectorize(lambda d: d.process_index,
                                   otypes=[int])(mesh.devices)
  return batch_shard(process_of_device, tuple(mesh.axis_names),
                     _batch_axes(pspec), jax.process_index())


def to_global(local_batch: dict[str, np.ndarray], mesh: jax.sharding.Mesh,
              pspec) -> dict[str, jax.Array]:
  """Assembles per-process host rows into global sharded device arrays.

  Args:
    local_batch: this process's rows (from :meth:`TrainStream.local_batch` or
      :func:`local_rows`), arrays [B / shard_count, L].
    mesh: the device mesh.
    pspec: PartitionSpec of the batch, e.g. ``P(("data", "fsdp"), None)``.

  Returns:
    Dict of ``jax.Array`` [B, L] with ``NamedSharding(mesh, pspec)``, built by
    ``jax.make_array_from_process_local_data``.
  """
  sharding = jax.sharding.NamedSharding(mesh, pspec)
  _, count = process_shard(mesh, pspec)
  return {
      k: jax.make_array_from_process_local_data(
          sharding, v, (v.shape[0] * count,) + v.shape[1:])
      for k, v in local_batch.items()
  }


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
