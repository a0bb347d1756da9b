"""Bootstrap over runs: counts, batched warm-started refits, intervals."""

import numpy as np
import pytest

from analysis import allocation, bootstrap, chinchilla, multistart


def test_resample_counts_move_runs_together():
  run_ids = np.array(["a", "a", "b", "c", "c", "c"])
  counts = bootstrap.resample_counts(run_ids, 50, seed=3)
  assert counts.shape == (50, 6)
  # 3 runs drawn per resample; rows of one run share its count.
  per_run = counts[:, [0, 2, 3]]
  assert np.all(per_run.sum(axis=1) == 3)
  assert np.all(counts[:, 0] == counts[:, 1])
  assert np.all(counts[:, 3] == counts[:, 5])
  np.testing.assert_array_equal(counts,
                                bootstrap.resample_counts(run_ids, 50, seed=3))


def test_percentile_interval():
  lo, hi, n = bootstrap.interval(np.r_[np.arange(101.0), np.nan], 0.9)
  assert lo == pytest.approx(5.0) and hi == pytest.approx(95.0) and n == 101


def test_batched_weighted_refit_equals_one_by_one(synthetic_runs):
  r = synthetic_runs
  ln, ld, ll = (np.log(r[k].to_numpy()) for k in ("N", "D", "loss"))
  fit = chinchilla.fit_approach3(r["N"], r["D"], r["loss"])
  counts = bootstrap.resample_counts(r["run"], 3, seed=0)
  fg = chinchilla.make_objective(ln, ld, ll, weights=counts)
  batched = bootstrap.batched_refit(fg, fit.theta, 3)
  for k in range(3):
    one = multistart.polish(fg, fit.theta, row=k)
    np.testing.assert_allclose(batched[k], one.x, atol=1e-5)
    # ...and the weighted objective is the sum over duplicated rows.
    rows = np.repeat(np.arange(len(r)), counts[k].astype(int))
    fg_dup = chinchilla.make_objective(ln[rows], ld[rows], ll[rows])
    assert fg(batched[k][None], np.array([k]))[0][0] == pytest.approx(
        fg_dup(batched[k][None])[0][0], rel=1e-12)


def test_run_bootstrap_gives_every_quantity(synthetic_runs):
  r = synthetic_runs
  fit = chinchilla.fit_approach3(r["N"], r["D"], r["loss"])
  pts = r[["run", "N", "D", "C", "loss"]]
  ctx = dict(runs=r, points=pts, theta3=fit.theta, phi_mle=None,
             flops_model=allocation.SIX_ND, reference_flops=[1e22],
             grid_decades=0.1, frontier=None, delta=1e-3,
             c_grid=np.geomspace(1e18, 1e22, 7))
  out = bootstrap.run_bootstrap(ctx, 6, seed=1)
  for key in ("approach3.alpha", "allocation.a", "allocation.N_opt@1e+22",
              "approach2.a", "approach1.a"):
    assert out[key].shape == (6,) and np.isfinite(out[key]).all(), key
  np.testing.assert_allclose(out["allocation.a"],
                             out["approach3.beta"] / (out["approach3.alpha"]
                                                      + out["approach3.beta"]))
  assert out["_lines"]["approach3"].shape == (6, 2, 7)
  # Resamples scatter around the full-data fit.
  assert np.min(out["approach3.alpha"]) < fit.params["alpha"] < np.max(
      out["approach3.alpha"])
