"""Approach 2: robust isoFLOP parabolas, flags, grouping."""

import numpy as np
import pytest

from analysis import isoflop


def _parabola_data(n_pts=12, noise=0.0, seed=0):
  rng = np.random.default_rng(seed)
  n = np.geomspace(1e8, 1e10, n_pts)
  x = np.log(n) - np.log(1e9)
  loss = 2.5 + 0.05 * x ** 2 + rng.normal(0, noise, n.size)
  return n, loss


def test_parabola_vertex_exact_on_clean_data():
  n, loss = _parabola_data()
  par = isoflop.fit_parabola(n, loss)
  assert np.exp(par.log_n_opt) == pytest.approx(1e9, rel=1e-9)
  assert par.coef[2] == pytest.approx(0.05, rel=1e-9)


def test_parabola_is_robust_to_one_outlier():
  n, loss = _parabola_data(noise=0.002, seed=1)
  bad = loss.copy()
  bad[2] += 0.3  # one diverged run
  robust = isoflop.fit_parabola(n, bad)
  clean = isoflop.fit_parabola(n, loss)
  assert abs(robust.log_n_opt - clean.log_n_opt) < 0.05
  assert robust.weights[2] < 0.1
  # Ordinary least squares is dragged away by the same outlier.
  x = np.log(n)
  c2, c1, _ = np.polyfit(x, bad, 2)
  assert abs(-c1 / (2 * c2) - clean.log_n_opt) > 0.1


def test_budget_flags_are_left_out():
  n = np.geomspace(1e8, 1e10, 8)
  d = 1e19 / (6 * n)
  x = np.log(n) - np.log(1e9)
  c = np.full(n.size, 1e19)
  cases = {
      "no interior minimum": 3.0 - 0.3 * x + 0.02 * x ** 2,  # vertex beyond
      "curvature not positive": 2.5 - 0.05 * x ** 2,   # concave
      # c2 = 0.004 > 0 but its standard error is 0.0044.
      "curvature not clearly positive": 2.5 + 0.004 * x ** 2 + 0.02 * np.array(
          [1, -1, 1, -1, 1, -1, 1, -1]),
  }
  for flag, loss in cases.items():
    res = isoflop.fit_approach2(n, d, c, loss)
    (b,) = res["budgets"]
    assert not b["included"]
    assert any(f.startswith(flag) for f in b["flags"]), (flag, b["flags"])
    assert not res["identifiable"]
    assert res["a"] is None
  few = isoflop.fit_approach2(n[:3], d[:3], c[:3], (2.5 + 0.05 * x ** 2)[:3])
  assert few["budgets"][0]["flags"][0].startswith("too few points")


def test_grouping_by_budget_column_log_grid_and_nominal():
  c = np.array([5.9e18, 6.1e18, 1.0e19, 1.02e19, 3.1e19, 2.2e20])
  labels, values, method = isoflop.group_budgets(c, grid_decades=0.1)
  assert labels.tolist() == [0, 0, 1, 1, 2, 3]
  assert "rounded" in method
  budget = np.array([6e18, 6e18, 1e19, 1e19, 3e19, 2e20])
  labels, values, method = isoflop.group_budgets(c, budget)
  assert values.tolist() == [6e18, 1e19, 3e19, 2e20]
  assert method == "budget column"
  labels, _, _ = isoflop.group_budgets(c, np.r_[budget[:5], np.nan])
  assert labels.tolist() == [0, 0, 1, 1, 2, -1]  # no budget: in no group
  labels, values, _ = isoflop.group_budgets(c, nominal=[6e18, 1e19, 3e19])
  assert labels.tolist() == [0, 0, 1, 1, 2, -1]  # 2.2e20 is in no budget


def test_approach2_power_law_on_exact_minima():
  # Parabolas whose vertices follow N_opt = 0.1·C^0.5 exactly.
  rows = []
  for cb in np.geomspace(1e18, 1e21, 5):
    nopt = 0.1 * cb ** 0.5
    for n in nopt * np.logspace(-0.8, 0.8, 9):
      rows.append((n, cb / (6 * n), cb,
                   3.0 - 0.1 * np.log10(cb) + 0.04 * np.log(n / nopt) ** 2))
  n, d, c, loss = map(np.array, zip(*rows))
  res = isoflop.fit_approach2(n, d, c, loss)
  assert res["identifiable"]
  assert res["a"]["exponent"] == pytest.approx(0.5, abs=1e-9)
  assert res["b"]["exponent"] == pytest.approx(0.5, abs=1e-9)
  assert res["a"]["coef"] == pytest.approx(0.1, rel=1e-8)
