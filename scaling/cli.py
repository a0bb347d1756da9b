"""The ``scaling`` command: the one place that ties the packages together.

    scaling train --workdir DIR [--config FILE[:ARG]] [--config.KEY=VALUE ...]
                  [--init-from RUN_DIR@STEP]
    scaling finetune --init-from RUN_DIR@STEP|none --task NAME --workdir DIR
                     [--model-from RUN_DIR] [--config.KEY=VALUE ...]
    scaling generate RUN_DIR@STEP --prompt TEXT [--max-new-tokens N]
                     [--temperature T] [--seed S]
    scaling check train [train flags] | check sweep NAME [--only REGEX]
                  [--topology NAME] [--no-roofline]
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
import math
import os
import sys
import time

from scaling import config as config_lib

USAGE = __doc__


def split_overrides(argv: list[str]):
  """Splits ``--config.KEY=VALUE`` (or ``--config.KEY VALUE``) overrides from
  the other flags.

  Returns:
    (other flags, overrides) with overrides a list of (dotted key, text).
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
  return rest, overrides


def parse_train_args(argv: list[str]):
  """Splits ``--config.KEY=VALUE`` overrides from the other train flags.

  Returns:
    (args, overrides) with overrides a list of (dotted key, text value).
  Raises:
    ConfigError: an override without a value.
  """
  rest, overrides = split_overrides(argv)
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


def parse_finetune_args(argv: list[str]):
  """The flags of ``scaling finetune`` and its ``--config.*`` overrides."""
  rest, overrides = split_overrides(argv)
  parser = argparse.ArgumentParser(prog="scaling finetune")
  parser.add_argument("--workdir", required=True, help="run directory")
  parser.add_argument("--task", required=True,
                      help="a built-in task (stdlib_package, stdlib_tokens, "
                      "stdlib_docstring) or a .jsonl file")
  parser.add_argument("--init-from", required=True,
                      help="RUN_DIR@STEP: its parameters; none: from scratch")
  parser.add_argument("--model-from", default=None,
                      help="with --init-from none: the model of RUN_DIR "
                      "(not its parameters)")
  parser.add_argument("--config", default=None,
                      help="with --init-from none: FILE[:ARG] defining "
                      "get_config() for the model; default: built-in")
  return parser.parse_args(rest), overrides


def finetune_config_from_args(args, overrides):
  """The fine-tuning config of parsed ``scaling finetune`` flags.

  Raises:
    ConfigError: a bad ``--init-from``, ``--model-from`` or ``--config``
      combination, or an unreadable source run.
  """
  from scaling import finetune, rundir  # pylint: disable=import-outside-toplevel
  scratch = args.init_from.lower() == "none"
  if not scratch and (args.model_from or args.config):
    flag = "--model-from" if args.model_from else "--config"
    raise config_lib.ConfigError(flag, (
        "only with --init-from none: a fine-tune from RUN_DIR@STEP takes "
        "the model of RUN_DIR."))
  if args.model_from and args.config:
    raise config_lib.ConfigError("--model-from", "give --model-from or "
                                 "--config, not both.")
  source = None
  if not scratch:
    run_dir, _ = rundir.parse_init_from(args.init_from)
    source = rundir.read_run_config(run_dir)["config"]
  elif args.model_from:
    source = rundir.read_run_config(args.model_from, "--model-from")["config"]
  base = config_lib.load_config_file(args.config) if args.config else None
  return finetune.finetune_config(source, overrides, base)


def _finetune(argv: list[str]) -> int:
  args, overrides = parse_finetune_args(argv)
  config = finetune_config_from_args(args, overrides)
  distributed = _initialize_distributed()
  from scaling import finetune, train  # pylint: disable=import-outside-toplevel
  summary = finetune.finetune(config, args.workdir, args.task, args.init_from)
  if summary["status"] == train.TERMINATED:
    return distributed.finish(143)
  if summary["status"] != "finished":
    print(f"run failed: {summary['reason']}", file=sys.stderr)
    return distributed.finish(1)
  _print_summary(summary, ("step", "tokens", "flops", "params_total",
                           "train_loss") + tuple(
      k for k in summary if k.startswith(("val_", "test_"))
      and not k.endswith("_se")) + ("wall_seconds",))
  return distributed.finish(0)


