"""A downstream task's metrics of a model: what a fine-tuning run logs.

:class:`TaskEvaluator` ``(params) -> dict`` scores one split of a task
(DESIGN.md §8) with the task kind's metric (:func:`scaling.tasks.metrics.
score_task`), every key prefixed with the split (``val_``, ``test_``):

* every kind: ``gold_bpb`` (and ``gold_bpb_se``), the bits per byte of the
  gold target given the input, Σ NLL / (ln 2 · Σ target bytes) over the
  split (the first step of Bhagia et al. 2024's two-step law; EOS is in the
  NLL and counts 0 bytes), and ``loss``, the NLL in nats per target token
  (bytes and EOS), the fine-tuning loss on held-out examples;
* classification, by ranked scoring (the standard of OLMo and
  lm-eval-harness): every candidate label is scored as the target of the
  input (its summed NLL, EOS included) and the least NLL is the prediction:
  ``accuracy`` and ``macro_f1``; ``accuracy_norm`` ranks by NLL per target
  byte instead (length-normalised, lm-eval's ``acc_norm``). Exact, never
  generates; costs one forward row per (example, candidate);
* tagging and generation, by greedy decoding with the key/value cache
  (:func:`scaling.decode.generate`) of at most ``limit`` examples (the first
  of the split, whose order is seed-free): ``span_precision``,
  ``span_recall``, ``span_f1`` (tagging), ``bleu``, ``chrf`` (generation).
  Costs, per batch of ``eval.batch_size`` examples, one prefill and at most
  ``max_new_tokens`` one-token steps.

All rows are batched as ``[eval.batch_size, seq_len]`` (a last short batch is
padded with rows outside every segment), each process holding its own rows of
every global batch, so one compiled eval step and one compiled decoder serve
every evaluation of the run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import numpy as np

from scaling import decode
from scaling import objectives
from scaling import evaluation
from scaling import sharding
from scaling import tokenizer as tok_lib
from scaling.config import ConfigError
from scaling.data import packing
from scaling.tasks import metrics as task_metrics
from scaling.tasks import registry as tasks_registry
from scaling.tasks import rows as rows_lib


def max_new_tokens(config, task) -> int:
  """Tokens decoded per example: ``finetune.max_new_tokens``, or when -1 the
  task's target budget (``provenance["params"]["max_target_bytes"]``, else
  its longest target) + 1 for EOS."""
  if config.finetune.max_new_tokens > 0:
    return int(config.finetune.max_new_tokens)
  budget = dict(task.provenance).get("params", {}).get("max_target_bytes")
  if budget is None:
    budget = max(len(e.target.encode("utf-8")) for s in task.splits.values()
                 for e in s)
  return int(budget) + 1


def prompt_slots(task) -> int:
  """The longest decoding prompt (input + SEP) over every split of ``task``:
  the padded prompt length, one compiled decoder for all splits."""
  return max(len(e.input.encode("utf-8")) + 1 for s in task.splits.values()
             for e in s)


def _batches(batch: dict[str, np.ndarray], batch_size: int
             ) -> list[dict[str, np.ndarray]]:
  """Global [batch_size, L] batches of rows, the last one padded."""
  n, length = batch["inputs"].shape
  total = -(-n // batch_size) * batch_size
  if total > n:
    pad = packing.padding_row(length)
    batch = {k: np.concatenate([v, np.repeat(pad[k][None], total - n, 0)])
             for k, v in batch.items()}
  return [{k: v[i:i + batch_size] for k, v in batch.items()}
          for i in range(0, total, batch_size)]


class TaskEvaluator:
  """Scores parameters on one split of a task (module docstring).

  Args:
    config: the fine-tuning run's config (``finetune.attention``,
      ``eval.batch_size``, ``seq_len``, ``tokenizer``).
    task: the :class:`scaling.tasks.Task`.
    program: the run's :class:`scaling.program.Program` (its eval step and
      model).
    split: ``validation`` or ``test`` (or ``train``).
    limit: at most this many examples are decoded (tagging, generation),
      or with ``decoding`` False scored (every kind); -1: all. Otherwise
      classification scores the whole split.
    prefix: the metric keys' prefix.
    attention: ``prefix`` or ``causal`` rows (default
      ``config.finetune.attention``).
    decoding: False: tagging and generation give their gold-answer figures
      only (``gold_bpb``, ``loss``), without decoding.

  Raises:
    ValueError: an empty split, or an example that does not fit ``seq_len``.
  """

  def __init__(self, config, task, program, split: str = "validation",
               limit: int = -1, prefix: str = "val_",
               attention: str | None = None, decoding: bool = True):
    examples = tuple(task.splits[split])
    if not examples:
      raise ValueError(f"task {task.name!r} has no {split} examples")
    if (task.kind != "classification" or not decoding) and limit > 0:
      examples = examples[:limit]
    splits = {s: () for s in task.splits}
    splits[split] = examples
    self.task = dataclasses.replace(task, splits=splits)
    self.split, self.prefix = split, prefix
    self.mesh, self.model = program.mesh, program.model
    self._eval_step = program.eval_step
    self._shard = sharding.process_shard(self.mesh)
    self._attention = attention or config.finetune.attention
    self._decoding = decoding
    self._batch_size = config.eval.batch_size
    self._n_real = tok_lib.ByteTokenizer(config.tokenizer.n_sentinels).n_real
    seq_len = config.seq_len
    if task.kind == "classification":
      self._candidates = task.candidates()
      pairs = [(e.input, c) for e in examples for c in self._candidates]
      scored = rows_lib.task_rows(pairs, seq_len, attention=self._attention)
      self._gold = [self._candidates.index(e.target) for e in examples]
    else:
      scored = rows_lib.task_rows(examples, seq_len, attention=self._attention)
    if task.kind != "classification" and decoding:
      self._max_new = max_new_tokens(config, task)
      self._slots = prompt_slots(task)
      prompts = [rows_lib.prompt_fields(e.input, attention=self._attention)
                 for e in examples]
      batch = decode.prompt_batch([p for p, _ in prompts],
                                  [n for _, n in prompts], self._slots)
      self._n_prompts = len(prompts)
      self._prompts = [sharding.local_rows(b, *self._shard)
                       for b in _batches(batch, self._batch_size)]
    self._scored = [sharding.local_rows(b, *self._shard)
                    for b in _batches(scored.batch, self._batch_size)]
    self._n_scored = scored.batch["inputs"].shape[0]

  def _nll(self, params):
    nll, nbytes, count = evaluation.row_sums(self._eval_step, params,
                                             self._scored, self.mesh)
    n = self._n_scored
    return nll[:n], nbytes[:n], count[:n]

  def _generate(self, params) -> list[str]:
    out = []
    for local in self._prompts:
      tokens = decode.generate(
          self.model, params, sharding.to_global(local, self.mesh),
          max_new_tokens=self._max_new, n_real=self._n_real)
      out.extend(decode.texts(tokens))
    return out[:self._n_prompts]

  def predictions(self, params) -> list[str]:
    """The predicted target of every scored example (classification: the
    best-ranked candidate; otherwise the greedy decoding)."""
    if self.task.kind == "classification":
      nll, _, _ = self._nll(params)
      best = nll.reshape(-1, len(self._candidates)).argmin(axis=1)
      return [self._candidates[i] for i in best]
    return self._generate(params)

  def __call__(self, params) -> dict:
    """The split's metrics (module docstring), keys prefixed."""
    nll, nbytes, count = self._nll(params)
    out = {}
    if self.task.kind == "classification":
      k = len(self._candidates)
      nll_NxC, bytes_NxC = nll.reshape(-1, k), nbytes.reshape(-1, k)
      rows = np.arange(len(self._gold))
      gold_nll = nll_NxC[rows, self._gold]
      gold_bytes = bytes_NxC[rows, self._gold]
      gold_count = count.reshape(-1, k)[rows, self._gold]
      predicted = [self._candidates[i] for i in nll_NxC.argmin(axis=1)]
      per_byte = nll_NxC / np.maximum(bytes_NxC, 1)
      normed = [self._candidates[i] for i in per_byte.argmin(axis=1)]
      out.update(task_metrics.score_task(self.task, predicted, self.split))
      out["accuracy_norm"] = task_metrics.accuracy(
          [e.target for e in self.task.splits[self.split]], normed)
    else:
      gold_nll, gold_bytes, gold_count = nll, nbytes, count
      if self._decoding:
        out.update(task_metrics.score_task(
            self.task, self._generate(params), self.split))
    if gold_bytes.sum() > 0:
      bpb, se = evaluation.bits_per_byte(gold_nll, gold_bytes)
    else:  # every gold target is empty: only EOS is predicted
      bpb, se = math.nan, math.nan
    out.update(gold_bpb=float(bpb), gold_bpb_se=float(se),
               loss=float(gold_nll.sum() / max(gold_count.sum(), 1)))
    return {f"{self.prefix}{k}": v for k, v in out.items()}


