"""Loading results tables: a sweep directory or any CSV → clean (N, D, C, loss).

A sweep directory (DESIGN.md §3) holds ``results.csv`` (one row per run) and
``curves.csv`` (run, step, tokens, flops, train_loss, eval_loss). For our sweeps
the default columns are

    N = params_total   (Chinchilla convention: all parameters, Hoffmann et al.
                        2022; Pearce & Song 2024 trace the Kaplan/Chinchilla gap
                        to counting non-embedding N at small scale)
    D = tokens, C = flops (our exact count), loss = eval_loss,
    run = run, step = step, isoFLOP group = budget (when present).

``n_definition="nonembedding"`` makes N default to ``params_nonembedding``
(Kaplan et al. 2020's N) instead; ``n_col`` overrides either.

Any other CSV names its columns (``n_col`` …); unnamed roles fall back to a
short list of common names (e.g. ``Model Size``, ``Training FLOP``, ``loss``).
When only C is known, D = C/(6N); when only D is known, C = 6ND; both are said
in ``notes`` and ``columns``. Rows that are failed, NaN/inf or non-positive in a
used column are rejected and counted by reason.

Runs that are not independent are resampled together: ``resample_by`` names
a column whose value groups runs into one bootstrap unit (rows with an empty
value are their own unit). A table with a ``branch_of`` column (a sweep with
WSD decay branches: the name of each branch's stable run) is grouped by it
by default, and the stable runs it names are rejected: they never decayed,
their branches are the runs.

For the sensitivity refits (``analysis.sensitivity``) the table also carries,
when the source allows it, the other N definition (``N_alt``: non-embedding
when N is total, total when N is non-embedding) and the other FLOP count
(``C_alt``: 6·N·D, from ``flops_6nd`` when N is total, when C is an exact
count; the exact count when C is 6ND), described in ``Table.alternatives``.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd

SWEEP_DEFAULTS = dict(n="params_total", d="tokens", c="flops", loss="eval_loss",
                      run="run", step="step", budget="budget")
ALIASES = dict(
    n=("params_total", "N", "Model Size", "num_params", "params", "n_params"),
    d=("tokens", "D", "Training Tokens", "token_num", "train_tokens"),
    c=("flops", "C", "Training FLOP", "FLOPs", "compute"),
    loss=("eval_loss", "loss", "Loss", "openLM_loss"),
    run=("run", "run_id", "name"),
    step=("step", "steps", "current_steps"),
    budget=("budget",),
    unique=("unique_tokens",),
    epochs=("epochs",),
    schedule=("schedule", "lr_schedule"),
)
N_TOTAL = ("params_total", "N", "Model Size", "num_params", "params",
           "n_params")
N_NONEMBEDDING = ("params_nonembedding", "N_no_emb", "non_embedding_params",
                  "params_non_embedding")
C_6ND = ("flops_6nd", "C_6ND")
N_DEFINITIONS = ("total", "nonembedding")
BRANCH_OF = "branch_of"  # a WSD branch's stable run (experiments.tables)
ROLE_FLAGS = dict(n="--n-col", d="--d-col", c="--c-col", loss="--loss-col",
                  run="--run-col", step="--step-col", budget="--budget-col",
                  unique="--unique-col", epochs="--epochs-col")


@dataclasses.dataclass
class Table:
  """A cleaned results table.

  Attributes:
    runs: one row per run; columns run, N, D, C, loss, unit (the bootstrap
      resampling unit: the run, or its group) and, when known, budget,
      unique_tokens, schedule (strings/floats; N params, D tokens, C FLOPs,
      loss nats).
    curves: curve points (run, step, N, D, C, loss) or None.
    columns: role → source column, or a derivation such as "C/(6N)".
    rejected: reason → rows rejected from ``runs``.
    curves_rejected: reason → curve points rejected.
    n_rows: rows read from the runs table.
    notes: human-readable remarks (derivations, defaults).
    source: dict(path, kind) with kind "sweep" or "csv".
    n_definition: "total", "nonembedding" or "as given" (N's column is
      neither a known total nor a known non-embedding name).
    alternatives: role ("N", "C") → dict(label, column) of the ``N_alt`` /
      ``C_alt`` columns of ``runs``, or a string saying why there is none.
  """

  runs: pd.DataFrame
  curves: pd.DataFrame | None
  columns: dict
  rejected: dict
  curves_rejected: dict
  n_rows: int
  notes: list
  source: dict
  n_definition: str = "as given"
  alternatives: dict = dataclasses.field(default_factory=dict)

  def to_json(self) -> dict:
    """JSON-ready dict of the fields."""
    return dict(source=self.source, columns=self.columns,
                n_definition=self.n_definition,
                rows=dict(read=self.n_rows, used=int(len(self.runs)),
                          rejected=self.rejected),
                curves=None if self.curves is None else dict(
                    used=int(len(self.curves)), rejected=self.curves_rejected),
                notes=list(self.notes))



def _num(values, errors="coerce"):
  """A numeric column as float64 (products of int64 FLOP counts overflow)."""
  return pd.to_numeric(values, errors=errors).astype(np.float64)


def _pick(df: pd.DataFrame, role: str, given: str | None,
          defaults: dict | None) -> str | None:
  if given:
    if given not in df.columns:
      raise ValueError(f"column {given!r} ({ROLE_FLAGS.get(role, role)}) not "
                       f"in table; columns are {list(df.columns)}")
    return given
  if defaults and defaults.get(role) in df.columns:
    return defaults[role]
  for name in ALIASES.get(role, ()):
    if name in df.columns:
      return name
  return None


def pick_column(df: pd.DataFrame, role: str, given: str | None = None,
                sweep: bool = False) -> str | None:
  """The source column of ``role`` (``n``, ``loss``, ``run``, ...): ``given``
  (checked to exist), the sweep default, or a common name; None if absent.

  Raises:
    ValueError: ``given`` is not a column.
  """
  return _pick(df, role, given, SWEEP_DEFAULTS if sweep else None)


def _reject(df: pd.DataFrame, mask: np.ndarray, reason: str, rejected: dict):
  n = int(mask.sum())
  if n:
    rejected[reason] = rejected.get(reason, 0) + n
  return df[~mask]


def results_csv(path: str) -> str:
  """The CSV behind ``path``: ``path/results.csv`` for a sweep directory.

  Raises:
    FileNotFoundError: no such file, or a directory without results.csv.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    results = os.path.join(path, "results.csv")
    if not os.path.exists(results):
      raise FileNotFoundError(f"{path} is a directory without results.csv "
                              "(expected a sweep directory, DESIGN.md §3)")
    return results
  if os.path.exists(path):
    return path
  raise FileNotFoundError(f"no such file or directory: {path}")


