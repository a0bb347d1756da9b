"""Approach 1: envelope (Pareto front) of loss versus FLOPs, valid points."""

import numpy as np
import pandas as pd
import pytest

from analysis import envelope


def test_pareto_front_hand_example():
  c = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 5.0])
  loss = np.array([5.0, 6.0, 4.0, 4.0, 3.0, 2.0])
  assert envelope.pareto_front(c, loss).tolist() == [0, 2, 5]


def test_approach1_recovers_power_laws_on_the_envelope():
  # Runs at N on a grid; the envelope of L = E + A/N^α + B/D^β over curves.
  law = dict(E=1.7, A=400.0, B=400.0, alpha=0.34, beta=0.34)
  rows, curves = [], []
  for i, n in enumerate(np.geomspace(1e7, 1e10, 16)):
    for j, d in enumerate(np.geomspace(1e6, 1e12, 80)):
      loss = law["E"] + law["A"] * n ** -0.34 + law["B"] * d ** -0.34
      curves.append(dict(run=f"r{i}", N=n, D=d, C=6 * n * d, loss=loss))
    rows.append(curves[-1])
  runs, curves = pd.DataFrame(rows), pd.DataFrame(curves)
  pts, note = envelope.valid_points(runs, curves, "all")
  assert "not end-of-training" in note
  res = envelope.fit_approach1(pts)
  assert res["identifiable"]
  # With α = β, N_opt ∝ C^0.5 (Hoffmann et al. eq. 4); the discrete N grid
  # only approximates it. One point per interior run on the envelope.
  assert res["a"]["exponent"] == pytest.approx(0.5, abs=0.01)
  assert res["n_fit_points"] == 14
  assert res["a"]["exponent"] + res["b"]["exponent"] == pytest.approx(1.0,
                                                                      abs=1e-9)


def test_valid_points_respect_the_schedule():
  runs = pd.DataFrame(dict(run=["a", "b"], N=[1e7, 1e8], D=[1e9, 1e9],
                           C=[6e16, 6e17], loss=[3.0, 2.8],
                           schedule=["cosine", "constant"]))
  curves = pd.DataFrame(dict(run=["a", "a", "b", "b"], step=[1, 2, 1, 2],
                             N=[1e7, 1e7, 1e8, 1e8], D=[5e8, 1e9, 5e8, 1e9],
                             C=[3e16, 6e16, 3e17, 6e17],
                             loss=[3.5, 3.0, 3.2, 2.8]))
  auto, note = envelope.valid_points(runs, curves, "auto")
  assert len(auto) == 3  # two finals + b's intermediate point only
  assert set(auto.loc[~auto["final"], "run"]) == {"b"}
  final, _ = envelope.valid_points(runs.drop(columns="schedule"), curves)
  assert len(final) == 2 and final["final"].all()
  allp, _ = envelope.valid_points(runs, curves, "all")
  assert len(allp) == 4
  with pytest.raises(ValueError, match="curve_points"):
    envelope.valid_points(runs, curves, "some")


def test_approach1_not_identifiable_with_two_sizes():
  pts = pd.DataFrame(dict(run=["a", "b"], N=[1e7, 1e8], D=[1e9, 1e9],
                          C=[6e16, 6e17], loss=[3.0, 2.8]))
  res = envelope.fit_approach1(pts)
  assert not res["identifiable"] and res["a"] is None
  assert "not identifiable" in res["warnings"][0]


def _flop_noise_sweep(seed=0):
  """3 budgets x 7 sizes; within a budget the exact FLOPs differ by 0.1%,
  ordered so that the run with the fewest FLOPs is each budget's worst."""
  rng = np.random.default_rng(seed)
  rows = []
  for cb, n_opt in ((1e19, 3e8), (1e20, 9e8), (1e21, 2.7e9)):
    n = n_opt * np.logspace(-0.6, 0.6, 7)
    loss = (3.0 - 0.15 * np.log10(cb / 1e19) + 0.05 * np.log(n / n_opt) ** 2
            + rng.normal(0, 1e-3, n.size))
    c = cb * (1 + 1e-3 * np.argsort(np.argsort(-loss)) / 7)  # worst first
    for i in range(n.size):
      rows.append(dict(run=f"r{len(rows)}", N=n[i], D=c[i] / (6 * n[i]),
                       C=c[i], loss=loss[i], budget=cb))
  return pd.DataFrame(rows)


def test_finals_take_each_budgets_best_run_not_the_flop_noise_order():
  from analysis import isoflop
  df = _flop_noise_sweep()
  labels, _, _ = isoflop.group_budgets(df["C"], df["budget"])
  res = envelope.fit_approach1(df, groups=labels)
  best = df.loc[df.groupby("budget")["loss"].idxmin()]
  assert res["_front"]["run"].tolist() == best["run"].tolist()
  assert res["identifiable"]
  assert "best run per isoFLOP budget" in res["method"]
  # The best runs are the central sizes, N_opt ∝ C^0.477 here.
  assert res["a"]["exponent"] == pytest.approx(
      np.log(2.7e9 / 3e8) / np.log(100), abs=1e-9)
  # Negative control: the running minimum over the raw points sorted by
  # exact FLOPs (the old envelope) keeps each budget's worst run first.
  raw = envelope.pareto_front(df["C"], df["loss"])
  worst = df.loc[df.groupby("budget")["loss"].idxmax(), "run"]
  assert set(worst) <= set(df["run"].iloc[raw])
  old = envelope.fit_approach1(df)  # no budgets given: every point alone
  assert old["_front"]["run"].tolist() != best["run"].tolist()


def test_best_per_group_flags_edge_budgets():
  pts = pd.DataFrame(dict(run=list("abcdef"), N=[1, 2, 3, 1, 2, 3.0],
                          D=[1.0] * 6, C=[10, 10, 10, 20, 20, 20.0],
                          loss=[3.0, 2.9, 2.95, 2.5, 2.6, 2.7]))
  best, caveats = envelope.best_per_group(pts, np.array([0, 0, 0, 1, 1, 1]))
  assert best["run"].tolist() == ["b", "d"]
  assert best["edge"].tolist() == [False, True]
  assert len(caveats) == 1 and "smallest size" in caveats[0]


def test_curve_envelope_is_the_minimum_of_interpolated_curves():
  # Two straight curves in (log C, log L) crossing below C = 1e19.
  curves = pd.DataFrame(dict(
      run=["s", "s", "b", "b"], N=[1e8, 1e8, 1e9, 1e9],
      D=[1e9, 1e11, 1e8, 1e10], C=[1e18, 1e20, 1e18, 1e20],
      loss=[3.0, 2.0, 4.0, 1.4]))
  env = envelope.curve_envelope(curves, grid_decades=0.5)
  assert env["C"].tolist() == pytest.approx([1e18, 10 ** 18.5, 1e19,
                                             10 ** 19.5, 1e20])
  # log L is linear in log C per run: s wins below the crossing, b above.
  ls = np.exp(np.interp([18, 18.5, 19, 19.5, 20], [18, 20],
                        np.log([3.0, 2.0])))
  lb = np.exp(np.interp([18, 18.5, 19, 19.5, 20], [18, 20],
                        np.log([4.0, 1.4])))
  np.testing.assert_allclose(env["loss"], np.minimum(ls, lb), rtol=1e-12)
  assert env["run"].tolist() == ["s", "s", "b", "b", "b"]
