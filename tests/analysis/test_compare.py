"""analysis.compare: seed means and errors, Welch tests, Holm's correction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis import compare


def _table(values: dict) -> pd.DataFrame:
  rows = []
  for (group, budget), seeds in values.items():
    for seed, v in enumerate(seeds):
      rows.append(dict(group=group, budget=budget, seed=seed, status="finished",
                       source_flops=budget * 1.001, test_accuracy=v))
  rows.append(dict(group="a", budget=1e11, seed=9, status="failed",
                   source_flops=1e11, test_accuracy=0.0))  # never counted
  return pd.DataFrame(rows)


def test_holm_by_hand():
  # sorted 0.01, 0.03, 0.04 -> 3*0.01, max(., 2*0.03), max(., 1*0.04)
  np.testing.assert_allclose(compare.holm([0.01, 0.04, 0.03]),
                             [0.03, 0.06, 0.06])
  out = compare.holm([0.5, math.nan, 0.2])
  assert math.isnan(out[1])
  np.testing.assert_allclose(out[[0, 2]], [0.5, 0.4])
  assert compare.holm([0.9, 0.8])[0] == 1.0  # capped at 1


def test_cells_mean_se_over_finished_seeds():
  cells = compare.cells(_table({("a", 1e11): [0.5, 0.6, 0.7],
                                ("b", 1e11): [0.4]}), "test_accuracy")
  a = cells[cells["group"] == "a"].iloc[0]
  assert a["n"] == 3 and a["mean"] == pytest.approx(0.6)
  assert a["sd"] == pytest.approx(0.1)
  assert a["se"] == pytest.approx(0.1 / math.sqrt(3))
  assert a["x_mean_flops"] == pytest.approx(1.001e11)
  b = cells[cells["group"] == "b"].iloc[0]
  assert b["n"] == 1 and math.isnan(b["se"])


def test_welch_by_hand_and_distinguishable_only_when_separated():
  a, b = [0.70, 0.72, 0.71], [0.50, 0.53, 0.52]
  c = [0.69, 0.74, 0.66]  # overlaps a: the negative control
  pairs = compare.pairwise(_table({("a", 1e11): a, ("b", 1e11): b,
                                   ("c", 1e11): c}), "test_accuracy")
  by = {(p["better"], p["worse"]): p for p in pairs}
  ab = by[("a", "b")]
  va, vb = np.var(a, ddof=1) / 3, np.var(b, ddof=1) / 3
  assert ab["t"] == pytest.approx((np.mean(a) - np.mean(b)) /
                                  math.sqrt(va + vb))
  assert ab["dof"] == pytest.approx((va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2))
  assert ab["diff"] == pytest.approx(np.mean(a) - np.mean(b))
  assert ab["distinguishable"]
  np.testing.assert_allclose([p["p_holm"] for p in pairs],
                             compare.holm([p["p"] for p in pairs]))
  assert not by[("a", "c")]["distinguishable"]
  assert all(p["p_holm"] >= p["p"] for p in pairs)
  # lower is better: the order flips, the test does not
  low = compare.pairwise(_table({("a", 1e11): a, ("b", 1e11): b}),
                         "test_accuracy", higher_is_better=False)
  assert (low[0]["better"], low[0]["worse"]) == ("b", "a")
  assert low[0]["p"] == pytest.approx(ab["p"])


def test_single_seeds_are_not_testable():
  pairs = compare.pairwise(_table({("a", 1e11): [0.9], ("b", 1e11): [0.1]}),
                           "test_accuracy")
  assert pairs[0]["testable"] is False and not pairs[0]["distinguishable"]
  text = compare.sentence(pairs, lambda x: f"C = {x:.3g}")
  assert text == "at C = 1e+11: no pair of the 1 is distinguishable, 1 not testable"


def test_ranking_per_budget():
  cells = compare.cells(_table({("a", 1e11): [0.5, 0.6], ("b", 1e11): [0.7, 0.8],
                                ("a", 3e11): [0.9, 0.9]}), "test_accuracy")
  assert compare.ranking(cells) == {1e11: ["b", "a"], 3e11: ["a"]}
  assert compare.ranking(cells, higher_is_better=False)[1e11] == ["a", "b"]


def test_test_split_sampling_error_enters_and_does_not_shrink_with_seeds():
  # five seeds that agree to the example: no seed spread at all
  table = _table({("a", 1e11): [0.625] * 5, ("b", 1e11): [0.604] * 5,
                  ("c", 1e11): [0.25] * 5})
  table["test_accuracy_se"] = np.sqrt(table["test_accuracy"] *
                                      (1 - table["test_accuracy"]) / 48)
  cells = compare.cells(table, "test_accuracy").set_index("group")
  s = math.sqrt(0.625 * 0.375 / 48)
  assert cells.loc["a", "se"] == 0.0
  assert cells.loc["a", "se_total"] == pytest.approx(s)  # not s / sqrt(5)
  pairs = {(p["better"], p["worse"]): p
           for p in compare.pairwise(table, "test_accuracy")}
  ab, ac = pairs[("a", "b")], pairs[("a", "c")]
  assert ab["test"] == "z" and ab["testable"]
  z = (0.625 - 0.604) / math.hypot(s, math.sqrt(0.604 * 0.396 / 48))
  assert ab["t"] == pytest.approx(z)
  assert ab["p"] == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(z / math.sqrt(2)))))
  # one example of 48 apart is not distinguishable; 18 examples apart is
  assert not ab["distinguishable"] and ac["distinguishable"]
  # the negative control: seeds alone (no sampling column) call it
  seeds_only = _table({("a", 1e11): [0.625, 0.625, 0.646],
                       ("b", 1e11): [0.604, 0.604, 0.583]})
  assert compare.pairwise(seeds_only, "test_accuracy")[0]["test"] == "welch"
