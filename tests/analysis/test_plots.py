"""Plot helpers: readable ticks on short log axes, budget labels."""

import numpy as np
import pytest

from analysis import plots


@pytest.mark.parametrize("lo,hi", [(1.88, 2.46), (1.2e11, 5e11),
                                   (9e3, 1.05e5), (2.0, 5.2), (1e18, 3e22)])
def test_nice_log_ticks_are_few_round_and_inside(lo, hi):
  ticks = plots.nice_log_ticks(lo, hi)
  assert 2 <= len(ticks) <= 6, ticks
  assert all(lo <= t <= hi for t in ticks)
  assert len(set(plots._flops_fmt(t) for t in ticks)) == len(ticks)
  # Round: at most 2 significant digits.
  assert all(float(f"{t:.2g}") == pytest.approx(t, rel=1e-12) for t in ticks)


def test_nice_log_ticks_empty_on_bad_range():
  assert plots.nice_log_ticks(0.0, 1.0) == []
  assert plots.nice_log_ticks(2.0, 1.0) == []


def test_flops_format_names_budgets_compactly():
  assert [plots._flops_fmt(v) for v in (1.2e11, 2.5e11, 5e11, 300.0,
                                        25000.0)] == ["1.2e11", "2.5e11",
                                                      "5e11", "300", "2.5e4"]
  assert np.isfinite(float(plots._flops_fmt(6.3e18).replace("e", "e+")))
