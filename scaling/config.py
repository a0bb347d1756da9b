"""Run configuration: the schema (built-in default), command-line overrides and validation.

A run is described by one ``ml_collections.ConfigDict`` with the sections
``model, data, tokenizer, objective, optimizer, schedule, train, mesh, checkpoint,
eval, finetune`` plus the global ``batch_size`` (sequences per optimizer step, across all
devices) and ``seq_len`` (tokens per sequence).

This module holds the schema and everything that reads or writes a config's
keys: dotted overrides (:func:`set_dotted`, the one walker every caller uses),
config files, and the sizes derived from the model section. Validation is
:mod:`scaling.validation` (before anything is compiled; every problem raises
:class:`ConfigError` naming the field and the fix, and the CLI exits 2); the
run identity is :mod:`scaling.identity`.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import os
from typing import Any

import ml_collections

from scaling.tokenizer import ByteTokenizer


class ConfigError(ValueError):
  """A config value is invalid; the message names the field and the fix.

  ``field`` is a dotted config key (shown as ``config.<field>``) or a
  command-line flag starting with ``--`` (shown as is).
  """

  def __init__(self, field: str, message: str):
    self.field = field
    label = field if field.startswith("--") else f"config.{field}"
    super().__init__(f"{label}: {message}")


def default_config() -> ml_collections.ConfigDict:
  """The built-in default run: a small byte-level LM on the stdlib corpus.

  0.54M parameters, 600 steps of 64 x 128 tokens (4.9M tokens): about 8
  minutes on 2 CPU cores, reaching an eval_bpb near 2.5 against the
  validation set's unigram entropy of about 4.5 bits per byte.
  """
  c = ml_collections.ConfigDict()
  c.batch_size = 64  # global sequences per optimizer step
  c.seq_len = 128  # tokens per sequence

  c.model = ml_collections.ConfigDict(dict(
      d_model=96,
      n_layers=4,
      n_heads=4,
      n_kv_heads=4,  # < n_heads: grouped-query attention
      d_head=-1,  # -1: d_model // n_heads
      d_ff=384,
      mlp="gelu",  # gelu | relu | swiglu
      norm="rmsnorm",  # rmsnorm | layernorm
      positions="rope",  # rope | learned | sinusoidal
      rope_theta=10000.0,
      tie_embeddings=False,
      dtype="auto",  # compute dtype: auto (float32 on CPU, bfloat16 on TPU/GPU) | float32 | bfloat16
      param_dtype="float32",
      attention="auto",  # auto | reference | splash | dot_product (scaling.attention)
      remat=False,  # rematerialise each block in the backward pass
      remat_policy="full",  # with remat: full | dots_saveable (model.remat_policy)
      scan_layers=True,  # lax.scan over blocks: compile time flat in depth
      init_std=0.02,
      # sp | mup | completep (scaling.parametrization): init scales, forward
      # and optimizer multipliers relative to the base shape below.
      parametrization="sp",
      base_d_model=-1,  # mup, completep: the base model's d_model; -1: none
      base_n_layers=-1,  # completep: the base model's n_layers; -1: none
      zero_init="none",  # none | readout | readout_query (microsoft/mup)
  ))
  c.tokenizer = ml_collections.ConfigDict(dict(n_sentinels=128))
  c.data = ml_collections.ConfigDict(dict(
      source="stdlib",  # stdlib | text_files
      path="",  # text_files: a glob of .txt or .jsonl files
      seed=0,
      val_fraction=0.05,
      max_tokens=-1,  # cap on unique training tokens; -1: whole corpus
      row_order="shuffled",  # shuffled | stream (scaling.data.pipeline)
  ))
  c.objective = ml_collections.ConfigDict(dict(
      name="causal_lm",
      seed=0,
      noise_density=0.15,
      mean_span_length=3.0,
      mlm_rate=0.15,
      fim_rate=0.5,
      ul2_rates=(1.0, 1.0, 1.0),  # relative rates of the R, X, S paradigms
  ))
  c.optimizer = ml_collections.ConfigDict(dict(
      name="adamw",
      peak_lr=5e-3,
      b1=0.9,
      b2=0.95,
      eps=1e-8,
      weight_decay=0.1,
      decay_embeddings=False,  # weight decay on embeddings too
      grad_clip=1.0,  # global-norm clipping; <= 0 disables
      z_loss=0.0,  # coefficient of log(Z)^2 (PaLM)
  ))
  c.schedule = ml_collections.ConfigDict(dict(
      name="cosine",  # cosine | linear | constant | wsd
      warmup_steps=-1,  # -1: warmup_fraction * steps
      warmup_fraction=0.05,
      min_lr_ratio=0.1,
      decay_fraction=0.2,  # wsd: the last decay_fraction * steps decay
      decay_shape="linear",  # wsd: linear | 1-sqrt | cosine
  ))
  c.train = ml_collections.ConfigDict(dict(
      steps=600,  # -1: derived from tokens
      tokens=-1,  # training length in tokens (batch_size * seq_len per step)
      seed=0,
      microbatches=1,  # gradient accumulation
      log_every=10,
  ))
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  c.checkpoint = ml_collections.ConfigDict(dict(
      every=100, keep=3, async_save=True,
      at_steps=(),  # also saved, and kept beyond `keep` (branch points)
  ))
  c.eval = ml_collections.ConfigDict(dict(
      every=100, batches=16, batch_size=16, continuation=True,
      # fine-tuning: validation examples decoded per eval (tagging and
      # generation tasks; classification scores the whole split); -1: all
      task_examples=64,
      # pretraining: zero-shot task scores at every eval (scaling.task_eval.
      # InLoopTasks), comma-separated task names or .jsonl paths; "" none
      tasks="",
  ))
  # Fine-tuning on a downstream task (scaling finetune; scaling.finetune).
  # Empty for pretraining runs. task_hash, source_identity and source_step
  # are set by the command from --task and --init-from.
  c.finetune = ml_collections.ConfigDict(dict(
      task="",  # the task's name (a built-in task, or a JSONL file's stem)
      attention="prefix",  # prefix (bidirectional over the input) | causal
      max_new_tokens=-1,  # decoded tokens per example; -1: target budget + 1
      task_hash="",  # sha256 of the task's examples (Task.content_hash)
      source_identity="",  # identity of the --init-from run ("" from scratch)
      source_step=-1,  # its checkpoint step (-1 from scratch)
  ))
  return c


# ----------------------------------------------------------------------------
# Overrides and loading
# ----------------------------------------------------------------------------


def _unknown_key(path: str, key: str, options) -> ConfigError:
  hint = difflib.get_close_matches(key, list(options), n=3)
  did = f" Did you mean {', '.join(hint)}?" if hint else ""
  return ConfigError(
      path, f"unknown key '{key}'.{did} Known keys here: "
      f"{', '.join(sorted(options))}.")


def _parse_value(field: str, text: str, current):
  """Parses ``text`` into the type of ``current`` (the schema's value)."""
  if isinstance(current, bool):
    low = text.lower()
    if low in ("true", "1", "yes"):
      return True
    if low in ("false", "0", "no"):
      return False
    raise ConfigError(field, f"expected true or false, got '{text}'.")
  if isinstance(current, int):
    try:
      value = float(text) if ("e" in text.lower() or "." in text) else int(text)
    except ValueError:
      raise ConfigError(field, f"expected an integer, got '{text}'.") from None
    if float(value) != int(value):
      raise ConfigError(field, f"expected an integer, got '{text}'.")
    return int(value)
  if isinstance(current, float):
    try:
      return float(text)
    except ValueError:
      raise ConfigError(field, f"expected a number, got '{text}'.") from None
  if isinstance(current, (tuple, list)):
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      raise ConfigError(
          field, f"expected a tuple such as (1, 2), got '{text}'.") from None
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)
  return text


