"""Per-group loss-versus-compute frontiers (--group-by)."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis import cli, groups, powerlaw

LAWS = dict(causal=powerlaw.SaturatingPowerLaw(E=1.2, A=300.0, gamma=0.12),
            prefix=powerlaw.SaturatingPowerLaw(E=1.5, A=80.0, gamma=0.09))
BUDGETS = np.geomspace(1e17, 1e20, 6)


def _table(seed=0, few_budgets=3):
  """Each group: 7 sizes per budget, the middle one on its law; the others
  higher by a parabola in log N; FLOPs of a budget differ by 0.1% (the best
  run sits exactly at the budget). Plus a group with too few budgets and a
  group whose loss is not applicable."""
  rng = np.random.default_rng(seed)
  rows = []

  def add(name, law, budgets):
    for cb in budgets:
      n_opt = 0.1 * cb ** 0.5
      for k in range(-3, 4):
        f = 10.0 ** (k / 6)
        n = n_opt * f
        c = cb if k == 0 else cb * (1 + 1e-3 * rng.uniform(-1, 1))
        loss = float(law(cb)) + 0.02 * np.log(f) ** 2 + (0 if k == 0 else
                                                         1e-4)
        rows.append(dict(run=f"{name}-{cb:.2g}-{k}", objective=name,
                         budget=cb, params_total=n, tokens=c / (6 * n),
                         flops=c, eval_loss=loss, eval_loss_na=None,
                         status="finished"))

  for name, law in LAWS.items():
    add(name, law, BUDGETS)
  add("few", LAWS["causal"], BUDGETS[:few_budgets])
  for cb in BUDGETS[:2]:
    rows.append(dict(run=f"mlm-{cb:.2g}", objective="masked_lm", budget=cb,
                     params_total=1e7, tokens=cb / 6e7, flops=cb,
                     eval_loss=np.nan,
                     eval_loss_na="bidirectional: no causal loss",
                     status="finished"))
  rows.append(dict(run="crashed", objective="causal", budget=1e18,
                   params_total=1e7, tokens=1e10, flops=1e18, eval_loss=0.1,
                   eval_loss_na=None, status="failed"))
  return pd.DataFrame(rows)


def test_recovers_each_groups_frontier_and_flags_the_thin_one():
  df = _table()
  res = groups.fit_groups(df, "objective", loss_col="eval_loss",
                          c_col="flops", n_col="params_total",
                          budget_col="budget", n_resamples=40, seed=0)
  by = {g["group"]: g for g in res["groups"]}
  for name, law in LAWS.items():
    g = by[name]
    assert g["law"] == "E + A*C^-gamma"
    assert g["n_budgets"] == 6 and g["n_runs"] == 42
    assert g["E"]["value"] == pytest.approx(law.E, rel=1e-6)
    assert g["A"]["value"] == pytest.approx(law.A, rel=1e-5)
    assert g["gamma"]["value"] == pytest.approx(law.gamma, rel=1e-6)
    # Each budget's best run is its middle size, never an edge.
    assert not any(g["front"]["edge"])
    assert g["front"]["flops"] == pytest.approx(list(BUDGETS))
    assert g["identifiable"] and not g["unreliable"], g["reasons"]
    lo, hi = g["gamma"]["ci"]
    assert lo <= law.gamma <= hi
  few = by["few"]
  assert few["law"] == "A*C^-gamma" and few.get("E") is None
  assert not few["identifiable"]
  assert any("3 compute-optimal points" in r for r in few["reasons"])
  assert by["masked_lm"] == dict(group="masked_lm", applicable=False,
                                 reason="bidirectional: no causal loss")
  assert "crashed" not in by["causal"]["front"]["run"]


def test_pareto_over_all_runs_would_fit_flop_noise():
  # Negative control: the plain Pareto front over every run of a group keeps
  # runs that are not any budget's best (FLOP noise within a budget).
  from analysis import envelope
  df = _table()
  g = df[df["objective"] == "causal"]
  front = envelope.pareto_front(g["flops"], g["eval_loss"])
  best = g.loc[g.groupby("budget")["eval_loss"].idxmin(), "run"]
  assert not set(g["run"].iloc[front]) <= set(best)


def test_one_point_group_is_not_fitted():
  out = groups.fit_frontier(np.array([1e18, 1e18 * 1.0005]),
                            np.array([2.0, 2.1]), np.array([1e7, 2e7]),
                            np.array([0, 0]), n_resamples=10)
  assert out["law"] is None and not out["identifiable"]
  assert out["n_budgets"] == 1
  assert "only 1 distinct C" in out["reasons"][0]
  assert "no frontier fitted" in out["reasons"][1]


def test_group_by_cli_writes_fit_report_and_figure(tmp_path, capsys):
  sweep = tmp_path / "sweep"
  sweep.mkdir()
  _table().to_csv(sweep / "results.csv", index=False)
  out = tmp_path / "out"
  assert cli.main([str(sweep), "--out", str(out), "--group-by", "objective",
                   "--bootstrap", "20"]) == 0
  fit = json.loads((out / "fit.json").read_text())
  assert fit["schema"] == "scaling.analysis.groups/1"
  assert [g["group"] for g in fit["groups"]] == ["causal", "prefix", "few",
                                                 "masked_lm"]
  assert fit["groups"][3]["reason"] == "bidirectional: no causal loss"
  for ext in ("png", "svg"):
    assert (out / f"frontier_by_group.{ext}").stat().st_size > 1000
  md = (out / "report.md").read_text()
  assert md.startswith("# Loss-versus-compute frontier per `objective`")
  assert "**2 of 4 groups have an identifiable, reliable frontier**" in md
  assert "bidirectional: no causal loss" in md
  printed = capsys.readouterr().out
  assert "few: A*C^-gamma" in printed and "not identifiable" in printed
  assert cli.main([str(sweep), "--out", str(out), "--group-by", "nope"]) == 2
  assert "--group-by" in capsys.readouterr().err


def test_order_lists_groups_without_finished_runs():
  df = _table()
  res = groups.fit_groups(df, "objective", loss_col="eval_loss",
                          c_col="flops", n_col="params_total",
                          budget_col="budget", n_resamples=0,
                          order=["ul2", "causal"])
  names = [g["group"] for g in res["groups"]]
  assert names[:2] == ["ul2", "causal"]
  assert res["groups"][0] == dict(group="ul2", applicable=None,
                                  reason="no finished runs")
  causal = res["groups"][1]
  assert causal["bootstrap"]["requested"] == 0
  assert "no bootstrap: the uncertainty is unknown" in causal["caveats"]
  assert causal["gamma"]["ci"] is None
