"""Approach 3 (Hoffmann et al. 2022 §3.3) on Epoch AI's and synthetic data."""

import numpy as np
import pytest

from analysis import allocation, chinchilla, isoflop, multistart

from analysis_synth import TRUE_LAW


def test_epoch_points_are_the_240_of_besiroglu(epoch_points):
  assert len(epoch_points) == 240
  # D = C/(6N) exactly (no token column in the CSV).
  np.testing.assert_allclose(6 * epoch_points["N"] * epoch_points["D"],
                             epoch_points["C"], rtol=1e-12)


def test_epoch_huber_sum_replication_values(epoch_fit):
  # Issue 4 "Done when" 1: Huber-sum replication values (not the headline).
  p = epoch_fit.params
  assert p["E"] == pytest.approx(1.8172, abs=1e-3)
  assert p["alpha"] == pytest.approx(0.3473, abs=2e-3)
  assert p["beta"] == pytest.approx(0.3672, abs=2e-3)
  assert abs(np.log(p["A"]) - np.log(477.8)) < 0.01
  assert abs(np.log(p["B"]) - np.log(2143.0)) < 0.01
  assert epoch_fit.objective == pytest.approx(1.01827e-3, rel=1e-5)
  assert epoch_fit.n_starts == 4500
  assert epoch_fit.warnings == []


def test_start_grid_is_chinchillas():
  g = chinchilla.start_grid()
  assert g.shape == (4500, 5)
  assert sorted(set(g[:, 3])) == [0.0, 0.5, 1.0, 1.5, 2.0]
  assert sorted(set(g[:, 2])) == [-1.0, -0.5, 0.0, 0.5, 1.0]
  assert sorted(set(g[:, 0])) == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0]


def test_gradient_matches_central_differences(epoch_points):
  r = epoch_points
  fg = chinchilla.make_objective(np.log(r["N"]), np.log(r["D"]),
                                 np.log(r["loss"]))
  x = np.array([[6.0, 7.5, 0.6, 0.35, 0.36], [5.0, 5.0, 0.0, 0.3, 0.3],
                [3.0, 8.0, 0.2, 0.2, 0.4]])
  _, g = fg(x)
  for j in range(5):
    e = np.zeros(5)
    e[j] = 1e-7
    num = (fg(x + e)[0] - fg(x - e)[0]) / 2e-7
    np.testing.assert_allclose(g[:, j], num, rtol=1e-5, atol=1e-9)


def test_objective_matches_direct_formula(epoch_points):
  r = epoch_points
  theta = np.array([6.1, 7.7, 0.6, 0.34, 0.37])
  fg = chinchilla.make_objective(np.log(r["N"]), np.log(r["D"]),
                                 np.log(r["loss"]))
  p = chinchilla.params_from_theta(theta)
  resid = np.log(chinchilla.predict_loss(p, r["N"], r["D"])) - np.log(r["loss"])
  direct = np.sum(np.where(np.abs(resid) <= 1e-3, 0.5 * resid ** 2,
                           1e-3 * (np.abs(resid) - 0.5e-3)))
  assert fg(theta[None])[0][0] == pytest.approx(direct, rel=1e-12)


def test_synthetic_recovers_allocation_and_is_scale_free(synthetic_runs):
  # Issue 4 "Done when" 3.
  r = synthetic_runs
  a_true = TRUE_LAW["beta"] / (TRUE_LAW["alpha"] + TRUE_LAW["beta"])
  fit = chinchilla.fit_approach3(r["N"], r["D"], r["loss"])
  a3 = allocation.closed_form(fit.params)["a"]
  assert abs(a3 - a_true) < 0.01
  a2 = isoflop.fit_approach2(r["N"], r["D"], r["C"], r["loss"], r["budget"])
  assert a2["identifiable"]
  assert all(b["included"] for b in a2["budgets"])
  assert abs(a2["a"]["exponent"] - a_true) < 0.02
  # Same optimum whether the Huber objective is summed, averaged or x1e3.
  for reduction, scale in (("mean", 1.0), ("sum", 1e3), ("mean", 1e3)):
    other = chinchilla.fit_approach3(r["N"], r["D"], r["loss"],
                                     reduction=reduction, scale=scale)
    np.testing.assert_allclose(other.theta, fit.theta, rtol=0, atol=2e-6)
    expect = fit.objective * scale / (len(r) if reduction == "mean" else 1)
    assert other.objective == pytest.approx(expect, rel=1e-9)


def test_halving_reaches_the_optimum_of_every_start(synthetic_runs):
  # The successive-halving schedule against running all 4,500 starts fully.
  r = synthetic_runs.iloc[::2]  # 64 points keep this quick
  fg = chinchilla.make_objective(np.log(r["N"]), np.log(r["D"]),
                                 np.log(r["loss"]))
  grid = chinchilla.start_grid()
  full = multistart.multistart_minimize(fg, grid, halving=(), max_iter=300)
  fast = multistart.multistart_minimize(fg, grid)
  assert fast.fun == pytest.approx(full.fun, rel=1e-10)
  np.testing.assert_allclose(fast.x, full.x, atol=1e-5)
  assert fast.n_evals < full.n_evals / 3


def test_batched_lbfgs_solves_rosenbrock_from_every_start():
  def fg(x, rows=None):
    a, b = x[:, 0], x[:, 1]
    f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    g = np.stack([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)], 1)
    return f, g

  starts = np.array([[-1.2, 1.0], [2.0, -1.0], [0.0, 0.0], [-3.0, 5.0]])
  st = multistart.init_state(fg, starts)
  st = multistart.lbfgs_iterations(fg, st, 1000, rel_tol=0.0)
  np.testing.assert_allclose(st.x, np.ones_like(starts), atol=1e-6)
