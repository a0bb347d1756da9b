"""Tests of scaling/schedules.py: exact learning rates (DESIGN.md §4)."""

import functools
import math

import jax
import numpy as np
import pytest

from scaling import program
from scaling import schedules
from scaling import sharding
from scaling.config import ConfigError, default_config

PEAK, W, T, MIN_RATIO, DECAY_FRACTION = 1e-3, 10, 110, 0.1, 0.2
MIN = MIN_RATIO * PEAK
K = 22  # WSD decay updates: round(0.2 * 110); they are s = 88 … 109


def lr(step, schedule, **overrides):
  args = dict(peak_lr=PEAK, warmup_steps=W, total_steps=T,
              min_lr_ratio=MIN_RATIO, decay_fraction=DECAY_FRACTION)
  args.update(overrides)
  return np.asarray(schedules.learning_rate(step, schedule=schedule, **args))


def cosine(p):
  return MIN + (PEAK - MIN) * (1 + math.cos(math.pi * p)) / 2


# (step, {schedule: expected lr}); p = (s - W + 1) / (T - W).
EXPECTED = [
    (0, dict(cosine=1e-4, linear=1e-4, constant=1e-4, wsd=1e-4)),  # first
    (9, dict(cosine=PEAK, linear=PEAK, constant=PEAK, wsd=PEAK)),  # end warmup
    (10, dict(cosine=cosine(0.01), linear=PEAK - (PEAK - MIN) * 0.01,
              constant=PEAK, wsd=PEAK)),
    (59, dict(cosine=5.5e-4, linear=5.5e-4, constant=PEAK, wsd=PEAK)),  # p=.5
    (87, dict(wsd=PEAK)),  # last stable update
    (88, dict(wsd=PEAK - (PEAK - MIN) / K)),  # first decay update
    (98, dict(wsd=5.5e-4)),  # WSD mid-decay: q = 11/22
    (109, dict(cosine=MIN, linear=MIN, constant=PEAK, wsd=MIN)),  # last
]


@pytest.mark.parametrize("step,values", EXPECTED)
def test_exact_values(step, values):
  for schedule, expected in values.items():
    np.testing.assert_allclose(lr(step, schedule), expected, rtol=1e-6,
                               err_msg=f"{schedule} at step {step}")


@pytest.mark.parametrize("schedule", schedules.SCHEDULES)
def test_no_warmup_first_update_nonzero_and_last_at_min(schedule):
  first, last = lr(0, schedule, warmup_steps=0), lr(T - 1, schedule,
                                                    warmup_steps=0)
  expected_first = dict(cosine=cosine(1 / T), linear=PEAK - (PEAK - MIN) / T,
                        constant=PEAK, wsd=PEAK)[schedule]
  np.testing.assert_allclose(first, expected_first, rtol=1e-6)
  assert first > 0
  np.testing.assert_allclose(last, PEAK if schedule == "constant" else MIN,
                             rtol=1e-6)


def test_wsd_limits_equal_linear_and_constant():
  steps = np.arange(T)
  # Decay over all T - W post-warmup updates is the linear schedule.
  np.testing.assert_allclose(
      lr(steps, "wsd", decay_fraction=(T - W) / T), lr(steps, "linear"),
      rtol=1e-6)
  # decay_fraction 0: no decay (a stable run to branch decays from).
  np.testing.assert_array_equal(lr(steps, "wsd", decay_fraction=0.0),
                                lr(steps, "constant"))


def test_monotone_after_warmup_and_clipped_past_the_end():
  for schedule in ("cosine", "linear", "wsd"):
    values = lr(np.arange(W - 1, T + 5), schedule)
    assert np.all(np.diff(values) <= 0), schedule
    assert values[-1] == values[T - W], schedule  # steps >= T stay at min


def test_jit_with_traced_hyperparameters_matches_eager_one_compile():
  traces = []

  @functools.partial(jax.jit, static_argnames="schedule")
  def jitted(step, peak_lr, warmup_steps, total_steps, min_lr_ratio,
             decay_fraction, schedule):
    traces.append(schedule)
    return schedules.learning_rate(
        step, schedule=schedule, peak_lr=peak_lr, warmup_steps=warmup_steps,
        total_steps=total_steps, min_lr_ratio=min_lr_ratio,
        decay_fraction=decay_fraction)

  steps = np.arange(0, 130, dtype=np.int32)
  for schedule in schedules.SCHEDULES:
    for peak, warmup, total in ((1e-3, 10, 110), (3e-4, 0, 90)):
      args = dict(peak_lr=peak, warmup_steps=warmup, total_steps=total,
                  min_lr_ratio=0.1, decay_fraction=0.25)
      # Equal up to float32 rounding: XLA fuses (and may contract a*b+c into
      # one FMA) under jit, op-by-op eager does not; cosine/constant are
      # bitwise equal here, linear/wsd within 3 ulp (about 3e-7 relative).
      np.testing.assert_array_max_ulp(
          np.asarray(jitted(steps, schedule=schedule, **args)),
          lr(steps, schedule, **args), maxulp=4)
  # Different numbers, one program per schedule name.
  assert sorted(traces) == sorted(schedules.SCHEDULES)


