"""Effective-data law of Muennighoff et al. 2023 (eq. 5)."""

import numpy as np
import pytest

from analysis import chinchilla, data_constrained as dc, load

from analysis_synth import DATABLATIONS_CSV

BASE = {k: dc.PUBLISHED[k] for k in ("E", "A", "B", "alpha", "beta")}


def test_published_unique_parameter_ratio():
  # U_N = N_opt(U_D) = G²·U_D for alpha = beta: 0.051·U_D in the paper.
  assert float(dc.n_opt_for_tokens(BASE, 1.0)) == pytest.approx(0.0512,
                                                               abs=5e-4)


def test_no_repetition_reduces_to_chinchilla():
  u = np.array([1e9, 1e10, 1e11])
  n = 0.5 * dc.n_opt_for_tokens(BASE, u)  # below the unique-parameter limit
  pred = dc.predict_loss(n, u, u, BASE, 5.3, 15.4)
  np.testing.assert_allclose(pred, chinchilla.predict_loss(BASE, n, u),
                             rtol=1e-14)


def test_effective_data_limits():
  u, r_star = 1e9, 15.4
  d = u * np.array([1.0, 1.001, 4.0, 40.0, 1e6])
  _, d_eff = dc.effective(1e6, d, u, BASE, 5.3, r_star)
  assert d_eff[0] == u
  assert d_eff[1] == pytest.approx(d[1], rel=1e-6)  # first repeats ~ fresh
  assert np.all(np.diff(d_eff) > 0)
  assert d_eff[-1] == pytest.approx(u * (1 + r_star), rel=1e-9)  # plateau


def _synthetic(seed=0, noise=0.002):
  rng = np.random.default_rng(seed)
  rows = []
  for u in (1e8, 3e8, 1e9, 3e9, 1e10):
    for n in np.geomspace(1e7, 3e9, 8):
      for ep in (1, 2, 4, 8, 16, 40, 100):
        d = u * ep
        rows.append((n, d, u, float(dc.predict_loss(n, d, u, BASE, 5.3, 15.4))
                     * np.exp(rng.normal(0, noise))))
  return map(np.array, zip(*rows))


def test_recovers_decay_constants_from_synthetic_runs():
  n, d, u, loss = _synthetic()
  res = dc.fit_decay(n, d, u, loss, BASE)
  assert res["R_D_star"] == pytest.approx(15.4, rel=0.1)
  assert res["R_N_star"] == pytest.approx(5.3, rel=0.15)
  assert res["warnings"] == []
  # Base from single-epoch runs (biased: many have N > N_opt(U_D)), then
  # all seven parameters jointly.
  full = dc.fit_data_constrained(n, d, u, loss)
  assert full["n_single_epoch"] == 40
  assert full["R_D_star"] == pytest.approx(15.4, rel=0.1)
  assert full["R_N_star"] == pytest.approx(5.3, rel=0.15)
  assert full["base"]["params"]["alpha"] == pytest.approx(0.353, abs=0.02)
  staged = dc.fit_data_constrained(n, d, u, loss, joint=False)
  assert full["objective"] < staged["objective"]


def test_published_datablations_runs():
  t = load.load_table(str(DATABLATIONS_CSV), n_col="num_params",
                      d_col="token_num", loss_col="openLM_loss",
                      epochs_col="epochs")
  r = t.runs
  assert len(r) == 229
  np.testing.assert_allclose(r["unique_tokens"] * t.runs["D"] / r["D"],
                             r["unique_tokens"])
  args = [r[k].to_numpy() for k in ("N", "D", "unique_tokens", "loss")]
  res = dc.fit_data_constrained(*args)
  assert res["n_single_epoch"] == 33
  assert 1.0 < res["R_D_star"] < 1e3 and 0.1 < res["R_N_star"] < 1e3
  # Repetition decay must fit better than treating repeated tokens as fresh.
  base = res["base"]["params"]
  fresh = np.sum(chinchilla.huber(np.log(dc.predict_loss(
      *args[:3], base, 1e12, 1e12)) - np.log(args[3])))
  assert res["objective"] < 0.8 * fresh
