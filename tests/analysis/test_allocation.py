"""Compute-optimal allocation (Hoffmann et al. 2022 eq. 4), the FLOP model."""

import numpy as np
import pytest

from analysis import allocation, chinchilla


def test_closed_form_from_chinchillas_unrounded_parameters():
  # Issue 4 "Done when" 2.
  cf = allocation.closed_form(chinchilla.CHINCHILLA_PARAMS)
  assert cf["a"] == pytest.approx(0.4565, abs=5e-5)
  assert cf["b"] == pytest.approx(1 - cf["a"], abs=1e-12)
  assert cf["G"] == pytest.approx(1.300, abs=5e-4)
  assert float(cf["n_opt"](5.76e23)) == pytest.approx(4.04e10, rel=2e-3)
  # C = 6·N_opt·D_opt holds exactly along the allocation.
  c = np.array([1e20, 5.76e23])
  np.testing.assert_allclose(6 * cf["n_opt"](c) * cf["d_opt"](c), c,
                             rtol=1e-12)


def test_numerical_minimisation_equals_closed_form_when_c_is_6nd():
  p = chinchilla.CHINCHILLA_PARAMS
  cf = allocation.closed_form(p)
  c = np.array([1e19, 1e21, 5.76e23])
  n, d, loss = allocation.numerical_optimum(p, allocation.SIX_ND, c)
  np.testing.assert_allclose(n, cf["n_opt"](c), rtol=1e-6)
  np.testing.assert_allclose(d, cf["d_opt"](c), rtol=1e-6)
  np.testing.assert_allclose(loss, chinchilla.predict_loss(p, n, d),
                             rtol=1e-12)


def test_numerical_optimum_is_a_minimum_on_the_flop_constraint():
  p = chinchilla.CHINCHILLA_PARAMS
  fm = allocation.FlopsModel(7.2, 1.03, False, 0.0)
  c = 1e22
  n, d, loss = (float(v) for v in allocation.numerical_optimum(p, fm, c))
  assert fm.kappa * n ** fm.q * d == pytest.approx(c, rel=1e-12)
  for f in (0.98, 1.02):  # moving along the constraint only raises the loss
    assert chinchilla.predict_loss(p, n * f, fm.tokens(n * f, c)) > loss
  # Analytic stationary point of A e^{-αx} + B (C/κ)^{-β} e^{βqx}.
  al, be = p["alpha"], p["beta"]
  n_exact = (al * p["A"] / (be * fm.q * p["B"]) * (c / fm.kappa) ** be) ** (
      1 / (al + be * fm.q))
  assert n == pytest.approx(n_exact, rel=1e-6)


def test_flops_model_detects_6nd_and_fits_other_counts():
  rng = np.random.default_rng(0)
  n = np.geomspace(1e7, 1e9, 12)
  d = rng.uniform(1e9, 1e11, 12)
  assert allocation.fit_flops_model(n, d, 6 * n * d).is_6nd
  fm = allocation.fit_flops_model(n, d, 7.1 * n ** 1.02 * d)
  assert not fm.is_6nd
  assert fm.kappa == pytest.approx(7.1, rel=1e-9)
  assert fm.q == pytest.approx(1.02, abs=1e-12)


def test_allocate_table_uses_closed_form_or_numerical():
  p = chinchilla.CHINCHILLA_PARAMS
  out = allocation.allocate(p, allocation.SIX_ND, [5.76e23])
  assert out["method"].startswith("closed form")
  assert out["table"][0]["N_opt"] == pytest.approx(4.04e10, rel=2e-3)
  fm = allocation.FlopsModel(6.0, 1.0, False, 0.0)  # 6ND, but numerical path
  num = allocation.allocate(p, fm, [1e21, 5.76e23])
  assert num["method"].startswith("numerical")
  assert num["table"][1]["N_opt"] == pytest.approx(out["table"][0]["N_opt"],
                                                   rel=1e-6)
  assert num["a"] == pytest.approx(allocation.closed_form(p)["a"], abs=1e-6)


def test_rows_beyond_the_runs_compute_are_marked_extrapolation():
  p = chinchilla.CHINCHILLA_PARAMS
  out = allocation.allocate(p, allocation.SIX_ND, [1e20, 1e21, 1e23, 1e18],
                            flops_range=(1e19, 1e21))
  assert [r["extrapolation"] for r in out["table"]] == [
      None, None, pytest.approx(100.0), pytest.approx(0.1)]
  # FLOP noise of a budget (< 0.1%) is not extrapolation.
  assert allocation.extrapolation(1.0005e21, (1e19, 1e21)) is None
  assert allocation.allocate(p, allocation.SIX_ND, [1e23])["table"][0][
      "extrapolation"] is None  # no range given
