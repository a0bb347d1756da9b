"""Run configuration: the schema (built-in default), command-line overrides and validation.

A run is described by one ``ml_collections.ConfigDict`` with the sections
``model, data, tokenizer, objective, optimizer, schedule, train, mesh, checkpoint,
eval`` plus the global ``batch_size`` (sequences per optimizer step, across all
devices) and ``seq_len`` (tokens per sequence).

Validation happens before anything is compiled; every problem raises
:class:`ConfigError` naming the field and the fix (the CLI exits with status 2).
"""

from __future__ import annotations

import hashlib
import json

import ml_collections

# Fields that change the result of a run, hashed into its identity (DESIGN.md §3).
# Everything else (mesh, checkpoint cadence, logging, eval cadence) is left out
# so a run moved to another machine or mesh keeps its identity.
IDENTITY_SECTIONS = ("model", "data", "tokenizer", "objective", "optimizer",
                     "schedule")
IDENTITY_TRAIN_KEYS = ("steps", "tokens", "seed")
IDENTITY_GLOBALS = ("batch_size", "seq_len")


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
      dtype="float32",  # compute dtype: float32 | bfloat16
      param_dtype="float32",
      attention="auto",  # auto | reference | splash | dot_product (scaling.attention)
      remat=False,  # rematerialise each block in the backward pass
      remat_policy="full",  # with remat: full | dots_saveable (model.remat_policy)
      scan_layers=True,  # lax.scan over blocks: compile time flat in depth
      init_std=0.02,
  ))
  c.tokenizer = ml_collections.ConfigDict(dict(n_sentinels=128))
  c.data = ml_collections.ConfigDict(dict(
      source="stdlib",  # stdlib | text_files
      path="",  # text_files: a glob of .txt or .jsonl files
      seed=0,
      val_fraction=0.05,
      max_tokens=-1,  # cap on unique training tokens; -1: whole corpus
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
  ))
  c.train = ml_collections.ConfigDict(dict(
      steps=600,  # -1: derived from tokens
      tokens=-1,  # training length in tokens (batch_size * seq_len per step)
      seed=0,
      microbatches=1,  # gradient accumulation
      log_every=10,
      max_nan_steps=0,
  ))
  c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, tensor=1))
  c.checkpoint = ml_collections.ConfigDict(dict(
      every=100, keep=3, async_save=True))
  c.eval = ml_collections.ConfigDict(dict(
      every=100, batches=16, batch_size=16, continuation=True))
  return c


# ----------------------------------------------------------------------------
# Overrides and loading
# ----------------------------------------------------------------------------


def _close_matches(name, options):
  import difflib
  return difflib.get_close_matches(name, list(options), n=3)


def _unknown_key(path: str, key: str, options) -> ConfigError:
  hint = _close_matches(key, options)
  did = f" Did you mean {', '.join(hint)}?" if hint else ""
  return ConfigError(
      path, f"unknown key '{key}'.{did} Known keys here: "
      f"{', '.join(sorted(options))}.")


def _parse_value(field: str, text: str, current):
  """Parses ``text`` into the type of ``current`` (the schema's value)."""
  import ast
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


def apply_override(config: ml_collections.ConfigDict, dotted: str,
                   text: str) -> None:
  """Sets ``config.<dotted> = text`` parsed to the schema's type.

  Raises:
    ConfigError: unknown key (with close matches) or unparsable value.
  """
  parts = dotted.split(".")
  node = config
  for i, part in enumerate(parts):
    path = ".".join(parts[:i]) or "<root>"
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      options = node.keys() if isinstance(node, ml_collections.ConfigDict) else []
      raise _unknown_key(path if i else dotted, part, options)
    if i == len(parts) - 1:
      with node.unlocked():
        node[part] = _parse_value(dotted, text, node[part])
    else:
      node = node[part]


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


def load_config_file(spec: str) -> ml_collections.ConfigDict:
  """Loads ``FILE[:ARG]``: a Python file defining ``get_config(arg=None)``.

  Raises:
    ConfigError: missing file or no ``get_config``.
  """
  import importlib.util
  import os
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
  return model_cfg.d_head if model_cfg.d_head > 0 else model_cfg.d_model // model_cfg.n_heads


