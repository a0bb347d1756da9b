"""A run's identity: the 12-hex-digit hash of what changes its result.

The identity covers (DESIGN.md §3) the sections ``model``, ``tokenizer``,
``data`` (plus the corpus content hash), ``objective``, ``optimizer`` and
``schedule``, the training length (``train.steps``, resolved from
``train.tokens``) and ``train.seed``, ``batch_size`` and ``seq_len``; not the
mesh, microbatching, checkpoint cadence, logging, eval cadence or paths, so a
run moved to another mesh keeps its identity.

Stable under growth (DESIGN.md §8): the fields of the first schema
(:data:`V1_FIELDS`) are always hashed, as they were when identities were
first recorded, so those identities never change. A field added since joins
the hash only when its value differs from :data:`INTRODUCED`, the value that
means what every run did before the field existed; a new field at that value
renames no run. Values a platform decides (``auto``) are resolved first
(:func:`resolved`), so the hash records what ran.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import jax
import ml_collections

from scaling import accounting
from scaling import attention
from scaling import config as config_lib

V1_FIELDS: dict[str, tuple[str, ...]] = {
    "model": ("d_model", "n_layers", "n_heads", "n_kv_heads", "d_head", "d_ff",
              "mlp", "norm", "positions", "rope_theta", "tie_embeddings",
              "dtype", "param_dtype", "remat", "scan_layers", "init_std"),
    "tokenizer": ("n_sentinels",),
    "data": ("source", "path", "seed", "val_fraction", "max_tokens"),
    "objective": ("name", "seed", "noise_density", "mean_span_length",
                  "mlm_rate", "fim_rate", "ul2_rates"),
    "optimizer": ("name", "peak_lr", "b1", "b2", "eps", "weight_decay",
                  "decay_embeddings", "grad_clip", "z_loss"),
    "schedule": ("name", "warmup_steps", "warmup_fraction", "min_lr_ratio",
                 "decay_fraction"),
}
# Sections added after the first schema: every field is registered in
# INTRODUCED, and the section joins the hash only with the fields that differ
# from it (a pretraining run has none, so its identity is unchanged).
ADDED_SECTIONS = ("finetune",)
IDENTITY_SECTIONS = tuple(V1_FIELDS) + ADDED_SECTIONS
IDENTITY_GLOBALS = ("batch_size", "seq_len")

# Fields added after the first schema -> the value that reproduces what runs
# did before the field existed. Adding a field to an identity section means
# adding it here (a test checks that every schema field is in V1_FIELDS or
# here); never change an entry once runs were recorded.
INTRODUCED: dict[str, Any] = {
    # The einsum attention every run used before the choice existed; "auto"
    # resolves to it on CPU (scaling.attention.resolve).
    "model.attention": "reference",
    # Full-block rematerialisation, what remat=True meant before.
    "model.remat_policy": "full",
    # Fine-tuning (scaling.finetune): a run that fine-tunes nothing. A
    # fine-tune's identity covers its task (name and content hash), its
    # source run (identity and step) and its attention and decoding length.
    "finetune.task": "",
    "finetune.attention": "prefix",
    "finetune.max_new_tokens": -1,
    "finetune.task_hash": "",
    "finetune.source_identity": "",
    "finetune.source_step": -1,
    "schedule.decay_shape": "linear",  # WSD decayed linearly before
    # The standard parametrisation (scaling.parametrization), with no base
    # shape and SP's random init of the readout and query.
    "model.parametrization": "sp",
    "model.base_d_model": -1,
    "model.base_n_layers": -1,
    "model.zero_init": "none",
    # Training rows read in stream order (consecutive stretches of the
    # packed documents) before the window shuffle (scaling.data.pipeline).
    "data.row_order": "stream",
}


class UnregisteredField(KeyError):
  """A field of an identity section is in neither V1_FIELDS nor INTRODUCED."""


def resolved(config: ml_collections.ConfigDict,
             platform: str | None = None) -> ml_collections.ConfigDict:
  """A copy of ``config`` with its platform-decided (``auto``) values fixed
  (``model.attention``, ``model.dtype``: on CPU, ``auto`` is float32, the
  value hashed before the choice existed) and fields that have no effect set
  to their introduced value.

  Args:
    config: a run config.
    platform: ``"cpu"``, ``"gpu"`` or ``"tpu"`` (default: JAX's default
      backend).
  """
  platform = jax.default_backend() if platform is None else platform
  out = attention.resolve_config(config, platform)
  out.model.dtype = config_lib.compute_dtype(out.model.dtype, platform)
  if not out.model.remat:  # the policy of a rematerialisation that is off
    out.model.remat_policy = INTRODUCED["model.remat_policy"]
  # Base shapes a parametrisation does not read.
  m = out.model
  if "parametrization" in m:
    if m.parametrization == "sp":
      m.base_d_model = INTRODUCED["model.base_d_model"]
    if m.parametrization != "completep":
      m.base_n_layers = INTRODUCED["model.base_n_layers"]
  return out


def identity_fields(config: ml_collections.ConfigDict,
                    platform: str | None = None) -> dict[str, Any]:
  """The dict whose JSON is hashed (without the corpus hash).

  Raises:
    UnregisteredField: a field of an identity section that is neither a V1
      field nor registered in :data:`INTRODUCED`.
  """
  config = resolved(config, platform)
  d = config.to_dict()
  ident: dict[str, Any] = {}
  for section in IDENTITY_SECTIONS:
    v1 = V1_FIELDS.get(section, ())
    values = {k: d[section][k] for k in v1}
    for key, value in d.get(section, {}).items():
      if key in v1:
        continue
      dotted = f"{section}.{key}"
      if dotted not in INTRODUCED:
        raise UnregisteredField(
            f"config.{dotted} is not registered in scaling.identity."
            "INTRODUCED; add it with the value that means what runs did "
            "before it existed")
      if value != INTRODUCED[dotted]:
        values[key] = value
    if section in V1_FIELDS or values:
      ident[section] = values
  ident["train"] = dict(steps=accounting.train_steps(config),
                        seed=d["train"]["seed"])
  for key in IDENTITY_GLOBALS:
    ident[key] = d[key]
  return ident


def identity_hash(config: ml_collections.ConfigDict, corpus_hash: str = "",
                  platform: str | None = None) -> str:
  """12 hex digits of sha256 over :func:`identity_fields` and the corpus hash.

  Raises:
    UnregisteredField: see :func:`identity_fields`.
    ConfigError: no training length (``accounting.train_steps``).
  """
  ident = identity_fields(config, platform)
  ident["corpus_hash"] = corpus_hash
  blob = json.dumps(ident, sort_keys=True, default=list)
  return hashlib.sha256(blob.encode()).hexdigest()[:12]
