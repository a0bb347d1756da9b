"""``scaling analyze PATH --out DIR --hparams``: fitted hyperparameter rules.

Reads an ``lr_sweep`` / ``batch_sweep`` sweep directory or any CSV of runs,
fits lr*(x) and B*(x) (``analysis.hparams``; x = N, the parameter column, or
C, the FLOPs column) and writes into ``out_dir``:

* ``hparams.json``: every size's optimum (interval, grid-edge flag) and the
  power laws with their Student-t and bootstrap intervals;
* ``rule.json``: the rule a sweep loads (``experiments.hparams.get_rule(
  PATH)``): the laws, the x variable and the provenance (table path and
  sha256, columns, settings, time, sizes left out);
* ``hparams.md`` and ``hparams_<kind>.{png,svg}`` (loss against the
  hyperparameter per size with its parabola; the optima against x with the
  law).

Columns: loss = eval_loss (finished runs; others are kept as tried values
of the grid), N = params_total (``n_col``; ``params_porian`` is computed as
params_total − params_embedding when absent), C = flops, the learning rate
``peak_lr``, the batch in tokens ``batch_tokens`` or batch_size × seq_len.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
import numpy as np
import pandas as pd

from analysis import hparams
from analysis import load

SCHEMA = "scaling.analysis.hparams/1"
KINDS = ("lr", "batch")
LABELS = dict(lr="peak learning rate", batch="batch (tokens per step)")
LR_COLUMNS = ("peak_lr", "lr", "learning_rate")


def _columns(df: pd.DataFrame, sweep: bool, o: dict) -> dict:
  """Source columns (or derivations) of every role; adds derived columns."""
  cols = {}
  n_col = o.get("n_col")
  if n_col == "params_porian" and n_col not in df:
    for need in ("params_total", "params_embedding"):
      if need not in df:
        raise ValueError(f"--n-col params_porian needs column {need!r}")
    df["params_porian"] = df["params_total"] - df["params_embedding"]
  if o.get("n_definition") == "nonembedding" and not n_col:
    n_col = next((c for c in load.N_NONEMBEDDING if c in df), None)
  cols["N"] = load.pick_column(df, "n", n_col, sweep)
  cols["loss"] = load.pick_column(df, "loss", o.get("loss_col"), sweep)
  cols["run"] = load.pick_column(df, "run", o.get("run_col"), sweep)
  if o.get("x", "N") == "C":
    cols["x"] = load.pick_column(df, "c", o.get("c_col"), sweep)
    if cols["x"] is None:
      raise ValueError("--hparams-x C needs a FLOPs column (--c-col)")
  else:
    cols["x"] = cols["N"]
  for role in ("N", "loss"):
    if cols[role] is None:
      raise ValueError(f"no {role} column found; name it with "
                       f"{load.ROLE_FLAGS[role.lower()]}")
  lr = o.get("lr_col")
  if lr and lr not in df:
    raise ValueError(f"column {lr!r} (--lr-col) not in table")
  cols["lr"] = lr or next((c for c in LR_COLUMNS if c in df), None)
  batch = o.get("batch_col")
  if batch and batch not in df:
    raise ValueError(f"column {batch!r} (--batch-col) not in table")
  if not batch and "batch_tokens" in df:
    batch = "batch_tokens"
  if not batch and {"batch_size", "seq_len"} <= set(df):
    df["batch_size*seq_len"] = df["batch_size"] * df["seq_len"]
    batch = "batch_size*seq_len"
  cols["batch"] = batch
  return cols


def _sha256(path: str) -> str:
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def analyze_hparams(path: str, out_dir: str, *, kinds=None, x: str = "N",
                    n_col=None, c_col=None, loss_col=None, run_col=None,
                    lr_col=None, batch_col=None, n_definition=None,
                    bootstrap: int = 200, seed: int = 0,
                    level: float = hparams.LEVEL,
                    window: int = hparams.WINDOW, plots: bool = True,
                    rule_out: str | None = None) -> dict:
  """Fits lr*(x) and/or B*(x) and writes hparams.json, rule.json and plots.

  Args:
    path: sweep directory or CSV.
    out_dir: output directory (created).
    kinds: ("lr", "batch") or a subset; None = every kind whose column
      varies within some size.
    x: "N" (parameter column) or "C" (FLOPs column): the law's variable.
    n_col, c_col, loss_col, run_col, lr_col, batch_col: source columns
      (module docstring for the defaults); ``n_definition`` "nonembedding"
      picks the non-embedding count.
    bootstrap: resamples of runs within each size (0 = none).
    seed, level, window: bootstrap seed, interval coverage, parabola
      window (tried values either side of the best).
    plots: draw the figures.
    rule_out: where the rule file goes (default ``out_dir/rule.json``).

  Returns:
    the content of hparams.json.

  Raises:
    FileNotFoundError: no table.  ValueError: a missing column, an unknown
      kind or x, or no kind that varies within a size.
  """
  if x not in ("N", "C"):
    raise ValueError(f"--hparams-x must be N or C, got {x!r}")
  csv = load.results_csv(path)
  sweep = os.path.isdir(path)
  df = pd.read_csv(csv)
  o = dict(n_col=n_col, c_col=c_col, loss_col=loss_col, run_col=run_col,
           lr_col=lr_col, batch_col=batch_col, n_definition=n_definition, x=x)
  cols = _columns(df, sweep, o)
  loss = pd.to_numeric(df[cols["loss"]], errors="coerce").to_numpy(np.float64)
  if "status" in df:
    loss = np.where(df["status"].astype(str).str.lower() == "finished", loss,
                    np.nan)
  size = pd.to_numeric(df[cols["N"]], errors="coerce").to_numpy(np.float64)
  xv = pd.to_numeric(df[cols["x"]], errors="coerce").to_numpy(np.float64)
  run = (df[cols["run"]].astype(str).to_numpy() if cols["run"]
         else np.array([f"row{i}" for i in range(len(df))]))
  keep = np.isfinite(size) & (size > 0) & np.isfinite(xv) & (xv > 0)
  wanted = list(kinds) if kinds else list(KINDS)
  unknown = set(wanted) - set(KINDS)
  if unknown:
    raise ValueError(f"--hparams: unknown kind(s) {sorted(unknown)}; use "
                     f"{', '.join(KINDS)}")
  result = dict(schema=SCHEMA, source=dict(path=os.fspath(path), table=csv),
                columns=cols, settings=dict(x=x, bootstrap=int(bootstrap),
                                            seed=int(seed), level=level,
                                            window=int(window)))
  fitted = {}
  for kind in wanted:
    col = cols.get(kind)
    if col is None:
      if kinds:
        raise ValueError(f"--hparams {kind}: no {kind} column (give "
                         f"--{kind}-col)")
      continue
    h = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
    rows = keep & np.isfinite(h) & (h > 0)
    varies = any(np.unique(h[rows & (size == s)]).size >= 2
                 for s in np.unique(size[rows]))
    if not varies:
      if kinds:
        raise ValueError(f"--hparams {kind}: {col!r} takes one value per size; "
                         f"no {kind} sweep in this table")
      continue
    grid = {float(s): h[rows & (size == s)] for s in np.unique(size[rows])}
    fitted[kind] = hparams.fit_hparam(
        size[rows], xv[rows], h[rows], loss[rows], run[rows], grid,
        n_resamples=int(bootstrap), seed=int(seed), window=int(window),
        level=level)
    fitted[kind]["column"] = col
  if not fitted:
    raise ValueError("--hparams: no learning-rate or batch column varies "
                     f"within a size (columns: {list(df.columns)})")
  result.update(fitted)
  os.makedirs(out_dir, exist_ok=True)
  rule_path = rule_out or os.path.join(out_dir, "rule.json")
  rule = rule_file(fitted, cols, x, csv, result["settings"])
  with open(rule_path, "w", encoding="utf-8") as f:
    json.dump(rule, f, indent=1)
  result["rule"] = rule_path
  result["plots"] = []
  if plots:
    for kind, fit in fitted.items():
      result["plots"] += plot_kind(out_dir, kind, fit, size, h_of(df, cols[kind]),
                                   loss, keep, x)
  with open(os.path.join(out_dir, "hparams.json"), "w", encoding="utf-8") as f:
    json.dump(_clean(result), f, indent=1)
  with open(os.path.join(out_dir, "hparams.md"), "w", encoding="utf-8") as f:
    f.write(render(result))
  return _clean(result)


def h_of(df: pd.DataFrame, col: str) -> np.ndarray:
  """A hyperparameter column as float64."""
  return pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)


def rule_file(fitted: dict, cols: dict, x: str, csv: str,
              settings: dict) -> dict:
  """The rule file's content (schema ``hparams.RULE_SCHEMA``)."""
  def law(kind):
    fit = fitted.get(kind)
    if fit is None or fit["law"] is None:
      return None
    entry = {k: fit["law"].get(k) for k in (
        "coef", "exponent", "exponent_ci", "coef_ci", "exponent_ci_t",
        "n_sizes", "n_ok")}
    entry["column"] = fit["column"]
    entry["excluded"] = fit["excluded"]
    if kind == "batch":
      entry["unit"] = "tokens"
    return entry

  return _clean(dict(
      schema=hparams.RULE_SCHEMA,
      x=dict(column=cols["x"], variable=x,
             definition=("training FLOPs C" if x == "C" else
                         f"parameters N ({cols['x']})")),
      lr=law("lr"), batch=law("batch"),
      provenance=dict(
          table=os.path.abspath(csv), table_sha256=_sha256(csv),
          created=datetime.datetime.now(datetime.timezone.utc).isoformat(
              timespec="seconds"),
          command="scaling analyze --hparams", columns=cols,
          settings=settings)))


