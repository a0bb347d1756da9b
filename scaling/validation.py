"""Config validation: every check of a run config, before anything is built.

:func:`validate` runs before anything is compiled or written (DESIGN.md §2.1):
the trainer, ``scaling check``, the sweep registry and the launchers call it,
and nothing downstream re-checks a config value. Each problem raises
:class:`scaling.config.ConfigError` naming the field and the fix; the command
line prints it as ``error: config.<field>: ...`` and exits with status 2.
"""

from __future__ import annotations

import math
import os

from scaling import accounting
from scaling import attention
from scaling import objectives
from scaling import parametrization
from scaling import schedules
from scaling import sharding
from scaling.config import ConfigError
from scaling.config import check_keys
from scaling.config import d_head
from scaling.config import default_config
from scaling.config import get_dotted
from scaling.data import pipeline
from scaling.data import sources
from scaling.tasks import registry as tasks_registry

_CHOICES = {
    "model.mlp": ("gelu", "relu", "swiglu"),
    "model.norm": ("rmsnorm", "layernorm"),
    "model.positions": ("rope", "learned", "sinusoidal"),
    "model.dtype": ("auto", "float32", "bfloat16"),
    "model.param_dtype": ("float32", "bfloat16"),
    "model.attention": attention.IMPLEMENTATIONS,
    "model.remat_policy": ("full", "dots_saveable"),
    "model.parametrization": parametrization.PARAMETRIZATIONS,
    "model.zero_init": parametrization.ZERO_INIT,
    "optimizer.name": ("adamw",),
    "schedule.name": schedules.SCHEDULES,
    "finetune.attention": ("prefix", "causal"),
    "schedule.decay_shape": schedules.DECAY_SHAPES,
}
_POSITIVE = ("batch_size", "seq_len", "model.d_model", "model.n_layers",
             "model.n_heads", "model.n_kv_heads", "model.d_ff",
             "train.microbatches", "checkpoint.every", "checkpoint.keep",
             "train.log_every", "eval.batch_size", "eval.every")


def _check_choices_and_signs(config) -> None:
  for field, choices in _CHOICES.items():
    if get_dotted(config, field) not in choices:
      raise ConfigError(field, f"'{get_dotted(config, field)}' is not one of "
                        f"{', '.join(choices)}.")
  for field in _POSITIVE:
    if get_dotted(config, field) <= 0:
      raise ConfigError(field, f"must be positive, got "
                        f"{get_dotted(config, field)}.")


def _check_optimizer(o) -> None:
  if not 0 < o.peak_lr < math.inf:
    raise ConfigError("optimizer.peak_lr", f"must be a positive finite "
                      f"number, got {o.peak_lr}.")
  for field in ("b1", "b2"):
    if not 0 <= o[field] < 1:
      raise ConfigError(f"optimizer.{field}", f"must lie in [0, 1), got "
                        f"{o[field]}.")
  if o.weight_decay < 0 or o.eps <= 0 or o.z_loss < 0:
    raise ConfigError("optimizer", "weight_decay and z_loss must be >= 0 and "
                      "eps > 0.")


def _check_model(m) -> None:
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
  _check_parametrization(m)


def _check_parametrization(m) -> None:
  if m.zero_init != "none" and m.tie_embeddings:
    raise ConfigError(
        "model.zero_init", f"'{m.zero_init}' zeroes the readout, which "
        "tie_embeddings=True shares with the input embedding; untie the "
        "embeddings or set model.zero_init=none.")
  if m.parametrization == "sp":
    return
  if m.base_n_layers == 0 or m.base_n_layers < -1 or m.base_d_model == 0 \
      or m.base_d_model < -1:
    raise ConfigError(
        "model.base_d_model", "base_d_model and base_n_layers must be "
        "positive, or -1 for none.")
  parametrization.base_model_config(m)  # a whole base shape, or the fix


def _check_length_and_schedule(config) -> None:
  t, s = config.train, config.schedule
  if (t.steps > 0) == (t.tokens > 0):
    raise ConfigError(
        "train.steps", "give exactly one training length: train.steps > 0 "
        "or train.tokens > 0 (set the other to -1).")
  if config.batch_size % t.microbatches:
    raise ConfigError(
        "train.microbatches", f"batch_size={config.batch_size} is not "
        f"divisible by microbatches={t.microbatches}.")
  schedules.resolve_warmup(s, accounting.train_steps(config))
  if not 0 <= s.min_lr_ratio <= 1:
    raise ConfigError("schedule.min_lr_ratio", "must lie in [0, 1].")
  if s.name == "wsd" and not 0 < s.decay_fraction <= 1:
    raise ConfigError("schedule.decay_fraction", "must lie in (0, 1].")
  if s.name != "wsd" and s.decay_shape != "linear":
    raise ConfigError(
        "schedule.decay_shape", f"'{s.decay_shape}' is used only by the wsd "
        f"schedule, not by '{s.name}'; set schedule.name=wsd or leave "
        "decay_shape at linear.")
  _check_checkpoint_steps(config)


def _check_checkpoint_steps(config) -> None:
  steps = config.checkpoint.at_steps
  total = accounting.train_steps(config)
  if not isinstance(steps, (tuple, list)) or not all(
      isinstance(k, int) and not isinstance(k, bool) for k in steps):
    raise ConfigError("checkpoint.at_steps", f"must be a tuple of step "
                      f"numbers such as (200, 400), got {steps!r}.")
  bad = [k for k in steps if not 1 <= k <= total]
  if bad:
    raise ConfigError("checkpoint.at_steps", f"steps {bad} are outside "
                      f"[1, {total}] (train.steps); give steps the run reaches.")