def vocab_size(config) -> int:
  from scaling.tokenizer import ByteTokenizer
  return ByteTokenizer(config.tokenizer.n_sentinels).vocab_size


def mesh_shape(mesh_cfg, n_devices: int) -> tuple[int, int, int]:
  """Resolves (data, fsdp, tensor) with at most one -1 filling the rest.

  Raises:
    ConfigError: more than one -1, non-positive sizes, or a product that is
      not the device count.
  """
  sizes = {k: int(mesh_cfg[k]) for k in ("data", "fsdp", "tensor")}
  free = [k for k, v in sizes.items() if v == -1]
  if len(free) > 1:
    raise ConfigError(f"mesh.{free[1]}", "at most one mesh axis may be -1.")
  for k, v in sizes.items():
    if v == 0 or v < -1:
      raise ConfigError(f"mesh.{k}", f"must be positive or -1, got {v}.")
  fixed = 1
  for k, v in sizes.items():
    if v != -1:
      fixed *= v
  if free:
    if n_devices % fixed:
      raise ConfigError(
          f"mesh.{free[0]}", f"cannot fill: {n_devices} devices are not "
          f"divisible by the other axes' product {fixed}.")
    sizes[free[0]] = n_devices // fixed
  product = sizes["data"] * sizes["fsdp"] * sizes["tensor"]
  if product != n_devices:
    raise ConfigError(
        "mesh", f"data*fsdp*tensor = {product} but there are {n_devices} "
        "devices; set one axis to -1 or make the product match.")
  return sizes["data"], sizes["fsdp"], sizes["tensor"]


_CHOICES = {
    "model.mlp": ("gelu", "relu", "swiglu"),
    "model.norm": ("rmsnorm", "layernorm"),
    "model.positions": ("rope", "learned", "sinusoidal"),
    "model.dtype": ("float32", "bfloat16"),
    "model.param_dtype": ("float32", "bfloat16"),
    "model.attention": ("auto", "reference", "splash", "dot_product"),
    "model.remat_policy": ("full", "dots_saveable"),
    "data.source": ("stdlib", "text_files"),
    "optimizer.name": ("adamw",),
    "schedule.name": ("cosine", "linear", "constant", "wsd"),
}


def _get(config, dotted):
  node = config
  for part in dotted.split("."):
    node = node[part]
  return node


