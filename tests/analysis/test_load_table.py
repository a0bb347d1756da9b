"""Loading sweep directories and arbitrary CSVs."""

import numpy as np
import pandas as pd
import pytest

from analysis import load

from analysis_synth import EPOCH_CSV, write_sweep


def test_sweep_defaults_rejections_and_curves(tmp_path):
  t = load.load_table(str(write_sweep(tmp_path / "sweep")))
  assert t.source["kind"] == "sweep"
  assert t.columns["N"] == "params_total" and t.columns["C"] == "flops"
  assert t.columns["D"] == "tokens" and t.columns["loss"] == "eval_loss"
  assert t.columns["budget"] == "budget"
  assert t.n_rows == 38 and len(t.runs) == 35
  assert t.rejected == {"status not finished": 2, "nan or inf": 1}
  assert len(t.curves) == 4 * 35
  # The curves carry N from the results of their run.
  merged = t.curves.merge(t.runs[["run", "N"]], on="run", suffixes=("", "_r"))
  np.testing.assert_array_equal(merged["N"], merged["N_r"])


def test_csv_d_derived_from_c_and_said(tmp_path):
  t = load.load_table(str(EPOCH_CSV))
  assert t.columns["N"] == "Model Size" and t.columns["C"] == "Training FLOP"
  assert t.columns["D"].startswith("C/(6N)")
  assert any("D derived as C/(6N)" in n for n in t.notes)
  assert len(t.runs) == 245 and t.rejected == {}


def test_c_derived_from_d_and_bad_rows_counted(tmp_path):
  p = tmp_path / "runs.csv"
  pd.DataFrame(dict(params=[1e8, 2e8, -1.0, 4e8, 5e8],
                    toks=[1e9, 2e9, 3e9, np.nan, 5e9],
                    l=[3.0, 2.9, 2.8, 2.7, 0.0])).to_csv(p, index=False)
  t = load.load_table(str(p), n_col="params", d_col="toks", loss_col="l")
  assert t.columns["C"] == "6ND from toks"
  np.testing.assert_allclose(t.runs["C"], 6 * t.runs["N"] * t.runs["D"])
  assert len(t.runs) == 2
  assert t.rejected == {"nan or inf": 1, "non-positive": 2}


def test_errors_name_the_flag(tmp_path):
  with pytest.raises(ValueError, match="--loss-col"):
    load.load_table(str(EPOCH_CSV), loss_col="nope")
  p = tmp_path / "x.csv"
  pd.DataFrame(dict(N=[1.0], loss=[2.0])).to_csv(p, index=False)
  with pytest.raises(ValueError, match="--d-col or --c-col"):
    load.load_table(str(p))
  with pytest.raises(FileNotFoundError):
    load.load_table(str(tmp_path / "missing.csv"))
  with pytest.raises(FileNotFoundError, match="results.csv"):
    load.load_table(str(tmp_path))


def test_csv_of_checkpoints_gives_runs_and_curves(tmp_path):
  p = tmp_path / "ckpt.csv"
  pd.DataFrame(dict(run=["a", "a", "a", "b", "b"], step=[1, 3, 2, 1, 2],
                    N=[1e8] * 3 + [2e8] * 2, D=[1e9, 3e9, 2e9, 1e9, 2e9],
                    loss=[3.5, 3.0, 3.2, 3.4, 3.1])).to_csv(p, index=False)
  t = load.load_table(str(p), run_col="run", step_col="step")
  assert t.runs.set_index("run")["loss"].to_dict() == {"a": 3.0, "b": 3.1}
  assert len(t.curves) == 5
  assert t.rejected == {"earlier checkpoints (kept as curve points)": 3}
