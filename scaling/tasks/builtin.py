"""Builders of the three built-in tasks from the corpus's held-out documents.

Every example of every split comes from ``corpus.val`` (documents held out of
pretraining: for the stdlib corpus whole top-level packages,
:mod:`scaling.data.sources`) and records its document in
``Example.sources``. On top of that an example is dropped when its input, or
its function's original lines, occur verbatim inside a training document
(:mod:`scaling.tasks.overlap`), and examples with equal inputs are kept once
(the one whose id has the smallest sha256), so no input is seen in
pretraining and no input is in two splits.

* ``stdlib_package`` (classification): the input is a function without its
  docstring (a docstring often names its package); the target is the name of
  the top-level package it comes from (``logging``; the first component of
  the document name, ``.py`` removed — the stdlib split's group), or, with
  ``label_level="module"``, its dotted module (``logging.handlers``). Classes
  are the labels with at least ``min_per_class`` functions; each is
  downsampled to the smallest such count (the functions with the smallest
  sha256 of their id), and each class is split on its own (60/20/20), so
  every split is balanced. Fewer than 4 classes is an error.
* ``stdlib_docstring`` (generation, the code-summarisation setup of
  CodeXGLUE): input = the function's signature and body without the
  docstring, target = the first line of its cleaned docstring. Docstrings
  whose first line has fewer than 3 words are skipped (CodeSearchNet's
  filter, Husain et al. 2019, arXiv 1909.09436), as are targets over the
  target budget (a summary is never truncated).
* ``stdlib_tokens`` (tagging): chunks of whole lines labelled by
  :mod:`tokenize`, see :mod:`scaling.tasks.tagging`.

Byte budgets: inputs longer than ``max_input_bytes`` are truncated at a
character boundary (functions keep their signature and first lines); the
counts of everything truncated or dropped are in ``provenance["counts"]``.
Splits are seed-free (:func:`scaling.tasks.task.assign_splits`).
"""

from __future__ import annotations

import collections
import tokenize
from typing import Iterable

from scaling.tasks import functions as functions_lib
from scaling.tasks import tagging
from scaling.tasks import task as task_lib
from scaling.tasks.overlap import TrainText

MIN_CLASSES = 4
# Classification splits are 60/20/20: the classes are small (the stdlib split
# of Python 3.11 gives 4 packages of 62 functions each), and a test split of
# 0.15 would hold 9 examples per class.
CLASSIFICATION_FRACTIONS = (0.2, 0.2)
MIN_SUMMARY_WORDS = 3


def package_of(document: str) -> str:
  """Top-level package of a document name: ``json/decoder.py`` → ``json``."""
  first = document.split("/")[0]
  return first[:-3] if first.endswith(".py") else first


def module_of(document: str) -> str:
  """Dotted module of a document: ``logging/handlers.py`` → ``logging.handlers``.

  A package's ``__init__.py`` is the package: ``json/__init__.py`` → ``json``.
  """
  parts = document[:-3].split("/") if document.endswith(".py") else (
      document.split("/"))
  if len(parts) > 1 and parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def _held_out_functions(corpus, counts: collections.Counter):
  for name, text in zip(corpus.val_names, corpus.val):
    found, skipped = functions_lib.document_functions(name, text)
    counts["functions_found"] += len(found)
    counts["functions_skipped"] += skipped
    yield from found


def _dedupe(examples: Iterable[task_lib.Example],
            counts: collections.Counter) -> list[task_lib.Example]:
  """One example per distinct input: the one with the smallest id hash."""
  best: dict[str, task_lib.Example] = {}
  for e in examples:
    kept = best.get(e.input)
    if kept is None:
      best[e.input] = e
    else:
      counts["duplicate_inputs"] += 1
      if task_lib.sha256_rank(e.id) < task_lib.sha256_rank(kept.id):
        best[e.input] = e
  return sorted(best.values(), key=lambda e: task_lib.sha256_rank(e.id))


