"""``scaling analyze --hparams``: per-size optima, grid edges, power laws."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from analysis import cli
from analysis import hparams
from analysis import hparams_report

FIXTURE = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures",
                       "synthetic_lr_sweep.csv")
SIZES = (1e4, 3e4, 1e5, 3e5, 1e6)
EXPONENT = -1 / 3


def lr_star(n):
  return 0.5 * n ** EXPONENT


def synthetic_lr_sweep(edge_size=3e6, noise=2e-3, seed=0):
  """Loss = L0(N) + 0.04 (log2 lr - log2 lr*(N))^2 + noise on a grid of
  7 learning rates per size, a factor 2 apart, centred on another rule
  (0.2 N^-0.25, as an lr_sweep centres on its rule), so optima fall between
  grid points; the size ``edge_size`` has its grid 16x too low."""
  rng = np.random.default_rng(seed)
  rows = []
  for n in SIZES + ((edge_size,) if edge_size else ()):
    shift = 1 / 16 if n == edge_size else 1.0
    for m in 2.0 ** np.arange(-3, 4):
      lr = 0.2 * n ** -0.25 * m * shift
      loss = (3.0 - 0.1 * np.log10(n) + 0.04 * np.log2(lr / lr_star(n)) ** 2
              + rng.normal(0, noise))
      rows.append(dict(run=f"N{n:g}_m{m:g}", params_total=n, peak_lr=lr,
                       eval_loss=loss, tokens=20 * n, status="finished"))
  return pd.DataFrame(rows)


def test_the_fixture_is_the_synthetic_sweep():
  pd.testing.assert_frame_equal(pd.read_csv(FIXTURE), synthetic_lr_sweep(),
                                check_exact=False, rtol=1e-12)


def test_recovers_the_lr_power_law_and_flags_the_grid_edge(tmp_path):
  out = hparams_report.analyze_hparams(FIXTURE, str(tmp_path / "fit"),
                                       bootstrap=50, plots=False)
  fit = out["lr"]
  assert abs(fit["law"]["exponent"] - EXPONENT) < 0.05
  lo, hi = fit["law"]["exponent_ci"]
  assert lo <= EXPONENT <= hi and fit["law"]["n_ok"] >= 45
  by_size = {s["size"]: s for s in fit["sizes"]}
  assert by_size[3e6]["edge"] == "high" and not by_size[3e6]["identifiable"]
  assert fit["excluded"] == [dict(size=3e6, edge="high",
                                  reasons=by_size[3e6]["reasons"])]
  for n in SIZES:  # negative control: bracketed optima are not flagged
    assert by_size[n]["edge"] is None and by_size[n]["identifiable"]
    assert by_size[n]["value"] == pytest.approx(lr_star(n), rel=0.05)
  rule = json.loads((tmp_path / "fit" / "rule.json").read_text())
  assert rule["schema"] == hparams.RULE_SCHEMA
  assert rule["x"]["column"] == "params_total"
  assert rule["lr"]["exponent"] == fit["law"]["exponent"]
  assert rule["batch"] is None


def test_a_wrong_exponent_is_not_recovered():
  # Negative control: data made with exponent -0.2 must not fit -1/3.
  df = synthetic_lr_sweep(edge_size=None)
  df["eval_loss"] = [3.0 + 0.04 * np.log2(lr / (0.5 * n ** -0.2)) ** 2
                     for n, lr in zip(df["params_total"], df["peak_lr"])]
  res = hparams.fit_hparam(df["params_total"], df["params_total"],
                           df["peak_lr"], df["eval_loss"], df["run"],
                           n_resamples=0)
  assert abs(res["law"]["exponent"] - EXPONENT) > 0.1
  assert res["law"]["exponent"] == pytest.approx(-0.2, abs=1e-6)


def test_parabola_vertex_off_the_grid_is_exact_without_noise():
  grid = 2.0 ** np.arange(-10, -3)
  best = 2.0 ** -6.3
  loss = 1.0 + 0.1 * (np.log2(grid) - np.log2(best)) ** 2
  res = hparams.fit_optimum(grid, loss)
  assert res["value"] == pytest.approx(best, rel=1e-9)
  assert res["best_tried"] == 2.0 ** -6 and res["identifiable"]
  assert res["window"] == [2.0 ** -8, 2.0 ** -4] and res["n_points"] == 5


def test_diverged_runs_above_the_best_make_it_an_edge():
  grid = 2.0 ** np.arange(-10, -3)
  loss = 1.0 + 0.1 * (np.log2(grid) + 4.5) ** 2
  loss[-2:] = np.nan  # the two largest learning rates diverged
  res = hparams.fit_optimum(grid, loss)
  assert res["edge"] == "high" and not res["fitted"]
  assert "diverged" in res["reasons"][0]
  assert res["best_tried"] == 2.0 ** -6


def test_no_clear_curvature_is_not_identifiable():
  grid = 2.0 ** np.arange(-10, -3)
  rng = np.random.default_rng(0)
  flat = 2.0 + rng.normal(0, 0.01, grid.size)
  flat[3] = 1.98  # an interior minimum by noise alone
  res = hparams.fit_optimum(grid, flat)
  assert res["edge"] is None and not res["identifiable"]
  assert any("curvature" in r for r in res["reasons"])


def test_batch_optimum_profiles_over_the_learning_rate(tmp_path):
  # B*(N) = 2 N^0.5 tokens; each batch tried at two learning rates, the
  # worse one 0.05 nats above: the fit must use the better of the two.
  rows = []
  for n in (1e4, 4e4, 1.6e5):
    b_star = 2.0 * n**0.5
    for b in 2.0 ** np.arange(5, 14):
      for lr, extra in ((1e-3, 0.0), (2e-3, 0.05)):
        loss = 2.0 + 0.03 * np.log2(b / b_star) ** 2 + extra
        rows.append(dict(run=f"{n:g}_{b:g}_{lr:g}", params_total=n,
                         batch_tokens=b, peak_lr=lr, eval_loss=loss,
                         tokens=1e6, status="finished"))
  csv = tmp_path / "batch.csv"
  pd.DataFrame(rows).to_csv(csv, index=False)
  out = hparams_report.analyze_hparams(str(csv), str(tmp_path / "fit"),
                                       kinds=["batch"], bootstrap=0,
                                       plots=False)
  assert out["batch"]["law"]["exponent"] == pytest.approx(0.5, abs=1e-6)
  assert out["batch"]["law"]["coef"] == pytest.approx(2.0, rel=1e-6)
  rule = json.loads((tmp_path / "fit" / "rule.json").read_text())
  assert rule["batch"]["unit"] == "tokens" and rule["lr"] is None


def test_cli_prints_the_law_and_the_flag(tmp_path, capsys):
  csv = tmp_path / "lr.csv"
  synthetic_lr_sweep().to_csv(csv, index=False)
  assert cli.main([str(csv), "--out", str(tmp_path / "o"), "--hparams",
                   "--bootstrap", "20", "--no-plots"]) == 0
  text = capsys.readouterr().out
  assert "lr*(N) = " in text and "flag: lr: size N=3e+06 left out" in text
  assert (tmp_path / "o" / "hparams.md").exists()
  # A kind the table does not sweep is an error naming it (exit 2).
  assert cli.main([str(csv), "--out", str(tmp_path / "o2"),
                   "--hparams", "batch"]) == 2
  assert "--hparams batch" in capsys.readouterr().err


def test_the_law_in_compute(tmp_path):
  # C = 6 N D with D = 20 N: lr* = 0.5 N^(-1/3) = k C^(-1/6).
  df = synthetic_lr_sweep()
  df["flops"] = 6 * df["params_total"] * df["tokens"]
  csv = tmp_path / "lr.csv"
  df.to_csv(csv, index=False)
  out = hparams_report.analyze_hparams(str(csv), str(tmp_path / "fit"),
                                       x="C", bootstrap=0, plots=False)
  assert out["lr"]["law"]["exponent"] == pytest.approx(EXPONENT / 2, abs=0.02)
  rule = json.loads((tmp_path / "fit" / "rule.json").read_text())
  assert rule["x"] == dict(column="flops", variable="C",
                           definition="training FLOPs C")