def load_table(path: str, *, n_col: str | None = None,
               d_col: str | None = None, c_col: str | None = None,
               loss_col: str | None = None, run_col: str | None = None,
               step_col: str | None = None, budget_col: str | None = None,
               unique_col: str | None = None, epochs_col: str | None = None,
               drop_highest_loss: int = 0, n_definition: str | None = None,
               keep: tuple = (), resample_by: str | None = None) -> Table:
  """Reads a sweep directory or a CSV into a ``Table``.

  Args:
    path: sweep directory (with results.csv, optional curves.csv) or a CSV.
    n_col, d_col, c_col, loss_col, run_col, step_col, budget_col: source
      columns for N (parameters), D (tokens), C (FLOPs), loss (nats), run id,
      step, isoFLOP budget. None = sweep default or a common name. For a CSV,
      giving both ``run_col`` and ``step_col`` makes its rows checkpoints:
      each run's last step is the run, all rows become curve points.
    unique_col: unique tokens U_D (data-constrained runs).
    epochs_col: epochs; U_D = D/epochs when ``unique_col`` is absent.
    drop_highest_loss: drop this many highest-loss rows after cleaning
      (Besiroglu et al. 2024 drop 5 of Epoch's 245 points).
    n_definition: "total" (default) or "nonembedding": which parameter
      count N defaults to when ``n_col`` is not given.
    keep: further source columns copied into ``runs`` unchanged (e.g. a
      group column); a missing one raises.
    resample_by: column grouping runs into one bootstrap unit (default
      ``branch_of`` when the table has it, else none: each run is a unit).

  Raises:
    FileNotFoundError: no such file, or a directory without results.csv.
    ValueError: a named column is missing, N/loss or both D and C absent,
      or an unknown ``n_definition``.
  """
  if n_definition not in (None,) + N_DEFINITIONS:
    raise ValueError(f"--n-definition must be one of {N_DEFINITIONS}, got "
                     f"{n_definition!r}")
  path = os.fspath(path)
  csv_path = results_csv(path)
  kind, defaults = (("sweep", SWEEP_DEFAULTS) if os.path.isdir(path) else
                    ("csv", None))
  df = pd.read_csv(csv_path)
  n_rows = len(df)
  for name in keep:
    if name not in df.columns:
      raise ValueError(f"column {name!r} not in table; columns are "
                       f"{list(df.columns)}")
  if n_definition == "nonembedding" and not n_col:
    n_col = next((c for c in N_NONEMBEDDING if c in df.columns), None)
    if n_col is None:
      raise ValueError("--n-definition nonembedding: no non-embedding "
                       f"parameter column ({', '.join(N_NONEMBEDDING)}); "
                       "name one with --n-col")
  given = dict(n=n_col, d=d_col, c=c_col, loss=loss_col, run=run_col,
               step=step_col, budget=budget_col, unique=unique_col,
               epochs=epochs_col)
  cols = {role: _pick(df, role, given.get(role), defaults)
          for role in ("n", "d", "c", "loss", "run", "budget", "unique",
                       "epochs", "schedule")}
  for role in ("n", "loss"):
    if cols[role] is None:
      raise ValueError(f"no {role} column found; name it with "
                       f"{ROLE_FLAGS[role]} (columns: {list(df.columns)})")
  if cols["d"] is None and cols["c"] is None:
    raise ValueError("need tokens D or FLOPs C: name one with --d-col or "
                     f"--c-col (columns: {list(df.columns)})")
  notes: list[str] = []
  rejected: dict = {}
  if resample_by is not None and resample_by not in df.columns:
    raise ValueError(f"column {resample_by!r} (--resample-by) not in table; "
                     f"columns are {list(df.columns)}")
  if resample_by is None and BRANCH_OF in df.columns:
    resample_by = BRANCH_OF
  if "status" in df.columns:
    bad = df["status"].astype(str).str.lower().ne("finished").to_numpy()
    df = _reject(df, bad, "status not finished", rejected)
  if BRANCH_OF in df.columns and cols["run"] is not None:
    sources = set(df[BRANCH_OF].dropna().astype(str)) - {""}
    stable = df[cols["run"]].astype(str).isin(sources).to_numpy()
    df = _reject(df, stable, "stable runs of WSD branches (not decayed; "
                 "their branches are the runs)", rejected)

  out = pd.DataFrame(index=df.index)
  out["run"] = (df[cols["run"]].astype(str) if cols["run"] else
                pd.Series([f"row{i}" for i in df.index], index=df.index))
  out["N"] = _num(df[cols["n"]], errors="coerce")
  out["loss"] = _num(df[cols["loss"]], errors="coerce")
  out["unit"] = out["run"]
  columns = dict(N=cols["n"], loss=cols["loss"], run=cols["run"])
  if resample_by is not None:
    group = df[resample_by].astype(str).where(df[resample_by].notna(), "")
    out["unit"] = group.where(group.str.len() > 0, out["run"])
    columns["unit"] = resample_by
  if cols["d"] is not None:
    out["D"] = _num(df[cols["d"]], errors="coerce")
    columns["D"] = cols["d"]
  if cols["c"] is not None:
    out["C"] = _num(df[cols["c"]], errors="coerce")
    columns["C"] = cols["c"]
  if cols["d"] is None:
    out["D"] = out["C"] / (6.0 * out["N"])
    columns["D"] = f"C/(6N) from {cols['c']}"
    notes.append(f"no tokens column: D derived as C/(6N) from {cols['c']!r}")
  if cols["c"] is None:
    out["C"] = 6.0 * out["N"] * out["D"]
    columns["C"] = f"6ND from {cols['d']}"
    notes.append(f"no FLOPs column: C derived as 6·N·D from {cols['d']!r}")
  if cols["budget"] is not None:
    out["budget"] = _num(df[cols["budget"]], errors="coerce")
    columns["budget"] = cols["budget"]
  if cols["unique"] is not None:
    out["unique_tokens"] = _num(df[cols["unique"]], errors="coerce")
    columns["unique_tokens"] = cols["unique"]
  elif cols["epochs"] is not None:
    ep = _num(df[cols["epochs"]], errors="coerce")
    out["unique_tokens"] = out["D"] / ep
    columns["unique_tokens"] = f"D/{cols['epochs']}"
    notes.append(f"unique tokens U_D = D / {cols['epochs']!r}")
  if cols["schedule"] is not None:
    out["schedule"] = df[cols["schedule"]].astype(str)
    columns["schedule"] = cols["schedule"]
  for name in keep:
    if name not in out.columns:
      out[name] = df[name]
  n_def, alternatives = _alternatives(df, out, cols)

  used = ["N", "D", "C", "loss"] + (["unique_tokens"] if "unique_tokens" in out
                                    else [])
  vals = out[used].to_numpy(np.float64)
  out = _reject(out, ~np.all(np.isfinite(vals), axis=1), "nan or inf", rejected)
  vals = out[used].to_numpy(np.float64)
  out = _reject(out, ~np.all(vals > 0, axis=1), "non-positive", rejected)
  if drop_highest_loss > 0:
    order = np.argsort(out["loss"].to_numpy(), kind="stable")
    mask = np.zeros(len(out), bool)
    mask[order[len(out) - drop_highest_loss:]] = True
    out = _reject(out, mask, f"{drop_highest_loss} highest losses dropped",
                  rejected)
  if kind == "sweep":
    notes.append(f"sweep defaults: N={cols['n']}, D=tokens, C=flops (exact "
                 "count), loss=eval_loss, isoFLOP groups from 'budget' when "
                 "present (explicit flags override)")

  curves, curves_rejected = None, {}
  if kind == "csv" and step_col and cols["run"]:
    # A table of checkpoints: every row is a curve point, the last step of
    # each run is the run's row.
    if step_col not in df.columns:
      raise ValueError(f"column {step_col!r} (--step-col) not in table")
    out["step"] = _num(df.loc[out.index, step_col], errors="coerce")
    curves = out[["run", "step", "N", "D", "C", "loss"]].sort_values(
        ["run", "C"], kind="stable").reset_index(drop=True)
    last = out.sort_values("step", kind="stable").groupby("run").tail(1)
    rejected["earlier checkpoints (kept as curve points)"] = len(out) - len(
        last)
    out = last.drop(columns="step").sort_index()
    columns["step"] = step_col
    notes.append(f"rows are checkpoints: the last {step_col!r} of each run is "
                 "its final row, all rows are curve points")
  if resample_by is not None:
    notes.append(f"the bootstrap resamples groups of runs by {resample_by!r}: "
                 f"{out['unit'].nunique()} units for {len(out)} runs (a run "
                 "without a value is its own unit)")
  if kind == "sweep" and os.path.exists(os.path.join(path, "curves.csv")):
    curves, curves_rejected = _load_curves(
        os.path.join(path, "curves.csv"), out, cols, step_col, loss_col)
  return Table(out.reset_index(drop=True), curves, columns, rejected,
               curves_rejected, n_rows, notes, dict(path=path, kind=kind),
               n_def, alternatives)


