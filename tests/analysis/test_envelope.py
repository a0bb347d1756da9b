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
