"""A user's task from one JSONL file (``--task path/to/task.jsonl``).

One file holds the whole task, one JSON object per non-empty line::

  {"input": "def f(x): ...", "target": "Return x squared.", "split": "train"}
  {"input": "great film", "label": "positive", "split": "test"}

Keys:

* ``input`` (required): a non-empty string;
* ``target`` or ``label`` (exactly one, the same one on every line): a
  non-empty string. ``label`` makes a classification task (the labels are
  the distinct values, sorted, at least 2; they are the candidate targets),
  ``target`` a generation task (scored with BLEU and chrF);
* ``split`` (optional): ``train``, ``validation`` or ``test``, on every line
  or on none. Without it the examples are split seed-free by the sha256 of
  their input (70/15/15; equal inputs share a split);
* ``id`` (optional): a unique string; default ``<file stem>:<line>``.

Any other key is an error (a misspelt ``lable`` should not go unnoticed),
as is a split left empty. Errors name the file and the line. Inputs longer
than the byte budget are truncated and examples whose target is longer are
dropped, both counted in ``provenance["counts"]``; a label longer than the
budget is an error.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os

from scaling.config import ConfigError
from scaling.tasks import task as task_lib

_KEYS = frozenset({"input", "target", "label", "split", "id"})


def _error(where: str, message: str) -> ConfigError:
  return ConfigError("--task", f"{where}: {message}")


def _read(path: str) -> tuple[list[tuple[int, dict]], bytes]:
  """(line number, record) of every non-empty line, and the file's bytes."""
  with open(path, "rb") as f:
    data = f.read()
  records = []
  for lineno, raw in enumerate(data.split(b"\n"), start=1):
    if not raw.strip():
      continue
    where = f"{path}:{lineno}"
    try:
      record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise _error(where, f"is not valid JSON ({e}); each line must be one "
                   'object like {"input": "...", "target": "..."}') from e
    if not isinstance(record, dict):
      raise _error(where, f"is a JSON {type(record).__name__}, not an object "
                   'like {"input": "...", "target": "..."}')
    unknown = sorted(set(record) - _KEYS)
    if unknown:
      raise _error(where, f"unknown key {unknown[0]!r}; the keys are input, "
                   "target or label, and optionally split and id")
    for key in ("input", "target", "label", "split", "id"):
      if key in record and not isinstance(record[key], str):
        raise _error(where, f"{key!r} is a {type(record[key]).__name__}; it "
                     "must be a string")
    if not record.get("input"):
      raise _error(where, "has no non-empty 'input' string")
    has_target, has_label = "target" in record, "label" in record
    if has_target == has_label:
      raise _error(where, "needs exactly one of 'target' (text to generate) "
                   "and 'label' (a class name)")
    if not record.get("target", record.get("label")):
      raise _error(where, f"has an empty {'target' if has_target else 'label'}")
    if "split" in record and record["split"] not in task_lib.SPLITS:
      raise _error(where, f"split {record['split']!r} is not one of "
                   f"{', '.join(task_lib.SPLITS)}")
    records.append((lineno, record))
  if not records:
    raise _error(path, "holds no example; write one JSON object per line")
  return records, data


def load_jsonl_task(path: str, *, seq_len: int | None = None,
                    max_input_bytes: int | None = None,
                    max_target_bytes: int | None = None) -> task_lib.Task:
  """Loads and validates a JSONL task file (module docstring).

  Args:
    path: the ``.jsonl`` file.
    seq_len: the row length; with it, budgets default to
      :func:`scaling.tasks.task.default_budget` of the task's kind.
    max_input_bytes, max_target_bytes: explicit budgets (None: from
      ``seq_len``, or unlimited without it).

  Returns:
    The task, named after the file's stem.

  Raises:
    ConfigError: (``--task``) a malformed line (file and line named), mixed
      ``target``/``label`` or ``split`` use, duplicate ids, fewer than 2
      labels, an empty split, a label over the target budget.
  """
  records, data = _read(path)
  name = os.path.splitext(os.path.basename(path))[0]
  field = "label" if "label" in records[0][1] else "target"
  kind = "classification" if field == "label" else "generation"
  with_split = "split" in records[0][1]
  for lineno, record in records:
    where = f"{path}:{lineno}"
    if field not in record:
      raise _error(where, f"has no {field!r}, but line {records[0][0]} has "
                   f"one; use {field!r} on every line")
    if ("split" in record) != with_split:
      raise _error(where, "give 'split' on every line or on none (then the "
                   "examples are split by a hash of their input)")
  if seq_len is not None:
    default_in, default_tgt = task_lib.default_budget(kind, seq_len)
    max_input_bytes = default_in if max_input_bytes is None else max_input_bytes
    max_target_bytes = (default_tgt if max_target_bytes is None
                        else max_target_bytes)
    task_lib.check_budget(max_input_bytes, max_target_bytes, seq_len)
  counts = collections.Counter()
  examples, ids, splits = [], set(), []
  for lineno, record in records:
    where = f"{path}:{lineno}"
    eid = record.get("id", f"{name}:{lineno}")
    if eid in ids:
      raise _error(where, f"id {eid!r} is used twice; ids must be unique")
    ids.add(eid)
    target = record[field]
    if (max_target_bytes is not None
        and task_lib.n_bytes(target) > max_target_bytes):
      if kind == "classification":
        raise _error(where, f"label {target!r} is longer than the "
                     f"{max_target_bytes}-byte target budget; shorten it or "
                     "raise max_target_bytes (or seq_len)")
      counts["target_too_long"] += 1
      continue
    text = record["input"]
    if max_input_bytes is not None:
      text, cut = task_lib.truncate_utf8(text, max_input_bytes)
      counts["inputs_truncated"] += cut
    examples.append(task_lib.Example(id=eid, input=text, target=target))
    splits.append(record.get("split"))
  labels = ()
  if kind == "classification":
    labels = tuple(sorted({e.target for e in examples}))
    if len(labels) < 2:
      raise _error(path, f"has {len(labels)} distinct label(s); a "
                   "classification task needs at least 2")
  if with_split:
    split_of = {s: [i for i, v in enumerate(splits) if v == s]
                for s in task_lib.SPLITS}
  else:
    inputs = sorted({e.input for e in examples})
    parts = task_lib.assign_splits(inputs, (0.15, 0.15))
    side = {inputs[i]: s for s in task_lib.SPLITS for i in parts[s]}
    split_of = {s: [i for i, e in enumerate(examples) if side[e.input] == s]
                for s in task_lib.SPLITS}
  for s in task_lib.SPLITS:
    if not split_of[s]:
      how = ("no line has \"split\": \"%s\"" % s if with_split else
             "the hash split left it empty (too few distinct inputs)")
      raise _error(path, f"the {s} split is empty ({how}); every task needs "
                   "train, validation and test examples")
  provenance = dict(
      source="jsonl", file=os.path.basename(path),
      file_sha256=hashlib.sha256(data).hexdigest(),
      split_from="split field" if with_split else "sha256 of input",
      params=dict(seq_len=seq_len, max_input_bytes=max_input_bytes,
                  max_target_bytes=max_target_bytes),
      counts=dict(counts, lines=len(records)))
  return task_lib.make_task(name, kind, examples, split_of, labels, provenance)