def load_eval_tasks(config, corpus) -> dict:
  """The tasks of ``eval.tasks`` at the run's ``seq_len`` (name → Task).

  Raises:
    ConfigError: (``eval.tasks``) a task with no validation example that
      fits ``seq_len``.
  """
  tasks = {}
  for name in tasks_registry.eval_task_names(config.eval.tasks):
    try:
      task = tasks_registry.load_task(name, corpus=corpus,
                                      seq_len=config.seq_len)
    except ValueError as e:
      raise ConfigError("eval.tasks", f"{name!r} at seq_len "
                        f"{config.seq_len}: {e}") from e
    if not task.splits.get("validation"):
      raise ConfigError("eval.tasks", (
          f"{name!r} has no validation example that fits seq_len "
          f"{config.seq_len}; raise seq_len or drop the task."))
    tasks[os.path.splitext(os.path.basename(name))[0]] = task
  return tasks


class InLoopTasks:
  """``eval.tasks``: zero-shot task scores of a pretraining run at each eval.

  Each task's validation split is scored without fine-tuning, its rows read
  as the run's objective reads text
  (:func:`scaling.objectives.zero_shot_attention`), through the run's own
  eval step. Classification is ranked by the likelihood of each
  candidate label, the in-loop evaluation of OLMo and lm-eval-harness:
  ``task_<name>_accuracy``, ``_accuracy_norm`` (ranked by NLL per byte),
  ``_macro_f1`` and ``_accuracy_se`` (the binomial standard error,
  √(p(1 − p)/n)); every kind gives ``_gold_bpb`` (± ``_gold_bpb_se``), the
  bits per byte of the gold answer (Bhagia et al. 2024's task loss), and
  ``_loss``. Tagging and generation are not decoded in-loop (the first
  ``eval.task_examples`` examples, gold figures only). ``task_eval_seconds``
  is the time the call took: the share of the run it costs is in the
  summary (``task_eval_share``).

  Args:
    config: the pretraining run's config.
    tasks: :func:`load_eval_tasks`'s result.
    program: the run's program (its eval step).
  """

  def __init__(self, config, tasks: dict, program):
    attention = objectives.zero_shot_attention(config.objective.name)
    self._evaluators = {
        name: TaskEvaluator(config, task, program, split="validation",
                            limit=config.eval.task_examples,
                            prefix=f"task_{name}_", attention=attention,
                            decoding=False)
        for name, task in tasks.items()}
    self.seconds_total = 0.0

  def __call__(self, params) -> dict:
    t0 = time.time()
    out = {}
    for name, evaluate in self._evaluators.items():
      scores = evaluate(params)
      accuracy = scores.get(f"task_{name}_accuracy")
      if accuracy is not None:
        n = len(evaluate.task.splits["validation"])
        scores[f"task_{name}_accuracy_se"] = math.sqrt(
            accuracy * (1 - accuracy) / n)
      out.update(scores)
    out["task_eval_seconds"] = time.time() - t0
    self.seconds_total += out["task_eval_seconds"]
    return out
