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


# The quickstart sweep's design (experiments/quickstart.py at this commit,
# counted by scaling.accounting): budget, shape, params_total,
# params_nonembedding, tokens, exact flops, flops_6nd. 3 budgets x 6 sizes,
# 0.62 decades of compute; the exact FLOPs of one budget differ by ~0.1%.
QUICKSTART_DESIGN = (
    (1.2e11, "L1_d8", 8984, 792, 2816000, 120029184000.0, 151793664000.0),
    (1.2e11, "L1_d12", 14052, 1764, 1796096, 120007950336.0, 151432445952.0),
    (1.2e11, "L1_d16", 19504, 3120, 1269760, 119946608640.0, 148592394240.0),
    (1.2e11, "L1_d24", 31560, 6984, 778240, 120135352320.0, 147367526400.0),
    (1.2e11, "L1_d32", 45152, 12384, 536576, 119918297088.0, 145364877312.0),
    (1.2e11, "L1_d48", 76944, 27792, 307200, 119970201600.0, 141823180800.0),
    (2.5e11, "L1_d8", 8984, 792, 5865472, 250009878528.0, 316172402688.0),
    (2.5e11, "L1_d12", 14052, 1764, 3741696, 250005159936.0, 315469873152.0),
    (2.5e11, "L1_d16", 19504, 3120, 2646016, 249953255424.0, 309647376384.0),
    (2.5e11, "L1_d24", 31560, 6984, 1619968, 250071220224.0, 306757140480.0),
    (2.5e11, "L1_d32", 45152, 12384, 1118208, 249906069504.0, 302935965696.0),
    (2.5e11, "L1_d48", 76944, 27792, 641024, 250337820672.0, 295937703936.0),
    (5e11, "L1_d12", 14052, 1764, 7483392, 500010319872.0, 630939746304.0),
    (5e11, "L1_d16", 19504, 3120, 5292032, 499906510848.0, 619294752768.0),
    (5e11, "L1_d24", 31560, 6984, 3239936, 500142440448.0, 613514280960.0),
    (5e11, "L1_d32", 45152, 12384, 2236416, 499812139008.0, 605871931392.0),
    (5e11, "L1_d48", 76944, 27792, 1280000, 499875840000.0, 590929920000.0),
    (5e11, "L2_d48", 104688, 55536, 788480, 499580928000.0, 495266365440.0),
)
# A law in (params_total, tokens) whose optima fall inside each budget's
# sizes (N_opt ~ 21k-34k, as the measured quickstart's 20k-32k), a = 1/3.
QUICKSTART_LAW = dict(E=1.2, A=129.0, B=45.7, alpha=0.6, beta=0.3)


def quickstart_results(seed: int = 0, noise: float = 0.01) -> pd.DataFrame:
  """A results table shaped like a quickstart sweep's ``results.csv``.

  Columns run, budget, params_total, params_nonembedding, tokens, flops,
  flops_6nd, eval_loss, status: the real design (``QUICKSTART_DESIGN``),
  losses from ``QUICKSTART_LAW`` times exp(N(0, noise)) (seed noise of tiny
  runs is about 1% of the loss), plus one failed run.
  """
  rng = np.random.default_rng(seed)
  rows = []
  for budget, shape, n, n_ne, d, c, c6 in QUICKSTART_DESIGN:
    loss = law_loss(n, d, QUICKSTART_LAW) * np.exp(rng.normal(0.0, noise))
    rows.append(dict(run=f"C{budget:.2g}_{shape}", budget=budget,
                     params_total=n, params_nonembedding=n_ne, tokens=d,
                     flops=c, flops_6nd=c6, eval_loss=loss,
                     status="finished"))
  rows.append(dict(run="C5e+11_L2_d64", budget=5e11, params_total=180000,
                   params_nonembedding=98000, tokens=400000, flops=5.0e11,
                   flops_6nd=4.3e11, eval_loss=np.nan, status="failed"))
  return pd.DataFrame(rows)


# Downstream two-step law (Bhagia et al. 2024): a task loss law in (N, D)
# whose task losses (0.85 to 2.75 bits per byte on the grid below) span the
# sigmoid's bend around L0 = 1.3, and the sigmoid (k < 0: accuracy falls as
# the loss rises; floor 0.25, a 4-way task's chance; ceiling 0.85).
TASK_LAW = dict(E=0.6, A=60.0, B=300.0, alpha=0.3, beta=0.3)
TASK_SIGMOID = dict(a=0.6, b=0.25, k=-5.0, L0=1.3)