def _alternatives(df: pd.DataFrame, out: pd.DataFrame, cols: dict):
  """N's definition and the other N / C columns (``N_alt``, ``C_alt``)."""
  alt: dict = {}
  n_name = cols["n"]
  if n_name in N_NONEMBEDDING:
    n_def, other, other_def = "nonembedding", N_TOTAL, "total"
  elif n_name in N_TOTAL:
    n_def, other, other_def = "total", N_NONEMBEDDING, "non-embedding"
  else:
    n_def, other, other_def = "as given", (), None
  o = next((c for c in other if c in df.columns and c != n_name), None)
  if o is not None:
    out["N_alt"] = _num(df.loc[out.index, o])
    alt["N"] = dict(label=f"{other_def} (`{o}`)", column=o)
  elif other_def is None:
    alt["N"] = (f"N = `{n_name}` is neither a known total nor a known "
                "non-embedding column, so the other definition is unknown")
  else:
    alt["N"] = f"the table has no {other_def} parameter column"
  if cols["c"] is None:
    alt["C"] = ("C = 6ND by construction (no FLOPs column); no other count "
                "is known")
  elif cols["d"] is None:
    alt["C"] = ("D was derived as C/(6N), so C = 6ND by construction; no "
                "other count is known")
  elif cols["c"] in C_6ND:
    alt["C"] = "C is already 6ND and the table has no exact FLOP count"
  else:
    six = next((c for c in C_6ND if c in df.columns), None)
    if six is not None and n_def == "total":
      out["C_alt"] = _num(df.loc[out.index, six])
      alt["C"] = dict(label=f"6ND (`{six}`)", column=six)
    else:
      out["C_alt"] = 6.0 * out["N"] * out["D"]
      alt["C"] = dict(label="6ND (computed from N and D)", column=None)
  return n_def, alt


