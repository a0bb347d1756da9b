"""``report.md`` of the ``objectives`` sweep: views, downstream, two-step law.

First lines: whether every objective's shared views fall below the
validation set's unigram entropy at the largest budget (the views rank
nothing above it), the downstream ranking at the largest budget and which
of its differences are distinguishable (``analysis.compare``), and whether
the two-step law is identified with its held-out error. Then the tables:
the views per objective and budget, the fine-tuned test metrics (mean ± SE
over seeds, n seeds) beside the scratch baseline, and the two-step law.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd


def _fmt(v, digits: int = 3) -> str:
  return "—" if v is None or not np.isfinite(v) else f"{v:.{digits}g}"


def _views_lines(runs: pd.DataFrame, views) -> list[str]:
  done = runs[runs["status"].eq("finished")]
  if done.empty:
    return ["no finished runs"]
  top = done["budget"].max()
  lines = ["| objective | " + " | ".join(
      f"best {v} at C = {top:.3g}" for v, _ in views) + " | unigram bpb |",
           "|---|" + "---|" * (len(views) + 1)]
  above = []
  for objective, part in done[done["budget"] == top].groupby(
      "objective", sort=False):
    cells = []
    unigram = float(part["unigram_bpb"].mean()) if "unigram_bpb" in part \
        else math.nan
    for view, _ in views:
      best = part[view].min() if view in part else math.nan
      if np.isfinite(best) and np.isfinite(unigram) and best >= unigram:
        above.append(f"{objective} ({view})")
      na = part.get(f"{view}_na")
      cells.append(_fmt(best, 4) if np.isfinite(best) else "not applicable"
                   if na is not None and na.notna().any() else "—")
    lines.append(f"| {objective} | " + " | ".join(cells)
                 + f" | {_fmt(unigram, 4)} |")
  if "unigram_bpb" not in done or done["unigram_bpb"].isna().all():
    head = "The runs recorded no unigram entropy to compare the views with."
  elif above:
    head = ("Above the unigram entropy at the largest budget (those views "
            "rank nothing): " + ", ".join(above) + ".")
  else:
    head = ("Every applicable shared view is below the unigram entropy at "
            "the largest budget.")
  return [head, "", *lines]


def _downstream_lines(d: dict) -> tuple[list[str], list[str]]:
  """(first lines, section) of the fine-tuned comparison."""
  if not d or not d.get("metrics"):
    return (["Downstream: no fine-tuned results."], [])
  first, body = [], [
      f"Task `{d['task']}`, each objective's compute-optimal run of each "
      f"budget (least held-out loss of its own objective) fine-tuned with "
      f"one recipe ({d['finetune'].get('train.steps')} steps), seeds "
      f"{d['seeds']}; {d['finished']} of {d['jobs']} fine-tunes finished. "
      "`scratch`: the same fine-tuning of a fresh init of causal LM's model "
      "of that budget. Mean over seeds ± total SE (the seeds' SE and the "
      "test split's sampling error, which more seeds do not shrink; "
      "`analysis.compare`), (n seeds).", ""]
  for metric, m in d["metrics"].items():
    cells = pd.DataFrame(m["cells"])
    if cells.empty:
      continue
    budgets = sorted(cells["budget"].unique())
    body += [f"**{metric}** ({'higher' if m['higher_is_better'] else 'lower'}"
             " is better)", "",
             "| objective | " + " | ".join(f"C = {b:.3g}" for b in budgets)
             + " |", "|---|" + "---|" * len(budgets)]
    for group, part in cells.groupby("group", sort=False):
      row = []
      for b in budgets:
        c = part[part["budget"] == b]
        se = c["se_total"] if "se_total" in c else c["se"]
        row.append("—" if c.empty else
                   f"{c['mean'].iloc[0]:.3f} ± {_fmt(se.iloc[0], 2)} "
                   f"({int(c['n'].iloc[0])})")
      body.append(f"| {group} | " + " | ".join(row) + " |")
    top = max(m["ranking"], key=float)
    body += ["", f"Ranking at C = {float(top):.3g}: "
             + " > ".join(m["ranking"][top]) + ".",
             "Distinguishable (" + (
                 "z on the total SEs" if m["pairs"] and m["pairs"][0]["test"]
                 == "z" else "Welch's t on the seeds")
             + ", Holm-corrected per budget, α = 0.05):", "", *[f"- {line}" for line in
                                         m["distinguishable"].splitlines()],
             ""]
    last = m["distinguishable"].splitlines()[-1]
    first.append(f"Downstream {metric}, ranking at the largest budget: "
                 + " > ".join(m["ranking"][top]) + f"; {last}.")
  body.append("![downstream](objectives_downstream.png)")
  return first, body


def _two_step_lines(t: dict) -> tuple[list[str], list[str]]:
  if not t or not t.get("fitted"):
    reasons = "; ".join((t or {}).get("reasons", ["not fitted"]))
    return ([f"Two-step law: not fitted ({reasons})."], [])
  state = ("identified" if t.get("identifiable") and not t.get("unreliable")
           else "NOT identified" if not t.get("identifiable")
           else "unreliable")
  body = [f"Bhagia et al. 2024's two steps on the {t['runs']} causal-LM runs' "
          f"zero-shot scores: `{t['loss']}` = E + A/N^α + B/D^β, then "
          f"`{t['metric']}` as a sigmoid of it; the largest run held out. "
          f"The law is **{state}**"
          + (": " + "; ".join(t.get("reasons", [])) if t.get("reasons")
             else "") + ".", ""]
  first = []
  for r in (t.get("holdout") or {}).get("runs", []):
    p, e = r["predicted"]["metric"], r["error"]
    ci = p.get("ci") or [None, None]
    eci = e.get("ci") or [None, None]
    pi = e.get("prediction_interval") or [None, None]
    body.append(f"- held out `{r['run']}`: observed {r['observed']['metric']:.3f},"
                f" predicted {p['value']:.3f} [{_fmt(ci[0])}, {_fmt(ci[1])}]; "
                f"error {e['value']:+.3f} (fit interval [{_fmt(eci[0])}, "
                f"{_fmt(eci[1])}], prediction interval [{_fmt(pi[0])}, "
                f"{_fmt(pi[1])}])")
    first.append(f"Two-step law ({state}): held-out run predicted within "
                 f"{abs(e['value']):.3f} (error {e['value']:+.3f}, prediction "
                 f"interval [{_fmt(pi[0])}, {_fmt(pi[1])}]).")
  for c in t.get("caveats", []):
    body.append(f"- caveat: {c}")
  body += ["", "![two-step law](objectives_two_step.png)"]
  return first or [f"Two-step law: {state}."], body


def write(out_dir: str, result: dict, runs: pd.DataFrame, views) -> str:
  """Writes ``out_dir/report.md`` from ``objectives.analyze``'s result."""
  view_lines = _views_lines(runs, views)
  d_first, d_body = _downstream_lines(result.get("downstream"))
  t_first, t_body = _two_step_lines(result.get("two_step"))
  lines = ["# objectives: pretraining objectives at equal compute", "",
           f"- {view_lines[0]}", *[f"- {x}" for x in d_first + t_first], "",
           "## Shared views", "", *view_lines[2:], "",
           "![frontiers](objectives_frontier.png)", "",
           "## Downstream (fine-tuned)", "", *d_body, "",
           "## Two-step law of task accuracy", "", *t_body, ""]
  path = os.path.join(out_dir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  return path
