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


def test_quickstart_shaped_sweep_report_says_what_it_cannot_know(tmp_path):
  from analysis_synth import quickstart_results
  sweep = tmp_path / "qs"
  sweep.mkdir()
  quickstart_results(seed=0).to_csv(sweep / "results.csv", index=False)
  out = tmp_path / "out"
  assert cli.main([str(sweep), "--out", str(out), "--bootstrap", "30"]) == 0
  fit = json.loads((out / "fit.json").read_text())
  md = _check_outputs(out, fit)
  head = md.splitlines()
  assert head[0] == "# Scaling-law analysis"
  assert head[2].startswith("**Allocation exponent a (N_opt ∝ C^a): ")
  assert any(line.startswith(("**Approaches", "**Whether Approaches"))
             for line in head[3:12])
  # 3 budgets over 0.62 decades: no approach pins a to ±0.15.
  assert not fit["summary"]["identified"]
  assert not fit["approach3"]["identifiable"]
  # Allocation rows beyond the runs' compute say so, with the factor.
  rows = fit["allocation"]["table"]
  assert [r["extrapolation"] for r in rows] == [
      None, pytest.approx(10.0, rel=1e-3), pytest.approx(100.0, rel=1e-3)]
  assert "**extrapolation ×100 beyond the largest budget**" in md
  # The likelihood fit's two scales are named, and differ by ~1e3.
  ml = fit["mle"]
  assert "sigma" not in ml
  assert ml["rms_log_residual"] > 100 * ml["huber_scale"]["value"]
  assert "Huber scale σ = " in md and "residual RMS = " in md
  # Robust parabola weights per run are recorded and stated.
  for b in fit["approach2"]["budgets"]:
    assert len(b["runs"]) == 6 and all(0 <= r["weight"] <= 1
                                       for r in b["runs"])
  assert "best run weight" in md
  # Resample counts are printed wherever resamples are.
  assert "resamples that succeeded: Approach 3 30 of 30" in md
  a2 = fit["approach2"]
  assert f"{a2['bootstrap']['succeeded']} of 30" in md
  assert fit["sensitivity"]["rows"][1]["choice"].startswith(
      "N = non-embedding")


def test_n_definition_picks_the_default_n(tmp_path):
  from analysis_synth import quickstart_results
  sweep = tmp_path / "qs"
  sweep.mkdir()
  quickstart_results(seed=0).to_csv(sweep / "results.csv", index=False)
  fit = report.analyze(str(sweep), str(tmp_path / "out"), bootstrap=0,
                       plots=False, n_definition="nonembedding")
  assert fit["columns"]["N"] == "params_nonembedding"
  assert fit["n_definition"] == "nonembedding"
  assert fit["sensitivity"]["rows"][1]["choice"] == ("N = total "
                                                     "(`params_total`)")
  md = (tmp_path / "out" / "report.md").read_text()
  assert "N = `params_nonembedding`: non-embedding parameters" in md
  assert "no bootstrap: the uncertainty is unknown" in json.dumps(fit)
  assert cli.main([str(sweep), "--out", str(tmp_path / "o2"),
                   "--n-definition", "nonembedding", "--bootstrap", "0",
                   "--no-plots", "--no-sensitivity"]) == 0
  with pytest.raises(ValueError, match="--n-definition"):
    report.analyze(str(EPOCH_CSV), str(tmp_path / "o3"), bootstrap=0,
                   plots=False, n_definition="nonembedding")


def test_chinchilla_report_says_n_and_c_cannot_vary(tmp_path):
  out = tmp_path / "chin"
  assert cli.main([str(EPOCH_CSV), "--out", str(out), "--n-col",
                   "Model Size", "--c-col", "Training FLOP", "--loss-col",
                   "loss", "--drop-highest-loss", "5", "--bootstrap", "0",
                   "--no-plots"]) == 0
  fit = json.loads((out / "fit.json").read_text())
  assert fit["approach3"]["E"]["value"] == pytest.approx(1.8172, abs=1e-3)
  sens = fit["sensitivity"]
  assert [r["choice"].split(" (")[0] for r in sens["rows"]][1:3] == [
      "Huber δ = 0.0001", "Huber δ = 0.01"]
  md = (out / "report.md").read_text()
  assert "Choices this table does not allow:" in md
  assert ("- N definition: the table has no non-embedding parameter column"
          in md)
  assert "so C = 6ND by construction" in md
  # Without a bootstrap there is no interval to judge the choices against.
  assert sens["sentence"].startswith("The conclusion cannot be judged")


def test_synthetic_quickstart_fixture_matches_its_generator():
  import pandas as pd
  from analysis_synth import FIXTURES, quickstart_results
  on_disk = pd.read_csv(FIXTURES / "synthetic_quickstart_results.csv")
  pd.testing.assert_frame_equal(on_disk, quickstart_results(seed=0),
                                check_dtype=False)
