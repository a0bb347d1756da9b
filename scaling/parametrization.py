"""Parametrisations: SP, μP and CompleteP as init scales, forward multipliers
and per-parameter optimizer multipliers (DESIGN.md §8).

``model.parametrization`` is one of

* ``sp``: the standard parametrisation this codebase always used (init
  stds of :func:`sp_init_std`, attention scale 1/sqrt(d_head), no
  multipliers);
* ``mup``: the maximal update parametrisation for Adam (Yang et al. 2022,
  arXiv 2203.03466), in the form of the practitioner's tables (Dey, Anthony
  & Hestness 2024, "The practitioner's guide to the maximal update
  parameterization", Cerebras/EleutherAI: init, learning rate, logit and
  attention rules; Dey et al. 2025, arXiv 2505.01618, Table 1, μP column:
  also the weight-decay and Adam-ε rules): with m the width multiplier of a
  parameter,

  - hidden weights (fan-in and fan-out both grow with width): init variance
    σ²_base / m, Adam learning rate η / m, AdamW weight decay λ · m, Adam ε
    ε / m;
  - input weights (embeddings; only the fan-out grows) and the readout
    (unembedding; only the fan-in grows): σ²_base and η unchanged; the
    logits are multiplied by 1 / m;
  - vectors (norm gains): unchanged, except ε / m inside the residual blocks;
  - attention scores scaled by 1/sqrt(d_head_base) · d_head_base / d_head:
    SP's 1/sqrt(d_head) at the base head size, falling as 1/d_head when the
    head size grows (μP's 1/d attention). The base keeps the run's head
    size (:func:`base_model_config`), so with width grown by heads the
    scale is SP's at every width;

* ``completep``: μP plus depth (Dey et al. 2025, Table 1, α = 1): every
  residual branch is multiplied by m_L^(−α) with m_L = n_layers /
  base_n_layers; hidden learning rates by m_L^(α−1) (= 1 at α = 1), the
  Adam ε of every parameter in the residual blocks by m_L^(−α); init
  variances are the base model's (σ²_base of the base depth).

σ_base and η_base are SP's values at the *base shape*: the model with
``d_model = model.base_d_model`` (:func:`base_model_config`), so at the base
shape μP and CompleteP are SP exactly, bit for bit. Each parameter's width
multipliers are derived from its *shape* against the same parameter in the
base model (:func:`derive`): the product of the ratios of its fan-in dims
(m_in) and of its fan-out dims (m_out), never from logical axis names (the
head dim ``kv`` stays fixed when width grows by heads).

AdamW here decays by ``lr · λ · p`` (optax, decoupled): a hidden weight's
decay per step is then η/m · λ·m = η·λ, independent of width, which is what
the λ·m rule is for.

``model.zero_init`` (orthogonal to the parametrisation, so the base-shape
equality holds for each value) zero-initialises the readout and optionally
the query projection, as microsoft/mup recommends for μP
(``readout_zero_init``, ``zero_query``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

import jax
import ml_collections

from scaling.config import ConfigError
from scaling.config import d_head

PARAMETRIZATIONS = ("sp", "mup", "completep")
ZERO_INIT = ("none", "readout", "readout_query")
DEPTH_ALPHA = 1.0  # CompleteP's α (Dey et al. 2025: α = 1)

# Per parameter (key = module/leaf inside a block, or the top-level leaf):
# (dims of one layer's parameter, how many leading dims are its fan-in).
# Leading dims beyond those are stacked layers (nn.scan). Vectors have no
# fan-in dims.
LAYOUT: dict[str, tuple[int, int]] = {
    "attn/q": (3, 1), "attn/k": (3, 1), "attn/v": (3, 1), "attn/o": (3, 2),
    "mlp/wi": (2, 1), "mlp/wg": (2, 1), "mlp/wo": (2, 1),
    "attn_norm/scale": (1, 0), "attn_norm/bias": (1, 0),
    "mlp_norm/scale": (1, 0), "mlp_norm/bias": (1, 0),
    "final_norm/scale": (1, 0), "final_norm/bias": (1, 0),
    "embedding": (2, 1), "pos_embedding": (2, 1), "unembedding": (2, 1),
}
_BLOCK_PREFIXES = ("blocks", "block_")


@dataclasses.dataclass(frozen=True)
class ParamRule:
  """How one parameter is initialised and optimised.

  Attributes:
    kind: ``hidden`` (fan-in and fan-out grow with width), ``input`` (only
      the fan-out grows: embeddings), ``output`` (only the fan-in grows: the
      readout), ``vector`` (norm gains and biases) or ``fixed`` (no
      dimension differs from the base: every multiplier is 1).
    init_std: standard deviation of its normal init (None for norms, which
      start at one and zero).
    lr: learning-rate multiplier.
    eps: Adam-ε multiplier.
    weight_decay: weight-decay multiplier (the decay mask still decides
      which parameters decay at all).
    m_in, m_out: fan-in and fan-out width multipliers (shape ratios against
      the base model).
    in_block: the parameter lives in a residual block.
  """

  kind: str
  init_std: float | None
  lr: float = 1.0
  eps: float = 1.0
  weight_decay: float = 1.0
  m_in: float = 1.0
  m_out: float = 1.0
  in_block: bool = False


@dataclasses.dataclass(frozen=True)
class Parametrization:
  """Everything a parametrisation changes, for one model shape (hashable).

  Attributes:
    name: ``sp``, ``mup`` or ``completep``.
    width_mult: m_w = d_model / base_d_model (1 for SP).
    depth_mult: m_L = n_layers / base_n_layers (1 unless CompleteP).
    logit_mult: forward multiplier of the logits (1 / m_w under μP).
    residual_mult: multiplier of every residual branch (m_L^(−α)).
    attention_scale: the attention score scale.
    rules: ``(key, ParamRule)`` pairs, key as in :data:`LAYOUT`.
  """

  name: str
  width_mult: float
  depth_mult: float
  logit_mult: float
  residual_mult: float
  attention_scale: float
  rules: tuple[tuple[str, ParamRule], ...]

  def rule(self, key: str) -> ParamRule:
    """The rule of parameter ``key`` (e.g. ``attn/q``, ``unembedding``).

    Raises:
      KeyError: a parameter this parametrisation has no rule for.
    """
    for k, r in self.rules:
      if k == key:
        return r
    raise KeyError(f"no parametrisation rule for parameter '{key}'; add it "
                   "to scaling.parametrization.LAYOUT")

  def init_std(self, key: str) -> float:
    """Init standard deviation of parameter ``key`` (0 means zeros)."""
    return self.rule(key).init_std


def sp_init_std(key: str, model_cfg) -> float | None:
  """SP's init std of parameter ``key`` for ``model_cfg`` (what the model
  always used): ``init_std`` for q, k, v and the MLP input matrices, divided
  by sqrt(2·n_layers) for the two output projections (GPT-2, Radford et al.
  2019 §2.3), 1 for an untied embedding (unit-variance inputs to the first
  norm; ``init_std`` when tied, as the same table makes the logits),
  ``init_std`` for learned positions, 1/sqrt(d_model) for the unembedding;
  None for norm gains and biases.
  """
  c = model_cfg
  if key in ("attn/q", "attn/k", "attn/v", "mlp/wi", "mlp/wg",
             "pos_embedding"):
    return c.init_std
  if key in ("attn/o", "mlp/wo"):
    return c.init_std / math.sqrt(2 * c.n_layers)
  if key == "embedding":
    return c.init_std if c.tie_embeddings else 1.0
  if key == "unembedding":
    return 1.0 / math.sqrt(c.d_model)
  return None


def _zeroed(key: str, zero_init: str) -> bool:
  return ((key == "unembedding" and zero_init in ("readout", "readout_query"))
          or (key == "attn/q" and zero_init == "readout_query"))


def standard(model_cfg) -> Parametrization:
  """SP for ``model_cfg``: its init stds, 1/sqrt(d_head), no multipliers."""
  zero = getattr(model_cfg, "zero_init", "none")
  rules = tuple(
      (key, ParamRule(kind="fixed", init_std=0.0 if _zeroed(key, zero)
                      else sp_init_std(key, model_cfg),
                      in_block="/" in key and not key.startswith("final_")))
      for key in LAYOUT)
  return Parametrization(name="sp", width_mult=1.0, depth_mult=1.0,
                         logit_mult=1.0, residual_mult=1.0,
                         attention_scale=d_head(model_cfg) ** -0.5,
                         rules=rules)


def base_model_config(model_cfg) -> ml_collections.ConfigDict:
  """The base model of a μP/CompleteP run: the same model at the base shape.

  ``d_model = base_d_model``; every other width grows with d_model at the
  run's proportions: ``d_ff``, ``n_heads`` and ``n_kv_heads`` scaled by
  base_d_model / d_model at the run's ``d_head`` (width grows by heads, as
  every ladder of ``experiments.generators`` does); ``n_layers =
  base_n_layers`` under CompleteP, the run's own under μP.

  Raises:
    ConfigError: no base width, or a base shape that is not whole (names
      ``model.base_d_model`` and the fix).
  """
  c = model_cfg
  if c.base_d_model <= 0:
    raise ConfigError("model.base_d_model", f"parametrization "
                      f"'{c.parametrization}' needs the base model's width: "
                      "set model.base_d_model to the d_model whose "
                      "hyperparameters are transferred (e.g. the smallest "
                      "width of the sweep).")
  if c.parametrization == "completep" and c.base_n_layers <= 0:
    raise ConfigError("model.base_n_layers", "parametrization 'completep' "
                      "needs the base model's depth: set model.base_n_layers.")
  ratio = c.base_d_model / c.d_model
  sizes = {}
  for field in ("d_ff", "n_heads", "n_kv_heads"):
    value = c[field] * ratio
    if value < 1 or abs(value - round(value)) > 1e-9:
      raise ConfigError(
          "model.base_d_model", f"the base shape is not whole: {field}="
          f"{c[field]} × base_d_model/d_model ({c.base_d_model}/{c.d_model}) "
          f"= {value:g}; pick a base_d_model that divides the widths at the "
          "run's proportions (d_head fixed).")
    sizes[field] = int(round(value))
  base = ml_collections.ConfigDict(c.to_dict())
  base.update(d_model=c.base_d_model, d_head=d_head(c), **sizes)
  if c.parametrization == "completep":
    base.n_layers = c.base_n_layers
  return base


def key_of(path) -> tuple[str, bool]:
  """(parameter key, inside a residual block) of a parameter tree path.

  The path's ``blocks`` (scanned) or ``block_<i>`` (unrolled) level is
  dropped: ``('blocks', 'attn', 'q')`` → ``('attn/q', True)``.
  """
  names = [getattr(p, "key", getattr(p, "name", p)) for p in path]
  names = [str(n) for n in names]
  kept = [n for n in names if not n.startswith(_BLOCK_PREFIXES)]
  return "/".join(kept), len(kept) < len(names)


def _ratio(shape, base, dims) -> float:
  out = 1.0
  for i in dims:
    out *= shape[i] / base[i]
  return out


def derive(model_cfg, shapes: Mapping[str, tuple[int, ...]],
           base_shapes: Mapping[str, tuple[int, ...]]) -> Parametrization:
  """μP or CompleteP for ``model_cfg`` from its parameter shapes.

  Args:
    model_cfg: ``config.model`` with ``parametrization`` ``mup`` or
      ``completep``.
    shapes: parameter key (:func:`key_of`) → shape, of the run's model.
    base_shapes: the same for the base model (:func:`base_model_config`).

  Returns:
    The :class:`Parametrization` (module docstring for the rules).

  Raises:
    KeyError: a parameter missing from :data:`LAYOUT` or from the base.
    ConfigError: as :func:`base_model_config`.
  """
  c = model_cfg
  base_cfg = base_model_config(c)
  completep = c.parametrization == "completep"
  depth_mult = c.n_layers / c.base_n_layers if completep else 1.0
  alpha = DEPTH_ALPHA if completep else 0.0
  depth_lr = depth_mult ** (alpha - 1.0) if completep else 1.0
  depth_eps = depth_mult ** -alpha
  rules = []
  for key, shape in shapes.items():
    if key not in LAYOUT:
      raise KeyError(f"parameter '{key}' has no entry in scaling."
                     "parametrization.LAYOUT; give its dims and fan-in dims")
    ndim, n_in = LAYOUT[key]
    base = base_shapes[key]
    lead = len(shape) - ndim  # stacked layers
    shape, base = tuple(shape[lead:]), tuple(base[len(base) - ndim:])
    m_in = _ratio(shape, base, range(n_in))
    m_out = _ratio(shape, base, range(n_in, ndim))
    in_block = "/" in key and not key.startswith("final_")
    std = 0.0 if _zeroed(key, c.zero_init) else sp_init_std(key, base_cfg)
    if n_in == 0:
      kind = "vector" if m_out != 1.0 else "fixed"
    elif m_in != 1.0 and m_out != 1.0:
      kind = "hidden"
    else:
      kind = "output" if m_in != 1.0 else "input" if m_out != 1.0 else "fixed"
    m = m_in if m_in != 1.0 else m_out  # the parameter's width multiplier
    hidden = kind == "hidden"
    rule = ParamRule(
        kind,
        std / math.sqrt(m_in) if hidden and std else std,
        lr=(1.0 / m_in if hidden else 1.0) * (depth_lr if in_block else 1.0),
        eps=(1.0 / m) * depth_eps if in_block else 1.0,
        weight_decay=m_in if hidden else 1.0,
        m_in=m_in, m_out=m_out, in_block=in_block)
    rules.append((key, rule))
  width_mult = c.d_model / c.base_d_model
  dh, dh_base = d_head(c), d_head(base_cfg)
  return Parametrization(
      name=c.parametrization, width_mult=width_mult, depth_mult=depth_mult,
      logit_mult=1.0 / width_mult, residual_mult=depth_mult ** -alpha,
      attention_scale=dh_base ** -0.5 * (dh_base / dh), rules=tuple(rules))


def for_model(model_cfg, shapes_of: Callable[[Any], Mapping[str, tuple]]
              ) -> Parametrization:
  """The parametrisation of ``model_cfg`` (``config.model``).

  Args:
    model_cfg: the model section.
    shapes_of: ``model_cfg -> {key: shape}`` of a model section's
      parameters (``scaling.model.param_shapes``); called for the run's and
      the base model under μP and CompleteP only.

  Raises:
    ConfigError: as :func:`base_model_config`.
  """
  if getattr(model_cfg, "parametrization", "sp") == "sp":
    return standard(model_cfg)
  return derive(model_cfg, shapes_of(model_cfg),
                shapes_of(base_model_config(model_cfg)))


def optimizer_multipliers(par: Parametrization | None, params):
  """Per-parameter optimizer multipliers, or None under SP.

  Args:
    par: the model's parametrisation (None: SP).
    params: the parameter tree (arrays or ``ShapeDtypeStruct``s).

  Returns:
    None for SP, else a dict of three trees shaped like ``params`` of
    Python floats: ``lr``, ``eps``, ``weight_decay``.
  """
  if par is None or par.name == "sp":
    return None

  def pick(field):
    return jax.tree_util.tree_map_with_path(
        lambda path, _: getattr(par.rule(key_of(path)[0]), field), params)

  return {field: pick(field) for field in ("lr", "eps", "weight_decay")}
