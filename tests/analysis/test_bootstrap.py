"""Bootstrap over runs: counts, batched warm-started refits, intervals."""

import numpy as np
import pandas as pd
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


def test_multistart_leaves_the_warm_start_for_a_better_basin():
  # Double well f_k(x) = (x^2 - 1)^2 + w_k x: the full data (w = -0.3) has
  # its optimum at x ~ +1; resamples with w_k > 0 have theirs at x ~ -1,
  # which a warm start at +1 never reaches.
  w = np.array([-0.3, 0.3, 0.5, -0.1])

  def fg(x, rows):
    x0 = x[:, 0]
    wk = w[np.asarray(rows)]
    return ((x0 ** 2 - 1) ** 2 + wk * x0,
            (4 * x0 * (x0 ** 2 - 1) + wk)[:, None])

  x_full = np.array([1.0])
  starts = np.stack([np.tile(x_full, (4, 1)), np.full((4, 1), -1.5)], axis=1)
  res = bootstrap.multistart_refit(fg, starts)
  warm = bootstrap.batched_refit(fg, x_full, 4)
  assert np.all(warm[:, 0] > 0.8)  # the warm start stays in its well
  assert res["moved"].tolist() == [False, True, True, False]
  assert np.all(res["x"][[1, 2], 0] < -0.8)
  assert res["start"].tolist() == [0, 1, 1, 0]
  assert res["converged"].all()


def test_multistart_resamples_are_never_worse_than_the_warm_start():
  from analysis_synth import law_loss
  rng = np.random.default_rng(0)
  n = np.tile(np.geomspace(1e8, 5e8, 6), 2)
  d = np.repeat([2e9, 2e10], 6)
  loss = law_loss(n, d) * np.exp(rng.normal(0, 0.002, n.size))
  ln, ld, ll = np.log(n), np.log(d), np.log(loss)
  fit = chinchilla.fit_approach3(n, d, loss)
  counts = bootstrap.resample_counts(np.arange(n.size), 24, seed=1)
  fg = chinchilla.make_objective(ln, ld, ll, weights=counts)
  starts = bootstrap.resample_starts(
      fit.theta, chinchilla.make_objective(ln, ld, ll), 24,
      np.random.default_rng(2))
  assert starts.shape == (24, 1 + bootstrap.N_GRID_STARTS
                          + bootstrap.N_PERTURBED, 5)
  np.testing.assert_array_equal(starts[:, 0], np.tile(fit.theta, (24, 1)))
  assert len({tuple(r) for r in starts[:, -1]}) == 24  # perturbations differ
  multi = bootstrap.multistart_refit(fg, starts)
  warm = bootstrap.batched_refit(fg, fit.theta, 24, max_iter=1000)
  f_warm = np.array([fg(warm[i][None], np.array([i]))[0][0]
                     for i in range(24)])
  assert np.all(multi["f"] <= f_warm * (1 + 1e-9))
  # The reported objective is the resample's objective at the returned x.
  for i in range(24):
    assert fg(multi["x"][i][None], np.array([i]))[0][0] == pytest.approx(
        multi["f"][i], rel=1e-12)


def test_resamples_with_fewer_runs_than_parameters_fail():
  from analysis_synth import law_loss
  n = np.array([1e8, 3e8, 1e9, 3e9, 1e10, 3e10])
  d = np.array([1e10, 3e9, 1e11, 3e10, 1e9, 1e12])
  runs = pd.DataFrame(dict(run=list("abcdef"), N=n, D=d, C=6 * n * d,
                           loss=law_loss(n, d)))
  fit = chinchilla.fit_approach3(n, d, runs["loss"])
  out = bootstrap.run_bootstrap(dict(runs=runs, points=None,
                                     theta3=fit.theta, phi_mle=None,
                                     flops_model=allocation.SIX_ND,
                                     reference_flops=[1e22]), 40, seed=0)
  counts = bootstrap.resample_counts(runs["run"], 40, 0)
  distinct = (counts > 0).sum(axis=1)
  ok = np.isfinite(out["approach3.alpha"])
  assert not ok[distinct < 5].any()
  assert out["_n_ok"]["approach3"] == ok.sum() <= (distinct >= 5).sum()


def test_branches_of_one_stable_run_are_resampled_together(tmp_path):
  # Two sizes x (a stable run + 3 branches) + 2 independent runs; the stable
  # runs are left out of the fits, the branches drawn by stable run.
  from analysis import load
  rows = []
  for size in ("s", "t"):
    rows.append(dict(run=f"{size}_stable", branch_of="", params_total=1e4,
                     tokens=1e6, flops=6e10, eval_loss=3.0, status="finished"))
    for j in range(3):
      rows.append(dict(run=f"{size}_b{j}", branch_of=f"{size}_stable",
                       params_total=1e4, tokens=1e6 * (j + 1),
                       flops=6e10 * (j + 1), eval_loss=2.9 - 0.1 * j,
                       status="finished"))
  for j in range(2):
    rows.append(dict(run=f"indep{j}", branch_of="", params_total=2e4,
                     tokens=1e6, flops=1.2e11, eval_loss=2.8,
                     status="finished"))
  csv = tmp_path / "runs.csv"
  pd.DataFrame(rows).to_csv(csv, index=False)
  table = load.load_table(str(csv))
  assert sorted(table.runs["run"]) == sorted(
      [f"{s}_b{j}" for s in "st" for j in range(3)] + ["indep0", "indep1"])
  assert table.rejected == {"stable runs of WSD branches (not decayed; their "
                            "branches are the runs)": 2}
  assert table.columns["unit"] == "branch_of"
  units = table.runs.set_index("run")["unit"]
  assert units["s_b0"] == units["s_b2"] == "s_stable"
  assert units["indep0"] == "indep0"  # no stable run: its own unit
  counts = bootstrap.resample_counts(table.runs["unit"], 200, seed=0)
  runs = list(table.runs["run"])
  b = [runs.index(f"s_b{j}") for j in range(3)]
  assert np.all(counts[:, b[0]] == counts[:, b[1]])
  assert np.all(counts[:, b[0]] == counts[:, b[2]])
  assert np.all(counts.sum(axis=1) % 1 == 0)
  # 4 units per resample (2 stable runs, 2 independent runs).
  unit_draws = counts[:, [b[0], runs.index("t_b0"), runs.index("indep0"),
                          runs.index("indep1")]].sum(axis=1)
  assert np.all(unit_draws == 4)
  # Negative control: resampled by run, the branches move apart.
  by_run = bootstrap.resample_counts(table.runs["run"], 200, seed=0)
  assert np.any(by_run[:, b[0]] != by_run[:, b[1]])
  # Explicitly by run (any column works): no grouping.
  table2 = load.load_table(str(csv), resample_by="run")
  assert (table2.runs["unit"] == table2.runs["run"]).all()
