"""The flags of analysis.identify: spread thresholds and interval widths."""

import numpy as np
import pytest

from analysis import identify


def test_count_distinct_merges_flop_noise_not_designed_steps():
  budget = 1e19 * (1 + np.array([0.0, 4e-4, -8e-4, 1e-3]))  # 0.1% noise
  assert identify.count_distinct(budget) == 1
  assert identify.count_distinct(np.r_[budget, 1.2e19, 2e19]) == 3
  assert identify.count_distinct([1.0, 1.02, 1.0404]) == 3  # 2% steps
  assert identify.count_distinct([1.0, np.nan, -1.0, 0.0]) == 1
  assert identify.count_distinct([]) == 0


def test_spread_reasons_thresholds():
  n = np.geomspace(1e8, 1e9, 12)
  d = np.tile([1e9, 1e10, 1e11], 4)
  assert identify.spread_reasons("approach3", n=n, d=d) == []
  two_d = identify.spread_reasons("approach3", n=n, d=np.tile([1e9, 1e10], 6))
  assert two_d and "only 2 distinct D" in two_d[0]
  few = identify.spread_reasons("approach3", n=n[:3], d=d[:3])
  assert any("only 3 runs" in r for r in few)
  line = identify.spread_reasons("approach3", n=n, d=1e19 / (6 * n))
  assert any("collinear" in r for r in line)
  assert identify.spread_reasons("approach2", n_budgets=3) == []
  assert "only 2 usable" in identify.spread_reasons("approach2",
                                                    n_budgets=2)[0]
  assert identify.spread_reasons("frontier", c=[1e18, 1e19, 1e20]) != []
  assert identify.spread_reasons("frontier", c=[1e18, 1e19, 1e20, 1e21]) == []
  with pytest.raises(KeyError):
    identify.spread_reasons("approach9")


@pytest.mark.parametrize("name,value,ci,expect", [
    ("alpha", 0.35, [0.32, 0.37], None),
    ("alpha", 0.35, [0.10, 0.60], "half-width 0.25 > 0.15"),
    ("gamma", 0.05, [0.01, 0.08], "half-width 0.035 > 50% of the value"),
    ("a", 0.2, [-0.1, 0.5], "includes 0"),
    ("A", 478.0, [306.0, 748.0], None),
    ("A", 1377.0, [27.6, 2.4e8], "spans a factor 8.7e+06"),
    ("E", 1.82, [1.78, 1.87], None),
    ("E", 0.78, [5e-24, 1.69], "reaches the bound E → 0"),
    ("E", 5.6e-29, [5.6e-29, 5.6e-29], "at its bound 0"),
    ("G", 0.11, [0.11, 0.11], "zero-width interval"),
])
def test_check_coefficient(name, value, ci, expect):
  flag = identify.check_coefficient(name, value, ci, loss_min=2.0)
  if expect is None:
    assert flag is None
  else:
    assert flag is not None and expect in flag, flag


def test_assess_sets_flags_and_removes_zero_width_intervals():
  coefs = dict(a=dict(value=0.5, ci=[0.5, 0.5]),
               b=dict(value=0.5, ci=[0.45, 0.55]))
  out = identify.assess(coefs, n_ok=55, n_requested=100)
  assert not out["identifiable"] and out["unreliable"]
  assert coefs["a"]["ci"] is None and coefs["a"]["ci_zero_width"]
  assert coefs["b"]["flag"] is None and coefs["b"]["ci"] == [0.45, 0.55]
  assert "only 55 of 100 bootstrap resamples succeeded" in out["reasons"][-1]
  assert out["bootstrap"] == dict(requested=100, succeeded=55,
                                  success_rate=0.55)
  ok = identify.assess(dict(b=dict(value=0.5, ci=[0.45, 0.55])), n_ok=80,
                       n_requested=100)
  assert ok["identifiable"] and not ok["unreliable"] and ok["reasons"] == []
  text = identify.flag_text(out)
  assert text.startswith("not identifiable and unreliable: a: zero-width")


@pytest.mark.parametrize("kind,value,ci,scale,expect", [
    ("slope", -5.0, [-5.6, -4.5], None, None),
    ("slope", -5.0, [-9.0, -1.0], None, "> 50% of the value's magnitude"),
    ("slope", -5.0, [-9.0, 0.5], None, "includes 0"),
    ("location", 1.3, [1.25, 1.36], 1.9, None),
    ("location", 1.3, [-0.4, 2.7], 1.9, "> 50% of the data's range 1.9"),
    ("bounded", 0.001, [1e-9, 0.3], None, None),
    ("bounded", 0.25, [0.25, 0.25], None, "zero-width interval"),
])
def test_check_coefficient_sigmoid_kinds(kind, value, ci, scale, expect):
  flag = identify.check_coefficient("x", value, ci, kind=kind, scale=scale)
  if expect is None:
    assert flag is None
  else:
    assert flag is not None and expect in flag, flag


def test_assess_takes_kinds_per_coefficient():
  coefs = dict(k=dict(value=-5.0, ci=[-5.6, -4.5]),
               L0=dict(value=1.3, ci=[1.25, 1.36]))
  ok = identify.assess(coefs, kinds=dict(k="slope", L0=("location", 1.9)))
  assert ok["identifiable"] and coefs["k"]["flag"] is None
  # Negative control: by default k is read as a positive coefficient and
  # its negative interval "reaches 0".
  default = identify.assess(dict(k=dict(value=-5.0, ci=[-5.6, -4.5])))
  assert not default["identifiable"] and "reaches 0" in default["reasons"][0]
