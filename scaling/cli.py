"""The ``scaling`` command: the one place that ties the packages together.

    scaling train --workdir DIR [--config FILE[:ARG]] [--config.KEY=VALUE ...]
                  [--init-from RUN_DIR@STEP]
    scaling finetune --init-from RUN_DIR@STEP|none --task NAME --workdir DIR
                     [--model-from RUN_DIR] [--config.KEY=VALUE ...]
    scaling generate RUN_DIR@STEP --prompt TEXT [--max-new-tokens N]
                     [--temperature T] [--seed S]
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
    if command == "finetune":
      return _finetune(rest)
    if command == "generate":
      return _generate(rest)
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
