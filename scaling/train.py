"""One training run: config → run directory (DESIGN.md §2 and §3).

``train(config, workdir)`` checks everything first (config, run directory,
``--init-from`` source; :mod:`scaling.validation`, :mod:`scaling.rundir`),
claims the directory, builds the run's program once
(:func:`scaling.program.build`), resumes from the newest checkpoint that
restores, then runs the loop: the compiled, donated train step, periodic
eval and checkpoints, ``metrics.jsonl`` and TensorBoard, and finally
``summary.json``.

The loop (:func:`execute`) is shared by every kind of run: a :class:`Setup`
gives it the program, a data source (``local_batch(step)``), an evaluator
(``params -> dict of metrics``), a :class:`Start` (where the state comes from
when the directory holds no checkpoint: fresh, another run's full state, or
another run's parameters only) and a hook for the summary's own fields.
Pretraining (:func:`train`) and fine-tuning (:mod:`scaling.finetune`) build
their setups and run the same loop.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any, Callable, Protocol

from etils import epath
import jax
from tqdm import tqdm

from scaling import accounting
from scaling import agree
from scaling import checkpoint as ckpt_lib
from scaling import config as config_lib
from scaling import evaluation
from scaling import identity as identity_lib
from scaling import metrics as metrics_lib
from scaling import peak as peak_lib
from scaling import program as program_lib
from scaling import rundir
from scaling import sharding
from scaling import task_eval
from scaling import tokenizer as tok_lib
from scaling import validation
from scaling.config import ConfigError
from scaling.data import pipeline, sources

TERMINATED = "terminated"  # summary-less stop after SIGTERM (checkpoint saved)
IdentityMismatch = rundir.IdentityMismatch


class DataSource(Protocol):
  """This process's rows of every global batch of a run."""
  unique_tokens: int

  def local_batch(self, step: int) -> dict:
    """The batch dict of optimizer step ``step``, [local rows, L] arrays."""

  def epochs_at(self, step: int) -> float:
    """Epochs of the training set consumed by steps ``[0, step)``."""


@dataclasses.dataclass(frozen=True)
class Start:
  """Where the train state comes from when the run directory holds none.

  Attributes:
    source: ``(RUN_DIR, STEP)`` of another run's checkpoint, or None for a
      fresh init (``config.train.seed``).
    params_only: with a source, restore its parameters only: a fresh
      optimizer state, step 0 and counters (``tokens``, ``flops``,
      ``loss_tokens``) from 0 (fine-tuning). Otherwise the full state and
      its counters continue (``--init-from`` of ``scaling train``).
  """
  source: tuple[epath.Path, int] | None = None
  params_only: bool = False


@dataclasses.dataclass
class Setup:
  """What the loop needs, every part checked before anything is written.

  Attributes:
    config, workdir, identity, corpus, program: the run's validated config,
      absolute directory, identity hash, corpus and program.
    start: the :class:`Start` of a run without a checkpoint.
    record: ``config.json``'s content (identity, config, provenance, ...).
    make_data: ``(shard_index, shard_count) -> DataSource``.
    make_evaluator: ``() -> (params -> dict)``, called under the program's
      mesh context; the dict is merged into each eval record and the summary.
    summary_extra: ``(state, summary) -> dict`` of the run kind's own
      summary fields, called at the end (not after SIGTERM) under the mesh
      context with the final state (None unless the run finished).
    peak, peak_source: the MFU peak FLOP/s and where it comes from.
    t_start: ``time.time()`` when the command started.
  """

  config: Any
  workdir: epath.Path
  identity: str
  corpus: Any
  program: program_lib.Program
  start: Start
  record: dict
  make_data: Callable[[int, int], DataSource]
  make_evaluator: Callable[[], Callable[[Any], dict]]
  summary_extra: Callable[[dict, dict], dict]
  peak: float
  peak_source: str
  t_start: float


def measure_peak(config) -> tuple[float, str]:
  """The MFU peak FLOP/s of the visible devices and its source.

  Measured outside the run's mesh context (its own mesh).
  """
  return peak_lib.peak_flops(jax.devices(), config.model.dtype)


