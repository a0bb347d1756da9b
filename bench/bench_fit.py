"""Approach 3 fit time: ours against a plain scipy L-BFGS-B loop, side by side.

Data: Epoch AI's 240 Chinchilla points (Besiroglu et al. 2024; fixture
tests/fixtures/svg_extracted_data.csv, D = C/(6N), the 5 highest losses
dropped). Both fits minimise the same summed Huber (δ = 1e-3) objective on log
loss from the same 4,500-start grid (Hoffmann et al. 2022 §3.3):

* plain: ``scipy.optimize.minimize(method="L-BFGS-B", jac=True)`` with scipy's
  default options from every start in a Python loop (as in Epoch's notebook),
  with an analytic gradient; best of all starts.
* ours: ``analysis.chinchilla.fit_approach3`` (batched numpy L-BFGS over all
  starts, successive halving, scipy polish).

Prints both optima, the times and their ratio. Then the bootstrap of the
same fit (``--bootstrap K`` resamples of runs, 0 skips it), both ways, side
by side: every resample warm-started at the full-data optimum only (the old
scheme, ``analysis.bootstrap.batched_refit``), and from several starts each
(``analysis.bootstrap.multistart_refit``: the optimum, 3 grid starts, 4
perturbations); it prints their times, the 95% intervals of the allocation
exponent a = β/(α+β), and how many resamples found a better optimum than the
warm start. Not a test. Usage:

  python bench/bench_fit.py [--repeats 3] [--plain-starts 4500]
                            [--blas-threads 1] [--bootstrap 100]

BLAS threads: scipy's L-BFGS-B calls OpenBLAS on 5-vectors; with several BLAS
threads on a busy machine each call waits for thread wake-ups (measured here:
~6 ms per iteration instead of ~0.2 ms), which would flatter our ratio. The
bench therefore pins OPENBLAS/OMP/MKL threads to ``--blas-threads`` (default 1)
for both sides before numpy is imported.

``--plain-starts K`` runs the plain loop on an evenly spaced subset of K starts
and scales its time by 4500/K (for a quick look; the ratio line says so).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "svg_extracted_data.csv"


def load_points():
  """Epoch AI's Chinchilla points: N, D = C/(6N), loss (5 highest dropped)."""
  import numpy as np
  import pandas as pd
  df = pd.read_csv(FIXTURE)
  df = df[df["loss"] < np.sort(df["loss"].to_numpy())[-5]]
  n = df["Model Size"].to_numpy(np.float64)
  c = df["Training FLOP"].to_numpy(np.float64)
  return n, c / (6.0 * n), df["loss"].to_numpy(np.float64)


def plain_objective(log_n, log_d, log_loss, delta=1e-3):
  """Single-start summed Huber objective with analytic gradient (numpy)."""
  import numpy as np

  def fg(theta):
    a, b, e, alpha, beta = theta
    u1 = a - alpha * log_n
    u2 = b - beta * log_d
    m = np.maximum(np.maximum(u1, u2), e)
    e1, e2, e3 = np.exp(u1 - m), np.exp(u2 - m), np.exp(e - m)
    s = e1 + e2 + e3
    r = m + np.log(s) - log_loss
    c = np.clip(r, -delta, delta)
    w = c / s
    grad = np.array([np.sum(w * e1), np.sum(w * e2), np.sum(w * e3),
                     -np.sum(w * e1 * log_n), -np.sum(w * e2 * log_d)])
    return float(np.sum(c * (r - 0.5 * c))), grad

  return fg


def run_plain(n, d, loss, starts):
  """Plain loop: scipy L-BFGS-B (default options) from every start."""
  import numpy as np
  from scipy import optimize
  fg = plain_objective(np.log(n), np.log(d), np.log(loss))
  best = None
  n_evals = 0
  with np.errstate(all="ignore"):
    for x0 in starts:
      res = optimize.minimize(fg, x0, jac=True, method="L-BFGS-B")
      n_evals += res.nfev
      if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
        best = res
  return best, n_evals


def fmt(theta, fun):
  """One-line E, A, B, alpha, beta and objective."""
  from analysis import chinchilla
  p = chinchilla.params_from_theta(theta)
  return (f"E={p['E']:.5f} A={p['A']:.2f} B={p['B']:.1f} "
          f"alpha={p['alpha']:.5f} beta={p['beta']:.5f} objective={fun:.8e}")