def _clean(obj):
  if isinstance(obj, dict):
    return {str(k): _clean(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [_clean(v) for v in obj]
  if isinstance(obj, (np.floating, float)):
    v = float(obj)
    return v if np.isfinite(v) else None
  if isinstance(obj, np.integer):
    return int(obj)
  if isinstance(obj, np.bool_):
    return bool(obj)
  return obj


def _fmt(v, digits=4) -> str:
  return "—" if v is None else f"{v:.{digits}g}"


def _ci(ci) -> str:
  return "—" if not ci else f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"


def render(result: dict) -> str:
  """hparams.md: per kind, the per-size optima and the law."""
  x = result["settings"]["x"]
  lines = ["# Fitted hyperparameter rules", "",
           f"Table: `{result['source']['table']}`; x = {x} "
           f"(`{result['columns']['x']}`), loss `{result['columns']['loss']}`. "
           f"Rule file: `{result['rule']}`.", ""]
  for kind in KINDS:
    fit = result.get(kind)
    if not fit:
      continue
    lines += [f"## {LABELS[kind]} (`{fit['column']}`)", "",
              "| size N | x | best tried | optimum | interval (parabola) | "
              "interval (bootstrap) | flag |", "|---|---|---|---|---|---|---|"]
    for s in fit["sizes"]:
      flag = "; ".join(s["reasons"]) or "—"
      lines.append(f"| {_fmt(s['size'])} | {_fmt(s['x'])} | "
                   f"{_fmt(s['best_tried'])} | "
                   f"{_fmt(s['value']) if s['identifiable'] else '—'} | "
                   f"{_ci(s['ci'])} | {_ci(s.get('ci_bootstrap'))} | {flag} |")
    law = fit["law"]
    lines.append("")
    if law is None:
      lines.append(f"No law: {'; '.join(fit['reasons'])}.")
    else:
      lines.append(
          f"{kind}*({x}) = {_fmt(law['coef'])} · {x}^{_fmt(law['exponent'])} "
          f"on {law['n_sizes']} sizes; exponent interval (bootstrap, "
          f"{law.get('n_ok', 0)}/{law.get('n_resamples', 0)} resamples) "
          f"{_ci(law.get('exponent_ci'))}, Student-t {_ci(law['exponent_ci_t'])}.")
      for r in fit["reasons"]:
        lines.append(f"Flag: {r}.")
    for e in fit["excluded"]:
      lines.append(f"- left out: N = {_fmt(e['size'])}: "
                   f"{'; '.join(e['reasons'])}")
    lines.append("")
  return "\n".join(lines)


def plot_kind(out_dir: str, kind: str, fit: dict, size, h, loss, keep,
              x: str) -> list[str]:
  """hparams_<kind>.{png,svg}: loss vs h per size; optima vs x with the law."""
  fig = Figure(figsize=(12.8, 4.6), layout="constrained")
  FigureCanvasAgg(fig)
  ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
  sizes = fit["sizes"]
  palette = [f"C{i % 10}" for i in range(len(sizes))]
  for s, color in zip(sizes, palette):
    rows = keep & (size == s["size"]) & np.isfinite(h) & np.isfinite(loss)
    values, best = hparams.profile(h[rows], loss[rows])
    ax.plot(values, best, "o-", color=color, lw=1, ms=4,
            label=f"N={s['size']:.3g}" + (f" ({s['edge']} edge)"
                                           if s["edge"] else ""))
    if s["identifiable"]:
      ax.plot([s["value"]], [np.interp(np.log2(s["value"]), np.log2(values),
                                       best)], "*", color=color, ms=12)
  ax.set_xscale("log", base=2)
  ax.set_xlabel(LABELS[kind])
  ax.set_ylabel("final loss (nats)")
  ax.legend(fontsize=7)
  used = [s for s in sizes if s["identifiable"]]
  if used:
    xs = np.array([s["x"] for s in used])
    hs = np.array([s["value"] for s in used])
    bx.plot(xs, hs, "o", color="k", label="optimum per size")
    for s in used:
      ci = s.get("ci_bootstrap") or s.get("ci")
      if ci:
        bx.plot([s["x"], s["x"]], ci, "-", color="k", lw=1)
  for s in sizes:
    if s["edge"] and s["best_tried"]:
      bx.plot([s["x"]], [s["best_tried"]], "^" if s["edge"] == "high" else "v",
              color="C3", label=f"grid edge ({s['edge']})")
  if fit["law"]:
    law = fit["law"]
    grid = np.geomspace(min(s["x"] for s in sizes), max(s["x"] for s in sizes),
                        50)
    bx.plot(grid, law["coef"] * grid ** law["exponent"], "-", color="C0",
            label=f"{_fmt(law['coef'], 3)}·{x}^{_fmt(law['exponent'], 3)}")
  bx.set_xscale("log")
  bx.set_yscale("log")
  bx.set_xlabel("parameters N" if x == "N" else "training compute C (FLOPs)")
  bx.set_ylabel(f"optimal {LABELS[kind]}")
  handles, labels = bx.get_legend_handles_labels()
  seen = dict(zip(labels, handles))
  bx.legend(seen.values(), seen.keys(), fontsize=7)
  names = []
  for ext in ("png", "svg"):
    name = f"hparams_{kind}.{ext}"
    fig.savefig(os.path.join(out_dir, name), dpi=120)
    names.append(name)
  return names