def _walk(config: ml_collections.ConfigDict, dotted: str):
  """(section, last key) of ``dotted`` in ``config``, checked to exist.

  Raises:
    ConfigError: an unknown key, with close matches and the keys known there.
  """
  parts = dotted.split(".")
  node = config
  for i, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      options = node.keys() if isinstance(node, ml_collections.ConfigDict) else []
      raise _unknown_key(dotted, part, options)
    if i < len(parts) - 1:
      node = node[part]
  return node, parts[-1]


def get_dotted(config: ml_collections.ConfigDict, dotted: str) -> Any:
  """``config.<dotted>``; ConfigError (with close matches) if unknown."""
  node, key = _walk(config, dotted)
  return node[key]


def set_dotted(config: ml_collections.ConfigDict, dotted: str,
               value: Any) -> None:
  """Sets ``config.<dotted> = value`` (a typed value), in place.

  The one walker of dotted keys: command-line overrides, sweep generators,
  tests and benchmarks all set fields through it.

  Raises:
    ConfigError: an unknown key (with close matches).
  """
  node, key = _walk(config, dotted)
  with node.unlocked():
    node[key] = value


def with_overrides(base: ml_collections.ConfigDict,
                   overrides: dict[str, Any]) -> ml_collections.ConfigDict:
  """A deep copy of ``base`` with typed ``{"section.key": value}`` set.

  Raises:
    ConfigError: an unknown key.
  """
  config = ml_collections.ConfigDict(base.to_dict())
  for dotted, value in overrides.items():
    set_dotted(config, dotted, value)
  return config


