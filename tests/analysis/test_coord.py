"""Coordinate-check analysis: log-log slopes, the flatness verdict, the plot."""

import numpy as np
import pandas as pd
import pytest

from analysis import coord


def _rows(exponents: dict, widths=(64, 128, 256, 512), steps=(1, 2, 3)):
  rows = []
  for par, p in exponents.items():
    for w in widths:
      for t in (0,) + tuple(steps):
        for layer in ("embed", "logits"):
          change = 0.0 if t == 0 else 0.1 * t * (w / widths[0]) ** p[layer]
          rows.append(dict(parametrization=par, d_model=w, n_layers=2,
                           step=t, layer=layer, mean_abs=1.0,
                           mean_abs_change=change))
  return rows


def test_slopes_are_the_power_law_exponents():
  rows = _rows({"mup": dict(embed=0.0, logits=0.1),
                "sp": dict(embed=0.0, logits=1.0)})
  t = coord.slopes(rows)
  t = t[t.step > 0].set_index(["parametrization", "layer", "step"])
  assert t.loc[("sp", "logits", 2), "slope"] == pytest.approx(1.0)
  assert t.loc[("mup", "logits", 3), "slope"] == pytest.approx(0.1)
  assert t.loc[("sp", "logits", 2), "ratio"] == pytest.approx(8.0)


def test_verdict_flat_within_tolerance_and_the_negative_control_fails():
  rows = _rows({"mup": dict(embed=-0.12, logits=0.12),
                "sp": dict(embed=0.0, logits=0.3)})
  t = coord.slopes(rows)
  assert coord.verdict(t, "mup", [1, 2, 3])["flat"]
  v = coord.verdict(t, "sp", [1, 2, 3])
  assert not v["flat"] and v["max_slope"] == pytest.approx(0.3)
  assert {r["layer"] for r in v["failing"]} == {"logits"}


def test_zero_everywhere_is_flat_but_zero_somewhere_is_not():
  rows = pd.DataFrame(_rows({"mup": dict(embed=0.0, logits=0.0)}))
  rows.loc[rows.layer == "embed", "mean_abs_change"] = 0.0
  rows.loc[(rows.layer == "logits") & (rows.d_model == 64), "mean_abs_change"] = 0.0
  t = coord.slopes(rows)
  e = t[(t.layer == "embed") & (t.step == 1)].iloc[0]
  assert e.slope == 0.0 and "no change" in e.note
  g = t[(t.layer == "logits") & (t.step == 1)].iloc[0]
  assert np.isnan(g.slope)
  assert not coord.verdict(t, "mup", [1])["flat"]


def test_table_and_plot(tmp_path):
  rows = _rows({"sp": dict(embed=0.0, logits=1.0)})
  text = coord.format_table(rows)
  assert "NOT flat" in text and "logits" in text and "+1.00" in text
  files = coord.plot(rows, str(tmp_path))
  assert (tmp_path / "coord_check.png").exists() and "coord_check.png" in files
