"""Fine-tuning a pretrained checkpoint on a downstream task (DESIGN.md §8).

    scaling finetune --init-from RUN_DIR@STEP --task NAME --workdir DIR
                     [--config.KEY=VALUE ...]
    scaling finetune --init-from none [--model-from RUN_DIR] --task NAME ...

A fine-tune is a run like any other, trained by the same loop
(:func:`scaling.train.execute`) into its own run directory: resumable,
``metrics.jsonl`` with the task's metrics on the validation split at every
eval (:mod:`scaling.task_eval`), ``summary.json`` with the test split's.

* **Config** (:func:`finetune_config`): the source run's ``config.json``
  gives the model, tokenizer, data (the corpus the built-in tasks come from)
  and objective sections and ``seq_len``; everything else is the built-in
  default with :data:`DEFAULTS` (hyperparameters suited to fine-tuning) and
  then the ``--config.*`` overrides on top. ``finetune.attention`` picks
  prefix (the input read bidirectionally) or causal attention.
* **Start**: the source checkpoint's parameters only: a fresh optimizer
  state, step 0 and counters (``tokens``, ``flops``) from 0 (``scaling train
  --init-from`` restores everything instead). ``--init-from none`` trains the
  same model from a fresh init (``train.seed``): the no-pretraining baseline
  (``--model-from RUN_DIR`` takes the model of a run without its
  parameters).
* **Data** (:class:`TaskStream`): the task's train split as text-to-text
  rows (``input, SEP, target, EOS``, loss on the target and EOS only;
  :func:`scaling.tasks.task_rows`), one example per row, in epochs of a
  fresh order drawn from (``train.seed``, epoch): a batch is a pure function
  of (seed, step).
* **Identity** (:mod:`scaling.identity`): the ``finetune`` section joins the
  hash with the task's name and content hash and the source run's identity
  and step, over the model, fine-tuning hyperparameters and seeds; so a
  different source step, task or learning rate is a different run.
* **Checks first**, before anything is compiled or written: the config; the
  source checkpoint's existence, its vocabulary (tokenizer section and
  vocabulary size) and every parameter's shape and dtype; a built-in task
  built from another corpus than the checkpoint was pretrained on is refused
  (its held-out documents would differ, so test examples could have been
  pretrained on).
"""

from __future__ import annotations

import time
from typing import Sequence

import jax
import ml_collections
import numpy as np

from scaling import accounting
from scaling import config as config_lib
from scaling import identity as identity_lib
from scaling import program as program_lib
from scaling import rundir
from scaling import sharding
from scaling import task_eval
from scaling import train as train_lib
from scaling import validation
from scaling.config import ConfigError
from scaling.data import sources
from scaling.tasks import load_task, task_rows

# What a fine-tune takes from its source run's config.
SOURCE_SECTIONS = ("model", "tokenizer", "data", "objective")
SOURCE_GLOBALS = ("seq_len",)
# Fine-tuning hyperparameters on top of the built-in defaults: a short run
# at a fifth of the pretraining peak learning rate, warmup over the first
# 10 % then linear decay to 0 (the BERT recipe, Devlin et al. 2019), small
# batches of one example per row, evals and checkpoints every 50 steps.
DEFAULTS = {
    "batch_size": 16,
    "train.steps": 200,
    "train.tokens": -1,
    "train.log_every": 10,
    "optimizer.peak_lr": 1e-3,
    "optimizer.weight_decay": 0.01,
    "schedule.name": "linear",
    "schedule.warmup_steps": -1,
    "schedule.warmup_fraction": 0.1,
    "schedule.min_lr_ratio": 0.0,
    "eval.every": 50,
    "eval.batch_size": 16,
    "checkpoint.every": 50,
    "checkpoint.keep": 3,
}
# Set by the command from --task and --init-from, never by an override.
SET_BY_COMMAND = {
    "finetune.task": "--task", "finetune.task_hash": "--task",
    "finetune.source_identity": "--init-from",
    "finetune.source_step": "--init-from",
}


