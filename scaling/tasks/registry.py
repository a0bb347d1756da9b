"""Task names: the built-in tasks and ``load_task`` (a name or a JSONL path).

=================  ==============  ===========================================
name               kind            what
=================  ==============  ===========================================
stdlib_package     classification  function → its top-level stdlib package
stdlib_tokens      tagging         tokenize spans: keyword, string, number,
                                   comment
stdlib_docstring   generation      function → first line of its docstring
=================  ==============  ===========================================

The built-ins are built from the held-out documents of
``load_corpus(data_cfg)`` (:mod:`scaling.tasks.builtin`); anything ending in
``.jsonl`` (or an existing file) is a user's task (:mod:`scaling.tasks.jsonl`).

Byte budgets: every example must fit one row of ``seq_len`` tokens,
``input + separator + target + EOS`` (:mod:`scaling.tasks.rows`), so
``max_input_bytes + max_target_bytes + 2 <= seq_len``; the defaults are
:func:`scaling.tasks.task.default_budget`'s (at ``seq_len = 512``: 478/32,
383/127 and 255/255 input/target bytes for classification, generation and
tagging).
"""

from __future__ import annotations

import dataclasses
import os

from scaling.config import ConfigError, default_config
from scaling.data.sources import load_corpus
from scaling.tasks import builtin
from scaling.tasks import jsonl
from scaling.tasks import task as task_lib
from scaling.tasks.overlap import TrainText

BUILTIN_TASKS = {
    "stdlib_package": ("classification", builtin.build_stdlib_package),
    "stdlib_tokens": ("tagging", builtin.build_stdlib_tokens),
    "stdlib_docstring": ("generation", builtin.build_stdlib_docstring),
}
DEFAULT_SEQ_LEN = 512
default_budget = task_lib.default_budget


def _budget(kind, seq_len, max_input_bytes, max_target_bytes):
  default_in, default_tgt = default_budget(kind, seq_len)
  max_in = default_in if max_input_bytes is None else int(max_input_bytes)
  max_tgt = default_tgt if max_target_bytes is None else int(max_target_bytes)
  task_lib.check_budget(max_in, max_tgt, seq_len)
  return max_in, max_tgt


def eval_task_names(text: str) -> tuple[str, ...]:
  """The names of ``eval.tasks`` (comma-separated, blanks dropped)."""
  return tuple(n.strip() for n in str(text).split(",") if n.strip())


def build_task(name: str, corpus, *, seq_len: int = DEFAULT_SEQ_LEN,
               max_input_bytes: int | None = None,
               max_target_bytes: int | None = None,
               train_text: TrainText | None = None,
               **params) -> task_lib.Task:
  """Builds a built-in task from a loaded corpus.

  Args:
    name: a key of :data:`BUILTIN_TASKS`.
    corpus: ``load_corpus(config.data)``.
    seq_len: the row length the examples must fit.
    max_input_bytes, max_target_bytes: budgets; default
      :func:`default_budget`.
    train_text: an index of ``corpus.train`` shared between builds.
    **params: builder options (``fractions``; ``min_per_class`` and
      ``label_level`` for ``stdlib_package``).

  Returns:
    The task; ``provenance["params"]`` also records ``seq_len``.

  Raises:
    ConfigError: (``--task``) unknown name.
    ValueError: budgets that do not fit ``seq_len``; a builder's errors.
  """
  if name not in BUILTIN_TASKS:
    raise ConfigError("--task", f"unknown task {name!r}; use one of "
                      f"{', '.join(BUILTIN_TASKS)} or a path to a .jsonl file")
  kind, builder = BUILTIN_TASKS[name]
  max_in, max_tgt = _budget(kind, seq_len, max_input_bytes, max_target_bytes)
  task = builder(corpus, max_input_bytes=max_in, max_target_bytes=max_tgt,
                 train_text=train_text, name=name, **params)
  provenance = dict(task.provenance)
  provenance["params"] = dict(provenance["params"], seq_len=seq_len)
  return dataclasses.replace(task, provenance=provenance)


def build_builtin_tasks(corpus, seq_len: int = DEFAULT_SEQ_LEN
                        ) -> dict[str, task_lib.Task]:
  """Every built-in task at default budgets, sharing one training-text index."""
  train_text = TrainText(corpus.train)
  return {name: build_task(name, corpus, seq_len=seq_len,
                           train_text=train_text)
          for name in BUILTIN_TASKS}


def load_task(name_or_path: str, data_cfg=None, *,
              seq_len: int = DEFAULT_SEQ_LEN,
              max_input_bytes: int | None = None,
              max_target_bytes: int | None = None,
              corpus=None, **params) -> task_lib.Task:
  """A task by built-in name or JSONL path (the ``--task`` flag).

  Args:
    name_or_path: a key of :data:`BUILTIN_TASKS`, or a ``.jsonl`` file.
    data_cfg: ``config.data`` the built-in tasks are built from (default:
      the default config's, the stdlib corpus); unused for JSONL.
    seq_len: the row length the examples must fit.
    max_input_bytes, max_target_bytes: byte budgets (default
      :func:`default_budget`). For JSONL, longer inputs are truncated and
      examples with longer targets dropped (counted in the provenance).
    corpus: an already loaded corpus (skips ``load_corpus``).
    **params: builder options (see :func:`build_task`).

  Returns:
    The :class:`~scaling.tasks.task.Task`.

  Raises:
    ConfigError: (``--task``) neither a built-in name nor an existing
      ``.jsonl`` file, or a malformed JSONL file (naming file and line).
    ValueError: budgets that do not fit ``seq_len``.
  """
  if name_or_path in BUILTIN_TASKS:
    if corpus is None:
      corpus = load_corpus(data_cfg if data_cfg is not None
                           else default_config().data)
    return build_task(name_or_path, corpus, seq_len=seq_len,
                      max_input_bytes=max_input_bytes,
                      max_target_bytes=max_target_bytes, **params)
  if name_or_path.endswith(".jsonl") or os.path.isfile(name_or_path):
    if not os.path.isfile(name_or_path):
      raise ConfigError("--task", f"{name_or_path!r} does not exist; give an "
                        "existing .jsonl file or one of "
                        f"{', '.join(BUILTIN_TASKS)}")
    return jsonl.load_jsonl_task(name_or_path, seq_len=seq_len,
                                 max_input_bytes=max_input_bytes,
                                 max_target_bytes=max_target_bytes)
  raise ConfigError("--task", f"unknown task {name_or_path!r}; use one of "
                    f"{', '.join(BUILTIN_TASKS)} or a path to a .jsonl file")