def _function_example(fn, target: str, max_input_bytes: int,
                      train_text: TrainText, counts,
                      truncated: set) -> task_lib.Example | None:
  """The example of a function, or None when its text is in training text."""
  code, cut = task_lib.truncate_utf8(fn.code, max_input_bytes)
  if train_text.contains(fn.raw) or train_text.contains(code):
    counts["in_training_text"] += 1
    return None
  if cut:
    truncated.add(fn.id)
  return task_lib.Example(id=fn.id, input=code, target=target,
                          sources=(fn.document,))


def build_stdlib_package(corpus, *, max_input_bytes: int,
                         max_target_bytes: int, min_per_class: int = 50,
                         label_level: str = "package",
                         fractions=CLASSIFICATION_FRACTIONS,
                         train_text: TrainText | None = None,
                         name: str = "stdlib_package") -> task_lib.Task:
  """The function → package classification task (module docstring).

  Args:
    corpus: a loaded :class:`scaling.data.sources.Corpus`.
    max_input_bytes: inputs are truncated to this many UTF-8 bytes.
    max_target_bytes: a label longer than this is an error.
    min_per_class: fewest functions a label needs to be a class.
    label_level: ``package`` (top-level package) or ``module``.
    fractions: ``(validation, test)`` shares, within each class.
    train_text: an index of ``corpus.train`` to reuse (built when None).
    name: the task's name.

  Returns:
    The task; every split holds the same number of examples per class.

  Raises:
    ValueError: bad ``label_level``, fewer than 4 classes (the message gives
      the counts per label and the fix), or a label over the target budget.
  """
  task_lib.check_budget(max_input_bytes, max_target_bytes)
  label_of = {"package": package_of, "module": module_of}.get(label_level)
  if label_of is None:
    raise ValueError(f"label_level is {label_level!r}; use 'package' or "
                     "'module'")
  train_text = train_text or TrainText(corpus.train)
  counts, truncated = collections.Counter(), set()
  candidates = []
  for fn in _held_out_functions(corpus, counts):
    e = _function_example(fn, label_of(fn.document), max_input_bytes,
                          train_text, counts, truncated)
    if e is not None:
      candidates.append(e)
  examples = _dedupe(candidates, counts)
  by_label = collections.defaultdict(list)
  for e in examples:  # already in sha256(id) order
    by_label[e.target].append(e)
  available = {k: len(v) for k, v in sorted(by_label.items())}
  classes = sorted(k for k, n in available.items() if n >= min_per_class)
  if len(classes) < MIN_CLASSES:
    raise ValueError(
        f"{name}: only {len(classes)} {label_level}s of the held-out split "
        f"have >= min_per_class={min_per_class} usable functions "
        f"(available: {available}); at least {MIN_CLASSES} classes are "
        "needed: lower min_per_class, use label_level='module', or hold out "
        "more packages (data.val_fraction)")
  too_long = [c for c in classes if task_lib.n_bytes(c) > max_target_bytes]
  if too_long:
    raise ValueError(f"{name}: label {too_long[0]!r} is longer than "
                     f"max_target_bytes={max_target_bytes}; raise it")
  per_class = min(available[c] for c in classes)
  chosen, split_of = [], {s: [] for s in task_lib.SPLITS}
  for c in classes:
    members = by_label[c][:per_class]
    parts = task_lib.assign_splits([e.id for e in members], fractions)
    for s in task_lib.SPLITS:
      split_of[s].extend(len(chosen) + i for i in parts[s])
    chosen.extend(members)
  for s in task_lib.SPLITS:  # interleave the classes in a seed-free order
    split_of[s].sort(key=lambda i: task_lib.sha256_rank(chosen[i].id))
  counts["per_class"] = per_class
  counts["inputs_truncated"] = sum(e.id in truncated for e in chosen)
  provenance = dict(
      task_lib.corpus_provenance(corpus),
      params=dict(max_input_bytes=max_input_bytes,
                  max_target_bytes=max_target_bytes,
                  min_per_class=min_per_class, label_level=label_level,
                  fractions=list(fractions)),
      counts=dict(counts), available_per_label=available)
  return task_lib.make_task(name, "classification", chosen, split_of,
                            classes, provenance)


