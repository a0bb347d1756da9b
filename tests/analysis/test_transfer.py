"""Learning-rate transfer analysis: the optimum per width from a parabola in
log2(lr), edge flags, and the drift across width with intervals."""

import numpy as np
import pandas as pd
import pytest

from analysis import transfer

GRID = 2.0 ** np.arange(-9, -2)  # 7 rates ×2 apart


def _loss(log2_lr, vertex, curvature=0.05, floor=2.0):
  return floor + curvature * (log2_lr - vertex) ** 2


def test_exact_parabola_gives_its_vertex():
  u = np.log2(GRID)
  f = transfer.fit_optimum(GRID, _loss(u, -5.3))
  assert f["identifiable"] and f["edge"] is None
  assert f["log2_lr"] == pytest.approx(-5.3, abs=1e-9)
  assert f["best_tried_log2"] == -5.0
  assert f["curvature"] == pytest.approx(0.05)
  assert f["n_points"] == 7


def test_interval_covers_the_vertex_of_a_noisy_parabola():
  rng = np.random.default_rng(0)
  u = np.log2(GRID)
  hits = 0
  for _ in range(200):
    f = transfer.fit_optimum(GRID, _loss(u, -5.3) + rng.normal(0, 0.01, 7))
    lo, hi = f["ci_log2"]
    hits += lo <= -5.3 <= hi
  assert 0.85 <= hits / 200 <= 1.0  # nominal 95%, 2 dof


def test_optimum_on_the_grid_edge_is_a_bound_not_an_estimate():
  u = np.log2(GRID)
  f = transfer.fit_optimum(GRID, _loss(u, -10.0))
  assert f["edge"] == "low" and not f["identifiable"]
  assert "edge" in f["reasons"][0]
  # Diverged runs at the top: the best finite rate is the largest finite one
  # but not the grid's edge, so the fit uses the finite side only.
  loss = _loss(u, -3.2)
  loss[-1] = np.nan
  f = transfer.fit_optimum(GRID, loss)
  assert f["edge"] is None and f["best_tried_log2"] == -4.0


def test_diverged_runs_leave_the_grid_edge_in_place():
  u = np.log2(GRID)
  loss = _loss(u, -2.5)
  loss[-1] = np.inf  # the largest rate diverged: still the grid's edge
  f = transfer.fit_optimum(GRID, loss)
  assert f["edge"] is None  # best tried -4 is inside [-9, -3]


def _table(slope, widths=(32, 64, 128, 256), noise=0.0, seed=0):
  rng = np.random.default_rng(seed)
  rows = []
  for w in widths:
    vertex = -5.0 + slope * np.log2(w / widths[0])
    for lr in GRID:
      rows.append(dict(parametrization="x", d_model=w, peak_lr=lr,
                       eval_loss=_loss(np.log2(lr), vertex)
                       + rng.normal(0, noise), status="finished"))
  return pd.DataFrame(rows)


@pytest.mark.parametrize("slope", [0.0, -0.5, -0.8])
def test_drift_recovers_a_known_slope(slope):
  r = transfer.analyze_table(_table(slope), n_resamples=50)["x"]
  d = r["drift"]
  assert d["slope"] == pytest.approx(slope, abs=1e-6)
  assert d["widths_used"] == [32, 64, 128, 256]
  moved = d["moved_grid_steps"]["fitted"]
  assert moved == pytest.approx(abs(slope) * 3, abs=1e-6)
  assert r["at_most_one_grid_step"] == (abs(slope) * 3 <= 1.0)


def test_drift_intervals_cover_the_truth_with_noise():
  t_hits = boot_hits = 0
  for seed in range(20):
    d = transfer.analyze_table(_table(-0.5, noise=0.005, seed=seed),
                               n_resamples=200, seed=seed)["x"]["drift"]
    lo, hi = d["slope_ci_t"]
    blo, bhi = d["slope_ci_bootstrap"]
    t_hits += lo <= -0.5 <= hi
    boot_hits += blo <= -0.5 <= bhi
    assert 0 < d["bootstrap_ok"] <= d["bootstrap_requested"] == 200
  assert t_hits >= 16 and boot_hits >= 14, (t_hits, boot_hits)  # nominal 19


def test_failed_runs_count_as_diverged_and_report_names_them(tmp_path):
  df = _table(-1.2)
  df.loc[(df.d_model == 256) & (df.peak_lr == GRID[0]), "status"] = "failed"
  r = transfer.analyze_table(df, n_resamples=20)["x"]
  # width 256's optimum (-5 - 3.6 = -8.6) lies near the low edge
  assert r["widths"][256]["edge"] is not None or \
      r["widths"][256]["best_tried_log2"] >= -8
  text = transfer.format_report({"x": r})
  assert "Drift d log2 lr* / d log2 width" in text
  df.to_csv(tmp_path / "results.csv", index=False)
  out = transfer.analyze(str(tmp_path), str(tmp_path / "analysis"),
                         n_resamples=20)
  assert (tmp_path / "analysis" / "transfer.png").exists()
  assert (tmp_path / "analysis" / "transfer.json").exists()
  assert out["result"]["x"]["drift"]["widths_used"]


def test_missing_column_is_named():
  with pytest.raises(ValueError, match="peak_lr"):
    transfer.analyze_table(pd.DataFrame(dict(d_model=[1], eval_loss=[2.0])))


def test_scaling_analyze_transfer_on_a_csv(tmp_path, capsys):
  from analysis import cli
  df = _table(-1.0)
  df["parametrization"] = "sp"
  flat = _table(0.0)
  flat["parametrization"] = "mup"
  pd.concat([df, flat]).to_csv(tmp_path / "runs.csv", index=False)
  assert cli.main([str(tmp_path / "runs.csv"), "--out", str(tmp_path / "o"),
                   "--transfer"]) == 0
  out = capsys.readouterr().out
  assert "## SP (sp)" in out and "## μP (mup)" in out
  assert "At most one grid step: yes." in out  # μP
  assert "At most one grid step: no." in out  # SP moves 3 steps
  assert (tmp_path / "o" / "transfer.md").exists()
  assert cli.main([str(tmp_path / "missing.csv"), "--out", str(tmp_path),
                   "--transfer"]) == 2
