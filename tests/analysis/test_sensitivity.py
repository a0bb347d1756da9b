"""Sensitivity refits (Li, Kudugunta & Zettlemoyer 2025) against direct fits."""

import json

import numpy as np
import pytest

from analysis import allocation, chinchilla, isoflop, load, report, sensitivity

from analysis_synth import EPOCH_CSV, quickstart_results, synthetic_isoflop


@pytest.fixture(scope="module")
def quickstart_fit(tmp_path_factory):
  sweep = tmp_path_factory.mktemp("qs")
  quickstart_results(seed=0).to_csv(sweep / "results.csv", index=False)
  out = sweep / "out"
  fit = report.analyze(str(sweep), str(out), bootstrap=20, plots=False)
  return sweep, out, fit


def _row(fit, prefix):
  (row,) = [r for r in fit["sensitivity"]["rows"]
            if r["choice"].startswith(prefix)]
  return row


def test_delta_row_equals_a_direct_approach3_fit(quickstart_fit):
  sweep, _, fit = quickstart_fit
  t = load.load_table(str(sweep))
  n, d, c, loss = (t.runs[k].to_numpy() for k in ("N", "D", "C", "loss"))
  direct = chinchilla.fit_approach3(n, d, loss, delta=1e-2)
  fm = allocation.fit_flops_model(n, d, c)
  assert not fm.is_6nd  # exact FLOPs: the numerical allocation
  al = allocation.allocate(direct.params, fm, [c.max()])
  row = _row(fit, "Huber δ = 0.01")
  assert row["approach3"]["a"] == pytest.approx(al["a"], rel=1e-9)
  assert row["approach3"]["tokens_per_param"] == pytest.approx(
      al["table"][0]["tokens_per_param"], rel=1e-9)
  # The numerical effective exponent agrees with the closed form's
  # β/(α+β) only approximately (C is not 6ND): a second, independent check
  # that the row used δ = 1e-2 and not the default.
  default = fit["sensitivity"]["rows"][0]["approach3"]
  assert row["approach3"]["beta"] == pytest.approx(direct.params["beta"],
                                                   rel=1e-9)
  assert row["approach3"]["beta"] != pytest.approx(default["beta"],
                                                   rel=1e-6)
  assert row["same_as_default"] == dict(approach3=False, approach2=True)
  assert row["approach2"] == fit["sensitivity"]["rows"][0]["approach2"]


def test_n_and_c_rows_refit_with_the_other_columns(quickstart_fit):
  sweep, _, fit = quickstart_fit
  raw = quickstart_results(seed=0)
  raw = raw[raw["status"] == "finished"]
  row = _row(fit, "N = non-embedding")
  n_ne = raw["params_nonembedding"].to_numpy(np.float64)
  d, c = raw["tokens"].to_numpy(np.float64), raw["flops"].to_numpy(np.float64)
  loss = raw["eval_loss"].to_numpy(np.float64)
  direct = chinchilla.fit_approach3(n_ne, d, loss)
  al = allocation.allocate(direct.params, allocation.fit_flops_model(
      n_ne, d, c), [c.max()])
  assert row["approach3"]["a"] == pytest.approx(al["a"], rel=1e-9)
  labels, values, _ = isoflop.group_budgets(c, raw["budget"].to_numpy())
  a2 = isoflop.fit_approach2(n_ne, d, c, loss, labels=(labels, values))
  assert row["approach2"]["a"] == pytest.approx(a2["a"]["exponent"],
                                                rel=1e-12)
  crow = _row(fit, "C = 6ND")
  assert crow["c_max"] == pytest.approx(raw["flops_6nd"].max())
  six = raw["flops_6nd"].to_numpy(np.float64)
  n = raw["params_total"].to_numpy(np.float64)
  cf = allocation.closed_form(chinchilla.fit_approach3(n, d, loss).params)
  assert allocation.fit_flops_model(n, d, six).is_6nd
  assert crow["approach3"]["a"] == pytest.approx(cf["a"], rel=1e-9)


def test_sensitivity_table_in_report_and_json(quickstart_fit):
  _, out, fit = quickstart_fit
  sens = json.loads((out / "fit.json").read_text())["sensitivity"]
  assert sens == fit["sensitivity"]
  choices = [r["choice"] for r in sens["rows"]]
  assert choices[0].startswith("default")
  assert {"Huber δ = 0.0001", "Huber δ = 0.01",
          "plain least-squares isoFLOP parabolas"} <= set(choices)
  assert any(c.startswith("drop each budget's smallest-N run (3 runs)")
             for c in choices)
  assert sens["unavailable"] == []
  md = (out / "report.md").read_text()
  assert "## Sensitivity to the fitting choices" in md
  assert "| choice | runs | A3 a | A3 b | A3 tokens/param |" in md
  assert sens["sentence"] in md
  assert sens["sentence"].startswith(("The conclusion survives",
                                      "The conclusion depends",
                                      "The conclusion cannot be judged"))
  assert "N = `params_total`: total parameters" in md
  assert "Pearce & Song 2024" in md and "Porian et al. 2024" in md


def test_verdict_against_the_default_interval():
  r = synthetic_isoflop(4, 9, 0.002, seed=3)
  labels, values, _ = isoflop.group_budgets(r["C"], r["budget"])
  kw = dict(n_definition="total", delta=1e-3, labels=(labels, values))
  none = {"N": "none here", "C": "none here"}
  wide = sensitivity.run(r, none, default_ci=dict(approach3=[0.0, 1.0],
                                                  approach2=[0.0, 1.0]), **kw)
  assert wide["verdict"] == dict(approach3=True, approach2=True)
  assert wide["sentence"].startswith("The conclusion survives")
  narrow = sensitivity.run(r, none, default_ci=dict(approach3=[0.0, 0.01],
                                                    approach2=None), **kw)
  assert narrow["verdict"] == dict(approach3=False, approach2=None)
  assert narrow["sentence"].startswith("The conclusion depends")
  assert "no interval to judge it against" in narrow["sentence"]
  assert narrow["unavailable"] == ["N definition: none here",
                                   "FLOP count: none here"]


def test_chinchilla_refit_cannot_vary_n_or_c(tmp_path):
  t = load.load_table(str(EPOCH_CSV), drop_highest_loss=5)
  assert t.n_definition == "total"
  assert t.alternatives["N"] == ("the table has no non-embedding parameter "
                                 "column")
  assert "C = 6ND by construction" in t.alternatives["C"]
  assert "N_alt" not in t.runs and "C_alt" not in t.runs