def build_stdlib_docstring(corpus, *, max_input_bytes: int,
                           max_target_bytes: int,
                           fractions=task_lib.DEFAULT_FRACTIONS,
                           train_text: TrainText | None = None,
                           name: str = "stdlib_docstring") -> task_lib.Task:
  """The docstring-summary generation task (module docstring).

  Args:
    corpus: a loaded corpus.
    max_input_bytes: inputs (signature + body) are truncated to this.
    max_target_bytes: longer summaries are dropped.
    fractions: ``(validation, test)`` shares.
    train_text: an index of ``corpus.train`` to reuse.
    name: the task's name.

  Returns:
    The task.

  Raises:
    ValueError: a bad budget, or no usable function.
  """
  task_lib.check_budget(max_input_bytes, max_target_bytes)
  train_text = train_text or TrainText(corpus.train)
  counts, truncated = collections.Counter(), set()
  candidates = []
  for fn in _held_out_functions(corpus, counts):
    lines = (fn.docstring or "").strip().split("\n")
    summary = lines[0].strip()
    if len(summary.split()) < MIN_SUMMARY_WORDS:
      counts["no_usable_docstring"] += 1
      continue
    if task_lib.n_bytes(summary) > max_target_bytes:
      counts["target_too_long"] += 1
      continue
    e = _function_example(fn, summary, max_input_bytes, train_text, counts,
                          truncated)
    if e is not None:
      candidates.append(e)
  examples = _dedupe(candidates, counts)
  if not examples:
    raise ValueError(f"{name}: no held-out function has a usable docstring")
  counts["inputs_truncated"] = sum(e.id in truncated for e in examples)
  provenance = dict(
      task_lib.corpus_provenance(corpus),
      params=dict(max_input_bytes=max_input_bytes,
                  max_target_bytes=max_target_bytes,
                  min_summary_words=MIN_SUMMARY_WORDS,
                  fractions=list(fractions)),
      counts=dict(counts))
  return task_lib.make_task(name, "generation", examples, None, (),
                            provenance, fractions)


def build_stdlib_tokens(corpus, *, max_input_bytes: int,
                        max_target_bytes: int,
                        fractions=task_lib.DEFAULT_FRACTIONS,
                        train_text: TrainText | None = None,
                        name: str = "stdlib_tokens") -> task_lib.Task:
  """The tokenize-span tagging task (:mod:`scaling.tasks.tagging`).

  Args:
    corpus: a loaded corpus.
    max_input_bytes, max_target_bytes: the chunk budgets.
    fractions: ``(validation, test)`` shares.
    train_text: an index of ``corpus.train`` to reuse.
    name: the task's name.

  Returns:
    The task; ``Example.spans`` holds each example's gold spans.

  Raises:
    ValueError: a bad budget, or no chunk.
  """
  task_lib.check_budget(max_input_bytes, max_target_bytes)
  train_text = train_text or TrainText(corpus.train)
  counts = collections.Counter()
  candidates = []
  for doc, text in zip(corpus.val_names, corpus.val):
    try:
      kept, dropped = tagging.chunks(text.decode("utf-8"), max_input_bytes,
                                     max_target_bytes)
    except (UnicodeDecodeError, SyntaxError, tokenize.TokenError):
      counts["documents_not_tokenized"] += 1
      continue
    counts.update({f"chunks_dropped_{k}": v for k, v in dropped.items()})
    for line, chunk, spans in kept:
      if train_text.contains(chunk):
        counts["in_training_text"] += 1
        continue
      candidates.append(task_lib.Example(
          id=f"{doc}@{line}", input=chunk,
          target=tagging.encode_spans(chunk, spans), sources=(doc,),
          spans=tuple(spans)))
  examples = _dedupe(candidates, counts)
  if not examples:
    raise ValueError(f"{name}: the held-out documents gave no chunk")
  provenance = dict(
      task_lib.corpus_provenance(corpus),
      params=dict(max_input_bytes=max_input_bytes,
                  max_target_bytes=max_target_bytes,
                  labels=list(tagging.LABELS),
                  fractions=list(fractions)),
      counts=dict(counts))
  return task_lib.make_task(name, "tagging", examples, None, tagging.LABELS,
                            provenance, fractions)
