"""Learning-rate schedules (DESIGN.md §4), in jax.numpy.

T optimizer updates are numbered s = 0 … T-1; W of them warm up:

  lr(s) = peak * (s+1) / W                      for s < W
  p     = (s - W + 1) / (T - W)                 decay progress, 1 at s = T-1
  cosine:   min + (peak - min) * (1 + cos(pi p)) / 2
  linear:   peak - (peak - min) * p
  constant: peak
  wsd:      peak, then linear to min over the last K updates (below)

with min = min_lr_ratio * peak. The first update thus has a nonzero rate and
lr(W-1) = peak. Cosine follows Loshchilov & Hutter 2017 (SGDR) without
restarts; warmup-stable-decay (WSD) follows Hu et al. 2024 (MiniCPM,
arXiv 2404.06395) and Hägele et al. 2024 (arXiv 2405.18392).

WSD decay, precisely: K = floor(decay_fraction * T + 0.5) (round half up),
clipped to [0, T - W]; updates s = T-K … T-1 decay with
q = (s - (T-K) + 1) / K and lr = peak - (peak - min) * f(q), where the
decay shape f (``schedule.decay_shape``) is

  linear:  f(q) = q
  1-sqrt:  f(q) = sqrt(q)            lr = min + (peak - min) * (1 - sqrt(q)),
                                     the "1-sqrt" cooldown of Hägele et al.
                                     2024 (arXiv 2405.18392, §3)
  cosine:  f(q) = (1 - cos(pi q)) / 2   a half-period cosine cooldown

f(0) = 0 and f(1) = 1 for every shape, so the first decay update
(s = T-K, q = 1/K) is already below peak, lr(T-1) = min, and every earlier
update after warmup is at peak. With K = T - W and the linear shape this is
exactly the linear schedule; with K = 0 (decay_fraction = 0) the rate stays
at peak (a stable run to branch decays from). The shape is used only by wsd.

Every numeric argument may be a traced value, so runs that differ only in
them share one compiled train step; the schedule name and the decay shape
are static. Arithmetic is float32: step numbers are exact up to 2**24.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp

from scaling.config import ConfigError

SCHEDULES = ("cosine", "linear", "constant", "wsd")
DECAY_SHAPES = ("linear", "1-sqrt", "cosine")


def learning_rate(step, *, schedule: str, peak_lr, warmup_steps, total_steps,
                  min_lr_ratio, decay_fraction,
                  decay_shape: str = "linear") -> jnp.ndarray:
  """Learning rate of update ``step`` (formulas in the module docstring).

  Args:
    step: update index s (0-based; int or float scalar/array, may be traced).
    schedule: "cosine" | "linear" | "constant" | "wsd" (static).
    peak_lr: peak learning rate (may be traced).
    warmup_steps: W >= 0 (may be traced); 0 means no warmup.
    total_steps: T > W (may be traced).
    min_lr_ratio: min / peak (may be traced); unused by "constant".
    decay_fraction: WSD's decay length as a fraction of T (may be traced);
      used only by "wsd".
    decay_shape: "linear" | "1-sqrt" | "cosine" (static): f(q) of the WSD
      decay (module docstring); used only by "wsd".

  Returns:
    float32 array of the shape of ``step``. Steps past T-1 stay at the final
    value (p and q are clipped to [0, 1]).

  Raises:
    ConfigError: (field ``schedule.name``) for an unknown schedule,
      (``schedule.decay_shape``) for an unknown decay shape.
  """
  if schedule not in SCHEDULES:
    raise ConfigError("schedule.name",
                      f"unknown schedule {schedule!r}; use one of {SCHEDULES}")
  if decay_shape not in DECAY_SHAPES:
    raise ConfigError("schedule.decay_shape", f"unknown decay shape "
                      f"{decay_shape!r}; use one of {DECAY_SHAPES}")
  f32 = jnp.float32
  s = jnp.asarray(step, f32)
  peak = jnp.asarray(peak_lr, f32)
  w = jnp.asarray(warmup_steps, f32)
  t = jnp.asarray(total_steps, f32)
  lr_min = jnp.asarray(min_lr_ratio, f32) * peak
  warm = peak * (s + 1.0) / jnp.maximum(w, 1.0)
  decay_len = jnp.maximum(t - w, 1.0)
  p = jnp.clip((s - w + 1.0) / decay_len, 0.0, 1.0)
  if schedule == "cosine":
    after = lr_min + (peak - lr_min) * (1.0 + jnp.cos(jnp.pi * p)) / 2.0
  elif schedule == "linear":
    after = peak - (peak - lr_min) * p
  elif schedule == "constant":
    after = peak
  else:  # wsd
    k = jnp.floor(jnp.asarray(decay_fraction, f32) * t + 0.5)
    k = jnp.clip(k, 0.0, jnp.maximum(t - w, 0.0))
    q = jnp.clip((s - (t - k) + 1.0) / jnp.maximum(k, 1.0), 0.0, 1.0)
    after = peak - (peak - lr_min) * _decay_shape(q, decay_shape)
  return jnp.where(s < w, warm, after)


def _decay_shape(q, shape: str):
  """f(q) of the WSD decay: 0 at q = 0, 1 at q = 1 (module docstring)."""
  if shape == "linear":
    return q
  if shape == "1-sqrt":
    return jnp.sqrt(q)
  return (1.0 - jnp.cos(jnp.pi * q)) / 2.0  # cosine


def resolve_warmup(schedule_cfg: Any, total_steps: int) -> int:
  """Warmup length W in updates.

  ``schedule.warmup_steps`` if >= 0, else floor(warmup_fraction * T + 0.5)
  (round half up).

  Args:
    schedule_cfg: the ``config.schedule`` section.
    total_steps: T, optimizer updates of the run.

  Returns:
    W, an int in [0, T].

  Raises:
    ConfigError: if warmup_fraction is outside [0, 1] (when used) or W > T.
  """
  total_steps = int(total_steps)
  warmup = int(schedule_cfg["warmup_steps"])
  field = "schedule.warmup_steps"
  if warmup < 0:
    field = "schedule.warmup_fraction"
    fraction = float(schedule_cfg["warmup_fraction"])
    if not 0.0 <= fraction <= 1.0:
      raise ConfigError(field, f"must be in [0, 1], got {fraction}")
    warmup = int(fraction * total_steps + 0.5)
  if warmup > total_steps:
    raise ConfigError(
        field, f"warmup of {warmup} steps is longer than training "
        f"({total_steps} steps); shorten the warmup or train longer")
  return warmup