def _check_data_and_eval(config) -> None:
  d, e = config.data, config.eval
  sources.check_data_config(d)
  if d.seed < 0:
    raise ConfigError("data.seed", f"is {d.seed}; use a seed >= 0.")
  if d.max_tokens == 0 or d.max_tokens < -1:
    raise ConfigError(
        "data.max_tokens", f"is {d.max_tokens}; use -1 (whole corpus) or a "
        "positive number of unique training tokens.")
  if d.row_order not in pipeline.ROW_ORDERS:
    raise ConfigError("data.row_order", f"is {d.row_order!r}; use one of "
                      f"{', '.join(pipeline.ROW_ORDERS)}.")
  if e.batches == 0 or e.batches < -1:
    raise ConfigError("eval.batches", f"is {e.batches}; use a positive "
                      "number of batches, or -1 for the whole split.")
  if e.task_examples == 0 or e.task_examples < -1:
    raise ConfigError("eval.task_examples", f"is {e.task_examples}; use a "
                      "positive number of validation examples, or -1 for all.")
  _check_eval_tasks(config)


def _check_eval_tasks(config) -> None:
  """``eval.tasks``: known names or existing .jsonl files, scored by the
  likelihood of the answer, which a masked LM does not give."""
  names = tasks_registry.eval_task_names(config.eval.get("tasks", ""))
  for name in names:
    if name not in tasks_registry.BUILTIN_TASKS and not (
        name.endswith(".jsonl") and os.path.isfile(name)):
      raise ConfigError("eval.tasks", (
          f"{name!r} is neither a built-in task "
          f"({', '.join(tasks_registry.BUILTIN_TASKS)}) nor an existing "
          ".jsonl file."))
  if names and objectives.zero_shot_attention(config.objective.name) is None:
    raise ConfigError("eval.tasks", (
        f"is '{config.eval.tasks}', but a {config.objective.name} model gives "
        "no likelihood of an answer to rank: set eval.tasks='' (fine-tune it "
        "with `scaling finetune` instead)."))


_SET_BY_FINETUNE = ("task_hash", "source_identity", "source_step")


def _check_finetune(f) -> None:
  """The fine-tuning section (``scaling.finetune``; empty for pretraining)."""
  if f.max_new_tokens == 0 or f.max_new_tokens < -1:
    raise ConfigError("finetune.max_new_tokens", f"is {f.max_new_tokens}; "
                      "use a positive token count, or -1 for the task's "
                      "target budget + 1 (EOS).")
  if f.source_step < -1:
    raise ConfigError("finetune.source_step", f"is {f.source_step}; it is "
                      "set by scaling finetune --init-from RUN_DIR@STEP.")
  if bool(f.source_identity) != (f.source_step >= 0):
    raise ConfigError("finetune.source_identity", (
        "and finetune.source_step are set together by scaling finetune "
        "--init-from RUN_DIR@STEP (both empty from scratch); do not set them "
        "by hand."))
  if not f.task:
    for key in _SET_BY_FINETUNE:
      if f[key] != default_config().finetune[key]:
        raise ConfigError(f"finetune.{key}", (
            "is set without finetune.task; it is set by scaling finetune "
            "(from --task and --init-from), not by hand."))


class MeshMismatch(ConfigError):
  """The config does not fit the devices at hand (their count or the mesh).

  A failure of the machine, not of the run: the same config may fit
  another machine, so a sweep retries such a run on its next call.
  """


def _check_mesh(config, n_devices: int) -> None:
  m, t = config.model, config.train
  try:
    data, fsdp, tensor = sharding.mesh_shape(config.mesh, n_devices)
  except ConfigError as e:
    raise MeshMismatch(e.field, str(e).split(": ", 1)[1]) from e
  micro = config.batch_size // t.microbatches
  if micro % (data * fsdp):
    raise MeshMismatch(
        "batch_size", f"the per-microbatch batch {micro} (batch_size="
        f"{config.batch_size} / microbatches={t.microbatches}) is not "
        f"divisible by data*fsdp = {data * fsdp}; change batch_size, "
        "train.microbatches or the mesh.")
  if config.eval.batch_size % (data * fsdp):
    raise MeshMismatch(
        "eval.batch_size", f"{config.eval.batch_size} is not divisible by "
        f"data*fsdp = {data * fsdp}; eval batches are sharded like training "
        "batches: change eval.batch_size or the mesh.")
  if m.d_model % fsdp:
    raise MeshMismatch(
        "model.d_model", f"{m.d_model} is not divisible by the fsdp axis "
        f"({fsdp}), which shards every weight's d_model dimension; change "
        "mesh.fsdp or model.d_model.")
  for field in ("n_heads", "n_kv_heads", "d_ff"):
    if m[field] % tensor:
      raise MeshMismatch(
          f"model.{field}", f"{m[field]} is not divisible by the tensor "
          f"axis ({tensor}); change mesh.tensor or model.{field}.")


def validate(config, n_devices: int | None = None) -> None:
  """Checks the whole config before anything is compiled or written.

  Args:
    config: the run config (``scaling.config.default_config()`` schema).
    n_devices: global device count; the mesh checks are skipped when None
      (a sweep's runs are checked before the devices are known).

  Raises:
    ConfigError: the first problem found, naming the field and the fix;
      :class:`MeshMismatch` when only the devices at hand are the problem.
  """
  check_keys(config)
  _check_choices_and_signs(config)
  _check_optimizer(config.optimizer)
  _check_model(config.model)
  _check_length_and_schedule(config)
  _check_data_and_eval(config)
  _check_finetune(config.finetune)
  attention.validate_config(config)
  if config.objective.name != "causal_lm":
    objectives.validate(config)
  if n_devices is not None:
    _check_mesh(config, n_devices)
