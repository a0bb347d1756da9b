"""What the data cannot identify is said, never printed as confident numbers."""

import numpy as np

from analysis import chinchilla

from analysis_synth import law_loss


def test_same_d_warns_beta_and_b_not_identifiable():
  # Issue 4 "Done when" 5.
  n = np.geomspace(1e7, 1e10, 20)
  d = np.full(n.size, 2e10)
  fit = chinchilla.fit_approach3(n, d, law_loss(n, d))
  assert any("same D" in w and "B and beta are not identifiable" in w
             for w in fit.warnings)
  assert not fit.identifiable["B"] and not fit.identifiable["beta"]
  assert not fit.identifiable["E"]  # E + B/D^β is one constant
  assert fit.identifiable["alpha"] and fit.identifiable["A"]


def test_same_n_warns_alpha_and_a_not_identifiable():
  d = np.geomspace(1e9, 1e12, 20)
  n = np.full(d.size, 1e9)
  warnings, ok = chinchilla.identifiability(n, d)
  assert any("same N" in w for w in warnings)
  assert not ok["A"] and not ok["alpha"] and ok["beta"]


def test_too_few_runs_and_grid_edge_warn():
  n = np.array([1e8, 3e8, 1e9, 3e9])
  d = np.array([1e10, 3e9, 1e10, 3e9])
  warnings, ok = chinchilla.identifiability(
      n, d, theta=np.array([6.0, 30.0, 0.5, 0.3, 2.4]))
  text = " ".join(warnings)
  assert "too few runs" in text
  assert "b = 30" in text and "beta = 2.4" in text
  assert "alpha" not in text.replace("beta", "")


def test_clean_design_has_no_warnings(synthetic_runs):
  r = synthetic_runs
  warnings, ok = chinchilla.identifiability(r["N"], r["D"],
                                            np.array([6, 6, 0.5, 0.34, 0.28]))
  assert warnings == [] and all(ok.values())
