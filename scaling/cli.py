"""The ``scaling`` command: the one place that ties the packages together.

    scaling train --workdir DIR [--config FILE[:ARG]] [--config.KEY=VALUE ...]
                  [--init-from RUN_DIR@STEP]
    scaling check train [train flags] | check sweep NAME
    scaling check coord [--widths W,..] [--depths L,..] [--steps N] ...
    scaling experiments
    scaling sweep NAME --workdir DIR [--dry-run] [--only REGEX]
    scaling analyze PATH --out DIR [column flags]
    scaling launch {local,tpu,slurm,gke} ...

A config error names the field and the fix and exits with status 2 before
anything is compiled.
"""

from __future__ import annotations

import argparse
import os
import sys

from scaling import config as config_lib

USAGE = __doc__


def parse_train_args(argv: list[str]):
  """Splits ``--config.KEY=VALUE`` overrides from the other train flags.

  Returns:
    (args, overrides) with overrides a list of (dotted key, text value).
  Raises:
    ConfigError: an override without a value.
  """
  overrides, rest = [], []
  it = iter(argv)
  for arg in it:
    if arg.startswith("--config."):
      key, eq, value = arg[len("--config."):].partition("=")
      if not eq:
        try:
          value = next(it)
        except StopIteration:
          raise config_lib.ConfigError(key, "override needs a value: "
                                       f"--config.{key}=VALUE") from None
      overrides.append((key, value))
    else:
      rest.append(arg)
  parser = argparse.ArgumentParser(prog="scaling train")
  parser.add_argument("--workdir", required=True, help="run directory")
  parser.add_argument("--config", default=None,
                      help="FILE[:ARG] defining get_config(); default: built-in")
  parser.add_argument("--init-from", default=None,
                      help="RUN_DIR@STEP: start from another run's checkpoint")
  return parser.parse_args(rest), overrides


def build_config(config_spec: str | None, overrides):
  """The default (or file) config with the overrides applied."""
  config = (config_lib.load_config_file(config_spec) if config_spec
            else config_lib.default_config())
  for key, value in overrides:
    config_lib.apply_override(config, key, value)
  return config


def _train(argv: list[str]) -> int:
  args, overrides = parse_train_args(argv)
  config = build_config(args.config, overrides)
  distributed = _initialize_distributed()
  from scaling import train  # pylint: disable=import-outside-toplevel
  summary = train.train(config, args.workdir, init_from=args.init_from)
  if summary["status"] == train.TERMINATED:
    return distributed.finish(143)
  if summary["status"] != "finished":
    print(f"run failed: {summary['reason']}", file=sys.stderr)
    return distributed.finish(1)
  _print_summary(summary)
  return distributed.finish(0)


def _ints(text: str) -> list[int]:
  try:
    values = [int(v) for v in text.split(",") if v.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"expected comma-separated integers, got {text!r}") from None
  if not values or min(values) <= 0:
    raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
  return values


def _check_coord(argv: list[str]) -> int:
  """``scaling check coord``: the coordinate check (``scaling.coord_check``)
  over widths and/or depths; prints the table and slopes, writes
  ``coord_check.csv`` and the log-log plot into ``--out``."""
  overrides, rest = [], []
  it = iter(argv)
  for arg in it:
    if arg.startswith("--config."):
      key, eq, value = arg[len("--config."):].partition("=")
      if not eq:
        value = next(it, None)
        if value is None:
          raise config_lib.ConfigError(key, "override needs a value: "
                                       f"--config.{key}=VALUE")
      overrides.append((key, value))
    else:
      rest.append(arg)
  parser = argparse.ArgumentParser(
      prog="scaling check coord",
      description="Train each width (or depth) a few steps at one learning "
      "rate and print, per layer type and step, the mean |activation| and "
      "its change since initialisation, with log-log slopes against size "
      "(|slope| <= 0.13 is flat). Extra --config.KEY=VALUE overrides apply "
      "to every model.")
  parser.add_argument("--widths", type=_ints, default=None,
                      help="d_model values, e.g. 64,128,256,512")
  parser.add_argument("--depths", type=_ints, default=None,
                      help="n_layers values at d_model of the config, e.g. 2,4,8")
  parser.add_argument("--steps", type=int, default=4,
                      help="optimizer updates per model (default 4)")
  parser.add_argument("--parametrizations", default=None,
                      help="comma-separated (default: sp,mup for widths, "
                      "mup,completep for depths)")
  parser.add_argument("--lr", type=float, default=1e-3,
                      help="the one (constant) learning rate (default 1e-3)")
  parser.add_argument("--d-head", type=int, default=16,
                      help="head size; width grows by heads (default 16)")
  parser.add_argument("--base-width", type=int, default=None,
                      help="base d_model (default: the smallest width)")
  parser.add_argument("--base-depth", type=int, default=None,
                      help="base n_layers (default: the smallest depth)")
  parser.add_argument("--out", default="coord_check",
                      help="directory for coord_check.csv and the plots")
  args = parser.parse_args(rest)
  if not args.widths and not args.depths:
    parser.error("give --widths and/or --depths")
  if args.steps < 1:
    parser.error("--steps must be >= 1")
  from scaling import coord_check  # pylint: disable=import-outside-toplevel
  from scaling import parametrization  # pylint: disable=import-outside-toplevel
  from analysis import coord  # pylint: disable=import-outside-toplevel
  import pandas as pd  # pylint: disable=import-outside-toplevel
  base = coord_check.default_config(args.steps, args.lr)
  for key, value in overrides:
    config_lib.apply_override(base, key, value)
  sweeps = []
  if args.widths:
    sweeps.append(("d_model", "widths", args.widths, ["sp", "mup"]))
  if args.depths:
    sweeps.append(("n_layers", "depths", args.depths, ["mup", "completep"]))
  os.makedirs(args.out, exist_ok=True)
  for size, what, values, default in sweeps:
    names = (args.parametrizations.split(",") if args.parametrizations
             else default)
    for name in names:
      if name not in parametrization.PARAMETRIZATIONS:
        raise config_lib.ConfigError(
            "--parametrizations", f"'{name}' is not one of "
            f"{', '.join(parametrization.PARAMETRIZATIONS)}.")
    kwargs = {what: values}
    rows = coord_check.run(
        base, names, steps=args.steps, d_head=args.d_head,
        base_d_model=args.base_width, base_n_layers=args.base_depth,
        progress=lambda line: print(f"  training {line}", flush=True),
        **kwargs)
    stem = f"coord_check_{what}"
    pd.DataFrame(rows).to_csv(os.path.join(args.out, f"{stem}.csv"),
                              index=False)
    print(coord.format_table(rows, size))
    files = coord.plot(rows, args.out, size, stem=stem)
    print(f"wrote {os.path.join(args.out, stem + '.csv')} and "
          f"{', '.join(os.path.join(args.out, f) for f in files)}")
  return 0


