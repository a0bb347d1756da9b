"""The downstream-task type: text-to-text examples in three splits.

A task is text-to-text (DESIGN.md §8): every example is ``(input, target)``
strings; fine-tuning puts the input's UTF-8 bytes as a prefix and the loss on
the target's bytes only (:mod:`scaling.tasks.rows`). Three kinds:

* ``classification``: the target is one label name from ``Task.labels`` (the
  candidates for ranked scoring); scored with accuracy and macro-F1;
* ``tagging``: the target lists labelled spans of the input
  (:mod:`scaling.tasks.tagging`); scored with span-level F1;
* ``generation``: free text; scored with BLEU and chrF.

Splits are ``train``, ``validation`` and ``test``. Assignment is seed-free:
examples are ranked by the sha256 of their id and the first
``round(test_fraction n)`` go to test, the next ``round(validation_fraction
n)`` to validation, the rest to train (:func:`assign_splits`), so a task is a
pure function of its source text and build parameters. ``Task.content_hash``
covers every example of every split, the label set and the kind;
``Task.provenance`` records what the task was built from (Python version,
corpus hash, build parameters, what was dropped or truncated).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import platform
from typing import Any, Iterable, Mapping, Sequence

KINDS = ("classification", "tagging", "generation")
SPLITS = ("train", "validation", "test")
MIN_SEQ_LEN = 16
DEFAULT_FRACTIONS = (0.15, 0.15)  # (validation, test); train is the rest
_HASH_VERSION = "scaling-task-v1"


@dataclasses.dataclass(frozen=True)
class Example:
  """One text-to-text example.

  Attributes:
    id: stable identifier, unique within the task (built-in tasks:
      ``document::qualname`` for functions, ``document@line`` for chunks).
    input: the text the model reads (a prefix of the row).
    target: the text the model must produce: a label name
      (classification), the encoded spans (tagging) or free text.
    sources: names of the corpus documents the example was taken from
      (``Corpus.val_names`` entries for the built-in tasks; empty for JSONL).
    spans: tagging only: the gold spans ``(label, start, end)`` as character
      offsets into ``input`` (end exclusive), in order.
  """
  id: str
  input: str
  target: str
  sources: tuple[str, ...] = ()
  spans: tuple[tuple[str, int, int], ...] = ()

  def record(self) -> dict:
    """The example as a JSON-able dict (what the content hash covers)."""
    out = dict(id=self.id, input=self.input, target=self.target,
               sources=list(self.sources))
    if self.spans:
      out["spans"] = [list(s) for s in self.spans]
    return out


@dataclasses.dataclass(frozen=True)
class Task:
  """A downstream task: kind, three splits, label set, provenance.

  Attributes:
    name: the task's name (a built-in name or the JSONL file's stem).
    kind: one of :data:`KINDS`.
    splits: ``{"train": (...), "validation": (...), "test": (...)}`` of
      :class:`Example`.
    labels: classification: the class names (sorted), which are also the
      candidate targets; tagging: the span labels; generation: empty.
    provenance: JSON-able dict: ``python_version``, ``corpus``,
      ``corpus_hash`` (built-in tasks) or ``file_sha256`` (JSONL), the build
      ``params`` and the ``counts`` of what was kept, dropped or truncated.

  Raises:
    ValueError: unknown kind, a missing or unknown split, duplicate ids.
  """
  name: str
  kind: str
  splits: Mapping[str, tuple[Example, ...]]
  labels: tuple[str, ...]
  provenance: Mapping[str, Any]

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"task {self.name!r}: kind {self.kind!r} is not one of "
                       f"{', '.join(KINDS)}")
    if tuple(self.splits) != SPLITS:
      raise ValueError(f"task {self.name!r}: splits are {tuple(self.splits)}; "
                       f"they must be exactly {SPLITS} in that order")
    ids = [e.id for split in SPLITS for e in self.splits[split]]
    if len(set(ids)) != len(ids):
      raise ValueError(f"task {self.name!r}: example ids are not unique")

  def sizes(self) -> dict[str, int]:
    """Examples per split."""
    return {split: len(self.splits[split]) for split in SPLITS}

  def candidates(self) -> tuple[str, ...]:
    """The candidate targets of a classification task (its label names).

    For ranked scoring: score each candidate's likelihood as the target of
    an example and pick the best, e.g. with the rows
    ``task_rows([(e.input, c) for c in task.candidates()], seq_len)`` and
    :func:`scaling.tasks.rows.answer_sums`.

    Raises:
      ValueError: the task is not a classification task.
    """
    if self.kind != "classification":
      raise ValueError(f"task {self.name!r} is a {self.kind} task; only "
                       "classification tasks have candidate targets")
    return self.labels

  @functools.cached_property
  def content_hash(self) -> str:
    """sha256 hex digest over kind, labels and every example of every split."""
    h = hashlib.sha256(_HASH_VERSION.encode())
    h.update(json.dumps([self.kind, list(self.labels)]).encode())
    for split in SPLITS:
      h.update(f"\0{split}\0".encode())
      for e in self.splits[split]:
        h.update(json.dumps(e.record(), sort_keys=True,
                            ensure_ascii=False).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()

  def summary(self) -> dict:
    """Name, kind, sizes, label count, content hash and provenance."""
    return dict(name=self.name, kind=self.kind, sizes=self.sizes(),
                labels=list(self.labels), content_hash=self.content_hash,
                provenance=dict(self.provenance))


def sha256_rank(key: str) -> bytes:
  """The sort key of an example id: sha256 of its UTF-8 bytes."""
  return hashlib.sha256(key.encode("utf-8")).digest()


def assign_splits(ids: Sequence[str],
                  fractions: tuple[float, float] = DEFAULT_FRACTIONS
                  ) -> dict[str, list[int]]:
  """Seed-free split of items by the sha256 of their ids.

  Items are ranked by ``sha256(id)``; the first ``round(test n)`` go to
  test, the next ``round(validation n)`` to validation and the rest to
  train; each split lists its items in rank order.

  Args:
    ids: the items' ids (unique).
    fractions: ``(validation, test)`` shares, each in [0, 1), sum < 1.

  Returns:
    ``{"train": [...], "validation": [...], "test": [...]}`` of indices
    into ``ids``.

  Raises:
    ValueError: bad fractions.
  """
  validation, test = (float(f) for f in fractions)
  if not (0 <= validation < 1 and 0 <= test < 1 and validation + test < 1):
    raise ValueError(
        f"split fractions (validation={validation}, test={test}) must each "
        "be in [0, 1) with a sum below 1 (the rest is train), e.g. "
        "(0.15, 0.15)")
  order = sorted(range(len(ids)), key=lambda i: sha256_rank(ids[i]))
  n = len(order)
  n_test, n_val = round(test * n), round(validation * n)
  return dict(train=order[n_test + n_val:],
              validation=order[n_test:n_test + n_val],
              test=order[:n_test])


def truncate_utf8(text: str, max_bytes: int) -> tuple[str, bool]:
  """The longest prefix of ``text`` of at most ``max_bytes`` UTF-8 bytes.

  Returns:
    ``(prefix, truncated)``; a multi-byte character is never split.
  """
  data = text.encode("utf-8")
  if len(data) <= max_bytes:
    return text, False
  return data[:max_bytes].decode("utf-8", errors="ignore"), True


def n_bytes(text: str) -> int:
  """UTF-8 bytes of ``text`` (what a byte-level row holds)."""
  return len(text.encode("utf-8"))


def check_budget(max_input_bytes: int, max_target_bytes: int,
                 seq_len: int | None = None) -> None:
  """Validates byte budgets: positive, and ``input + target + 2 <= seq_len``.

  The 2 are the separator and EOS of a row (:mod:`scaling.tasks.rows`).

  Raises:
    ValueError: naming the parameter and the fix.
  """
  for name, value in (("max_input_bytes", max_input_bytes),
                      ("max_target_bytes", max_target_bytes)):
    if int(value) < 1:
      raise ValueError(f"{name} is {value}; it must be a positive byte count")
  if seq_len is not None and max_input_bytes + max_target_bytes + 2 > seq_len:
    raise ValueError(
        f"max_input_bytes ({max_input_bytes}) + max_target_bytes "
        f"({max_target_bytes}) + 2 (separator, EOS) exceeds seq_len "
        f"({seq_len}); lower the budgets or raise seq_len")


def default_budget(kind: str, seq_len: int) -> tuple[int, int]:
  """``(max_input_bytes, max_target_bytes)`` of a task kind at ``seq_len``.

  ``seq_len - 2`` bytes (a row less its separator and EOS) are split as:
  classification, 32 target bytes (labels are short names, at most a quarter
  of the room) and the rest input; generation, a quarter of the room (at
  most 128) target; tagging, half and half. At ``seq_len`` 512: 478/32,
  383/127 and 255/255; at 128: 95/31, 95/31 and 63/63.

  Raises:
    ValueError: ``seq_len`` below :data:`MIN_SEQ_LEN`, unknown kind.
  """
  if seq_len < MIN_SEQ_LEN:
    raise ValueError(f"seq_len is {seq_len}; tasks need at least "
                     f"{MIN_SEQ_LEN} tokens per row")
  room = seq_len - 2  # separator and EOS
  if kind == "classification":
    target = min(32, room // 4)
  elif kind == "generation":
    target = min(128, room // 4)
  elif kind == "tagging":
    target = room - room // 2
  else:
    raise ValueError(f"unknown task kind {kind!r}; use one of "
                     f"{', '.join(KINDS)}")
  return room - target, target


def corpus_provenance(corpus) -> dict:
  """What a built-in task records of the corpus it was built from."""
  return dict(python_version=platform.python_version(),
              python_implementation=platform.python_implementation(),
              corpus=corpus.name, corpus_hash=corpus.corpus_hash,
              corpus_description=corpus.description,
              val_documents=len(corpus.val_names))


def make_task(name: str, kind: str, examples: Iterable[Example],
              split_of: Mapping[str, list[int]] | None, labels: Sequence[str],
              provenance: dict,
              fractions: tuple[float, float] = DEFAULT_FRACTIONS) -> Task:
  """Assembles a :class:`Task` from examples and (optionally) their splits.

  Args:
    name, kind, labels, provenance: as in :class:`Task`.
    examples: all examples.
    split_of: indices per split (e.g. from :func:`assign_splits`); None:
      split by :func:`assign_splits` over the example ids with ``fractions``.
    fractions: ``(validation, test)`` shares when ``split_of`` is None.

  Returns:
    The task, with ``provenance["sizes"]`` and the split fractions filled in.
  """
  examples = list(examples)
  if split_of is None:
    split_of = assign_splits([e.id for e in examples], fractions)
  splits = {s: tuple(examples[i] for i in split_of[s]) for s in SPLITS}
  provenance = dict(provenance)
  provenance["sizes"] = {s: len(splits[s]) for s in SPLITS}
  return Task(name=name, kind=kind, splits=splits, labels=tuple(labels),
              provenance=provenance)
