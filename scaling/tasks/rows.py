"""Text-to-text rows: (input, target) examples as rows of the training batch.

DESIGN.md §8: fine-tuning puts the input as a prefix and the loss on the
target only. One example, in :class:`scaling.tokenizer.ByteTokenizer` ids
(no sentinel is ever used), is the sequence

  ``z = input bytes, SEP, target bytes, EOS``   (``n = |input| + |target| + 2``)

with ``SEP`` = BOS by default (no pretraining objective produces BOS, so it
means only "the answer starts here"). Its fields are those of the prefix LM
(:func:`scaling.objectives.lm.shifted_example` with ``P = |input| + 1``,
the input and SEP):

* ``inputs = z``, ``targets`` = ``z`` shifted left (next-token targets, PAD
  after the last), ``positions`` 0 … n-1, ``segment_ids`` 1;
* ``loss_mask`` 1 exactly on positions ``P-1 … n-2``: SEP predicting the
  first target byte, …, the last target byte predicting EOS. Nothing of the
  input is in the loss, and EOS is predicted, so generation knows to stop;
* ``prefix_mask`` (``attention="prefix"``) True on the ``P`` positions of the
  input and SEP: the model's mask ``allow(q, k) = seg[q] == seg[k] != 0 and
  (k <= q or prefix_mask[k])`` makes them visible to every query of the
  example, so the input is read bidirectionally and the target causally;
  ``attention="causal"``: all False.

Rows are ``[L]`` (L = ``seq_len``) with PAD, segment id 0 and no loss after
the example (:func:`scaling.data.packing.padding_row`). By default each row
holds one example (what the scorer and generation need: row i is example
i); ``pack=True`` puts consecutive examples into a row while they fit, each
its own segment (ids 1, 2, …, positions restarting at 0), which cannot see
the others.

The scorer's side, :func:`answer_sums`: from a row and the model's
per-position log-probabilities, each example's gold-answer NLL (nats, summed
over its loss-bearing positions, the EOS prediction included) and its bytes
(the target's bytes; EOS counts 0, DESIGN.md §4), so gold-answer bits per
byte = Σ NLL / (ln 2 · Σ bytes) (:func:`gold_bits_per_byte`).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from scaling import evaluation
from scaling import tokenizer as tok
from scaling.data import packing
from scaling.data.pipeline import BATCH_KEYS
from scaling.objectives import lm

ATTENTION = ("prefix", "causal")


@dataclasses.dataclass(frozen=True)
class TaskRows:
  """Rows of a list of examples.

  Attributes:
    batch: dict of ``[N, L]`` arrays, the batch-dict fields ``inputs``,
      ``targets`` (int32), ``loss_mask`` (float32), ``segment_ids``,
      ``positions`` (int32), ``prefix_mask`` (bool).
    row: int [n_examples], the row of each example.
    segment: int [n_examples], its segment id in that row (1 unpacked).
  """
  batch: dict[str, np.ndarray]
  row: np.ndarray
  segment: np.ndarray


def _as_bytes(text: str | bytes) -> bytes:
  return text.encode("utf-8") if isinstance(text, str) else bytes(text)


def _check_separator(separator: int) -> None:
  if not (0 <= separator < tok.FIRST_SENTINEL) or separator in (tok.PAD,
                                                                 tok.EOS):
    raise ValueError(
        f"separator {separator} must be a byte or a special id below the "
        f"sentinels ({tok.FIRST_SENTINEL}) other than PAD and EOS; the "
        f"default is BOS ({tok.BOS})")


def example_fields(input_text: str | bytes, target_text: str | bytes, *,
                   attention: str = "prefix",
                   separator: int = tok.BOS) -> dict[str, np.ndarray]:
  """One example's fields, each ``[n]`` with ``n = |input| + |target| + 2``.

  Args:
    input_text, target_text: str (UTF-8 encoded) or bytes.
    attention: ``prefix`` (bidirectional over input and SEP) or ``causal``.
    separator: the id between input and target (default BOS).

  Returns:
    ``inputs, targets, loss_mask, positions, prefix_mask`` (see the module
    docstring); loss on the target bytes and EOS only.

  Raises:
    ValueError: unknown ``attention``; a sentinel, PAD or EOS separator.
  """
  if attention not in ATTENTION:
    raise ValueError(f"attention is {attention!r}; use 'prefix' or 'causal'")
  _check_separator(separator)
  x = np.frombuffer(_as_bytes(input_text), np.uint8).astype(np.int32)
  y = np.frombuffer(_as_bytes(target_text), np.uint8).astype(np.int32)
  z = np.concatenate([x, [separator], y, [tok.EOS]]).astype(np.int32)
  n_prefix = x.shape[0] + 1
  fields = lm.shifted_example(z, n_prefix if attention == "prefix" else 0,
                              n_prefix - 1, attention)
  del fields["attention"]
  return fields


def prompt_fields(input_text: str | bytes, *, attention: str = "prefix",
                  separator: int = tok.BOS) -> tuple[np.ndarray, int]:
  """The decoding prompt of an example: its row's first ``|input| + 1`` tokens.

  The input bytes and SEP, exactly as :func:`example_fields` lays them out,
  so a model fine-tuned on these rows generates the target after them.

  Returns:
    ``(tokens int32 [|input| + 1], n_prefix)``: ``n_prefix`` is how many of
    them are in the bidirectional prefix (all for ``prefix``, 0 for
    ``causal``).

  Raises:
    ValueError: as :func:`example_fields`.
  """
  fields = example_fields(input_text, b"", attention=attention,
                          separator=separator)
  n = fields["inputs"].shape[0] - 1  # without the EOS of the empty target
  return fields["inputs"][:n], int(fields["prefix_mask"][:n].sum())


def _pairs(examples) -> list[tuple[str, bytes, bytes]]:
  out = []
  for i, e in enumerate(examples):
    if hasattr(e, "input"):
      out.append((getattr(e, "id", str(i)), _as_bytes(e.input),
                  _as_bytes(e.target)))
    else:
      x, y = e
      out.append((str(i), _as_bytes(x), _as_bytes(y)))
  return out


def task_rows(examples: Sequence, seq_len: int, *, attention: str = "prefix",
              pack: bool = False, separator: int = tok.BOS) -> TaskRows:
  """Fixed-length rows of text-to-text examples (module docstring).

  Args:
    examples: :class:`scaling.tasks.task.Example` objects or
      ``(input, target)`` pairs of str or bytes.
    seq_len: L, tokens per row.
    attention: ``prefix`` or ``causal`` attention over the input.
    pack: several examples per row (each its own segment) instead of one.
    separator: the id between input and target (default BOS).

  Returns:
    A :class:`TaskRows`; ``N = len(examples)`` rows when not packed.

  Raises:
    ValueError: an example longer than ``seq_len`` (naming it and the fix),
      bad ``attention`` or ``separator``, no examples.
  """
  pairs = _pairs(examples)
  if not pairs:
    raise ValueError("no examples to turn into rows")
  rows, where = [], []
  used = seq_len  # forces a first row
  for eid, x, y in pairs:
    fields = example_fields(x, y, attention=attention, separator=separator)
    n = fields["inputs"].shape[0]
    if n > seq_len:
      raise ValueError(
          f"example {eid!r} needs {n} tokens ({len(x)} input bytes + "
          f"{len(y)} target bytes + separator + EOS) but seq_len is "
          f"{seq_len}; build the task with max_input_bytes + "
          f"max_target_bytes + 2 <= seq_len")
    if not pack or used + n > seq_len:
      rows.append(packing.padding_row(seq_len))
      used, segment = 0, 0
    segment += 1
    row = rows[-1]
    for field in ("inputs", "targets", "loss_mask", "positions",
                  "prefix_mask"):
      row[field][used:used + n] = fields[field]
    row["segment_ids"][used:used + n] = segment
    where.append((len(rows) - 1, segment))
    used += n
  batch = {k: np.stack([r[k] for r in rows]) for k in BATCH_KEYS}
  index = np.array(where, dtype=np.int32)
  return TaskRows(batch=batch, row=index[:, 0], segment=index[:, 1])


def answer_sums(row: dict[str, np.ndarray], logprobs: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Gold-answer NLL and bytes of each example (segment) of one row.

  Args:
    row: a row's fields, ``[L]`` arrays (``targets``, ``loss_mask``,
      ``segment_ids``), e.g. ``{k: v[i] for k, v in rows.batch.items()}``.
    logprobs: ``[L, V]`` log-probabilities of the next token at every
      position (log-softmax of the logits), or ``[L]`` the log-probability
      already taken at each position's target.

  Returns:
    ``(nll, n_bytes, n_tokens)``, each ``[S]`` for segments 1 … S: NLL in
    nats summed over the loss-bearing positions (target bytes and EOS),
    the target's byte count (EOS and other special ids count 0), and the
    loss-bearing token count (= bytes + 1).

  Raises:
    ValueError: shapes that do not match the row.
  """
  targets = np.asarray(row["targets"])
  logprobs = np.asarray(logprobs, np.float64)
  if logprobs.ndim == 2:
    if logprobs.shape[0] != targets.shape[0]:
      raise ValueError(f"logprobs are {logprobs.shape}; expected "
                       f"[{targets.shape[0]}, V]")
    # Clipped ids only occur off the loss (PAD), where the value is unused.
    logprobs = np.take_along_axis(
        logprobs, np.minimum(targets, logprobs.shape[1] - 1)[:, None],
        axis=1)[:, 0]
  if logprobs.shape != targets.shape:
    raise ValueError(f"logprobs are {logprobs.shape}; expected "
                     f"{targets.shape} or {targets.shape + ('V',)}")
  loss = np.asarray(row["loss_mask"]) > 0
  segments = np.asarray(row["segment_ids"])
  n_segments = int(segments.max(initial=0))
  nll = np.zeros(n_segments)
  n_bytes = np.zeros(n_segments, np.int64)
  n_tokens = np.zeros(n_segments, np.int64)
  for s in range(1, n_segments + 1):
    sel = loss & (segments == s)
    nll[s - 1] = -logprobs[sel].sum()
    n_bytes[s - 1] = int(np.sum(tok.byte_count(targets[sel])))
    n_tokens[s - 1] = int(sel.sum())
  return nll, n_bytes, n_tokens


def gold_bits_per_byte(nll: Sequence[float], n_bytes: Sequence[int]
                       ) -> tuple[float, float]:
  """Gold-answer bits per byte = Σ NLL / (ln 2 · Σ bytes), and its SE.

  DESIGN.md §4 and §8: numerator and denominator are summed over all
  examples first (per-example ratios are never averaged); the standard error
  is the delta-method one of :func:`scaling.evaluation.bits_per_byte`, here
  over examples.

  Args:
    nll: per-example gold-answer NLL sums (nats), from :func:`answer_sums`.
    n_bytes: per-example target bytes.

  Returns:
    ``(bits per byte, standard error)``.

  Raises:
    ValueError: no bytes.
  """
  return evaluation.bits_per_byte(nll, n_bytes)
