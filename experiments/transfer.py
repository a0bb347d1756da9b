"""Does pretraining help downstream? Fine-tuned versus from-scratch, equal steps.

One source run is pretrained (:func:`pretrain`); then, per seed, the same
fine-tuning config (``scaling.finetune``) runs once from the source's
checkpoint and once from a fresh init of the same model (``--init-from
none``), for the same number of fine-tuning steps, and their test-split
metrics are compared (:func:`compare`) as a mean with its standard error
over seeds (:func:`mean_se`). The seed (``train.seed``) draws the
fine-tuning data order, and the fresh init of the scratch runs.

Used by ``bench/finetune_transfer.py`` (figures and the README's numbers)
and by ``tests/test_finetune_transfer.py`` (the slow tier).
"""

from __future__ import annotations

import json
import math
import os
from typing import Sequence

from scaling import config as config_lib
from scaling import finetune as finetune_lib
from scaling import rundir
from scaling import train as train_lib


def source_config(*, seq_len: int = 64, steps: int = 300, d_model: int = 64,
                  n_layers: int = 2, batch_size: int = 16):
  """The small causal-LM pretraining run of the comparison (stdlib corpus)."""
  c = config_lib.default_config()
  for key, value in {
      "batch_size": batch_size, "seq_len": seq_len, "model.d_model": d_model,
      "model.n_layers": n_layers, "model.n_heads": 4, "model.n_kv_heads": 4,
      "model.d_ff": 4 * d_model, "train.steps": steps,
      "train.log_every": 50, "eval.every": steps, "eval.batches": 4,
      "eval.continuation": False, "checkpoint.every": steps,
      "checkpoint.keep": 1, "checkpoint.async_save": False}.items():
    config_lib.set_dotted(c, key, value)
  return c


def pretrain(workdir, config) -> str:
  """Pretrains (or resumes, or finds finished) the source run; its dir.

  Raises:
    RuntimeError: the run did not finish.
  """
  run_dir = os.path.join(os.fspath(workdir), "source")
  summary_path = os.path.join(run_dir, "summary.json")
  if not os.path.exists(summary_path):
    summary = train_lib.train(config, run_dir)
    if summary["status"] != "finished":
      raise RuntimeError(f"pretraining did not finish: {summary}")
  return run_dir


def compare(source_dir: str, step: int, task: str, workdir,
            seeds: Sequence[int] = (0, 1, 2),
            overrides: Sequence[tuple[str, str]] = ()) -> dict:
  """Fine-tunes from ``source_dir@step`` and from scratch, once per seed.

  Args:
    source_dir, step: the pretrained checkpoint.
    task: the task (``--task``).
    workdir: where the runs go (``<task>/{pretrained,scratch}-seed<s>``);
      finished runs are read back, not retrained.
    seeds: ``train.seed`` values.
    overrides: ``--config.*`` overrides of both arms (e.g. the steps).

  Returns:
    ``{"pretrained": [summary per seed], "scratch": [...]}`` (the runs'
    ``summary.json``; their ``metrics.jsonl`` next to them).

  Raises:
    RuntimeError: a run did not finish.
  """
  record = rundir.read_run_config(source_dir)["config"]
  out = {"pretrained": [], "scratch": []}
  for seed in seeds:
    for arm, init_from in (("pretrained", f"{source_dir}@{step}"),
                           ("scratch", None)):
      run_dir = os.path.join(os.fspath(workdir), task, f"{arm}-seed{seed}")
      path = os.path.join(run_dir, "summary.json")
      if os.path.exists(path):
        with open(path) as f:
          summary = json.load(f)
      else:
        config = finetune_lib.finetune_config(
            record, [*overrides, ("train.seed", str(seed))])
        summary = finetune_lib.finetune(config, run_dir, task, init_from)
      if summary["status"] != "finished":
        raise RuntimeError(f"{run_dir} did not finish: {summary}")
      summary["run_dir"] = run_dir
      out[arm].append(summary)
  return out


def mean_se(values: Sequence[float]) -> tuple[float, float]:
  """Mean and standard error of the mean (sample std / sqrt(n); 0 for n=1)."""
  values = [float(v) for v in values]
  n = len(values)
  if n == 0:
    raise ValueError("no values")
  mean = sum(values) / n
  if n == 1:
    return mean, 0.0
  var = sum((v - mean) ** 2 for v in values) / (n - 1)
  return mean, math.sqrt(var / n)
