"""Test data helpers for the analysis tests: fixture paths, synthetic sweeps."""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
EPOCH_CSV = FIXTURES / "svg_extracted_data.csv"
DATABLATIONS_CSV = FIXTURES / "datablations_contour_losses.csv"

# Issue 4, "Done when" 3: (E, A, B, alpha, beta).
TRUE_LAW = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)


def true_optimum_n(c, law=TRUE_LAW):
  """Closed-form N_opt(C) of ``law`` for C = 6ND (Hoffmann et al. eq. 4)."""
  al, be = law["alpha"], law["beta"]
  g = (al * law["A"] / (be * law["B"])) ** (1 / (al + be))
  return g * (np.asarray(c) / 6.0) ** (be / (al + be))


def law_loss(n, d, law=TRUE_LAW):
  return law["E"] + law["A"] * n ** -law["alpha"] + law["B"] * d ** -law["beta"]


def synthetic_isoflop(n_budgets=8, n_sizes=16, noise=0.002, seed=0,
                      c_lo=1e18, c_hi=1e21, flops_per_token=None):
  """Budgets × log-spaced N over ±1 decade around the true optimum.

  Returns a DataFrame run, N, D, C, loss, budget. With
  ``flops_per_token(N)`` the runs' C = flops_per_token(N)·D instead of 6ND.
  """
  rng = np.random.default_rng(seed)
  rows = []
  for cb in np.geomspace(c_lo, c_hi, n_budgets):
    for n in true_optimum_n(cb) * np.logspace(-1, 1, n_sizes):
      d = cb / (6.0 * n if flops_per_token is None else flops_per_token(n))
      loss = law_loss(n, d) * np.exp(rng.normal(0.0, noise))
      rows.append(dict(run=f"r{len(rows)}", N=n, D=d, C=cb, loss=loss,
                       budget=cb))
  return pd.DataFrame(rows)


def write_sweep(path: pathlib.Path, seed: int = 1) -> pathlib.Path:
  """A sweep directory in our format (DESIGN.md §3) from the true law.

  5 budgets × 7 sizes, FLOPs by a non-6ND count C = 6.6·N^1.01·D, a
  ``budget`` column, curves with 4 points per run, plus 2 failed runs and 1
  NaN row that must be rejected.
  """
  fpt = lambda n: 6.6 * n ** 1.01  # noqa: E731
  df = synthetic_isoflop(5, 7, 0.002, seed, 1e17, 1e19, fpt)
  path.mkdir(parents=True, exist_ok=True)
  res = pd.DataFrame(dict(
      run=df["run"], status="finished", params_total=df["N"],
      params_nonembedding=(df["N"] * 0.9), tokens=df["D"], flops=df["C"],
      flops_6nd=6 * df["N"] * df["D"], eval_loss=df["loss"],
      eval_bpb=df["loss"] / np.log(2), train_loss=df["loss"] * 1.01,
      budget=df["budget"]))
  bad = pd.DataFrame(dict(run=["f1", "f2", "n1"],
                          status=["failed", "failed", "finished"],
                          params_total=[1e7, 2e7, 3e7],
                          params_nonembedding=[9e6, 1.8e7, 2.7e7],
                          tokens=[1e9, 1e9, 1e9], flops=[6e16, 1.2e17, 1.8e17],
                          flops_6nd=[6e16, 1.2e17, 1.8e17],
                          eval_loss=[np.nan, 9.0, np.nan],
                          eval_bpb=[np.nan, 13.0, np.nan],
                          train_loss=[np.nan, 9.0, 3.0],
                          budget=[1e17, 1e17, 1e17]))
  pd.concat([res, bad], ignore_index=True).to_csv(path / "results.csv",
                                                 index=False)
  rows = []
  for r in res.itertuples():
    for frac in (0.25, 0.5, 0.75, 1.0):
      d = r.tokens * frac
      rows.append(dict(run=r.run, step=int(1000 * frac), tokens=d,
                       flops=r.flops * frac,
                       train_loss=law_loss(r.params_total, d) * 1.01,
                       eval_loss=law_loss(r.params_total, d)))
  pd.DataFrame(rows).to_csv(path / "curves.csv", index=False)
  return path
