"""``scaling analyze PATH --out DIR``: fits and plots a sweep or any CSV.

Dispatched from ``scaling/cli.py`` as ``analysis.cli.main(argv)`` with the
arguments after ``analyze``. Exit status 0 on success, 2 on bad input (missing
file or column, unusable table), as for config errors.
"""

from __future__ import annotations

import argparse
import sys

from analysis import identify
from analysis import report
from analysis import transfer


def _floats(text: str) -> list[float]:
  try:
    return [float(v) for v in text.split(",") if v.strip()]
  except ValueError as e:
    raise argparse.ArgumentTypeError(
        f"expected comma-separated numbers, got {text!r}") from e


def build_parser() -> argparse.ArgumentParser:
  """The ``analyze`` argument parser."""
  p = argparse.ArgumentParser(
      prog="scaling analyze",
      description="Chinchilla Approaches 1-3, Huber MLE, compute-optimal "
      "allocation with bootstrap intervals, frontier and plots, for a sweep "
      "directory (results.csv + curves.csv) or any CSV of runs.")
  p.add_argument("path", help="sweep directory or CSV file")
  p.add_argument("--out", required=True, help="output directory")
  cols = p.add_argument_group(
      "columns", "defaults for sweeps: N=params_total D=tokens C=flops "
      "loss=eval_loss run=run step=step budget=budget; for other CSVs a "
      "common name is tried (e.g. 'Model Size', 'Training FLOP', 'loss'). "
      "D = C/(6N) when only C is given; C = 6ND when only D is.")
  for role, help_ in (("n", "parameters N"), ("d", "training tokens D"),
                      ("c", "training FLOPs C"), ("loss", "final loss (nats)"),
                      ("run", "run id (resampling unit)"),
                      ("step", "step (curves)"),
                      ("budget", "isoFLOP budget of the run"),
                      ("unique", "unique tokens U_D (data-constrained)"),
                      ("epochs", "epochs (U_D = D/epochs)")):
    cols.add_argument(f"--{role}-col", dest=f"{role}_col", help=help_)
  cols.add_argument("--n-definition", choices=("total", "nonembedding"),
                    default=None,
                    help="which parameter count N defaults to: total "
                    "(params_total, Chinchilla; default) or nonembedding "
                    "(params_nonembedding, Kaplan et al.); --n-col overrides")
  p.add_argument("--group-by", default=None, metavar="COLUMN",
                 help="fit the loss-versus-compute frontier per value of "
                 "COLUMN (e.g. objective) on each group's best run per "
                 "isoFLOP budget, instead of the whole-table fits")
  p.add_argument("--drop-highest-loss", type=int, default=0, metavar="K",
                 help="drop the K highest-loss rows (Epoch AI drop 5)")
  p.add_argument("--bootstrap", type=int, default=100, metavar="K",
                 help="bootstrap resamples of runs (0 = none; default 100)")
  p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
  p.add_argument("--level", type=float, default=0.95,
                 help="interval coverage (default 0.95)")
  p.add_argument("--curve-points", choices=("auto", "final", "all"),
                 default="auto",
                 help="curve points used by Approach 1 (auto: finals, plus "
                 "constant-LR runs' curves)")
  p.add_argument("--grid-decades", type=float, default=0.1,
                 help="isoFLOP grouping grid in decades of C when there is "
                 "no budget column (default 0.1)")
  p.add_argument("--budgets", type=_floats, default=None, metavar="C1,C2,...",
                 help="nominal isoFLOP budgets: each run joins the nearest "
                 "within 0.08 decade (instead of the log grid)")
  p.add_argument("--reference-flops", type=_floats, default=None,
                 metavar="C1,C2,...",
                 help="budgets for the allocation table (default max C x "
                 "1, 10, 100)")
  p.add_argument("--huber-delta", type=float, default=1e-3, dest="delta",
                 help="Huber delta on log loss (default 1e-3)")
  p.add_argument("--dc-base", choices=("fit", "published"), default="fit",
                 help="data-constrained base law: Approach 3 on single-epoch "
                 "runs, or Muennighoff et al.'s published values")
  p.add_argument("--transfer", action="store_true",
                 help="learning-rate transfer across width instead of the "
                 "scaling-law fits: the best log2 learning rate per width "
                 "(and parametrization), its drift with intervals "
                 "(analysis.transfer; columns peak_lr, d_model, "
                 "parametrization and --loss-col)")
  p.add_argument("--no-plots", action="store_true", help="skip figures")
  p.add_argument("--no-sensitivity", action="store_true",
                 help="skip the sensitivity refits (N and C definitions, "
                 "Huber delta, smallest runs)")
  return p


def main(argv: list[str]) -> int:
  """Runs ``scaling analyze``; returns the exit status."""
  parser = build_parser()
  args = parser.parse_args(argv)
  if args.drop_highest_loss < 0 or args.bootstrap < 0:
    parser.error("--drop-highest-loss and --bootstrap must be >= 0")
  if args.transfer:
    try:
      out = transfer.analyze(args.path, args.out,
                             loss_col=args.loss_col or "eval_loss",
                             seed=args.seed)
    except (FileNotFoundError, ValueError) as e:
      print(f"scaling analyze: error: {e}", file=sys.stderr)
      return 2
    print(out["report"])
    print(f"wrote {args.out}/transfer.json, transfer.md and "
          f"{', '.join(out['plots'])}")
    return 0
  opts = {k: v for k, v in vars(args).items()
          if k not in ("path", "out", "no_plots", "no_sensitivity",
                       "transfer")}
  opts["plots"] = not args.no_plots
  opts["sensitivity"] = not args.no_sensitivity
  try:
    fit = report.analyze(args.path, args.out, **opts)
  except (FileNotFoundError, ValueError) as e:
    print(f"scaling analyze: error: {e}", file=sys.stderr)
    return 2
  print(f"wrote {args.out}/fit.json, report.md and {len(fit['plots'])} plot "
        f"files; {fit['rows']['used']} runs")
  if args.group_by:
    for g in fit["groups"]:
      if not g.get("applicable"):
        print(f"{g['group']}: not applicable ({g.get('reason')})")
        continue
      law = ", ".join(f"{k}={g[k]['value']:.4g}" for k in ("E", "A", "gamma")
                      if g.get(k))
      print(f"{g['group']}: {g.get('law') or 'no law'} {law}; "
            f"{identify.flag_text(g)}")
    return 0
  a3 = fit["approach3"]
  print("Approach 3: " + ", ".join(
      f"{k}={a3[k]['value']:.4g}" for k in ("E", "A", "B", "alpha", "beta")))
  for key, name in (("approach3", "Approach 3"), ("allocation", "allocation"),
                    ("approach2", "Approach 2"), ("approach1", "Approach 1"),
                    ("frontier", "frontier")):
    text = identify.flag_text(fit[key])
    if text != "identifiable":
      print(f"flag: {name}: {text}")
  for w in fit["warnings"]:
    print(f"warning: {w}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
