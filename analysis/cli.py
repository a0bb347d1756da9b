"""``scaling analyze PATH --out DIR``: fits and plots a sweep or any CSV.

Dispatched from ``scaling/cli.py`` as ``analysis.cli.main(argv)`` with the
arguments after ``analyze``. Exit status 0 on success, 2 on bad input (missing
file or column, unusable table), as for config errors.
"""

from __future__ import annotations

import argparse
import sys

from analysis import hparams_report
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
  task = p.add_argument_group(
      "downstream", "the two-step law of Bhagia et al. 2024: task loss "
      "L(N, D) = E + A/N^alpha + B/D^beta, then metric = a/(1 + "
      "exp(-k (L - L0))) + b (k < 0), chained to predict held-out runs")
  task.add_argument("--task-metric", action="append", metavar="COLUMN",
                    help="task metric column (accuracy-like, in --task-range;"
                    " repeat for several tasks); works with --group-by")
  task.add_argument("--task-loss", action="append", metavar="COLUMN",
                    help="its task-loss column (gold-answer bits per byte), "
                    "one per --task-metric in order; default: the metric's "
                    "name with its ending (accuracy, macro_f1, ...) replaced "
                    "by gold_bpb, else bpb (test_accuracy -> test_gold_bpb)")
  task.add_argument("--task-chance", type=float, default=None, metavar="P",
                    help="fix the sigmoid's floor b at the chance level P "
                    "(default: fit it)")
  task.add_argument("--task-range", type=_floats, default=None,
                    metavar="LO,HI",
                    help="the metric's range: floor b >= LO, ceiling a + b "
                    "<= HI (default 0,1)")
  task.add_argument("--task-holdout", default="largest", metavar="WHICH",
                    help="runs held out and predicted: largest (the run with"
                    " the largest C; default), largest-budget (every run "
                    "within 1%% of it), none, or a run id")
  p.add_argument("--drop-highest-loss", type=int, default=0, metavar="K",
                 help="drop the K highest-loss rows (Epoch AI drop 5)")
  p.add_argument("--bootstrap", type=int, default=100, metavar="K",
                 help="bootstrap resamples of runs (0 = none; default 100)")
  p.add_argument("--resample-by", default=None, metavar="COLUMN",
                 help="resample groups of runs that are not independent: the "
                 "runs sharing a value of COLUMN are drawn together (default "
                 "branch_of when present: WSD decay branches of one stable "
                 "run; their stable runs are left out of the fits)")
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
  hp = p.add_argument_group(
      "hyperparameter rules", "--hparams fits the best learning rate and/or "
      "batch per size of an lr_sweep / batch_sweep table, then a power law in "
      "N or C, and writes hparams.json, hparams.md, plots and rule.json (a "
      "rule a sweep loads: experiments.hparams.get_rule(PATH)) instead of the "
      "scaling-law fits")
  hp.add_argument("--hparams", nargs="?", const="auto", default=None,
                  metavar="KIND[,KIND]",
                  help="lr, batch or lr,batch (default: every kind whose "
                  "column varies within a size)")
  hp.add_argument("--hparams-x", choices=("N", "C"), default="N",
                  help="the law's variable: N (the --n-col parameters; "
                  "default) or C (the --c-col FLOPs)")
  hp.add_argument("--lr-col", default=None,
                  help="learning-rate column (default peak_lr)")
  hp.add_argument("--batch-col", default=None,
                  help="batch column in tokens per step (default "
                  "batch_tokens, else batch_size x seq_len)")
  hp.add_argument("--rule-out", default=None, metavar="FILE",
                  help="where the rule file goes (default OUT/rule.json)")
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
  if args.task_range is not None and len(args.task_range) != 2:
    parser.error(f"--task-range takes two numbers LO,HI, got "
                 f"{args.task_range}")
  if (args.task_loss or args.task_chance is not None or args.task_range
      ) and not args.task_metric:
    parser.error("--task-loss, --task-chance and --task-range need "
                 "--task-metric COLUMN")
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
  if args.hparams is not None:
    return _main_hparams(args)
  opts = {k: v for k, v in vars(args).items()
          if k not in ("path", "out", "no_plots", "no_sensitivity", "hparams",
                       "hparams_x", "lr_col", "batch_col", "rule_out",
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
  for metric, entry in (fit.get("downstream") or {}).items():
    for label, e in ([(g["group"], g) for g in entry["groups"]]
                     if "groups" in entry else [(None, entry)]):
      _print_downstream(metric, label, e)
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


def _main_hparams(args) -> int:
  """``scaling analyze PATH --out DIR --hparams``."""
  kinds = None if args.hparams == "auto" else [
      k.strip() for k in args.hparams.split(",") if k.strip()]
  try:
    result = hparams_report.analyze_hparams(
        args.path, args.out, kinds=kinds, x=args.hparams_x, n_col=args.n_col,
        c_col=args.c_col, loss_col=args.loss_col, run_col=args.run_col,
        lr_col=args.lr_col, batch_col=args.batch_col,
        n_definition=args.n_definition, bootstrap=args.bootstrap,
        seed=args.seed, level=args.level, plots=not args.no_plots,
        rule_out=args.rule_out)
  except (FileNotFoundError, ValueError) as e:
    print(f"scaling analyze: error: {e}", file=sys.stderr)
    return 2
  x = args.hparams_x
  for kind in hparams_report.KINDS:
    fit = result.get(kind)
    if not fit:
      continue
    law = fit["law"]
    if law is None:
      print(f"{kind}: no law ({'; '.join(fit['reasons'])})")
    else:
      ci = law.get("exponent_ci")
      ci_text = (f"[{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "none")
      print(f"{kind}*({x}) = {law['coef']:.4g} * {x}^{law['exponent']:.4f} on "
            f"{law['n_sizes']} sizes; exponent 95% bootstrap interval "
            f"{ci_text} ({law.get('n_ok', 0)}/{law.get('n_resamples', 0)} "
            "resamples)")
    for e in fit["excluded"]:
      print(f"flag: {kind}: size N={e['size']:.4g} left out: "
            f"{'; '.join(e['reasons'])}")
  print(f"wrote {args.out}/hparams.json, hparams.md, {len(result['plots'])} "
        f"plot files and the rule file {result['rule']}")
  if not any((result.get(k) or {}).get("law") for k in hparams_report.KINDS):
    print("note: no law was fitted, so the rule file holds none (a sweep "
          "refuses to load it)")
  return 0


def _print_downstream(metric: str, group: str | None, e: dict):
  """One line per held-out run: observed, predicted [CI], error [CI]."""
  head = f"downstream {metric}" + (f" [{group}]" if group else "")
  runs = (e.get("holdout") or {}).get("runs") or []
  if not e.get("fitted") or not runs:
    why = "; ".join(e.get("reasons") or []) or (e.get("holdout") or {}).get(
        "reason", "")
    print(f"{head}: no held-out prediction ({why})")
    return

  def ci(c):
    return (f" [{c['ci'][0]:.4g}, {c['ci'][1]:.4g}]" if c.get("ci") else "")

  for r in runs:
    pm, err = r["predicted"]["metric"], r["error"]
    x = r.get("extrapolation")
    where = "" if x is None else f", extrapolation x{x:.3g} in C"
    inside = r.get("observed_in_prediction_interval")
    within = ("" if inside is None else "; observed within the prediction "
              "interval" if inside else "; observed OUTSIDE the prediction "
              "interval")
    print(f"{head}: held-out {r['run']}{where}: observed "
          f"{r['observed']['metric']:.4g}, predicted {pm['value']:.4g}"
          f"{ci(pm)}, error {err['value']:+.4g}{ci(err)}{within}; "
          f"{identify.flag_text(e)}")


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