def _generate(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(prog="scaling generate")
  parser.add_argument("run", metavar="RUN_DIR@STEP",
                      help="a run directory and one of its checkpoint steps")
  parser.add_argument("--prompt", required=True, help="the text to continue "
                      "(a fine-tuned run: the task input)")
  parser.add_argument("--max-new-tokens", type=int, default=256)
  parser.add_argument("--temperature", type=float, default=0.0,
                      help="0: greedy; > 0: sample at this temperature")
  parser.add_argument("--seed", type=int, default=0, help="sampling seed")
  args = parser.parse_args(argv)
  from scaling import generate  # pylint: disable=import-outside-toplevel
  print(generate.generate(args.run, args.prompt,
                          max_new_tokens=args.max_new_tokens,
                          temperature=args.temperature, seed=args.seed))
  return 0


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
  rest, overrides = split_overrides(argv)
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


_CHECK_USAGE = ("usage: scaling check train [--config FILE[:ARG]] "
                "[--config.KEY=VALUE ...] [--topology NAME] [--no-roofline] | "
                "scaling check sweep NAME [--only REGEX] [--topology NAME] "
                "[--no-roofline] | scaling check coord --widths W,... "
                "[--depths L,...] [--steps N]")


def _check_flags(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
  """(--topology, --no-roofline) and the remaining check arguments."""
  parser = argparse.ArgumentParser(prog="scaling check", add_help=False)
  parser.add_argument("--topology", default=None,
                      help="compile for a TPU slice with XLA:TPU (libtpu): "
                           "v5e:16x16, v5p:8x8x4, v6e:8x8, v5litepod-256, ...")
  parser.add_argument("--no-roofline", action="store_true",
                      help="skip the cost probes and the roofline bound")
  return parser.parse_known_args(argv)


def _check_runs(argv: list[str]):
  """[(name, config)] of ``check train ...`` or ``check sweep NAME ...``;
  None (after printing the error) for an unknown experiment. A train run is
  named by its ``--workdir``'s last part.

  Raises:
    ConfigError: unknown experiment, bad --only, bad overrides.
  """
  if argv[:1] == ["sweep"] and len(argv) >= 2:
    from experiments import plan as plan_lib  # pylint: disable=import-outside-toplevel
    from experiments import registry  # pylint: disable=import-outside-toplevel
    parser = argparse.ArgumentParser(prog="scaling check sweep")
    parser.add_argument("--only", default=None)
    args, _ = parser.parse_known_args(argv[2:])  # sweep flags (--workdir ...) ignored
    try:
      experiment = registry.lookup(argv[1])
    except registry.UnknownExperiment as e:
      print(f"error: {e}", file=sys.stderr)
      return None
    return [(r.short_name, r.config)
            for r in plan_lib.select(experiment, args.only)]
  has_workdir = any(a == "--workdir" or a.startswith("--workdir=") for a in argv)
  args_ns, overrides = parse_train_args(argv[1:] + (
      [] if has_workdir else ["--workdir", "train"]))
  name = args_ns.workdir.rstrip("/").rsplit("/", 1)[-1] or "train"
  return [(name, build_config(args_ns.config, overrides))]


def _gib(value: float) -> str:
  return f"{value / 2**30:.3f} GiB ({int(value):,} B)"


def _print_report(report: dict) -> None:
  for key, value in report.items():
    if key.endswith("bytes_per_device"):
      value = _gib(value)
    elif key.endswith("seconds") or key == "step_seconds_lower_bound":
      value = f"{value:.4g} s"
    elif key == "mfu_upper_bound":
      value = f"{value:.1%}"
    elif key.endswith(("flops_per_device", "accessed_per_device")) or key in (
        "hbm_bytes_per_sec",):
      value = f"{value:.4g}"
    print(f"  {key:>31}: {value}")


def _summary_row(name: str, report: dict) -> str:
  total = report.get("total_bytes_per_device")
  hbm = report.get("hbm_bytes_per_device")
  gib = f"{total / 2**30:8.2f}" if total is not None else f"{'-':>8}"
  share = f"{total / hbm:6.0%}" if total is not None and hbm else f"{'-':>6}"
  fits = {True: "yes", False: "NO"}.get(report.get("fits"), "-")
  ms = report.get("step_seconds_lower_bound")
  mfu = report.get("mfu_upper_bound")
  return (f"{name:<22} {gib} {share} {fits:>4} "
          f"{(f'{ms * 1e3:10.1f}' if ms else f'{chr(45):>10}')} "
          f"{(f'{mfu:6.1%}' if mfu is not None else f'{chr(45):>6}')}")


def _check(argv: list[str]) -> int:
  """``scaling check train ...`` or ``scaling check sweep NAME``: compile
  only; ``scaling check coord ...``: the coordinate check.

  Exit status: 0 every step compiles (and fits the chip's HBM with
  --topology); 2 a config error, libtpu missing, or a run that does not fit
  (named, with its bytes); 1 a step XLA cannot compile.
  """
  if argv[:1] == ["coord"]:
    return _check_coord(argv[1:])
  flags, argv = _check_flags(argv)
  if argv[:1] not in (["train"], ["sweep"]) or argv == ["sweep"]:
    print(_CHECK_USAGE, file=sys.stderr)
    return 2
  from scaling import topology  # pylint: disable=import-outside-toplevel
  if flags.topology is not None:
    topology.parse(flags.topology)  # a bad name is told before libtpu is
    try:
      warning = topology.version_warning()
    except topology.LibtpuMissing as e:
      print(f"error: {e}", file=sys.stderr)
      return 2
    if warning:
      print(warning, file=sys.stderr)
    import jax  # pylint: disable=import-outside-toplevel
    # Compile-only: libtpu is the compiler and JAX's own backend the CPU, so
    # no TPU chip is opened, and libtpu's one-process-per-machine lock (which
    # guards the chips) need not be taken: another check, or a run on this
    # TPU VM's chips, may use libtpu at the same time.
    jax.config.update("jax_platforms", "cpu")
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  from scaling import aot  # pylint: disable=import-outside-toplevel
  runs = _check_runs(argv)
  if runs is None:
    return 2
  where = f" for {flags.topology}" if flags.topology else ""
  print(f"checking {len(runs)} run(s){where}: each distinct train step "
        "compiled once", flush=True)
  results, configs = [], dict(runs)
  try:
    for names, report in aot.check_runs(
        runs, flags.topology, roofline=not flags.no_roofline,
        progress=lambda line: print(line, flush=True)):
      config = configs[names[0]]
      m = config.model
      print(f"  train step: d_model={m.d_model} n_layers={m.n_layers} "
            f"n_heads={m.n_heads} d_ff={m.d_ff} batch_size={config.batch_size} "
            f"seq_len={config.seq_len}")
      _print_report(report)
      results.append((names, report))
  except config_lib.ConfigError:
    raise
  except topology.LibtpuMissing as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  except Exception as e:  # pylint: disable=broad-except
    print(f"error: the train step does not compile for this mesh: "
          f"{type(e).__name__}: {str(e).splitlines()[0][:500]}", file=sys.stderr)
    return 1
  if len(runs) > 1 or flags.topology:
    print(f"\n{'run':<22} {'GiB/dev':>8} {'of HBM':>6} {'fits':>4} "
          f"{'step>=ms':>10} {'MFU<=':>6}")
    for names, report in results:
      for name in names:
        print(_summary_row(name, report))
  return _report_misfits(results, aot.oom_bytes)


def _report_misfits(results, oom_bytes) -> int:
  """Names each run that does not fit, with its bytes; 2 if any, else 0."""
  code = 0
  for names, report in results:
    if report.get("fits") is not False:
      continue
    code = 2
    kind = report.get("device_kind", "the device")
    hbm = report.get("hbm_bytes_per_device")
    state = report["param_bytes_per_device"] + report["optimizer_bytes_per_device"]
    if "xla_error" in report:
      pair = oom_bytes(report["xla_error"])
      need = (f"XLA:TPU needs {_gib(pair[0])} of the {_gib(pair[1])} it can "
              "use" if pair else "XLA:TPU ran out of HBM")
      detail = f"{need} ({report['xla_error']})"
    else:
      detail = (f"{_gib(report['total_bytes_per_device'])} per device "
                f"(arguments {_gib(report['argument_bytes_per_device'])}, "
                f"temporaries {_gib(report['temp_bytes_per_device'])})"
                f" > {_gib(hbm)} HBM")
    print(f"error: run {', '.join(names)} does not fit {kind}: {detail}; "
          f"parameters + optimizer state alone are {_gib(state)} per device "
          f"(HBM {_gib(hbm) if hbm else 'unknown'}): shard more (mesh.fsdp), "
          "use model.remat or train.microbatches, or a larger slice",
          file=sys.stderr)
  return code


def _sweep(argv: list[str]) -> int:
  """``scaling sweep``: in this process, or with ``--workers N`` in N pinned
  worker processes (``launch.workers``) and then the tables and analysis
  here."""
  from experiments import cli as exp_cli  # pylint: disable=import-outside-toplevel
  from launch import workers  # pylint: disable=import-outside-toplevel
  started_at = time.time()
  args = exp_cli.sweep_parser().parse_args(argv)
  distributed = _initialize_distributed()
  n = exp_cli.resolve_workers(args, len(workers.usable_cpus()))
  if n == 1:
    return distributed.finish(exp_cli.run(args))
  rest = [a for i, a in enumerate(argv)
          if not (a == "--workers" or a.startswith("--workers=")
                  or (i and argv[i - 1] == "--workers"))]
  status = workers.run_workers(rest, n)
  if status:
    return status
  return exp_cli.run(args, train=False, started_at=started_at)


_SUMMARY_KEYS = ("step", "tokens", "flops", "params_total", "train_loss",
                 "eval_loss", "eval_bpb", "eval_bpb_se",
                 "eval_continuation_bpb", "unigram_bpb", "wall_seconds",
                 "compile_seconds")


def _print_summary(summary: dict, keys=_SUMMARY_KEYS) -> None:
  """Prints the run's headline figures (and eval_bpb against unigram entropy)."""
  for key in keys:
    if summary.get(key) is not None:
      value = summary[key]
      text = f"{value:.4g}" if isinstance(value, float) else f"{value:,}"
      print(f"  {key:>21}: {text}")
  for key in sorted(summary):  # eval.tasks: zero-shot accuracy ± its SE
    if key.startswith("task_") and key.endswith("_accuracy"):
      print(f"  {key[5:]:>21}: {summary[key]:.3f} ± "
            f"{summary.get(key + '_se', math.nan):.3f} (zero-shot, "
            f"{summary.get('task_eval_share', math.nan):.1%} of the time on "
            "task evals)")
  if summary.get("eval_bpb") and summary.get("unigram_bpb"):
    ratio = summary["eval_bpb"] / summary["unigram_bpb"]
    side = "below" if ratio <= 1 else "above"
    print(f"  eval_bpb is {abs(1 - ratio):.0%} {side} the validation set's "
          f"unigram entropy ({summary['unigram_bpb']:.3f} bits per byte)")


def _pin_cpus() -> None:
  """A sweep worker's CPUs (``SCALING_CPU_AFFINITY``), before JAX starts."""
  from launch import workers  # pylint: disable=import-outside-toplevel
  workers.apply_affinity()


def _initialize_distributed():
  """Joins a multi-process job when the environment describes one."""
  from launch import distributed  # pylint: disable=import-outside-toplevel
  distributed.initialize()
  return distributed


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  _pin_cpus()
  if not argv or argv[0] in ("-h", "--help"):
    print(USAGE)
    return 0 if argv else 2
  command, rest = argv[0], argv[1:]
  try:
    if command == "train":
      return _train(rest)
    if command == "finetune":
      return _finetune(rest)
    if command == "generate":
      return _generate(rest)
    if command == "experiments":
      from experiments import cli as exp_cli  # pylint: disable=import-outside-toplevel
      return exp_cli.main_list(rest)
    if command == "sweep":
      return _sweep(rest)
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