def _prepare(config, workdir, init_from: str | None) -> Setup:
  """Every check of a pretraining run that can fail before anything is
  compiled or written."""
  t_start = time.time()
  validation.validate(config, jax.device_count())
  if config.finetune.task:
    raise ConfigError("finetune.task", (
        f"is '{config.finetune.task}': a fine-tuning config; run it with "
        "`scaling finetune` (`scaling train` pretrains)."))
  workdir = rundir.check_workdir(workdir)
  source = rundir.parse_init_from(init_from) if init_from else None
  corpus = sources.load_corpus(config.data)
  identity = identity_lib.identity_hash(config, corpus.corpus_hash)
  rundir.check_identity(workdir, identity)
  program = program_lib.build(config, sharding.make_mesh(config))
  peak, peak_source = measure_peak(config)
  record = dict(identity=identity, config=config.to_dict(),
                provenance=rundir.provenance(corpus),
                flops_formula=accounting.FLOPS_FORMULA)

  def make_data(shard_index, shard_count):
    return pipeline.TrainStream(
        corpus, tok_lib.ByteTokenizer(config.tokenizer.n_sentinels),
        config.seq_len, config.batch_size, config.data.seed,
        max_tokens=config.data.max_tokens, objective_cfg=config.objective,
        row_order=config.data.row_order,
        process_index=shard_index, process_count=shard_count)

  eval_tasks = task_eval.load_eval_tasks(config, corpus)
  in_loop = []  # the eval.tasks scorer, once the loop has made it

  def make_evaluator():
    views = evaluation.Evaluator(config, corpus, program)
    if not eval_tasks:
      return views
    in_loop.append(task_eval.InLoopTasks(config, eval_tasks, program))
    return lambda params: {**views(params), **in_loop[-1](params)}

  def summary_extra(state, summary):
    del state, summary
    extra = dict(
        unigram_bpb=pipeline.unigram_entropy_bits_per_byte(corpus.val))
    if in_loop:  # the share of this command's time the task evals took
      total = in_loop[-1].seconds_total
      extra.update(task_eval_seconds_total=total,
                   task_eval_share=total / (time.time() - t_start))
    return extra

  return Setup(config, workdir, identity, corpus, program, Start(source),
               record, make_data, make_evaluator, summary_extra, peak,
               peak_source, t_start)


def train(config, workdir, init_from: str | None = None) -> dict:
  """Trains one run into ``workdir`` and returns its summary.

  Args:
    config: a run config (``scaling.config.default_config()`` schema).
    workdir: the run directory (local path or ``gs://``); resumed when it
      holds a checkpoint.
    init_from: ``RUN_DIR@STEP`` to start from another run's checkpoint (its
      params, optimizer state, step, ``tokens`` and ``flops``); the new
      ``metrics.jsonl`` begins with that run's records up to STEP
      (``metrics.branch_history``), so a WSD decay branch holds the whole
      curve of the run it stands for.

  Returns:
    The summary dict (also ``summary.json``) with ``status`` "finished" or
    "failed" (and ``reason``), or "terminated" after SIGTERM (no summary file).

  Raises:
    ConfigError: invalid config, a workdir of another identity or held by a
      live command, an ``--init-from`` checkpoint of another shape (all
      before anything is compiled; nothing is written).
  """
  return execute(_prepare(config, workdir, init_from))


def execute(setup: Setup) -> dict:
  """Claims the run directory and runs the loop of ``setup``.

  Returns:
    The summary, as :func:`train`.

  Raises:
    ConfigError: the directory is held by a live command, or a check made
      before anything is written failed (a checkpoint of another shape); a
      directory this call created is then removed again.
  """
  created = not setup.workdir.exists()
  claim = rundir.claim(setup.workdir)
  try:
    return _run(setup)
  except ConfigError:
    if created and jax.process_index() == 0:
      _remove_if_only_claim(setup.workdir)
    raise
  finally:
    if claim is not None:
      claim.release()


def _remove_if_only_claim(workdir: epath.Path) -> None:
  """Leaves no directory behind for a run refused before it wrote anything."""
  names = {p.name for p in workdir.iterdir()} if workdir.exists() else set()
  if names <= {rundir.CLAIM_FILE}:
    for name in names:
      (workdir / name).unlink(missing_ok=True)
    workdir.rmdir()


