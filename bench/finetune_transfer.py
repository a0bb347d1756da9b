"""Fine-tuned from a pretrained checkpoint versus from scratch, equal steps.

    python bench/finetune_transfer.py --workdir /tmp/transfer \
        [--tasks stdlib_package,stdlib_docstring] [--seeds 3] \
        [--seq-len 128] [--pretrain-steps 400] [--finetune-steps 200] \
        [--figure docs/finetune_transfer.png]

Pretrains one small byte LM (``experiments.transfer.source_config``), then
per task and seed fine-tunes it and the same model from a fresh init with
one fine-tuning config (``experiments.transfer.compare``), and prints each
arm's test metrics as mean ± standard error over seeds, and the validation
metric over fine-tuning steps as a figure. Runs already finished in
``--workdir`` are read back, so a second call only redraws. The persistent
compilation cache (in ``--workdir``) lets the runs share compiled programs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from experiments import compile_cache  # noqa: E402
from experiments import transfer  # noqa: E402
from scaling import metrics as metrics_lib  # noqa: E402

# Per task kind: the headline test metrics and the curve's validation metric.
METRICS = {"stdlib_package": (("test_accuracy", "test_macro_f1",
                               "test_gold_bpb"), "val_accuracy"),
           "stdlib_docstring": (("test_bleu", "test_chrf", "test_gold_bpb"),
                                "val_bleu"),
           "stdlib_tokens": (("test_span_f1", "test_gold_bpb"), "val_span_f1")}


def _curves(summaries, key):
  """(steps, per-seed values) of ``key`` in each run's metrics.jsonl."""
  per_run = []
  for s in summaries:
    records = metrics_lib.read_jsonl(os.path.join(s["run_dir"],
                                                  "metrics.jsonl"))
    per_run.append({r["step"]: r[key] for r in records if key in r})
  steps = sorted(set.intersection(*(set(r) for r in per_run)))
  return steps, [[r[step] for r in per_run] for step in steps]


def _figure(results, path):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.6),
                           squeeze=False)
  for ax, (task, runs) in zip(axes[0], results.items()):
    key = METRICS[task][1]
    for arm, color in (("pretrained", "tab:blue"), ("scratch", "tab:gray")):
      steps, values = _curves(runs[arm], key)
      stats = [transfer.mean_se(v) for v in values]
      mean = [m for m, _ in stats]
      se = [e for _, e in stats]
      label = ("fine-tuned from the pretrained checkpoint" if arm ==
               "pretrained" else "same model from scratch")
      ax.plot(steps, mean, "o-", color=color, label=label, ms=3)
      ax.fill_between(steps, [m - e for m, e in zip(mean, se)],
                      [m + e for m, e in zip(mean, se)], color=color,
                      alpha=0.2)
    ax.set_xlabel("fine-tuning step")
    ax.set_ylabel(f"{key} (mean ± SE, {len(runs['scratch'])} seeds)")
    ax.set_title(task)
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  print(f"figure: {path}")


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="finetune_transfer")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--tasks", default="stdlib_package,stdlib_docstring")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--seq-len", type=int, default=128)
  parser.add_argument("--pretrain-steps", type=int, default=400)
  parser.add_argument("--finetune-steps", type=int, default=200)
  parser.add_argument("--eval-every", type=int, default=25)
  parser.add_argument("--figure", default=None, help="PNG path")
  args = parser.parse_args(argv)
  compile_cache.enable_compile_cache(os.path.join(args.workdir, "jax_cache"))
  source = transfer.pretrain(args.workdir, transfer.source_config(
      seq_len=args.seq_len, steps=args.pretrain_steps))
  overrides = [("train.steps", str(args.finetune_steps)),
               ("eval.every", str(args.eval_every))]
  results, table = {}, {}
  for task in args.tasks.split(","):
    runs = transfer.compare(source, args.pretrain_steps, task, args.workdir,
                            range(args.seeds), overrides)
    results[task] = runs
    for key in METRICS[task][0]:
      for arm in ("pretrained", "scratch"):
        mean, se = transfer.mean_se([s[key] for s in runs[arm]])
        table[f"{task} {key} {arm}"] = (mean, se)
        print(f"{task:>17} {key:>15} {arm:>10}: {mean:8.4f} ± {se:.4f}  "
              f"{[round(s[key], 4) for s in runs[arm]]}")
  with open(os.path.join(args.workdir, "transfer.json"), "w") as f:
    json.dump({k: dict(mean=m, se=e) for k, (m, e) in table.items()}, f,
              indent=1)
  if args.figure:
    _figure(results, args.figure)
  return 0


if __name__ == "__main__":
  sys.exit(main())