def _check(argv: list[str]) -> int:
  """``scaling check train ...``, ``scaling check sweep NAME`` (compile only)
  or ``scaling check coord ...`` (the coordinate check)."""
  from scaling import accounting, aot  # pylint: disable=import-outside-toplevel
  if argv[:1] == ["coord"]:
    return _check_coord(argv[1:])
  if argv[:1] == ["sweep"] and len(argv) >= 2:
    from experiments import registry  # pylint: disable=import-outside-toplevel
    try:
      runs = registry.lookup(argv[1]).runs
    except registry.UnknownExperiment as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
    config = max(runs, key=lambda r: accounting.flops_per_step(r.config)["flops"]).config
  elif argv[:1] == ["train"]:
    args_ns, overrides = parse_train_args(argv[1:] + (
        [] if "--workdir" in argv else ["--workdir", "-"]))
    config = build_config(args_ns.config, overrides)
  else:
    print("usage: scaling check train [--config.KEY=VALUE ...] | "
          "scaling check sweep NAME | scaling check coord --widths W,... "
          "[--depths L,...] [--steps N]", file=sys.stderr)
    return 2
  m = config.model
  print(f"compiling the train step: d_model={m.d_model} n_layers={m.n_layers} "
        f"n_heads={m.n_heads} d_ff={m.d_ff} batch_size={config.batch_size} "
        f"seq_len={config.seq_len}", flush=True)
  try:
    report = aot.check(config)
  except config_lib.ConfigError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    print(f"error: the train step does not compile for this mesh "
          f"({config.mesh.to_dict()}): {type(e).__name__}: "
          f"{str(e).splitlines()[0][:500]}", file=sys.stderr)
    return 1
  for key, value in report.items():
    if key.endswith("bytes_per_device"):
      value = f"{value / 2**30:.3f} GiB"
    print(f"  {key:>28}: {value}")
  return 0


def _print_summary(summary: dict) -> None:
  """Prints the run's headline figures (and eval_bpb against unigram entropy)."""
  keys = ("step", "tokens", "flops", "params_total", "train_loss", "eval_loss",
          "eval_bpb", "eval_bpb_se", "eval_continuation_bpb", "unigram_bpb", "wall_seconds",
          "compile_seconds")
  for key in keys:
    if summary.get(key) is not None:
      value = summary[key]
      text = f"{value:.4g}" if isinstance(value, float) else f"{value:,}"
      print(f"  {key:>21}: {text}")
  if summary.get("eval_bpb") and summary.get("unigram_bpb"):
    ratio = summary["eval_bpb"] / summary["unigram_bpb"]
    side = "below" if ratio <= 1 else "above"
    print(f"  eval_bpb is {abs(1 - ratio):.0%} {side} the validation set's "
          f"unigram entropy ({summary['unigram_bpb']:.3f} bits per byte)")


def _initialize_distributed():
  """Joins a multi-process job when the environment describes one."""
  from launch import distributed  # pylint: disable=import-outside-toplevel
  distributed.initialize()
  return distributed


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  if not argv or argv[0] in ("-h", "--help"):
    print(USAGE)
    return 0 if argv else 2
  command, rest = argv[0], argv[1:]
  try:
    if command == "train":
      return _train(rest)
    if command == "experiments":
      from experiments import cli as exp_cli  # pylint: disable=import-outside-toplevel
      return exp_cli.main_list(rest)
    if command == "sweep":
      distributed = _initialize_distributed()
      from experiments import cli as exp_cli  # pylint: disable=import-outside-toplevel
      return distributed.finish(exp_cli.main_sweep(rest))
    if command == "check":
      return _check(rest)
    if command == "analyze":
      from analysis import cli as analysis_cli  # pylint: disable=import-outside-toplevel
      return analysis_cli.main(rest)
    if command == "launch":
      from launch import cli as launch_cli  # pylint: disable=import-outside-toplevel
      return launch_cli.main(rest)
  except config_lib.ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  print(f"error: unknown command '{command}'\n{USAGE}", file=sys.stderr)
  return 2


if __name__ == "__main__":
  sys.exit(main())