def _restore(setup: Setup, ckpt: ckpt_lib.Checkpointer):
  """(start step, state, counters, history): resumed, initialised from, or
  fresh; ``history`` is the ``--init-from`` source's metrics records up to
  its step (``metrics.branch_history``), None otherwise."""
  program = setup.program
  counters = dict(tokens=0, flops=0, loss_tokens=0)
  restored = ckpt.restore_latest(program.abstract_state)
  history = None
  if restored is not None:
    start, state, meta = restored
    print(f"Resuming {setup.workdir} from step {start}.", flush=True)
  elif setup.start.source is not None:
    src_dir, start = setup.start.source
    src = ckpt_lib.Checkpointer(src_dir / "checkpoints", 1, False)
    try:
      if setup.start.params_only:
        params = src.restore_params(start, program.abstract_state["params"])
        print(f"Initialised the parameters from {src_dir} step {start} "
              "(fresh optimizer state, step 0).", flush=True)
        return 0, program.state_from_params(params), counters, None
      state, meta = src.restore(start, program.abstract_state)
    finally:
      src.close()
    history = metrics_lib.branch_history(
        metrics_lib.read_jsonl(src_dir / "metrics.jsonl"), start,
        setup.config.train.log_every, setup.config.eval.every)
    print(f"Initialised from {src_dir} step {start}.", flush=True)
  else:
    return 0, program.init_state(), counters, None
  counters.update({k: int(meta[k]) for k in counters})
  return start, state, counters, history


def _check_init_from(setup: Setup) -> None:
  """The source checkpoint's parameters fit this config's shapes."""
  if setup.start.source is None:
    return
  src_dir, step = setup.start.source
  src = ckpt_lib.Checkpointer(src_dir / "checkpoints", 1, False)
  try:
    src.check_shapes(step, setup.program.abstract_state, f"{src_dir}@{step}")
  finally:
    src.close()