def apply_override(config: ml_collections.ConfigDict, dotted: str,
                   text: str) -> None:
  """Sets ``config.<dotted> = text`` parsed to the schema's type.

  Raises:
    ConfigError: unknown key (with close matches) or unparsable value.
  """
  set_dotted(config, dotted, _parse_value(dotted, text,
                                          get_dotted(config, dotted)))


def check_keys(config: ml_collections.ConfigDict,
               schema: ml_collections.ConfigDict | None = None,
               prefix: str = "") -> None:
  """Rejects keys that the default schema does not have.

  Raises:
    ConfigError: naming the unknown field and the known keys of its section.
  """
  schema = default_config() if schema is None else schema
  for key in config.keys():
    path = f"{prefix}{key}"
    if key not in schema:
      raise _unknown_key(prefix.rstrip(".") or path, key, schema.keys())
    if isinstance(schema[key], ml_collections.ConfigDict):
      if not isinstance(config[key], ml_collections.ConfigDict):
        raise ConfigError(path, "must be a section (ConfigDict).")
      check_keys(config[key], schema[key], f"{path}.")


def from_dict(recorded: dict, label: str = "config") -> ml_collections.ConfigDict:
  """The default schema with a recorded config's values (e.g. a run's
  ``config.json["config"]``); fields it lacks (added since) keep their
  defaults.

  Raises:
    ConfigError: a key the schema does not know, naming ``label``.
  """
  config = default_config()

  def walk(d, prefix):
    for key, value in d.items():
      dotted = f"{prefix}{key}"
      if isinstance(value, dict):
        walk(value, f"{dotted}.")
        continue
      try:
        set_dotted(config, dotted, tuple(value) if isinstance(value, list)
                   else value)
      except ConfigError as e:
        raise ConfigError(dotted, f"in {label}: {e}; it was written by "
                          "another version of this code.") from e

  walk(recorded, "")
  return config


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """Loads ``FILE[:ARG]``: a Python file defining ``get_config(arg=None)``.

  Raises:
    ConfigError: missing file or no ``get_config``.
  """
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise ConfigError("--config", f"file '{path}' does not exist.")
  module_spec = importlib.util.spec_from_file_location("_user_config", path)
  module = importlib.util.module_from_spec(module_spec)
  try:
    module_spec.loader.exec_module(module)
  except Exception as e:  # pylint: disable=broad-except
    raise ConfigError("--config", f"'{path}' failed to load: "
                      f"{type(e).__name__}: {e}") from e
  if not hasattr(module, "get_config"):
    raise ConfigError("--config", f"'{path}' must define get_config().")
  try:
    config = module.get_config(arg) if arg else module.get_config()
  except TypeError as e:
    raise ConfigError("--config", f"get_config({arg!r}) in '{path}' failed: "
                      f"{e}; use FILE:ARG only if get_config takes an "
                      "argument.") from e
  if isinstance(config, dict):
    config = ml_collections.ConfigDict(config)
  if not isinstance(config, ml_collections.ConfigDict):
    raise ConfigError("--config", f"get_config() in '{path}' must return an "
                      f"ml_collections.ConfigDict, got {type(config).__name__}.")
  check_keys(config)
  return config


# ----------------------------------------------------------------------------
# Derived values
# ----------------------------------------------------------------------------


def d_head(model_cfg) -> int:
  """Per-head width: ``model.d_head``, or ``d_model // n_heads`` when -1."""
  return model_cfg.d_head if model_cfg.d_head > 0 else model_cfg.d_model // model_cfg.n_heads


def compute_dtype(dtype: str, platform: str) -> str:
  """``model.dtype`` resolved for ``platform`` ("cpu", "tpu", "gpu").

  ``auto`` is float32 on CPU (what every run computed before the choice
  existed, and XLA:CPU's fast path) and bfloat16 on TPU and GPU (the native
  input dtype of their matrix units; parameters and the optimizer state stay
  in ``model.param_dtype``). ``float32`` and ``bfloat16`` are returned as
  they are.
  """
  if dtype != "auto":
    return dtype
  return "bfloat16" if platform in ("tpu", "gpu") else "float32"


def vocab_size(config) -> int:
  """The padded vocabulary of the run's byte tokenizer (DESIGN.md §4)."""
  return ByteTokenizer(config.tokenizer.n_sentinels).vocab_size
