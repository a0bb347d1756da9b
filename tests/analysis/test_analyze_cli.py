"""`scaling analyze` end to end: Chinchilla CSV and one of our sweeps."""

import json

import pytest

from analysis import cli, report

from analysis_synth import EPOCH_CSV, TRUE_LAW, write_sweep

STEMS = ("isoflop", "optimal_allocation", "loss_vs_compute", "contours",
         "residuals")


def _check_outputs(out, fit):
  on_disk = json.loads((out / "fit.json").read_text())
  assert on_disk == fit
  for stem in STEMS:
    for ext in ("png", "svg"):
      f = out / f"{stem}.{ext}"
      assert f.stat().st_size > 1000, f
      assert f"{stem}.{ext}" in fit["plots"]
  md = (out / "report.md").read_text()
  for stem in STEMS:
    assert f"({stem}.png)" in md
  return md


def test_cli_on_chinchilla_csv(tmp_path, capsys):
  out = tmp_path / "chin"
  rc = cli.main([str(EPOCH_CSV), "--out", str(out), "--drop-highest-loss", "5",
                 "--bootstrap", "8", "--reference-flops", "5.76e23",
                 "--budgets", "6e18,1e19,3e19,6e19,1e20,3e20,6e20,1e21,3e21"])
  assert rc == 0
  fit = json.loads((out / "fit.json").read_text())
  md = _check_outputs(out, fit)
  assert fit["rows"] == dict(read=245, used=240,
                             rejected={"5 highest losses dropped": 5})
  assert fit["columns"]["D"].startswith("C/(6N)")
  a3 = fit["approach3"]
  assert a3["E"]["value"] == pytest.approx(1.8172, abs=1e-3)
  for k in ("A", "B", "E", "alpha", "beta"):  # every coefficient has a CI
    lo, hi = a3[k]["ci"]
    assert lo <= hi and a3[k]["n_ok"] == 8
  assert fit["allocation"]["method"].startswith("closed form")
  assert fit["approach2"]["a"]["ci"][0] is not None
  assert all(b["included"] for b in fit["approach2"]["budgets"])
  assert fit["frontier"]["gamma"]["ci"][0] is not None
  assert fit["mle"]["A"]["value"] == pytest.approx(482.01, abs=0.05)
  assert "## Approach 3" in md and "[" in md  # values with intervals
  assert "Approach 3:" in capsys.readouterr().out


def test_analyze_on_a_sweep_directory(tmp_path):
  sweep = write_sweep(tmp_path / "sweep")
  fit = report.analyze(str(sweep), str(tmp_path / "out"), bootstrap=6)
  _check_outputs(tmp_path / "out", fit)
  assert fit["source"]["kind"] == "sweep"
  assert fit["columns"]["N"] == "params_total"
  assert fit["rows"]["rejected"] == {"status not finished": 2, "nan or inf": 1}
  assert not fit["flops_model"]["is_6nd"]
  assert fit["flops_model"]["q"] == pytest.approx(1.01, abs=1e-9)
  assert fit["allocation"]["method"].startswith("numerical")
  assert fit["approach2"]["grouping"] == "budget column"
  assert len(fit["approach2"]["budgets"]) == 5
  a_true = TRUE_LAW["beta"] / (TRUE_LAW["alpha"] + TRUE_LAW["beta"])
  assert fit["allocation"]["a"]["value"] == pytest.approx(a_true, abs=0.03)
  row = fit["allocation"]["table"][0]
  assert row["N_opt"]["ci"][0] <= row["N_opt"]["value"] <= row["N_opt"]["ci"][1]
  assert "final points only" in fit["approach1"]["points"]


def test_cli_exit_status_2_on_bad_input(tmp_path, capsys):
  assert cli.main([str(tmp_path / "none.csv"), "--out", str(tmp_path)]) == 2
  assert cli.main([str(EPOCH_CSV), "--out", str(tmp_path),
                   "--n-col", "nope"]) == 2
  assert "--n-col" in capsys.readouterr().err