def main(argv=None) -> int:
  """Times both fits in one process and prints optima and the ratio."""
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--repeats", type=int, default=3,
                  help="timed repeats of our fit (best is reported)")
  ap.add_argument("--plain-starts", type=int, default=4500,
                  help="starts for the plain loop (time scaled to 4500)")
  ap.add_argument("--blas-threads", type=str, default="1",
                  help="BLAS threads for both sides ('' leaves them alone)")
  ap.add_argument("--bootstrap", type=int, default=100,
                  help="resamples for the bootstrap comparison (0 = skip)")
  args = ap.parse_args(argv)
  if args.blas_threads:
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
      os.environ[var] = args.blas_threads
  sys.path.insert(0, str(ROOT))
  import numpy as np
  from analysis import chinchilla
  n, d, loss = load_points()
  grid = chinchilla.start_grid()

  ours_t = []
  for _ in range(args.repeats):
    t0 = time.perf_counter()
    fit = chinchilla.fit_approach3(n, d, loss)
    ours_t.append(time.perf_counter() - t0)

  k = min(args.plain_starts, len(grid))
  idx = np.linspace(0, len(grid) - 1, k).round().astype(int)
  t0 = time.perf_counter()
  plain, plain_evals = run_plain(n, d, loss, grid[idx])
  plain_t = (time.perf_counter() - t0) * len(grid) / k

  print(f"points: {n.size}, starts: {len(grid)}, BLAS threads: "
        f"{args.blas_threads or 'default'}, cores: {os.cpu_count()}")
  print(f"plain scipy loop : {plain_t:8.2f} s  "
        f"({'scaled from ' + str(k) + ' starts, ' if k < len(grid) else ''}"
        f"{plain_evals} evaluations)  {fmt(plain.x, plain.fun)}")
  print(f"ours (best of {args.repeats}): {min(ours_t):8.3f} s  "
        f"(all: {', '.join(f'{t:.3f}' for t in ours_t)}; {fit.n_evals} "
        f"single-point evaluations)  {fmt(fit.theta, fit.objective)}")
  print(f"speed-up plain/ours: {plain_t / min(ours_t):.1f}x "
        f"(median of ours: {plain_t / float(np.median(ours_t)):.1f}x)")
  print(f"objective difference ours - plain: {fit.objective - plain.fun:.3e}; "
        f"max |theta difference|: {np.max(np.abs(fit.theta - plain.x)):.2e}")
  if args.bootstrap > 0:
    bench_bootstrap(n, d, loss, fit, args.bootstrap)
  return 0


def bench_bootstrap(n, d, loss, fit, k):
  """Warm-start-only against multi-start bootstrap refits, side by side."""
  import numpy as np
  from analysis import bootstrap, chinchilla
  ln, ld, ll = np.log(n), np.log(d), np.log(loss)
  counts = bootstrap.resample_counts(np.arange(n.size), k, seed=0)
  fg = chinchilla.make_objective(ln, ld, ll, weights=counts)
  t0 = time.perf_counter()
  warm = bootstrap.batched_refit(fg, fit.theta, k)
  warm_t = time.perf_counter() - t0
  t0 = time.perf_counter()
  starts = bootstrap.resample_starts(fit.theta, chinchilla.make_objective(
      ln, ld, ll), k, np.random.default_rng(1))
  multi = bootstrap.multistart_refit(fg, starts)
  multi_t = time.perf_counter() - t0
  f_warm = np.array([fg(warm[i][None], np.array([i]))[0][0]
                     for i in range(k)])
  better = int(np.sum(multi["f"] < f_warm * (1 - 1e-9)))

  def a_ci(th):
    lo, hi, n_ok = bootstrap.interval(th[:, 4] / (th[:, 3] + th[:, 4]))
    return f"a in [{lo:.4f}, {hi:.4f}] over {n_ok} resamples"

  print(f"bootstrap, {k} resamples of {n.size} runs:")
  print(f"  warm start only : {warm_t:7.2f} s  {a_ci(warm)}")
  print(f"  {starts.shape[1]} starts each   : {multi_t:7.2f} s  "
        f"{a_ci(multi['x'])}; {better} resamples reached a lower objective "
        "than their warm start")


if __name__ == "__main__":
  sys.exit(main())
