"""Sweep generators: grids, shape ladders, isoFLOP sweeps, data-constrained
sweeps, learning-rate and batch sweeps, WSD decay branches.

Every generator takes a base config (``scaling.config.default_config()``
schema) and returns :class:`experiments.registry.Run` objects whose configs
are full copies of the base with the overrides applied; nothing is trained.
Overrides are written as dotted keys (``"model.d_model"``), as on the command
line. Per-size hyperparameters come from a rule of :mod:`experiments.hparams`
(``DEFAULT_RULE``, the published presets or a fitted rule file).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any, Iterable, Mapping, Sequence

import ml_collections

from experiments import hparams
from experiments.registry import Run
from scaling import accounting
from scaling import config as config_lib
from scaling import schedules


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

# The rules live in experiments.hparams; these names stay importable here.
HParamRule = hparams.HParamRule
DEFAULT_RULE = hparams.DEFAULT_RULE


# -------------------------------------------------------------- generators


def grid(base: ml_collections.ConfigDict, axes: Mapping[str, Sequence[Any]],
         prefix: str = "", rule: hparams.Rule | None = None) -> list[Run]:
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
               prefix: str = "", rule: hparams.Rule | None = None) -> list[Run]:
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
            min_steps: int = 50, rule: hparams.Rule | None = None,
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
             rule: hparams.Rule = DEFAULT_RULE, *,
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


def batch_sweep(base: ml_collections.ConfigDict, shapes: Sequence[Shape],
                batch_sizes: Sequence[int], tokens: int,
                lr_multipliers: Sequence[float] = (1.0,),
                rule: hparams.Rule = DEFAULT_RULE) -> list[Run]:
  """Batch size × model size at a fixed token budget (Porian et al. 2024
  §4; DeepSeek-AI 2024 §3.1 sweep batch and learning rate jointly).

  Every run of a shape trains on the same ``tokens`` (``train.tokens``, so a
  batch of b sequences takes ceil(tokens / (b·seq_len)) steps); the rule
  sets the learning rate, β2 and warmup for that batch (its own batch term,
  if any, is not applied: the batch is the swept variable), and each
  learning rate is tried at ``lr_multipliers`` times the rule's, so the
  analysis can take the best learning rate per batch
  (``scaling analyze --hparams``).

  Args:
    base: base config (its seq_len fixes the tokens per sequence).
    shapes: model shapes.
    batch_sizes: sequences per optimizer step (global).
    tokens: training tokens D of every run.
    lr_multipliers: multiples of the rule's learning rate per batch.
    rule: per-size hyperparameters.

  Returns:
    Runs named ``<shape>_bs<b>`` (``_lrx<m>`` appended when several
    multipliers) with tags ``shape``, ``batch_tokens``, ``lr_multiplier``
    and ``rule_lr``.

  Raises:
    ValueError: a non-positive batch size or token budget.
  """
  if tokens <= 0 or any(b <= 0 for b in batch_sizes):
    raise ValueError("batch_sweep needs tokens > 0 and batch sizes > 0")
  runs = []
  for shape in shapes:
    for b in batch_sizes:
      config = config_lib.with_overrides(base, {
          **shape.overrides(), "batch_size": int(b), "train.tokens": int(tokens),
          "train.steps": -1})
      config = rule.apply(config, set_batch=False)
      rule_lr = config.optimizer.peak_lr
      for m in lr_multipliers:
        run_config = config_lib.with_overrides(
            config, {"optimizer.peak_lr": rule_lr * m})
        name = f"{shape.name}_bs{b}"
        if len(lr_multipliers) > 1:
          name += f"_lrx{fmt_value(float(m))}"
        runs.append(Run(name, run_config, tags=dict(
            shape=shape.name, batch_tokens=accounting.tokens_per_step(config),
            lr_multiplier=float(m), rule_lr=rule_lr)))
  return runs


def wsd_branches(base: ml_collections.ConfigDict, shapes: Sequence[Shape],
                 branch_tokens: Sequence[int], *, decay_fraction: float = 0.2,
                 decay_shape: str = "1-sqrt", warmup_steps: int | None = None,
                 rule: hparams.Rule = DEFAULT_RULE,
                 prefix: str = "") -> list[Run]:
  """WSD decay branches: one stable run per shape, one branch per length.

  Hu et al. 2024 (MiniCPM, arXiv 2404.06395) and Hägele et al. 2024 (arXiv
  2405.18392): a warmup-stable-decay run of T updates is at its peak
  learning rate until its last K = round(decay_fraction·T) updates, so runs
  of several lengths share everything before their decays. For each shape:

  * the stable run ``<shape>_stable`` (``schedule.name = constant``: warmup,
    then the peak rate) trains to the latest branch point and keeps a
    checkpoint at every branch point (``checkpoint.at_steps``);
  * a branch ``<shape>_D<tokens>`` per entry of ``branch_tokens``: a
    ``wsd`` run of T = round(tokens / tokens per step) updates with the
    given decay fraction and shape, started from the stable run's
    checkpoint at its branch point T − K (``Run.init_from``).

  The warmup is the same number of updates for every run of a shape
  (``warmup_steps``, default the rule's warmup of the shortest branch), so a
  branch's schedule before its branch point is the stable run's: the
  branch equals the same ``wsd`` run trained from scratch (the registry
  checks it, ``experiments.branches``), whose identity it has.

  Args:
    base: base config (batch_size and seq_len fix the tokens per step;
      cadences are kept).
    shapes: model shapes.
    branch_tokens: the branches' training tokens D (distinct).
    decay_fraction: WSD decay as a fraction of each branch's length.
    decay_shape: ``linear``, ``1-sqrt`` or ``cosine`` (``scaling.schedules``).
    warmup_steps: warmup updates of every run (None: see above).
    rule: per-size peak learning rate and β2 (its batch is not applied).
    prefix: prepended to each short name.

  Returns:
    Per shape the stable run, then its branches (shortest first). Tags:
    ``shape``, ``n_eff``, ``role`` (``stable`` | ``branch``),
    ``stable_run`` (the stable run's short name).

  Raises:
    ValueError: fewer than one length, lengths giving the same step count,
      or a warmup reaching past a branch point.
  """
  if not branch_tokens:
    raise ValueError("wsd_branches needs at least one branch length")
  runs = []
  for shape in shapes:
    config = rule.apply(config_lib.with_overrides(base, shape.overrides()),
                        set_batch=False)
    per_step = accounting.tokens_per_step(config)
    lengths = sorted(int(round(t / per_step)) for t in branch_tokens)
    if len(set(lengths)) != len(lengths) or lengths[0] < 2:
      raise ValueError(f"branch lengths {lengths} (steps) must be distinct "
                       "and at least 2; spread branch_tokens further")
    if warmup_steps is None:
      shortest = config_lib.with_overrides(
          config, {"train.steps": lengths[0], "train.tokens": -1})
      warmup = schedules.resolve_warmup(shortest.schedule, lengths[0])
    else:
      warmup = int(warmup_steps)
    points = [t - int(math.floor(decay_fraction * t + 0.5)) for t in lengths]
    if warmup > min(points):
      raise ValueError(f"warmup of {warmup} steps reaches past the first "
                       f"branch point {min(points)}; shorten it")
    common = {"schedule.warmup_steps": warmup, "train.tokens": -1}
    stable_name = f"{prefix}{shape.name}_stable"
    stable = config_lib.with_overrides(config, {
        **common, "schedule.name": "constant", "schedule.decay_shape": "linear",
        "train.steps": max(points), "checkpoint.at_steps": tuple(points)})
    tags = dict(shape=shape.name, n_eff=effective_params(config),
                stable_run=stable_name)
    runs.append(Run(stable_name, stable, tags=dict(tags, role="stable")))
    for tokens, steps, point in zip(sorted(branch_tokens), lengths, points):
      branch = config_lib.with_overrides(config, {
          **common, "schedule.name": "wsd", "train.steps": steps,
          "schedule.decay_fraction": float(decay_fraction),
          "schedule.decay_shape": decay_shape})
      runs.append(Run(f"{prefix}{shape.name}_D{fmt_value(float(tokens))}",
                      branch, tags=dict(tags, role="branch"),
                      init_from=(stable_name, point)))
  return runs