def finetune_config(source: dict | None = None,
                    overrides: Sequence[tuple[str, str]] = (),
                    base: ml_collections.ConfigDict | None = None
                    ) -> ml_collections.ConfigDict:
  """The fine-tuning run's config (module docstring).

  Args:
    source: a run's config dict (``config.json["config"]``) whose model,
      tokenizer, data, objective and ``seq_len`` are taken; None: those of
      ``base``.
    overrides: ``(dotted key, text)`` pairs, the ``--config.*`` flags.
    base: the config the rest comes from (default the built-in default).

  Returns:
    A new ConfigDict (not validated yet: :func:`finetune` does that).

  Raises:
    ConfigError: an unknown key (in an override or the source config), an
      unparsable value, or an override of a field the command sets.
  """
  config = ml_collections.ConfigDict(
      (base if base is not None else config_lib.default_config()).to_dict())
  if source is not None:
    recorded = config_lib.from_dict(source, "the source run's config.json")
    for section in SOURCE_SECTIONS:
      config_lib.set_dotted(config, section, ml_collections.ConfigDict(
          recorded[section].to_dict()))
    for key in SOURCE_GLOBALS:
      config_lib.set_dotted(config, key, recorded[key])
  for key, value in DEFAULTS.items():
    config_lib.set_dotted(config, key, value)
  for key, text in overrides:
    if key in SET_BY_COMMAND:
      raise ConfigError(key, f"is set by {SET_BY_COMMAND[key]}; remove the "
                        f"--config.{key} override.")
    config_lib.apply_override(config, key, text)
  return config