def _run(setup: Setup) -> dict:
  """Writes config.json, then the training loop; returns the summary."""
  config, workdir, program = setup.config, setup.workdir, setup.program
  is_main = jax.process_index() == 0
  # Seconds to sleep before each step, only for tests that kill a real run at
  # a chosen point; never set in normal use.
  step_sleep = float(os.environ.get("SCALING_TEST_STEP_SLEEP", "0") or 0)
  if not (workdir / "checkpoints").exists():
    _check_init_from(setup)  # a resumed run ignores --init-from
  if is_main:
    workdir.mkdir(parents=True, exist_ok=True)
    metrics_lib.write_json_atomic(workdir / "config.json", setup.record)

  steps_total = accounting.train_steps(config)
  per_step = accounting.flops_per_step(config)
  counts = accounting.param_counts(config.model, program.model.vocab_size,
                                   config.seq_len)
  ckpt = ckpt_lib.Checkpointer(workdir / "checkpoints", config.checkpoint.keep,
                               config.checkpoint.async_save,
                               keep_steps=config.checkpoint.at_steps)
  keep_steps = set(config.checkpoint.at_steps)
  mesh = program.mesh
  with program.context():
    start, state, counters, history = _restore(setup, ckpt)
    shard_index, shard_count = sharding.process_shard(mesh)
    data = setup.make_data(shard_index, shard_count)
    rows = config.batch_size // shard_count
    print(f"data: process {jax.process_index()} loads rows "
          f"[{shard_index * rows}, {(shard_index + 1) * rows}) of each "
          f"global batch of {config.batch_size}", flush=True)
    evaluator = setup.make_evaluator()
    t_compile = time.time()
    lowered = program.lower()
    compiled = lowered.compile()
    compile_seconds = time.time() - t_compile

    log = metrics_lib.MetricsLog(workdir, start, history)
    if is_main:
      print(f"mfu is measured against {setup.peak / 1e9:,.1f} GFLOP/s: "
            f"{setup.peak_source}", flush=True)
    summary = dict(status="finished", reason="")
    last_eval = {}
    if start == steps_total:  # resumed a run whose last step was saved
      last_eval = evaluator(state["params"])
    pbar = tqdm(total=steps_total, initial=start, disable=not is_main,
                desc=workdir.name, unit="step", mininterval=1.0)
    t_last, steps_since = time.time(), 0
    step, m = start, None
    try:
      with agree.StopSignal() as stop:
        while step < steps_total:
          batch = sharding.to_global(data.local_batch(step), mesh)
          if step_sleep:  # tests only: widen the window for a real kill
            time.sleep(step_sleep)
          new_state, m = compiled(state, batch, program.hp)
          m = jax.device_get(m)
          if not math.isfinite(float(m["train_loss"])):
            last = max(ckpt.steps(), default=None)
            kept = f"step {last}" if last is not None else "none saved yet"
            summary = dict(status="failed", reason=(
                f"train_loss became {float(m['train_loss'])} at step "
                f"{step + 1}; last good checkpoint: {kept}"))
            tqdm.write(f"ERROR: {summary['reason']}")
            break
          state, step = new_state, step + 1
          counters["tokens"] += int(m["real_tokens"])
          counters["loss_tokens"] += int(round(float(m["loss_tokens"])))
          counters["flops"] += int(per_step["flops"])
          steps_since += 1
          pbar.update(1)
          is_last = step == steps_total
          record = None
          if step % config.train.log_every == 0 or is_last:
            dt = time.time() - t_last
            tps = steps_since * config.batch_size * config.seq_len / dt
            record = dict(
                step=step, tokens=counters["tokens"], flops=counters["flops"],
                loss_tokens=counters["loss_tokens"],
                train_loss=float(m["train_loss"]), lr=float(m["lr"]),
                grad_norm=float(m["grad_norm"]), tokens_per_sec=tps,
                mfu=steps_since * per_step["flops"] / dt / setup.peak,
                epoch=data.epochs_at(step))
            t_last, steps_since = time.time(), 0
            pbar.set_postfix(loss=f"{record['train_loss']:.3f}",
                             tok_s=f"{tps:,.0f}")
          if step % config.eval.every == 0 or is_last:
            last_eval = evaluator(state["params"])
            record = record or dict(step=step, tokens=counters["tokens"],
                                    flops=counters["flops"])
            record.update(last_eval)
            t_last, steps_since = time.time(), 0
          if record is not None:
            log.write(record)
          if (step % config.checkpoint.every == 0 or is_last
              or step in keep_steps):
            ckpt.save(step, state, counters, force=True)
          if not is_last and stop.agreed():
            ckpt.save(step, state, counters, force=True)
            ckpt.wait()
            summary = dict(status=TERMINATED, reason=(
                f"stopped by a signal: saved step {step}; run the same "
                "command to resume"))
            tqdm.write(summary["reason"])
            # No process exits before every one has saved and said so (a
            # launcher stops the others when the first one exits).
            agree.barrier(f"stopped_at_{step}")
            break
    finally:
      pbar.close()
      ckpt.close()
      log.close()

  summary.update(
      step=step, steps_total=steps_total, tokens=counters["tokens"],
      loss_tokens=counters["loss_tokens"], flops=counters["flops"],
      flops_6nd=step * per_step["flops_6nd"],
      flops_kaplan=step * per_step["flops_kaplan"],
      flops_formula=accounting.FLOPS_FORMULA, **counts,
      train_loss=float(m["train_loss"]) if m is not None else _last_logged(
          workdir, "train_loss"),
      epochs=data.epochs_at(step), unique_tokens=data.unique_tokens,
      identity=setup.identity, corpus_hash=setup.corpus.corpus_hash,
      compile_seconds=compile_seconds,
      program_fingerprint=program_lib.fingerprint(lowered),
      peak_flops_per_sec=setup.peak, peak_source=setup.peak_source)
  summary.update(last_eval)
  if summary["status"] != TERMINATED:
    # A failed step's input state was donated: only a finished run's is passed.
    final = state if summary["status"] == "finished" else None
    with program.context():
      summary.update(setup.summary_extra(final, summary))
  summary["wall_seconds"] = time.time() - setup.t_start
  if is_main and summary["status"] != TERMINATED:
    metrics_lib.write_json_atomic(workdir / "summary.json", summary)
  return summary


def _last_logged(workdir, key):
  values = [r[key] for r in metrics_lib.read_jsonl(workdir / "metrics.jsonl")
            if r.get(key) is not None]
  return values[-1] if values else None
