"""The ``scaling`` command: the one place that ties the packages together.

    scaling train --workdir DIR [--config FILE[:ARG]] [--config.KEY=VALUE ...]
                  [--init-from RUN_DIR@STEP]
    scaling check train [train flags] | check sweep NAME
    scaling experiments
    scaling sweep NAME --workdir DIR [--dry-run] [--only REGEX]
    scaling analyze PATH --out DIR [column flags]
    scaling launch {local,tpu,slurm,gke} ...

A config error names the field and the fix and exits with status 2 before
anything is compiled.
"""

from __future__ import annotations

import argparse
import sys
import time

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


def _check(argv: list[str]) -> int:
  """``scaling check train ...`` or ``scaling check sweep NAME``: compile only."""
  from scaling import accounting, aot  # pylint: disable=import-outside-toplevel
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
          "scaling check sweep NAME", file=sys.stderr)
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
