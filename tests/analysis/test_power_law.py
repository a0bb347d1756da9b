"""Power laws: Kaplan's form, log-log fits and the frontier L(C)."""

import numpy as np
import pytest

from analysis import powerlaw


def test_kaplan_l_of_n_through_the_power_law_code():
  # Issue 4 "Done when" 4: Kaplan et al. 2020 eq. 1.1, N_c = 8.8e13,
  # α_N = 0.076.
  law = powerlaw.PowerLaw.kaplan(8.8e13, 0.076)
  assert float(law(1e9)) == pytest.approx(2.3756, abs=5e-5)
  assert float(law.inverse(law(1e9))) == pytest.approx(1e9, rel=1e-12)


def test_fit_power_law_recovers_kaplan_exactly():
  law = powerlaw.PowerLaw.kaplan(8.8e13, 0.076)
  n = np.geomspace(1e6, 1e10, 9)
  fit = powerlaw.fit_power_law(n, law(n))
  assert fit.law.exponent == pytest.approx(-0.076, abs=1e-12)
  assert fit.law.coef == pytest.approx(law.coef, rel=1e-10)
  assert fit.exponent_se == pytest.approx(0.0, abs=1e-12)


def test_fit_power_law_standard_error_matches_ols_formula():
  rng = np.random.default_rng(3)
  x = np.geomspace(1e18, 1e22, 10)
  y = 3.0 * x ** 0.5 * np.exp(rng.normal(0, 0.05, x.size))
  fit = powerlaw.fit_power_law(x, y)
  lx, ly = np.log(x), np.log(y)
  p, k = np.polyfit(lx, ly, 1)
  r = ly - (k + p * lx)
  se = np.sqrt(np.sum(r ** 2) / (x.size - 2) / np.sum((lx - lx.mean()) ** 2))
  assert fit.law.exponent == pytest.approx(p, rel=1e-10)
  assert fit.exponent_se == pytest.approx(se, rel=1e-10)
  # Equal weights do not change the fit.
  fw = powerlaw.fit_power_law(x, y, np.full(x.size, 0.3))
  assert fw.exponent_se == pytest.approx(se, rel=1e-10)


def test_frontier_fit_recovers_saturating_law():
  true = powerlaw.SaturatingPowerLaw(E=1.7, A=2.0e3, gamma=0.17)
  c = np.geomspace(1e18, 1e22, 25)
  law, rms = powerlaw.fit_saturating(c, true(c))
  assert law.E == pytest.approx(1.7, rel=1e-6)
  assert law.gamma == pytest.approx(0.17, rel=1e-6)
  assert law.A == pytest.approx(2.0e3, rel=1e-5)
  assert rms < 1e-9
  warm, _ = powerlaw.fit_saturating(c, true(c), (np.log(1.5), np.log(1e3), 0.1))
  assert warm.gamma == pytest.approx(0.17, rel=1e-6)


def test_frontier_without_a_floor_stops_at_the_bound_and_is_flagged():
  from analysis import identify
  c = np.geomspace(1e18, 1e22, 12)
  loss = 50.0 * c ** -0.08  # E = 0: a pure power law
  law, rms = powerlaw.fit_saturating(c, loss)
  assert law.E == pytest.approx(powerlaw.E_FLOOR * loss.min(), rel=1e-9)
  assert law.gamma == pytest.approx(0.08, rel=1e-4)
  assert rms < 1e-5
  flag = identify.check_coefficient("E", law.E, None, loss_min=loss.min())
  assert flag.startswith("at its bound 0")


def test_batched_frontier_fits_equal_one_by_one():
  rng = np.random.default_rng(4)
  true = powerlaw.SaturatingPowerLaw(E=1.7, A=2.0e3, gamma=0.17)
  fronts = []
  for k in (4, 7, 12):
    c = np.geomspace(1e18, 1e22, k)
    fronts.append((c, true(c) * np.exp(rng.normal(0, 0.003, k))))
  fronts.append((np.array([1e18, 1e19]), np.array([3.0, 2.5])))  # too few
  many = powerlaw.fit_saturating_many(fronts)
  for (c, loss), (law, rms) in zip(fronts[:3], many[:3]):
    one, rms1 = powerlaw.fit_saturating(c, loss)
    assert law.gamma == pytest.approx(one.gamma, rel=1e-6)
    assert law.E == pytest.approx(one.E, rel=1e-6)
    assert rms == pytest.approx(rms1, rel=1e-6)
  assert many[3][0] is None