def _load_curves(path: str, runs: pd.DataFrame, cols: dict,
                 step_col: str | None, loss_col: str | None):
  """curves.csv → (run, step, N, D, C, loss) points of the accepted runs."""
  cv = pd.read_csv(path)
  rejected: dict = {}
  run_c = cols["run"] or "run"
  step_c = step_col or ("step" if "step" in cv.columns else None)
  loss_c = loss_col if loss_col in cv.columns else "eval_loss"
  d_c = cols["d"] if cols["d"] in cv.columns else "tokens"
  c_c = cols["c"] if cols["c"] in cv.columns else "flops"
  for need in (run_c, loss_c):
    if need not in cv.columns:
      raise ValueError(f"curves.csv lacks column {need!r}")
  out = pd.DataFrame(dict(run=cv[run_c].astype(str)))
  out["step"] = _num(cv[step_c], errors="coerce") if step_c else 0
  out["loss"] = _num(cv[loss_c], errors="coerce")
  n_of = dict(zip(runs["run"], runs["N"]))
  known = out["run"].isin(n_of)
  out = _reject(out, ~known.to_numpy(), "run rejected or unknown", rejected)
  out["N"] = out["run"].map(n_of).astype(np.float64)
  if d_c in cv.columns:
    out["D"] = _num(cv.loc[out.index, d_c], errors="coerce")
  if c_c in cv.columns:
    out["C"] = _num(cv.loc[out.index, c_c], errors="coerce")
  if "D" not in out and "C" in out:
    out["D"] = out["C"] / (6.0 * out["N"])
  if "C" not in out and "D" in out:
    out["C"] = 6.0 * out["N"] * out["D"]
  if "C" not in out:
    raise ValueError("curves.csv has neither tokens nor flops")
  vals = out[["N", "D", "C", "loss"]].to_numpy(np.float64)
  out = _reject(out, ~np.all(np.isfinite(vals), axis=1), "nan or inf",
                rejected)
  vals = out[["N", "D", "C", "loss"]].to_numpy(np.float64)
  out = _reject(out, ~np.all(vals > 0, axis=1), "non-positive", rejected)
  out = out.sort_values(["run", "C"], kind="stable").reset_index(drop=True)
  return out, rejected
