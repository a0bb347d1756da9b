"""Downstream tasks for fine-tuning, offline and deterministic (DESIGN.md §8).

Typical use::

  task = load_task("stdlib_package", config.data, seq_len=config.seq_len)
  rows = task_rows(task.splits["train"], config.seq_len)   # batch-dict rows
  ...
  scores = metrics.score_task(task, generated_targets, split="test")

Modules: :mod:`.task` (the Task and Example types, splits, budgets),
:mod:`.registry` (built-in names, ``load_task``), :mod:`.builtin` (the three
stdlib tasks from held-out documents), :mod:`.functions` (functions found
with ``ast``), :mod:`.tagging` (tokenize spans, their text form and
extraction), :mod:`.overlap` (exact look-ups in the training documents),
:mod:`.jsonl` (a user's task file), :mod:`.metrics` (accuracy, macro-F1,
span F1, BLEU, chrF; import it as ``scaling.tasks.metrics``, which loads
scikit-learn, seqeval and sacrebleu) and :mod:`.rows` (training rows,
gold-answer bits per byte).
"""

from scaling.tasks.registry import BUILTIN_TASKS, build_builtin_tasks
from scaling.tasks.registry import build_task, load_task
from scaling.tasks.rows import TaskRows, answer_sums, example_fields
from scaling.tasks.rows import gold_bits_per_byte, task_rows
from scaling.tasks.task import KINDS, SPLITS, Example, Task, default_budget

__all__ = [
    "BUILTIN_TASKS", "Example", "KINDS", "SPLITS", "Task", "TaskRows",
    "answer_sums", "build_builtin_tasks", "build_task", "default_budget",
    "example_fields", "gold_bits_per_byte", "load_task", "task_rows",
]
