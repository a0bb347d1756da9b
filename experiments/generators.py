"""Sweep generators: grids, shape ladders, isoFLOP sweeps, data-constrained
sweeps, learning-rate sweeps, and the per-size hyperparameter rule.

Every generator takes a base config (``scaling.config.default_config()``
schema) and returns :class:`experiments.registry.Run` objects whose configs
are full copies of the base with the overrides applied; nothing is trained.
Overrides are written as dotted keys (``"model.d_model"``), as on the command
line.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Iterable, Mapping, Sequence

import ml_collections

from experiments.registry import Run
from scaling import accounting
from scaling import config as config_lib


# ------------------------------------------------------------------ names


def fmt_value(value: Any) -> str:
  """Compact, filesystem-safe text of a value: 1e-3 -> '0.001', 1e12 -> '1e12'."""
  if isinstance(value, bool):
    return str(value).lower()
  if isinstance(value, float):
    text = f"{value:.3g}".replace("e+0", "e").replace("e+", "e").replace(
        "e-0", "e-")
  else:
    text = str(value)
  return "".join(ch for ch in text if ch.isalnum() or ch in "._=+-").replace(
      "-", "m")


# ------------------------------------------------------------------ shapes


@dataclasses.dataclass(frozen=True)
class Shape:
  """A model shape: the ``model`` fields a size ladder varies.

  Attributes:
    d_model, n_layers, n_heads, d_ff: as in ``config.model``.
    n_kv_heads: grouped-query heads; 0 means ``n_heads``.
  """

  d_model: int
  n_layers: int
  n_heads: int
  d_ff: int
  n_kv_heads: int = 0

  @property
  def name(self) -> str:
    """Short name, e.g. ``L4_d128``."""
    return f"L{self.n_layers}_d{self.d_model}"

  def overrides(self) -> dict[str, int]:
    """Dotted overrides setting this shape (``model.d_head`` back to -1)."""
    return {"model.d_model": self.d_model, "model.n_layers": self.n_layers,
            "model.n_heads": self.n_heads,
            "model.n_kv_heads": self.n_kv_heads or self.n_heads,
            "model.d_ff": self.d_ff, "model.d_head": -1}


def _shape(d_model: int, n_layers: int, d_head: int, ffn_ratio: float,
           ff_multiple: int = 1) -> Shape:
  if d_model % d_head:
    raise ValueError(f"d_model={d_model} is not a multiple of d_head={d_head}")
  d_ff = max(1, math.floor(ffn_ratio * d_model / ff_multiple + 0.5)) * ff_multiple
  return Shape(d_model=d_model, n_layers=n_layers, n_heads=d_model // d_head,
               d_ff=d_ff)


def ladder(n_layers: Iterable[int], aspect_ratio: float, d_head: int,
           ffn_ratio: float = 4.0, ff_multiple: int = 1) -> list[Shape]:
  """Fixed-aspect shapes: one size knob (depth) sets the width too.

  ``d_model = aspect_ratio * n_layers`` rounded (half up) to a multiple of
  ``d_head`` (at least one head), ``n_heads = d_model / d_head``,
  ``d_ff = ffn_ratio * d_model`` rounded to a multiple of ``ff_multiple``:
  depth and width grow together as in Kaplan et al. 2020 §3 and Hoffmann et
  al. 2022 Table A9 (d_model / n_layers roughly constant, fixed head size).

  Raises:
    ValueError: for non-positive depths, aspect ratio or head size.
  """
  if aspect_ratio <= 0 or d_head <= 0:
    raise ValueError("aspect_ratio and d_head must be > 0")
  shapes = []
  for depth in n_layers:
    if depth <= 0:
      raise ValueError(f"n_layers must be > 0, got {depth}")
    d_model = max(1, math.floor(aspect_ratio * depth / d_head + 0.5)) * d_head
    shapes.append(_shape(d_model, depth, d_head, ffn_ratio, ff_multiple))
  return shapes


def depth_ladder(d_model: int, n_layers: Iterable[int], d_head: int,
                 ffn_ratio: float = 4.0, ff_multiple: int = 1) -> list[Shape]:
  """Depth-only ladder at fixed width (Kaplan et al. 2020 Fig. 5/6 style).

  Raises:
    ValueError: if ``d_model`` is not a multiple of ``d_head``.
  """
  return [_shape(d_model, depth, d_head, ffn_ratio, ff_multiple)
          for depth in n_layers]


def width_ladder(n_layers: int, d_models: Iterable[int], d_head: int,
                 ffn_ratio: float = 4.0, ff_multiple: int = 1) -> list[Shape]:
  """Width-only ladder at fixed depth; each width a multiple of ``d_head``.

  Raises:
    ValueError: if a width is not a multiple of ``d_head``.
  """
  return [_shape(d, n_layers, d_head, ffn_ratio, ff_multiple) for d in d_models]


def effective_params(config: ml_collections.ConfigDict) -> float:
  """N_eff = training ``flops`` per position / 6, so that C = 6 N_eff D exactly.

  Includes attention and the logits matmul (cf. Porian et al. 2024 §3.1 on
  counting the last layer and attention); D = positions trained.
  """
  return accounting.flops_per_step(config)["flops"] / (
      6.0 * accounting.tokens_per_step(config))


# ------------------------------------------------------ hyperparameter rule


@dataclasses.dataclass(frozen=True)
class HParamRule:
  """Per-size optimizer hyperparameters for small models.

  After Porian et al. 2024 (arXiv 2406.19146), who tune AdamW per model size
  and fit the tuned learning rate as a power law of N, find β2 = 0.95 too low
  at small batch sizes (β2 = 0.99 or 0.999 instead), and warm up for about N
  tokens rather than Kaplan et al.'s long warmup:

  * ``peak_lr = min(lr_max, lr_coef * N ** -lr_exponent)`` with N counted as
    Porian et al. do: parameters including the output head, excluding the
    input embedding (``params_total - params_embedding``);
  * ``b2 = b2_small_batch`` when a step has fewer than ``small_batch_tokens``
    tokens, else ``b2``;
  * warmup = ``warmup_fraction`` of training (N tokens is 5% of training at
    20 tokens per parameter).

  The constants of :data:`DEFAULT_RULE` are measured on this codebase; see
  its comment. The ``lr_sweep`` experiment checks the rule across widths.
  """

  lr_coef: float
  lr_exponent: float
  lr_max: float = 3e-2
  b2: float = 0.95
  b2_small_batch: float = 0.99
  small_batch_tokens: int = 2**18
  warmup_fraction: float = 0.05
  source: str = ""

  @staticmethod
  def n_params(config: ml_collections.ConfigDict) -> int:
    """Porian et al.'s N: params_total - params_embedding (head included)."""
    counts = accounting.param_counts(config.model,
                                     config_lib.vocab_size(config),
                                     config.seq_len)
    return counts["params_total"] - counts["params_embedding"]

  def peak_lr(self, config: ml_collections.ConfigDict) -> float:
    """The rule's peak learning rate for this config's model."""
    return min(self.lr_max,
               self.lr_coef * self.n_params(config) ** -self.lr_exponent)

  def overrides(self, config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Dotted overrides for ``config`` (peak_lr, b2, warmup fraction)."""
    small = accounting.tokens_per_step(config) < self.small_batch_tokens
    return {"optimizer.peak_lr": float(self.peak_lr(config)),
            "optimizer.b2": self.b2_small_batch if small else self.b2,
            "schedule.warmup_steps": -1,
            "schedule.warmup_fraction": self.warmup_fraction}

  def apply(self, config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A copy of ``config`` with the rule's hyperparameters."""
    return config_lib.with_overrides(config, self.overrides(config))


# lr_exponent 1/3: Adam's best learning rate falls like 1 / width in the
# standard parametrisation (Yang et al. 2022), and N grows like width^3 at a
# fixed aspect ratio. lr_coef 0.5 checked on the stdlib byte corpus at
# 16 x 128 tokens per step: for L2_d64 (N = 131k, 250 steps) the rule's lr
# 0.0098 beat x0.5, x2 and x4 (eval_loss 2.369 vs 2.408, 2.393, 2.572); for
# L1_d24 (N = 19k, 800 steps) x1 and x4 were within 0.02 nats (2.273, 2.255)
# and x0.5, x2 worse (2.321, 2.346). Commands: experiments/lr_sweep.py.
DEFAULT_RULE = HParamRule(
    lr_coef=0.5, lr_exponent=1.0 / 3.0,
    source=("lr = 0.5 N^(-1/3) (N without input embedding, Porian et al. "
            "2024), beta2 0.99 below 2^18 tokens per step, 5% warmup; "
            "checked by the lr_sweep experiment"))


# -------------------------------------------------------------- generators


def grid(base: ml_collections.ConfigDict, axes: Mapping[str, Sequence[Any]],
         prefix: str = "", rule: HParamRule | None = None) -> list[Run]:
  """Cartesian product over dotted config keys.

  Args:
    base: base config.
    axes: ``{"model.d_model": [64, 128], "train.seed": [0, 1]}``; the first
      key varies slowest.
    prefix: prepended to each short name.
    rule: if given, applied to each config after the axes (it sets peak_lr,
      b2 and warmup; do not also sweep those keys).

  Returns:
    One run per combination, short names like ``d_model64_seed0``.

  Raises:
    ConfigError: an unknown key.  ValueError: an empty axis.
  """
  keys = list(axes)
  for key in keys:
    if not len(axes[key]):
      raise ValueError(f"grid axis '{key}' has no values")
  runs = []
  for values in itertools.product(*(axes[k] for k in keys)):
    overrides = dict(zip(keys, values))
    config = config_lib.with_overrides(base, overrides)
    if rule is not None:
      config = rule.apply(config)
    name = "_".join(f"{k.rsplit('.', 1)[-1]}{fmt_value(v)}"
                    for k, v in overrides.items())
    runs.append(Run(f"{prefix}{name}" if prefix else name, config,
                    tags={k.rsplit(".", 1)[-1]: v for k, v in overrides.items()}))
  return runs


def shape_runs(base: ml_collections.ConfigDict, shapes: Iterable[Shape],
               prefix: str = "", rule: HParamRule | None = None) -> list[Run]:
  """One run per shape (e.g. a ladder at fixed training length)."""
  runs = []
  for shape in shapes:
    config = config_lib.with_overrides(base, shape.overrides())
    if rule is not None:
      config = rule.apply(config)
    runs.append(Run(f"{prefix}{shape.name}", config,
                    tags=dict(shape=shape.name)))
  return runs


def isoflop(base: ml_collections.ConfigDict, budgets: Sequence[float],
            shapes: Sequence[Shape], *, tokens_per_param: float = 20.0,
            factor: float = 4.0, max_sizes: int | None = None,
            min_steps: int = 50, rule: HParamRule | None = None,
            notes: list[str] | None = None) -> list[Run]:
  """IsoFLOP sweep (Hoffmann et al. 2022 Approach 2): sizes × fixed compute.

  For each budget C (training FLOPs in the exact ``flops`` count of
  ``accounting.flops_per_step``), the expected optimum is N_opt =
  sqrt(C / (6 * tokens_per_param)) (C = 6 N D with D = tokens_per_param * N;
  N is :func:`effective_params`, the size implied by the exact count). Shapes
  with N_eff in [N_opt / factor, N_opt * factor] are kept (the ``max_sizes``
  closest to N_opt in log N if given), and each gets
  ``train.steps = round(C / flops_per_step)``, so its total ``flops`` is
  within half an optimizer step's FLOPs of C. Runs with fewer than
  ``min_steps`` steps are dropped, with a note.

  Args:
    base: base config (its batch_size and seq_len fix the step size).
    budgets: compute budgets C in FLOPs (exact count).
    shapes: candidate shapes (a ladder).
    tokens_per_param: D/N at the expected optimum (Chinchilla: about 20).
    factor: how far either side of N_opt to go, as a ratio of N_eff.
    max_sizes: keep at most this many sizes per budget (closest to N_opt).
    min_steps: fewer steps than this make a run too short to mean anything.
    rule: per-size hyperparameters applied to each run.
    notes: a list receiving a line per dropped run or thin budget.

  Returns:
    Runs named ``C<budget>_<shape>``, each with ``budget`` = C and tags
    ``shape``, ``n_eff`` and ``tokens_per_param`` (the run's D / N_eff).

  Raises:
    ValueError: non-positive budgets, factor <= 1 or tokens_per_param <= 0.
  """
  if factor <= 1 or tokens_per_param <= 0:
    raise ValueError("isoflop needs factor > 1 and tokens_per_param > 0")
  notes = [] if notes is None else notes
  sized = []
  for shape in shapes:
    config = config_lib.with_overrides(base, shape.overrides())
    if rule is not None:
      config = rule.apply(config)
    sized.append((shape, config, effective_params(config),
                  accounting.flops_per_step(config)["flops"]))
  runs = []
  for budget in budgets:
    if budget <= 0:
      raise ValueError(f"isoflop budget must be > 0, got {budget}")
    n_opt = math.sqrt(budget / (6.0 * tokens_per_param))
    chosen = [s for s in sized if n_opt / factor <= s[2] <= n_opt * factor]
    if max_sizes is not None:
      chosen = sorted(chosen, key=lambda s: abs(math.log(s[2] / n_opt)))[:max_sizes]
    chosen.sort(key=lambda s: s[2])
    kept = 0
    for shape, config, n_eff, step_flops in chosen:
      steps = int(round(budget / step_flops))
      name = f"C{fmt_value(float(budget))}_{shape.name}"
      if steps < min_steps:
        notes.append(f"dropped {name}: {steps} steps < min_steps={min_steps}")
        continue
      config = config_lib.with_overrides(config, {"train.steps": steps,
                                        "train.tokens": -1})
      tokens = steps * accounting.tokens_per_step(config)
      runs.append(Run(name, config, budget=float(budget), tags=dict(
          shape=shape.name, n_eff=n_eff, tokens_per_param=tokens / n_eff)))
      kept += 1
    if kept < 3:
      notes.append(f"budget {budget:.3g}: only {kept} sizes (N_opt ~ "
                   f"{n_opt:.3g}); an isoFLOP parabola needs at least 3")
  return runs


def data_constrained(base: ml_collections.ConfigDict,
                     unique_tokens: Sequence[int],
                     epochs: Sequence[float]) -> list[Run]:
  """Repeated-data sweep (Muennighoff et al. 2023): U unique tokens × E epochs.

  Each run caps the training data at ``data.max_tokens = U`` unique tokens
  and trains for ``train.tokens = round(U * E)`` tokens (``train.steps`` =
  -1, so the trainer derives the steps).

  Returns:
    Runs named ``U<U>_E<E>`` with tag ``epochs_planned`` (U is the
    ``max_tokens`` column of the results; the trainer reports ``epochs`` and
    ``unique_tokens`` as seen).

  Raises:
    ValueError: non-positive U or E.
  """
  runs = []
  for u, e in itertools.product(unique_tokens, epochs):
    if u <= 0 or e <= 0:
      raise ValueError(f"unique tokens and epochs must be > 0, got {u}, {e}")
    config = config_lib.with_overrides(base, {"data.max_tokens": int(u),
                                    "train.tokens": int(round(u * e)),
                                    "train.steps": -1})
    runs.append(Run(f"U{fmt_value(float(u))}_E{fmt_value(float(e))}", config,
                    tags=dict(epochs_planned=float(e))))
  return runs


def lr_sweep(base: ml_collections.ConfigDict, shapes: Sequence[Shape],
             multipliers: Sequence[float],
             rule: HParamRule = DEFAULT_RULE, *,
             parametrizations: Sequence[str] | None = None,
             base_shape: Shape | None = None) -> list[Run]:
  """Learning rate × width: multiples of the rule's learning rate per shape.

  The grid used to check hyperparameter transfer (Yang et al. 2022; Everett
  et al. 2024): if the rule is right, each shape's best multiplier is near 1.
  Runs of one shape differ only in the (traced) learning rate, so they
  compile once.

  With ``parametrizations`` (the transfer check of Yang et al. 2022, Fig. 1)
  every shape is trained under each parametrisation p (``model.
  parametrization = p``, base shape ``base_shape``, default the first
  shape), and every shape gets the *same* learning rates: ``multipliers`` ×
  the rule's rate of the base shape. Under μP that is the grid the base
  model's optimum should transfer on; under SP the optimum is free to drift.
  Runs are ordered by shape, then parametrisation, then rate (a partial
  sweep has both arms of its smaller widths).

  Returns:
    Runs named ``<shape>_lrx<m>`` (``<p>_<shape>_lrx<m>`` with
    parametrisations) with tags ``shape``, ``lr_multiplier`` and ``rule_lr``
    (and ``parametrization``).

  Raises:
    ConfigError: an unknown parametrisation or a base shape the shapes
      cannot be derived from (``scaling.validation``, when the experiment is
      checked).
  """
  runs = []
  if parametrizations is not None:
    base_shape = base_shape or shapes[0]
    ref = rule.apply(config_lib.with_overrides(base, base_shape.overrides()))
    rule_lr = ref.optimizer.peak_lr
    for shape in shapes:
      for p in parametrizations:
        config = rule.apply(config_lib.with_overrides(base, shape.overrides()))
        config = config_lib.with_overrides(config, {
            "model.parametrization": p,
            "model.base_d_model": base_shape.d_model,
            "model.base_n_layers": base_shape.n_layers})
        for m in multipliers:
          run_config = config_lib.with_overrides(
              config, {"optimizer.peak_lr": rule_lr * m})
          runs.append(Run(
              f"{p}_{shape.name}_lrx{fmt_value(float(m))}", run_config,
              tags=dict(parametrization=p, shape=shape.name,
                        lr_multiplier=float(m), rule_lr=rule_lr)))
    return runs
  for shape in shapes:
    config = rule.apply(config_lib.with_overrides(base, shape.overrides()))
    rule_lr = config.optimizer.peak_lr
    for m in multipliers:
      run_config = config_lib.with_overrides(config, {"optimizer.peak_lr": rule_lr * m})
      runs.append(Run(f"{shape.name}_lrx{fmt_value(float(m))}", run_config, tags=dict(
          shape=shape.name, lr_multiplier=float(m), rule_lr=rule_lr)))
  return runs