class TaskStream:
  """This process's rows of every fine-tuning batch (the loop's data source).

  Global example k of the job (k = step · batch_size + row) is example
  ``order(epoch)[k mod N]`` of the N training rows, epoch = k div N, with
  ``order(e)`` a permutation drawn from ``(seed, e)``: a batch is a pure
  function of (seed, step), whatever the process count.

  Args:
    batch: the rows, dict of [N, L] arrays (:func:`scaling.tasks.task_rows`).
    batch_size: GLOBAL rows per step.
    seed: the order's seed (``train.seed``).
    process_index, process_count: this process's block of each batch
      (:func:`scaling.sharding.process_shard`).

  Raises:
    ValueError: no rows, or a batch not divisible into process blocks.
  """

  def __init__(self, batch: dict[str, np.ndarray], batch_size: int, seed: int,
               process_index: int = 0, process_count: int = 1):
    self.rows = batch
    self.n = int(batch["inputs"].shape[0])
    if self.n == 0:
      raise ValueError("no training rows")
    if batch_size % process_count:
      raise ValueError(f"a batch of {batch_size} rows cannot be split into "
                       f"{process_count} equal blocks")
    self.batch_size, self.seed = batch_size, seed
    self.local_batch_size = batch_size // process_count
    self.process_index = process_index
    self.unique_tokens = int((batch["segment_ids"] != 0).sum())
    self._orders: dict[int, np.ndarray] = {}

  def _order(self, epoch: int) -> np.ndarray:
    if epoch not in self._orders:
      if len(self._orders) > 4:
        self._orders.clear()
      self._orders[epoch] = np.random.default_rng(
          [self.seed, epoch]).permutation(self.n)
    return self._orders[epoch]

  def local_batch(self, step: int) -> dict[str, np.ndarray]:
    """This process's rows of step ``step``'s batch, [local rows, L] arrays."""
    if step < 0:
      raise ValueError(f"step must be >= 0, got {step}")
    first = step * self.batch_size + self.process_index * self.local_batch_size
    k = np.arange(first, first + self.local_batch_size)
    index = np.array([self._order(int(e))[i]
                      for e, i in zip(k // self.n, k % self.n)])
    return {key: v[index] for key, v in self.rows.items()}

  def epochs_at(self, step: int) -> float:
    """Epochs of the training split consumed by steps ``[0, step)``."""
    return step * self.batch_size / self.n


def _check_vocabulary(config, source_config: dict, label: str) -> None:
  """The source was trained with this tokenizer and vocabulary size."""
  mine = config.tokenizer.to_dict()
  theirs = {k: source_config.get("tokenizer", {}).get(k) for k in mine}
  if mine != theirs:
    raise ConfigError("--init-from", (
        f"{label} was trained with tokenizer {theirs}, but this config has "
        f"{mine}; the token ids would mean other things. Fine-tune with the "
        "source's tokenizer section."))
  source = ml_collections.ConfigDict(dict(tokenizer=source_config["tokenizer"]))
  if config_lib.vocab_size(source) != config_lib.vocab_size(config):
    raise ConfigError("--init-from", (
        f"{label} has a vocabulary of {config_lib.vocab_size(source)} ids, "
        f"this config {config_lib.vocab_size(config)}."))


def _check_task_corpus(task, source_record: dict, label: str) -> None:
  """A built-in task comes from the corpus the source was pretrained on."""
  task_hash = dict(task.provenance).get("corpus_hash")
  source_hash = source_record.get("provenance", {}).get("corpus_hash")
  if task_hash is not None and source_hash and task_hash != source_hash:
    raise ConfigError("--task", (
        f"task {task.name!r} was built from corpus {task_hash[:12]}, but "
        f"{label} was pretrained on corpus {source_hash[:12]}: their held-out "
        "documents differ, so test examples may have been pretrained on. Use "
        "the source's corpus (same data section and Python version) or a "
        "JSONL task."))


def _load_task(spec: str, config, corpus):
  try:
    task = load_task(spec, config.data, seq_len=config.seq_len, corpus=corpus)
  except ValueError as e:
    if isinstance(e, ConfigError):
      raise
    raise ConfigError("--task", f"{spec!r} cannot be built at seq_len "
                      f"{config.seq_len}: {e}") from e
  empty = [s for s, n in task.sizes().items() if n == 0]
  if empty:
    raise ConfigError("--task", f"task {task.name!r} has no {', '.join(empty)} "
                      "examples; every split needs some.")
  return task


def _prepare(config, workdir, task_spec: str,
             init_from: str | None) -> train_lib.Setup:
  """Every check of a fine-tune that can fail before anything is compiled or
  written, and the loop's setup."""
  t_start = time.time()
  config = ml_collections.ConfigDict(config.to_dict())
  validation.validate(config, jax.device_count())
  workdir = rundir.check_workdir(workdir)
  source, source_record = None, None
  if init_from and init_from.lower() != "none":
    source = rundir.parse_init_from(init_from)
    source_record = rundir.read_run_config(source[0])
    label = f"{source[0]}@{source[1]}"
    _check_vocabulary(config, source_record["config"], label)
  corpus = sources.load_corpus(config.data)
  task = _load_task(task_spec, config, corpus)
  if source is not None:
    _check_task_corpus(task, source_record, label)
  f = config.finetune
  f.task, f.task_hash = task.name, task.content_hash
  f.source_identity = source_record["identity"] if source else ""
  f.source_step = source[1] if source else -1
  validation.validate(config, jax.device_count())
  identity = identity_lib.identity_hash(config, corpus.corpus_hash)
  rundir.check_identity(workdir, identity)
  program = program_lib.build(config, sharding.make_mesh(config))
  peak, peak_source = train_lib.measure_peak(config)
  record = dict(
      identity=identity, config=config.to_dict(),
      provenance=rundir.provenance(corpus),
      flops_formula=accounting.FLOPS_FORMULA,
      task=dict(task.summary(), spec=task_spec),
      source=None if source is None else dict(
          run_dir=str(source[0]), step=source[1],
          identity=source_record["identity"],
          corpus_hash=source_record.get("provenance", {}).get("corpus_hash")))
  rows = task_rows(task.splits["train"], config.seq_len,
                   attention=f.attention).batch

  def make_data(shard_index, shard_count):
    return TaskStream(rows, config.batch_size, config.train.seed, shard_index,
                      shard_count)

  def make_evaluator():
    return task_eval.TaskEvaluator(config, task, program, "validation",
                                   config.eval.task_examples, "val_")

  def summary_extra(state, summary):
    del summary
    out = dict(task=task.name, task_kind=task.kind,
               task_hash=task.content_hash,
               source_identity=f.source_identity, source_step=f.source_step)
    if state is not None:
      out.update(task_eval.TaskEvaluator(config, task, program, "test", -1,
                                         "test_")(state["params"]))
    return out

  return train_lib.Setup(
      config, workdir, identity, corpus, program,
      train_lib.Start(source, params_only=True), record, make_data,
      make_evaluator, summary_extra, peak, peak_source, t_start)


def finetune(config, workdir, task: str, init_from: str | None) -> dict:
  """Fine-tunes into ``workdir`` and returns the summary.

  Args:
    config: the fine-tuning config (:func:`finetune_config`); its
      ``finetune`` section's task and source fields are set here.
    workdir: the run directory; resumed when it holds a checkpoint.
    task: a built-in task name or a ``.jsonl`` path (``--task``).
    init_from: ``RUN_DIR@STEP`` (its parameters only), or None / ``"none"``
      for a fresh init (the no-pretraining baseline).

  Returns:
    The summary (also ``summary.json``): the loop's fields, the last
    validation metrics (``val_*``) and the test split's (``test_*``);
    ``status`` as :func:`scaling.train.train`.

  Raises:
    ConfigError: an invalid config, task or source (vocabulary, shapes,
      corpus), or a workdir of another run, all before anything is compiled
      or written.
  """
  return train_lib.execute(_prepare(config, workdir, task, init_from))
