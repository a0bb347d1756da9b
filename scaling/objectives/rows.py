"""Packed rows of a non-causal objective; row k is a pure function of (seed, k).

DESIGN.md §4 (Packing, Objectives): whole-document objectives transform each
document piece first, with lengths computed beforehand, then pack.

The plan of epoch e (a pure function of the seed, e and the examples drawn
before it):

1. the documents in the epoch's seeded order (the same order as causal
   packing, ``default_rng([seed, 0, e])``), each followed by EOS;
2. each document is cut into examples in turn. Example number g (global: all
   earlier epochs' examples come first) first draws its mode from
   ``fold_in(key, g)`` (UL2 denoiser, FIM layout), which fixes its
   transformed length as a function of its raw length; it then takes the
   largest raw length that both remains in the document and fits the space
   left in the current row (so a long document gives full-size examples,
   T5-style, and only its first and last pieces are shorter). When the space
   left cannot hold an example of ``min_raw`` tokens (1 for masked LM,
   else 2) the row is closed (padding: segment id 0, no loss) and a new one
   begun; a document remainder shorter than ``min_raw`` (at most its EOS) is
   dropped;
3. examples fill rows in that order, several per row, each its own segment
   (segment ids 1, 2, …, positions restarting at 0); the epoch's last row is
   padded and epochs do not share rows.

So rows are nearly full (for masked LM, which keeps lengths, this is exactly
concatenate-then-split). Row counts can differ slightly between epochs (the
cuts depend on the order and on the drawn modes); :meth:`ExampleRows.row`
walks the exact per-epoch counts, and ``rows_per_epoch`` reports epoch 0's.
Reaching a row of epoch e plans epochs 0 … e-1 first (counts only are kept;
about 0.1 s an epoch on the 10 MB stdlib corpus at seq_len 256).
Causal LM is packed by :mod:`scaling.data.packing` and not here.

The base key is ``fold_in(PRNGKey(seed), objective.seed)``.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np

from scaling import tokenizer as tok
from scaling.objectives import keys, registry

_ORDER_STREAM = 0  # default_rng([seed, 0, epoch]): causal packing's order
_MODE_CHUNK = 4096  # examples whose modes are drawn at once
_EPOCHS_CACHED = 4


@dataclasses.dataclass(frozen=True)
class EpochPlan:
  """The examples of one epoch, in row order (all arrays [n_examples]).

  Attributes:
    first_example: global index of the epoch's first example.
    n_rows: rows of the epoch.
    doc, start, raw_len: the example's document, offset in it and raw tokens
      (the document being its tokens followed by EOS).
    mode: the mode index (:meth:`ObjectiveSpec.modes`).
    row, offset: the row within the epoch and the first slot in it.
  """
  first_example: int
  n_rows: int
  doc: np.ndarray
  start: np.ndarray
  raw_len: np.ndarray
  mode: np.ndarray
  row: np.ndarray
  offset: np.ndarray


class ExampleRows:
  """Rows of an objective's examples; see the module docstring.

  Attributes:
    spec: the objective.
    seq_len: L.
    rows_per_epoch: rows of epoch 0 (float, as the pipeline's RowSource).
    key: the base key (uint32 [2]).
  """

  def __init__(self, spec: registry.ObjectiveSpec,
               docs: list[np.ndarray], seq_len: int, seed: int,
               objective_seed: int = 0, truncated: bool = False):
    """Builds the token buffer and plans epoch 0.

    Args:
      spec: the objective (not causal LM).
      docs: token arrays of the training documents (EOS is appended here,
        except after a truncated last document).
      seq_len: L.
      seed: the data seed (order and key), >= 0.
      objective_seed: ``objective.seed``, folded into the key.
      truncated: the last document was cut by ``data.max_tokens``
        (:func:`scaling.data.packing.cap_documents`): it does not end there,
        so it gets no EOS, as in causal packing.

    Raises:
      ValueError: causal LM, seed < 0, seq_len too short for one example, or
        no document long enough for one example.
    """
    if spec.name == "causal_lm":
      raise ValueError("causal_lm rows come from scaling.data.packing."
                       "CausalRows (concatenate then split), not from here")
    if seed < 0:
      raise ValueError(f"data.seed must be >= 0, got {seed}")
    self.spec = spec
    self.seq_len = int(seq_len)
    self.seed = int(seed)
    self.key = keys.fold_in(keys.as_key(self.seed), int(objective_seed))
    lengths = np.array([len(d) + 1 for d in docs], dtype=np.int64)
    if truncated and len(lengths):
      lengths[-1] -= 1  # no EOS after a document cut by the cap
    self._doc_len = lengths
    self._doc_start = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    buf = np.full(int(lengths.sum()), tok.EOS, dtype=np.int32)
    for d, s in zip(docs, self._doc_start):
      buf[s:s + len(d)] = d
    self._buf = buf
    self._length, self._fit = self._tables()
    self._lock = threading.Lock()
    self._plans: dict[int, EpochPlan] = {}
    self._row_start = [0]  # first row of each planned epoch, then the end
    self._example_start = [0]
    plan = self._plan(0)
    if plan.n_rows == 0:
      raise ValueError(
          f"no document has the {spec.min_raw} tokens one {spec.name} "
          "example needs")
    self.rows_per_epoch = float(plan.n_rows)

  def _tables(self) -> tuple[list[list[int]], list[list[int]]]:
    """Per mode: length[raw] for raw <= max_raw, and fit[space] = max raw."""
    lengths, fits = [], []
    for mode in range(self.spec.n_modes):
      max_raw = self.spec.max_raw(self.seq_len, mode)
      if max_raw < self.spec.min_raw:
        raise ValueError(
            f"seq_len {self.seq_len} is too short for one {self.spec.name} "
            f"example of {self.spec.min_raw} raw tokens")
      length = [self.spec.length(raw, mode) for raw in range(max_raw + 1)]
      usable = np.array(length[self.spec.min_raw:])  # strictly increasing
      space = np.arange(self.seq_len + 1)
      fit = np.searchsorted(usable, space, side="right") - 1 + self.spec.min_raw
      fit[fit < self.spec.min_raw] = 0
      lengths.append(length)
      fits.append(fit.tolist())
    return lengths, fits

  def _plan(self, epoch: int) -> EpochPlan:
    """The plan of ``epoch`` (cached; earlier epochs are planned first)."""
    with self._lock:
      while len(self._row_start) <= epoch:
        self._plan_locked(len(self._row_start) - 1)
      return self._plan_locked(epoch)

  def _plan_locked(self, epoch: int) -> EpochPlan:
    plan = self._plans.get(epoch)
    if plan is None:
      plan = self._draw_plan(epoch, self._example_start[epoch])
      if len(self._row_start) == epoch + 1:
        self._row_start.append(self._row_start[-1] + plan.n_rows)
        self._example_start.append(plan.first_example + len(plan.doc))
      self._plans[epoch] = plan
      while len(self._plans) > _EPOCHS_CACHED:
        self._plans.pop(next(iter(self._plans)))
    return plan

  def _draw_plan(self, epoch: int, first_example: int) -> EpochPlan:
    order = np.random.default_rng(
        [self.seed, _ORDER_STREAM, epoch]).permutation(len(self._doc_len))
    min_raw, seq_len = self.spec.min_raw, self.seq_len
    length, fit = self._length, self._fit
    modes: list[int] = []
    out = [[] for _ in range(6)]  # doc, start, raw_len, mode, row, offset
    row, used = 0, 0
    for d in order.tolist():
      remaining, start = int(self._doc_len[d]), 0
      while remaining >= min_raw:
        i = len(out[0])
        if i == len(modes):
          index = first_example + np.arange(i, i + _MODE_CHUNK)
          modes.extend(self.spec.modes(keys.fold_in(self.key, index)).tolist())
        mode = modes[i]
        raw = min(remaining, fit[mode][seq_len - used])
        if raw < min_raw:  # no room left in this row
          row, used = row + 1, 0
          continue
        for column, value in zip(out, (d, start, raw, mode, row, used)):
          column.append(value)
        used += length[mode][raw]
        start += raw
        remaining -= raw
    n_rows = row + 1 if used else row
    arrays = [np.array(c, dtype=np.int64) for c in out]
    return EpochPlan(first_example, n_rows, *arrays)

  def _locate(self, k: int) -> tuple[EpochPlan, int]:
    """The epoch plan holding global row k, and k's row within it."""
    if k < 0:
      raise ValueError(f"row index must be >= 0, got {k}")
    with self._lock:
      while self._row_start[-1] <= k:
        self._plan_locked(len(self._row_start) - 1)
      epoch = int(np.searchsorted(self._row_start, k, side="right")) - 1
      return self._plan_locked(epoch), k - self._row_start[epoch]

  def row_plan(self, k: int) -> list[dict]:
    """The examples of row k: dicts of ``example_index`` (global g),
    ``tokens`` (raw), ``mode``, ``offset`` (first slot)."""
    plan, r = self._locate(k)
    lo, hi = np.searchsorted(plan.row, [r, r + 1])
    out = []
    for j in range(lo, hi):
      s = self._doc_start[plan.doc[j]] + plan.start[j]
      out.append(dict(example_index=plan.first_example + j,
                      tokens=self._buf[s:s + plan.raw_len[j]],
                      mode=int(plan.mode[j]), offset=int(plan.offset[j])))
    return out

  def row(self, k: int) -> dict[str, np.ndarray]:
    """Row k: the batch-dict fields, each [seq_len].

    ``inputs``, ``targets`` (int32, PAD at padding), ``loss_mask`` (float32),
    ``segment_ids`` (int32, 1, 2, … per example, 0 = padding),
    ``positions`` (int32, from 0 in each example), ``prefix_mask`` (bool).
    """
    n = self.seq_len
    out = dict(inputs=np.full(n, tok.PAD, np.int32),
               targets=np.full(n, tok.PAD, np.int32),
               loss_mask=np.zeros(n, np.float32),
               segment_ids=np.zeros(n, np.int32),
               positions=np.zeros(n, np.int32),
               prefix_mask=np.zeros(n, bool))
    for segment, ex in enumerate(self.row_plan(k), start=1):
      words = keys.fold_in(self.key, ex["example_index"])
      example = self.spec.apply(ex["tokens"], words, ex["mode"])
      a = ex["offset"]
      b = a + example["inputs"].shape[0]
      if b > n:
        raise AssertionError(f"example of row {k} overflows the row: {b} > {n}")
      for field in ("inputs", "targets", "loss_mask", "positions",
                    "prefix_mask"):
        out[field][a:b] = example[field]
      out["segment_ids"][a:b] = segment
    return out

  def epoch_rows(self, epoch: int) -> int:
    """Rows of ``epoch`` (plans earlier epochs as needed)."""
    return self._plan(epoch).n_rows


def example_rows(objective_cfg, tokenizer: tok.ByteTokenizer,
                 train_docs_tokens: list[np.ndarray], seq_len: int,
                 seed: int, *, truncated: bool = False) -> ExampleRows:
  """The row source of a non-causal objective for the data pipeline.

  Args:
    objective_cfg: ``config.objective`` (name, its rates, ``seed``).
    tokenizer: the byte tokenizer.
    train_docs_tokens: int token arrays of the training documents (no EOS).
    seq_len: L.
    seed: the data seed.
    truncated: the last document was cut by ``data.max_tokens``
      (``CappedDocuments.truncated``) and gets no EOS.

  Returns:
    An :class:`ExampleRows` (``.row(k)``, ``.rows_per_epoch``).

  Raises:
    ConfigError: unknown objective.
    ValueError: causal LM (use ``scaling.data.packing.CausalRows``), seq_len
      too short, or no usable document.
  """
  spec = registry.make_spec(objective_cfg, tokenizer)
  return ExampleRows(spec, train_docs_tokens, seq_len, seed,
                     int(objective_cfg.get("seed", 0)), truncated=truncated)