def validate(config: ml_collections.ConfigDict, n_devices: int | None = None) -> None:
  """Checks the whole config before anything is compiled.

  Args:
    config: the run config.
    n_devices: global device count; mesh checks are skipped when None.

  Raises:
    ConfigError: the first problem found, naming the field and the fix.
  """
  check_keys(config)
  for field, choices in _CHOICES.items():
    if _get(config, field) not in choices:
      raise ConfigError(field, f"'{_get(config, field)}' is not one of "
                        f"{', '.join(choices)}.")
  for field in ("batch_size", "seq_len", "model.d_model", "model.n_layers",
                "model.n_heads", "model.n_kv_heads", "model.d_ff",
                "train.microbatches", "checkpoint.every", "checkpoint.keep",
                "train.log_every", "eval.batch_size", "eval.every"):
    if _get(config, field) <= 0:
      raise ConfigError(field, f"must be positive, got {_get(config, field)}.")
  o = config.optimizer
  if not 0 < o.peak_lr < float("inf"):
    raise ConfigError("optimizer.peak_lr", f"must be a positive finite "
                      f"number, got {o.peak_lr}.")
  for field in ("b1", "b2"):
    if not 0 <= o[field] < 1:
      raise ConfigError(f"optimizer.{field}", f"must lie in [0, 1), got "
                        f"{o[field]}.")
  if o.weight_decay < 0 or o.eps <= 0 or o.z_loss < 0:
    raise ConfigError("optimizer", "weight_decay and z_loss must be >= 0 and "
                      "eps > 0.")
  m = config.model
  if m.d_head <= 0 and m.d_model % m.n_heads:
    raise ConfigError(
        "model.n_heads", f"d_model={m.d_model} is not divisible by "
        f"n_heads={m.n_heads}; pick n_heads dividing d_model or set model.d_head.")
  if m.n_heads % m.n_kv_heads:
    raise ConfigError(
        "model.n_kv_heads", f"n_heads={m.n_heads} is not divisible by "
        f"n_kv_heads={m.n_kv_heads}; pick a divisor of n_heads.")
  if m.positions == "rope" and d_head(m) % 2:
    raise ConfigError("model.d_head", f"rope needs an even d_head, got {d_head(m)}.")
  t = config.train
  if (t.steps > 0) == (t.tokens > 0):
    raise ConfigError(
        "train.steps", "give exactly one training length: train.steps > 0 "
        "or train.tokens > 0 (set the other to -1).")
  steps = t.steps if t.steps > 0 else -(-t.tokens // (config.batch_size * config.seq_len))
  if config.batch_size % t.microbatches:
    raise ConfigError(
        "train.microbatches", f"batch_size={config.batch_size} is not "
        f"divisible by microbatches={t.microbatches}.")
  s = config.schedule
  warmup = s.warmup_steps if s.warmup_steps >= 0 else int(round(s.warmup_fraction * steps))
  if warmup > steps:
    raise ConfigError(
        "schedule.warmup_steps", f"warmup ({warmup} steps) is longer than "
        f"training ({steps} steps); shorten the warmup or train longer.")
  if not 0 <= s.min_lr_ratio <= 1:
    raise ConfigError("schedule.min_lr_ratio", "must lie in [0, 1].")
  if s.name == "wsd" and not 0 < s.decay_fraction <= 1:
    raise ConfigError("schedule.decay_fraction", "must lie in (0, 1].")
  from scaling import attention  # pylint: disable=import-outside-toplevel
  attention.validate_config(config)
  if config.data.source == "text_files" and not config.data.path:
    raise ConfigError("data.path", "text_files needs a glob of .txt or .jsonl "
                      "files, e.g. --config.data.path='corpus/*.txt'.")
  if config.objective.name != "causal_lm":
    from scaling import objectives  # pylint: disable=import-outside-toplevel
    objectives.validate(config)
  if n_devices is not None:
    data, fsdp, tensor = mesh_shape(config.mesh, n_devices)
    micro = config.batch_size // t.microbatches
    if micro % (data * fsdp):
      raise ConfigError(
          "batch_size", f"the per-microbatch batch {micro} (batch_size="
          f"{config.batch_size} / microbatches={t.microbatches}) is not "
          f"divisible by data*fsdp = {data * fsdp}; change batch_size, "
          "train.microbatches or the mesh.")
    if m.d_model % fsdp:
      raise ConfigError(
          "model.d_model", f"{m.d_model} is not divisible by the fsdp axis "
          f"({fsdp}), which shards every weight's d_model dimension; change "
          "mesh.fsdp or model.d_model.")
    for field in ("n_heads", "n_kv_heads", "d_ff"):
      if m[field] % tensor:
        raise ConfigError(
            f"model.{field}", f"{m[field]} is not divisible by the tensor "
            f"axis ({tensor}); change mesh.tensor or model.{field}.")


def train_steps(config) -> int:
  """Optimizer updates: ``train.steps`` or ``ceil(train.tokens / (B * L))``."""
  t = config.train
  if t.steps > 0:
    return int(t.steps)
  return -(-int(t.tokens) // (config.batch_size * config.seq_len))


def identity_hash(config: ml_collections.ConfigDict, corpus_hash: str = "") -> str:
  """12-hex-digit hash of what changes a run's result (DESIGN.md §3).

  Covers model, tokenizer, data (plus the corpus content hash when given),
  objective, optimizer, schedule, training length and seeds, batch_size and
  seq_len; not the mesh, microbatching, checkpoint cadence, logging, eval
  cadence or paths.
  """
  d = config.to_dict()
  ident = {k: d[k] for k in IDENTITY_SECTIONS}
  ident["train"] = {k: d["train"][k] for k in IDENTITY_TRAIN_KEYS}
  ident["train"]["steps"] = train_steps(config)
  ident["train"].pop("tokens")
  for k in IDENTITY_GLOBALS:
    ident[k] = d[k]
  ident["corpus_hash"] = corpus_hash
  blob = json.dumps(ident, sort_keys=True, default=list)
  return hashlib.sha256(blob.encode()).hexdigest()[:12]
