"""``wsd_branches``: WSD decay branches against independent runs, 2 CPU cores.

Four one-layer byte-level models (d_model 12, 20, 32, 48; params_total 14k
to 77k) at four training lengths, 125, 250, 500 and 1000 steps of 16 × 128
tokens (D = 0.256M … 2.05M tokens), trained two ways:

* WSD branches (``generators.wsd_branches``): per size one stable run
  (warmup, then the peak rate) to step 800 with checkpoints at the branch
  points 100, 200, 400, 800, and one branch per length that decays over its
  last 20% with the 1-sqrt shape of Hägele et al. 2024 (arXiv 2405.18392);
  warmup 6 updates for every run of a size;
* independent runs: the same sizes and lengths trained from scratch with the
  project's usual cosine schedule (5% warmup, decay to 10%), as the
  quickstart trains.

Both use ``hparams.DEFAULT_RULE``'s learning rate and β2. :func:`analyze`
fits Approach 3 (and the rest of ``scaling analyze``) on the branch
endpoints, resampling by stable run in the bootstrap (the branches of a size
share its stable prefix), and on the independent runs, and writes the two
side by side with the FLOP ledger (planned and as trained) and the measured
training time of each method (``wsd_branches.md``, ``.json``, ``.png``).

Cost: 36 runs, 5.0e12 FLOPs (exact count): the branching 1.93e12 (4,700
steps; its 16 branches trained from scratch would cost 3.09e12: 37.3% saved),
the cosine runs 3.09e12 (7,500 steps). Measured with ``time scaling sweep
wsd_branches --workdir DIR`` on the 2 CPU cores shared with other work (load
average 7.7 to 12.3, median 9.9): 14 min 4 s wall, of which 769 s run wall
time (167 s compiling: the constant, wsd and cosine programs of each size)
and about 50 s of analysis. Summed run wall time: branching 440 s, cosine
329 s, but the branching ran first, at load ~11.5, the cosine runs at ~8.5,
and per-run costs (20 runs against 16, two programs per size) weigh more
than steps at this scale: the saving shows in steps and FLOPs here, not in
wall time.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from experiments import generators
from experiments import hparams
from experiments import registry
from scaling import config as config_lib

SHAPES = (
    generators.Shape(d_model=12, n_layers=1, n_heads=1, d_ff=48),
    generators.Shape(d_model=20, n_layers=1, n_heads=2, d_ff=80),
    generators.Shape(d_model=32, n_layers=1, n_heads=2, d_ff=128),
    generators.Shape(d_model=48, n_layers=1, n_heads=3, d_ff=192),
)
STEPS = (125, 250, 500, 1000)
TOKENS_PER_STEP = 16 * 128
DECAY_FRACTION = 0.2
DECAY_SHAPE = "1-sqrt"
RULE = hparams.DEFAULT_RULE
APPROACH3 = ("E", "A", "B", "alpha", "beta")


def base_config():
  """16 x 128 tokens per step; log every 10 steps; eval on 16 x 16 rows."""
  base = config_lib.default_config()
  base.seq_len = 128
  base.batch_size = 16
  base.train.log_every = 10
  base.checkpoint.every = 250
  base.checkpoint.async_save = False
  base.eval.batches = 16
  base.eval.batch_size = 16
  return base


def build_runs():
  """(base, runs): per size the stable run, its branches, the cosine runs."""
  base = base_config()
  runs = []
  for run in generators.wsd_branches(
      base, SHAPES, [s * TOKENS_PER_STEP for s in STEPS],
      decay_fraction=DECAY_FRACTION, decay_shape=DECAY_SHAPE, rule=RULE):
    run.config.eval.every = run.steps  # the final model only
    runs.append(run)
  for shape in SHAPES:
    config = RULE.apply(config_lib.with_overrides(base, shape.overrides()))
    for steps in STEPS:
      c = config_lib.with_overrides(config, {
          "train.steps": steps, "train.tokens": -1, "eval.every": steps,
          "schedule.name": "cosine"})
      name = f"{shape.name}_D{generators.fmt_value(float(steps * TOKENS_PER_STEP))}"
      runs.append(registry.Run(f"{name}_cosine", c, tags=dict(
          shape=shape.name, n_eff=generators.effective_params(c),
          role="independent", stable_run="")))
  return base, runs


def _ledger(rows: pd.DataFrame) -> dict:
  """FLOPs and training seconds of each method, from the finished runs."""
  fin = rows[rows["status"] == "finished"]
  num = lambda col, r: pd.to_numeric(r[col], errors="coerce").fillna(0.0)
  branching = fin[fin["role"].isin(["stable", "branch"])]
  branches = fin[fin["role"] == "branch"]
  cosine = fin[fin["role"] == "independent"]
  spent = float((num("flops", branching) - num("flops_at_branch",
                                                 branching)).sum())
  alone = float(num("flops", branches).sum())
  return dict(
      flops_branching=spent, flops_branches_if_independent=alone,
      flops_saved=alone - spent,
      saving_fraction=(alone - spent) / alone if alone else None,
      flops_cosine=float(num("flops", cosine).sum()),
      seconds_branching=float(num("wall_seconds", branching).sum()),
      seconds_cosine=float(num("wall_seconds", cosine).sum()),
      compile_seconds_branching=float(num("compile_seconds", branching).sum()),
      compile_seconds_cosine=float(num("compile_seconds", cosine).sum()))


def analyze(sweep_dir: str, out_dir: str | None = None) -> dict:
  """Approach 3 from branch endpoints beside the independent cosine runs.

  Args:
    sweep_dir: the ``wsd_branches`` sweep directory (``results.csv`` with the
      ``role`` and ``branch_of`` columns).
    out_dir: where ``branches/``, ``independent/`` (each a ``scaling
      analyze`` output) and ``wsd_branches.{json,md,png,svg}`` go (default
      ``sweep_dir/analysis``).

  Returns:
    The JSON written (``wsd_branches.json``).

  Raises:
    FileNotFoundError: no ``results.csv``.
  """
  # Imported here: the analysis stack adds about 2 s to every sweep process.
  from analysis import plots  # pylint: disable=import-outside-toplevel
  from analysis import report  # pylint: disable=import-outside-toplevel
  out_dir = out_dir or os.path.join(sweep_dir, "analysis")
  os.makedirs(out_dir, exist_ok=True)
  rows = pd.read_csv(os.path.join(sweep_dir, "results.csv"))
  result = dict(ledger=_ledger(rows), methods={})
  for method, role, resample_by in (("branches", "branch", "branch_of"),
                                    ("independent", "independent", None)):
    sub = rows[rows["role"] == role]
    csv = os.path.join(out_dir, f"{method}.csv")
    sub.to_csv(csv, index=False)
    fit = report.analyze(csv, os.path.join(out_dir, method), bootstrap=100,
                         resample_by=resample_by, sensitivity=False)
    a3 = fit["approach3"]
    result["methods"][method] = dict(
        runs=fit["rows"]["used"], bootstrap_units=(
            int(sub["branch_of"].nunique()) if resample_by else len(sub)),
        resample_by=resample_by or "run",
        approach3={k: dict(value=a3[k]["value"], ci=a3[k].get("ci"))
                   for k in APPROACH3},
        approach3_identifiable=a3["identifiable"],
        approach3_reasons=a3["reasons"],
        rms_log_residual=a3["rms_log_residual"],
        allocation={k: fit["allocation"].get(k) for k in ("a", "b")},
        bootstrap=a3["bootstrap"])
  result["endpoints"] = _endpoints(rows)
  result["plots"] = plots.plot_wsd_branches(out_dir, rows)
  with open(os.path.join(out_dir, "wsd_branches.json"), "w") as f:
    json.dump(report.clean_json(result), f, indent=1)
  with open(os.path.join(out_dir, "wsd_branches.md"), "w") as f:
    f.write(render(result))
  return report.clean_json(result)


def _endpoints(rows: pd.DataFrame) -> list[dict]:
  """Final eval loss per (size, length): branch against cosine."""
  fin = rows[rows["status"] == "finished"]
  out = []
  for (shape, steps), group in fin.groupby(["shape", "steps_planned"]):
    by_role = {r: g["eval_loss"].iloc[0] for r, g in group.groupby("role")}
    if {"branch", "independent"} <= set(by_role):
      out.append(dict(shape=shape, steps=int(steps),
                      tokens=int(group["tokens"].iloc[0]),
                      branch=float(by_role["branch"]),
                      cosine=float(by_role["independent"])))
  return out


def _fmt(entry) -> str:
  if entry is None or entry.get("value") is None:
    return "—"
  ci = entry.get("ci")
  text = f"{entry['value']:.4g}"
  return text + (f" [{ci[0]:.3g}, {ci[1]:.3g}]" if ci else " (no interval)")


def render(result: dict) -> str:
  """wsd_branches.md."""
  led = result["ledger"]
  m = result["methods"]
  lines = ["# WSD branches against independent cosine runs", "",
           f"FLOPs (exact count, finished runs): branching "
           f"{led['flops_branching']:.3g} (stable prefixes counted once) "
           f"against {led['flops_branches_if_independent']:.3g} for the same "
           f"branches trained from scratch: {led['flops_saved']:.3g} saved "
           f"({100 * (led['saving_fraction'] or 0):.1f}%). The independent "
           f"cosine runs: {led['flops_cosine']:.3g}.",
           f"Training wall time (sum over runs, compile included): branching "
           f"{led['seconds_branching']:.0f} s (compile "
           f"{led['compile_seconds_branching']:.0f} s), cosine "
           f"{led['seconds_cosine']:.0f} s (compile "
           f"{led['compile_seconds_cosine']:.0f} s).", "",
           "## Approach 3 (L = E + A/N^alpha + B/D^beta), 95% bootstrap "
           "intervals", "",
           "| | " + " | ".join(m) + " |", "|---|" + "---|" * len(m)]
  for k in APPROACH3:
    lines.append(f"| {k} | " + " | ".join(_fmt(m[x]["approach3"][k])
                                         for x in m) + " |")
  for k in ("a", "b"):
    lines.append(f"| allocation {k} | " + " | ".join(
        _fmt(m[x]["allocation"].get(k)) for x in m) + " |")
  lines.append("| runs (bootstrap units) | " + " | ".join(
      f"{m[x]['runs']} ({m[x]['bootstrap_units']} by {m[x]['resample_by']}, "
      f"{m[x]['bootstrap'].get('succeeded')}/{m[x]['bootstrap'].get('requested')}"
      " resamples ok)" for x in m) + " |")
  lines.append("| identifiable | " + " | ".join(
      "yes" if m[x]["approach3_identifiable"] else
      "no: " + "; ".join(m[x]["approach3_reasons"]) for x in m) + " |")
  lines.append("| rms log residual | " + " | ".join(
      f"{m[x]['rms_log_residual']:.4f}" for x in m) + " |")
  lines += ["", "## Final eval loss per run (nats)", "",
            "| shape | steps | tokens | WSD branch | cosine | branch − cosine |",
            "|---|---|---|---|---|---|"]
  for e in result["endpoints"]:
    lines.append(f"| {e['shape']} | {e['steps']} | {e['tokens']:,} | "
                 f"{e['branch']:.4f} | {e['cosine']:.4f} | "
                 f"{e['branch'] - e['cosine']:+.4f} |")
  diffs = [e["branch"] - e["cosine"] for e in result["endpoints"]]
  if diffs:
    lines.append(f"\nMean difference {np.mean(diffs):+.4f} nats over "
                 f"{len(diffs)} pairs (range {min(diffs):+.4f} to "
                 f"{max(diffs):+.4f}).")
  lines += ["", "![loss against tokens](wsd_branches.png)", ""]
  return "\n".join(lines)


@registry.register(
    "wsd_branches",
    description=("WSD decay branches (1-sqrt, 20%) of 4 sizes x 4 lengths "
                 "beside the same runs trained with cosine"),
    cost="14 min on 2 CPU cores at load ~10 (measured; module docstring)",
    analyze=analyze)
def build():
  base, runs = build_runs()
  return registry.Family(base, runs)
