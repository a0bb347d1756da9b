"""One training run: config → run directory (DESIGN.md §2 and §3).

``train(config, workdir)`` validates the config, loads the corpus, builds the
mesh and the sharded state (or resumes it from the newest checkpoint that
restores), runs the jitted, donated train step with periodic eval and
checkpoints, and writes ``config.json``, ``metrics.jsonl``, TensorBoard events
and finally ``summary.json``.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time

from etils import epath
import jax
import numpy as np
from tqdm import tqdm

from scaling import accounting
from scaling import checkpoint as ckpt_lib
from scaling import config as config_lib
from scaling import evaluation
from scaling import metrics as metrics_lib
from scaling import model as model_lib
from scaling import peak as peak_lib
from scaling import schedules
from scaling import sharding as sharding_lib
from scaling import step as step_lib
from scaling import tokenizer as tok_lib
from scaling.data import pipeline, sources

TERMINATED = "terminated"  # summary-less stop after SIGTERM (checkpoint saved)


class IdentityMismatch(config_lib.ConfigError):
  """The run directory belongs to a run with another identity."""


def provenance(corpus) -> dict:
  """Git commit/dirty flag, library versions and the corpus hash."""
  import flax
  import jaxlib
  here = epath.Path(__file__).parent

  def git(*args):
    try:
      return subprocess.run(["git", *args], cwd=here, capture_output=True,
                            text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
      return ""

  return dict(git_commit=git("rev-parse", "HEAD") or None,
              git_dirty=bool(git("status", "--porcelain", "--untracked-files=no")),
              jax=jax.__version__, jaxlib=jaxlib.__version__,
              flax=flax.__version__, corpus=corpus.name,
              corpus_hash=corpus.corpus_hash)


def _check_identity(workdir: epath.Path, identity: str) -> None:
  path = workdir / "config.json"
  if not path.exists():
    return
  import json
  previous = json.loads(path.read_text()).get("identity")
  if previous != identity:
    raise IdentityMismatch(
        "--workdir", f"{workdir} holds run {previous}, but this config is run "
        f"{identity}; use a new --workdir, or the original config to resume.")


def _absolute(path) -> epath.Path:
  """orbax wants absolute paths: a relative local path is taken from the cwd."""
  text = os.fspath(path)
  return epath.Path(text if "://" in text else os.path.abspath(text))


def _check_workdir(workdir: str) -> epath.Path:
  """Refuses an empty workdir, a file, or a sweep directory."""
  if not os.fspath(workdir).strip():
    raise config_lib.ConfigError("--workdir", "is empty; give the run directory, "
                                 "e.g. --workdir runs/my_run.")
  path = _absolute(workdir)
  if path.exists() and not path.is_dir():
    raise config_lib.ConfigError("--workdir", f"{path} is a file, not a run "
                                 "directory; choose another --workdir.")
  if (path / "results.csv").exists():
    raise config_lib.ConfigError("--workdir", f"{path} is a sweep directory; "
                                 "give a new run directory instead.")
  return path


def _parse_init_from(spec: str):
  """``RUN_DIR@STEP`` → (absolute run dir, step), checked to exist.

  Raises:
    ConfigError: malformed spec, or no such checkpoint (lists the saved ones).
  """
  run_dir, _, step = spec.rpartition("@")
  if not run_dir or not step.isdigit():
    raise config_lib.ConfigError(
        "--init-from", f"expected RUN_DIR@STEP, got '{spec}'.")
  run_dir = _absolute(run_dir)
  ckpts = run_dir / "checkpoints"
  saved = sorted(int(p.name) for p in ckpts.iterdir()
                 if p.name.isdigit()) if ckpts.exists() else []
  if int(step) not in saved:
    raise config_lib.ConfigError(
        "--init-from", f"{run_dir} has no checkpoint at step {step}; saved "
        f"steps: {saved or 'none'}.")
  return run_dir, int(step)


class _Preemption:
  """Turns SIGTERM and Ctrl-C (SIGINT) into a flag checked between steps."""

  _SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self._previous = {}

  def __enter__(self):
    try:
      for sig in self._SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    except ValueError:  # not the main thread
      self._previous = {}
    return self

  def _handle(self, *_):
    self.requested = True

  def __exit__(self, *_):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def agreed(self) -> bool:
    """True when any process got SIGTERM (one collective decision)."""
    if jax.process_count() == 1:
      return self.requested
    from jax.experimental import multihost_utils
    flags = multihost_utils.process_allgather(np.int32(self.requested))
    return bool(np.max(flags))


def train(config, workdir, init_from: str | None = None) -> dict:
  """Trains one run into ``workdir`` and returns its summary.

  Args:
    config: a run config (``scaling.config.default_config()`` schema).
    workdir: the run directory (local path or ``gs://``); resumed when it
      holds a checkpoint.
    init_from: ``RUN_DIR@STEP`` to start from another run's checkpoint (its
      params, optimizer state, step, ``tokens`` and ``flops``).

  Returns:
    The summary dict (also ``summary.json``) with ``status`` "finished" or
    "failed" (and ``reason``), or "terminated" after SIGTERM (no summary file).

  Raises:
    ConfigError: invalid config, or a workdir of another identity (before
      anything is compiled).
  """
  t_start = time.time()
  # Seconds to sleep before each step, only for tests that kill a real run at
  # a chosen point; never set in normal use.
  step_sleep = float(os.environ.get("SCALING_TEST_STEP_SLEEP", "0") or 0)
  config_lib.validate(config, jax.device_count())
  workdir = _check_workdir(workdir)
  if init_from:
    _parse_init_from(init_from)  # fail before anything is compiled
  corpus = sources.load_corpus(config.data)
  identity = config_lib.identity_hash(config, corpus.corpus_hash)
  _check_identity(workdir, identity)
  is_main = jax.process_index() == 0
  if is_main:
    workdir.mkdir(parents=True, exist_ok=True)
    metrics_lib.write_json_atomic(workdir / "config.json", dict(
        identity=identity, config=config.to_dict(),
        provenance=provenance(corpus), flops_formula=accounting.FLOPS_FORMULA))

  steps_total = config_lib.train_steps(config)
  warmup = schedules.resolve_warmup(config.schedule, steps_total)
  hp = step_lib.hyperparams(config, steps_total, warmup)
  per_step = accounting.flops_per_step(config)
  counts = accounting.param_counts(config.model, config_lib.vocab_size(config),
                                   config.seq_len)

  mesh = sharding_lib.make_mesh(config)
  model = model_lib.build(config)
  init_fn, abstract, shardings = step_lib.abstract_state(
      model, mesh, config.train.seed)
  ckpt = ckpt_lib.Checkpointer(workdir / "checkpoints", config.checkpoint.keep,
                               config.checkpoint.async_save)
  counters = dict(tokens=0, flops=0, loss_tokens=0)
  with jax.set_mesh(mesh), sharding_lib.rules_context():
    restored = ckpt.restore_latest(abstract)
    if restored is not None:
      start, state, meta = restored
      counters.update({k: int(meta[k]) for k in counters})
      print(f"Resuming {workdir} from step {start}.", flush=True)
    elif init_from:
      src_dir, src_step = _parse_init_from(init_from)
      src = ckpt_lib.Checkpointer(src_dir / "checkpoints", 1, False)
      state, meta = src.restore(src_step, abstract)
      src.close()
      start = src_step
      counters.update({k: int(meta[k]) for k in counters})
      print(f"Initialised from {src_dir} step {src_step}.", flush=True)
    else:
      start = 0
      state = jax.jit(init_fn, out_shardings=shardings)()

    process_index, process_count = pipeline.process_shard(
        mesh, sharding_lib.BATCH_SPEC)
    data = pipeline.TrainStream(
        corpus, tok_lib.ByteTokenizer(config.tokenizer.n_sentinels),
        config.seq_len, config.batch_size, config.data.seed,
        max_tokens=config.data.max_tokens, objective_cfg=config.objective,
        process_index=process_index, process_count=process_count)
    rows = config.batch_size // process_count
    print(f"data: process {jax.process_index()} loads rows "
          f"[{process_index * rows}, {(process_index + 1) * rows}) of each "
          f"global batch of {config.batch_size}", flush=True)
    evaluator = evaluation.Evaluator(config, corpus, model, mesh)
    batch_shardings = {k: sharding_lib.batch_sharding(mesh)
                       for k in step_lib.BATCH_KEYS}
    hp_sharding = {k: sharding_lib.replicated(mesh) for k in hp}
    train_step = jax.jit(
        step_lib.make_train_step(model, config.schedule.name,
                                 config.train.microbatches,
                                 config.optimizer.decay_embeddings),
        in_shardings=(shardings, batch_shardings, hp_sharding),
        out_shardings=(shardings, None), donate_argnums=(0,))
    t_compile = time.time()
    batch = pipeline.to_global(data.local_batch(start), mesh,
                               sharding_lib.BATCH_SPEC)
    compiled = train_step.lower(state, batch, hp).compile()
    compile_seconds = time.time() - t_compile

    log = metrics_lib.MetricsLog(workdir, start)
    peak, peak_source = peak_lib.peak_flops(jax.devices(), config.model.dtype)
    if is_main:
      print(f"mfu is measured against {peak / 1e9:,.1f} GFLOP/s: {peak_source}",
            flush=True)
    summary = dict(status="finished", reason="")
    last_eval = {}
    if start == steps_total:  # resumed a run whose last step was saved
      last_eval = evaluator(state["params"])
    pbar = tqdm(total=steps_total, initial=start, disable=not is_main,
                desc=workdir.name, unit="step", mininterval=1.0)
    t_last, steps_since = time.time(), 0
    step, m = start, None
    try:
      with _Preemption() as preempt:
        while step < steps_total:
          if step > start:
            batch = pipeline.to_global(data.local_batch(step), mesh,
                                       sharding_lib.BATCH_SPEC)
          if step_sleep:  # tests only: widen the window for a real kill
            time.sleep(step_sleep)
          new_state, m = compiled(state, batch, hp)
          m = jax.device_get(m)
          if not math.isfinite(float(m["train_loss"])):
            last = max(ckpt.steps(), default=None)
            kept = f"step {last}" if last is not None else "none saved yet"
            summary = dict(status="failed", reason=(
                f"train_loss became {float(m['train_loss'])} at step "
                f"{step + 1}; last good checkpoint: {kept}"))
            print(f"ERROR: {summary['reason']}", flush=True)
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
            flops_per_sec = steps_since * per_step["flops"] / dt
            record = dict(
                step=step, tokens=counters["tokens"], flops=counters["flops"],
                loss_tokens=counters["loss_tokens"],
                train_loss=float(m["train_loss"]), lr=float(m["lr"]),
                grad_norm=float(m["grad_norm"]), tokens_per_sec=tps,
                mfu=flops_per_sec / peak, epoch=data.epochs_at(step))
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
          if step % config.checkpoint.every == 0 or is_last:
            ckpt.save(step, state, counters, force=True)
          if not is_last and preempt.agreed():
            ckpt.save(step, state, counters, force=True)
            ckpt.wait()
            summary = dict(status=TERMINATED, reason=(
                f"stopped by a signal: saved step {step}; run the same "
                "command to resume"))
            print(summary["reason"], flush=True)
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
      identity=identity, corpus_hash=corpus.corpus_hash,
      unigram_bpb=pipeline.unigram_entropy_bits_per_byte(corpus.val),
      wall_seconds=time.time() - t_start, compile_seconds=compile_seconds,
      peak_flops_per_sec=peak, peak_source=peak_source)
  summary.update(last_eval)
  if is_main and summary["status"] != TERMINATED:
    metrics_lib.write_json_atomic(workdir / "summary.json", summary)
  return summary


def _last_logged(workdir, key):
  values = [r[key] for r in metrics_lib.read_jsonl(workdir / "metrics.jsonl")
            if r.get(key) is not None]
  return values[-1] if values else None