def two_step_runs(seed=0, n_sizes=7, n_tokens=6, noise_loss=0.005,
                  noise_metric=0.005, law=TASK_LAW, sig=TASK_SIGMOID,
                  min_loss=None):
  """N × D grid (1e6–1e9 params, 1e8–1e11 tokens) with task columns.

  Returns a DataFrame run, N, D, C (= 6ND), loss (a Chinchilla-law LM loss,
  for the whole-table fits), task_loss_true, metric_true, and the noisy
  test_gold_bpb (× exp(N(0, noise_loss))) and test_accuracy (+ N(0,
  noise_metric), clipped to [0, 1]). ``min_loss`` keeps only the runs whose
  true task loss is at least that (a design that misses the bend).
  """
  from analysis import chinchilla, sigmoid
  rng = np.random.default_rng(seed)
  rows = []
  for n in np.geomspace(1e6, 1e9, n_sizes):
    for d in np.geomspace(1e8, 1e11, n_tokens):
      lt = float(chinchilla.predict_loss(law, n, d))
      mt = float(sigmoid.predict(sig, lt))
      rows.append(dict(
          run=f"r{len(rows)}", N=n, D=d, C=6.0 * n * d,
          loss=law_loss(n, d) * np.exp(rng.normal(0.0, 0.003)),
          task_loss_true=lt, metric_true=mt,
          test_gold_bpb=lt * np.exp(rng.normal(0.0, noise_loss)),
          test_accuracy=float(np.clip(mt + rng.normal(0.0, noise_metric),
                                      0.0, 1.0))))
  df = pd.DataFrame(rows)
  if min_loss is not None:
    df = df[df["task_loss_true"] >= min_loss].reset_index(drop=True)
  return df


# One objective of the `objectives` sweep (experiments/families/objectives.py
# at this commit, counted by scaling.accounting): budget, shape,
# params_total, tokens, exact flops. 4 budgets × 3 sizes; every objective
# has the same design.
OBJECTIVES_DESIGN = (
    (1e10, "L1_d8", 8984, 235520, 10038804480.0),
    (1e10, "L1_d12", 14052, 149504, 9989259264.0),
    (1e10, "L1_d16", 19504, 106496, 9937354752.0),
    (1.8e10, "L1_d8", 8984, 421888, 17982554112.0),
    (1.8e10, "L1_d12", 14052, 270336, 18062770176.0),
    (1.8e10, "L1_d16", 19504, 192512, 17963679744.0),
    (3.3e10, "L1_d8", 8984, 774144, 32997113856.0),
    (3.3e10, "L1_d12", 14052, 493568, 32978239488.0),
    (3.3e10, "L1_d16", 19504, 354304, 33060814848.0),
    (6e10, "L1_d12", 14052, 897024, 59935555584.0),
    (6e10, "L1_d16", 19504, 643072, 60006334464.0),
    (6e10, "L1_d20", 25340, 487424, 60081831936.0),
)


def objectives_results(seed=0, objectives=("causal_lm", "prefix_lm",
                                           "masked_lm"),
                       noise_loss=0.005, noise_metric=0.005):
  """A results table shaped like an `objectives` sweep with task columns.

  Per objective the real design (``OBJECTIVES_DESIGN``); its task loss
  follows E + 40/N^0.3 + 40/D^0.3 (E = 1.2, rising by 0.4 per objective)
  and ``test_accuracy`` the sigmoid 0.25 + 0.6σ(−6(L − 4.3)), whose bend
  the first objective's task losses (3.9 to 4.8 bits per byte) straddle
  and the third's (4.7 to 5.6, the lower tail only) do not. Columns run,
  objective, budget, status, params_total, tokens, flops, eval_bpb (= task
  loss × 1.3, for the frontier), test_gold_bpb, test_accuracy.
  """
  from analysis import chinchilla, sigmoid
  rng = np.random.default_rng(seed)
  sig = dict(a=0.6, b=0.25, k=-6.0, L0=4.3)
  rows = []
  for j, obj in enumerate(objectives):
    law = dict(E=1.2 + 0.4 * j, A=40.0, B=40.0, alpha=0.3, beta=0.3)
    for budget, shape, n, d, c in OBJECTIVES_DESIGN:
      lt = float(chinchilla.predict_loss(law, n, d))
      rows.append(dict(
          run=f"{obj}_C{budget:g}_{shape}", objective=obj, budget=budget,
          status="finished", params_total=n, tokens=d, flops=c,
          eval_bpb=1.3 * lt,
          test_gold_bpb=lt * np.exp(rng.normal(0.0, noise_loss)),
          test_accuracy=float(np.clip(sigmoid.predict(sig, lt) + rng.normal(
              0.0, noise_metric), 0.0, 1.0))))
  return pd.DataFrame(rows)