def test_unknown_schedule_names_the_field():
  with pytest.raises(ConfigError, match="schedule.name"):
    lr(0, "step")


def test_resolve_warmup():
  sched = default_config().schedule
  sched.warmup_steps, sched.warmup_fraction = -1, 0.05
  assert schedules.resolve_warmup(sched, 600) == 30
  assert schedules.resolve_warmup(sched, 10) == 1  # 0.5 rounds half up
  assert schedules.resolve_warmup(sched, 9) == 0  # 0.45 rounds down
  sched.warmup_steps = 7
  assert schedules.resolve_warmup(sched, 600) == 7
  sched.warmup_steps = 700
  with pytest.raises(ConfigError, match="schedule.warmup_steps"):
    schedules.resolve_warmup(sched, 600)
  sched.warmup_steps, sched.warmup_fraction = -1, 1.5
  with pytest.raises(ConfigError, match="schedule.warmup_fraction"):
    schedules.resolve_warmup(sched, 600)


def test_the_programs_hyperparameters_of_default_config():
  config = default_config()
  config.train.steps, config.optimizer.peak_lr = 600, 3e-3
  hp = program.build(config, sharding.make_mesh(config)).hp
  assert {k: float(v) for k, v in hp.items() if k in (
      "peak_lr", "warmup_steps", "total_steps", "min_lr_ratio",
      "decay_fraction")} == dict(peak_lr=pytest.approx(3e-3), warmup_steps=30,
                                 total_steps=600, min_lr_ratio=pytest.approx(0.1),
                                 decay_fraction=pytest.approx(0.2))


# --- WSD decay shapes (Hägele et al. 2024): first decay update s = T-K = 88
# (q = 1/K), last update s = T-1 = 109 (q = 1, lr = min); s = 87 is at peak.
SHAPE_FIRST = {
    "linear": PEAK - (PEAK - MIN) / K,
    "1-sqrt": PEAK - (PEAK - MIN) * math.sqrt(1 / K),
    "cosine": PEAK - (PEAK - MIN) * (1 - math.cos(math.pi / K)) / 2,
}
SHAPE_MID = {  # s = 98: q = 11/22 = 1/2
    "linear": PEAK - (PEAK - MIN) / 2,
    "1-sqrt": PEAK - (PEAK - MIN) * math.sqrt(0.5),
    "cosine": PEAK - (PEAK - MIN) / 2,
}


def check_decay_boundaries(lr_fn, shape):
  """Asserts the WSD boundary values of one shape for ``lr_fn(step)``."""
  np.testing.assert_allclose(lr_fn(87), PEAK, rtol=1e-6, err_msg="last stable")
  np.testing.assert_allclose(lr_fn(88), SHAPE_FIRST[shape], rtol=1e-6,
                             err_msg="first decay update")
  np.testing.assert_allclose(lr_fn(98), SHAPE_MID[shape], rtol=1e-6,
                             err_msg="mid decay")
  np.testing.assert_allclose(lr_fn(109), MIN, rtol=1e-6, err_msg="last = min")


@pytest.mark.parametrize("shape", schedules.DECAY_SHAPES)
def test_decay_shape_boundaries(shape):
  check_decay_boundaries(lambda s: lr(s, "wsd", decay_shape=shape), shape)
  values = lr(np.arange(W - 1, T + 3), "wsd", decay_shape=shape)
  assert np.all(np.diff(values) <= 0)  # monotone, then clipped at min
  assert values[-1] == values[T - W]


@pytest.mark.parametrize("shape", schedules.DECAY_SHAPES)
def test_decay_shape_boundaries_fail_on_a_broken_variant(shape):
  # Negative controls: the decay progress without its +1 (the first decay
  # update would still be at peak), and another shape's values.
  f = {"linear": lambda q: q, "1-sqrt": np.sqrt,
       "cosine": lambda q: (1 - np.cos(np.pi * q)) / 2}[shape]

  def late(step):
    q = np.clip((step - (T - K)) / K, 0, 1)
    return PEAK - (PEAK - MIN) * f(q)

  with pytest.raises(AssertionError):
    check_decay_boundaries(late, shape)
  other = next(o for o in schedules.DECAY_SHAPES if o != shape)
  with pytest.raises(AssertionError):
    check_decay_boundaries(lambda s: lr(s, "wsd", decay_shape=other), shape)


def test_linear_decay_shape_is_the_wsd_of_before():
  # The default shape computes exactly what WSD computed before the field.
  steps = np.arange(T)
  np.testing.assert_array_equal(lr(steps, "wsd"),
                                lr(steps, "wsd", decay_shape="linear"))
  k = np.floor(DECAY_FRACTION * T + 0.5)
  q = np.clip((steps - (T - k) + 1) / k, 0, 1).astype(np.float32)
  before = np.where(steps < W, np.float32(PEAK) * (steps + 1) / W,
                    np.float32(PEAK) - (np.float32(PEAK) - np.float32(MIN)) * q)
  np.testing.assert_allclose(lr(steps, "wsd"), before, rtol=1e-6)


def test_unknown_decay_shape_names_the_field():
  with pytest.raises(ConfigError, match="schedule.decay_shape"):
    lr(0, "wsd", decay_shape="step")
