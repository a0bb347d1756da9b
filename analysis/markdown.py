"""report.md: a human-readable view of fit.json with its figures.

The first lines are the headline (``headline.lines``): whether the
allocation exponent is identified and whether the approaches agree. Every
number is printed with its interval or with why it has none; a fit that is
not identifiable or unreliable says so next to its numbers.
"""

from __future__ import annotations

from analysis import downstream, headline, identify, replicates, sigmoid

N_WHY = (
    "Kaplan et al. 2020 count non-embedding parameters, Hoffmann et al. 2022 "
    "(Chinchilla) all of them. At small scale, where embeddings and the "
    "output layer are a large share of the model, the two give different "
    "exponents: Pearce & Song 2024 (arXiv 2406.12907) trace much of the gap "
    "between Kaplan's and Chinchilla's allocations to this choice, and Porian "
    "et al. 2024 (arXiv 2406.19146) to the output layer's compute (and to "
    "warmup and optimizer settings). The default is total parameters: the "
    "allocation is about what is trained and paid for, and Chinchilla's "
    "allocation, the usual reference, counts all parameters. Choose with "
    "`--n-definition total|nonembedding` (or `--n-col`).")


def _num(v, digits: int = 4) -> str:
  if v is None:
    return "n/a"
  if isinstance(v, (int, float)):
    return f"{v:.{digits}g}"
  return str(v)


def _coef(c, digits: int = 4, flag: bool = True) -> str:
  """'value [lo, hi]', with why an interval is missing or not informative."""
  if c is None:
    return "n/a"
  if c.get("identifiable") is False:
    return f"not identifiable ({_num(c['value'], digits)} is arbitrary)"
  s = _num(c["value"], digits)
  ci = c.get("ci")
  if c.get("ci_zero_width"):
    s += " (zero-width interval: every resample gave this value; not an "
    s += "uncertainty)"
  elif ci and ci[0] is not None:
    s += f" [{_num(ci[0], digits)}, {_num(ci[1], digits)}]"
  elif c.get("n_ok", 0) < 2 and "n_ok" in c:
    s += " (no interval: fewer than 2 resamples succeeded)"
  if flag and c.get("flag") and not c.get("ci_zero_width"):
    s += f" ⚠ {c['flag']}"
  return s


def _table(rows, header) -> list[str]:
  out = ["| " + " | ".join(header) + " |",
         "|" + "---|" * len(header)]
  out += ["| " + " | ".join(r) + " |" for r in rows]
  return out


def _boot(entry) -> str:
  b = (entry or {}).get("bootstrap") or {}
  if not b.get("requested"):
    return "none"
  if b.get("succeeded") is None:
    return "none (nothing fitted)"
  s = f"{b['succeeded']} of {b['requested']}"
  if b.get("left_full_data_optimum") is not None:
    s += f" ({b['left_full_data_optimum']} left the full-data optimum)"
  return s


def _flag_line(name: str, entry) -> list[str]:
  """'**Approach 3: not identifiable** — reasons' (nothing if fine)."""
  if entry is None:
    return []
  text = identify.flag_text(entry)
  if text == "identifiable":
    return [f"Flags: identifiable; bootstrap resamples succeeded: "
            f"{_boot(entry)}.", ""]
  return [f"**{name}: {text}.** Bootstrap resamples succeeded: "
          f"{_boot(entry)}.", ""]


def _caveats(entry) -> list[str]:
  cav = (entry or {}).get("caveats") or []
  return [f"- {c}" for c in cav] + ([""] if cav else [])


def _n_sentence(fit: dict) -> str:
  col = fit["columns"].get("N")
  ndef = fit.get("n_definition", "as given")
  what = {"total": "total parameters (Chinchilla's convention)",
          "nonembedding": "non-embedding parameters (Kaplan et al.'s N)"}.get(
              ndef, "as named (its definition is the table's)")
  return f"N = `{col}`: {what}. {N_WHY}"


def render(fit: dict) -> str:
  """Markdown report of a fit.json dict (figures referenced by file name)."""
  made = set(fit.get("plots") or ())

  def img(alt: str, stem: str) -> list[str]:
    return [f"![{alt}]({stem}.png)", ""] if f"{stem}.png" in made else []

  s = fit["settings"]
  lvl = f"{100 * s['level']:.0f}%"
  rows = fit["rows"]
  lines = ["# Scaling-law analysis", ""]
  lines += headline.lines(fit["summary"])
  lines += [f"Source: `{fit['source']['path']}` ({fit['source']['kind']}). "
            f"Runs used: {rows['used']} of {rows['read']}; rejected: "
            f"{rows['rejected'] or 'none'}.", "",
            "Columns: " + ", ".join(f"{k} = `{v}`" for k, v in
                                    fit["columns"].items() if v) + ".", "",
            _n_sentence(fit), ""]
  fm = fit["flops_model"]
  lines += ["FLOPs: " + ("C = 6ND (closed-form allocation)" if fm["is_6nd"]
                          else f"C = {fm['kappa']:.4g}·N^{fm['q']:.4g}·D "
                          "fitted "
                          f"to the runs (max error {fm['max_rel_error']:.1%}; "
                          "numerical allocation)") +
            f". Compute range of the runs: {s['flops_range'][0]:.3g} to "
            f"{s['flops_range'][1]:.3g} FLOPs.", ""]
  if s["bootstrap"]:
    parts = [f"{name} {_boot(fit.get(key))}" for key, name in (
        ("approach3", "Approach 3"), ("mle", "likelihood fit"),
        ("approach2", "Approach 2"), ("approach1", "Approach 1"),
        ("frontier", "frontier"), ("data_constrained", "data-constrained"))
             if fit.get(key) and (fit[key].get("bootstrap") or {}).get(
                 "succeeded") is not None]
    lines += [f"Intervals: {lvl} percentile bootstrap over {s['bootstrap']} "
              "resamples of runs (the run is the resampling unit); "
              "resamples that succeeded: " + "; ".join(parts) + ". A fit "
              f"below {identify.MIN_SUCCESS:.0%} is marked unreliable.", ""]
  else:
    lines += ["Intervals: none (bootstrap disabled): no uncertainty is "
              "known.", ""]
  lines += [f"- {n}" for n in fit.get("notes", [])]
  lines += [""] + replicates.lines(
      fit.get("replicates"), fit.get("repetition"),
      (fit.get("approach3") or {}).get("rms_log_residual"), s["level"])
  lines += ["", "## Flags", ""]
  flag_rows = []
  for key, name in (("approach3", "Approach 3"), ("mle", "likelihood fit"),
                    ("allocation", "allocation"), ("approach2", "Approach 2"),
                    ("approach1", "Approach 1"), ("frontier", "frontier"),
                    ("data_constrained", "data-constrained")):
    e = fit.get(key)
    if e is None:
      continue
    flag_rows.append([name, "yes" if e.get("identifiable") else "**no**",
                      "**yes**" if e.get("unreliable") else "no", _boot(e),
                      "; ".join(e.get("reasons") or []) or "—"])
  for metric, e in (fit.get("downstream") or {}).items():
    for name, entry in ((f"downstream `{metric}`, all runs", e.get("full")),
                        (f"downstream `{metric}`, held-out fit",
                         (e.get("holdout") or {}).get("fit"))):
      if entry is None:
        continue
      flag_rows.append([name, "yes" if entry.get("identifiable") else
                        "**no**", "**yes**" if entry.get("unreliable") else
                        "no", _boot(entry),
                        "; ".join(entry.get("reasons") or []) or "—"])
  lines += _table(flag_rows, ["fit", "identifiable", "unreliable",
                              "resamples succeeded", "reasons"])
  lines += ["", "## Warnings", ""]
  lines += [f"- **{w}**" for w in fit["warnings"]] or ["- none"]

  a3 = fit["approach3"]
  lines += ["", "## Approach 3: L(N, D) = E + A/N^α + B/D^β", "",
            f"Huber δ = {a3['huber_delta']:g} on log loss, summed; L-BFGS from "
            f"{a3['n_starts']} starts; objective {a3['objective']:.6g} "
            f"({a3['n_points']} runs, {a3['seconds']:.2f} s); residual RMS "
            f"{a3['rms_log_residual']:.3g} in log loss.", ""]
  lines += _flag_line("Approach 3", a3)
  lines += _table([[k, _coef(a3[k])] for k in ("E", "A", "B", "alpha",
                                                "beta")],
                  ["parameter", f"value [{lvl} CI]"])
  lines += [""] + _caveats(a3)
  ml = fit["mle"]
  lines += ["Maximum likelihood (Besiroglu et al. 2024 §3, start: "
            f"{ml['start']}): " + ", ".join(
                f"{k} = {_coef(ml[k])}" for k in
                ("E", "A", "B", "alpha", "beta")) + ". "
            f"Huber scale σ = {_coef(ml['huber_scale'], 3, flag=False)}: the "
            "scale of the Huber density of the log-loss residuals, not their "
            "size (with δ = 1e-3 almost every |r|/σ exceeds δ, so σ ≈ "
            f"δ·mean|r|); residual RMS = {ml['rms_log_residual']:.3g} in log "
            "loss.", ""]
  lines += _flag_line("Likelihood fit", ml)
  lines += img("contours of L(N, D)", "contours") + img("residuals",
                                                         "residuals")

  al = fit["allocation"]
  lines += ["## Compute-optimal allocation", ""]
  lines += _flag_line("Allocation", al)
  if not al.get("table"):
    lines += ["Not computed from these runs (see warnings).", ""]
  else:
    lines += [f"Method: {al['method']}."]
    if "a" in al:
      extra = f", G = {_coef(al['G'])}" if "G" in al else ""
      lines += [f"N_opt ∝ C^a with a = {_coef(al['a'])}; D_opt ∝ C^b with "
                f"b = {_coef(al['b'])}{extra}.", ""]
    lines += _table([[f"{r['flops']:.3g}", _coef(r["N_opt"], 3),
                      _coef(r["D_opt"], 3), _coef(r["tokens_per_param"], 3),
                      _num(r["loss"]), _extrapolation(r.get("extrapolation"))]
                     for r in al["table"]],
                    ["C (FLOPs)", "N_opt (params)", "D_opt (tokens)",
                     "tokens/param", "loss (nats)", "range"])
  lines += [""] + img("optimal N and D versus C", "optimal_allocation")

  a2 = fit["approach2"]
  lines += ["## Approach 2: isoFLOP parabolas", "",
            f"Budgets grouped by {a2['grouping']}"
            + (f"; {a2['unassigned']} runs in no budget" if a2.get("unassigned")
               else "") + ". The parabolas are robust fits (Huber "
            "reweighting, k = 1.345 × 1.4826·MAD): a run far from its "
            "budget's parabola gets a weight below 1, shown on the isoFLOP "
            "plot by marker size and opacity; the column 'best run weight' "
            "gives the weight of each budget's lowest-loss run.", ""]
  lines += _flag_line("Approach 2", a2)
  lines += _table([[f"{b['flops']:.3g}", str(b["n_points"]),
                    _num(b.get("N_opt")), _num(b.get("D_opt")),
                    _num(b.get("best_run_weight"), 2),
                    "; ".join(b["flags"]) or "used"] for b in a2["budgets"]],
                  ["budget C", "runs", "N_opt", "D_opt", "best run weight",
                   "status"])
  lines += ["", f"a = {_coef(a2['a'])}, b = {_coef(a2['b'])}.", ""]
  lines += _caveats(a2)
  lines += img("isoFLOP curves", "isoflop")
  a1 = fit["approach1"]
  lines += ["## Approach 1: envelope of loss versus FLOPs", "",
            f"Method: {a1['method']}. Points: {a1['points']}. "
            f"{a1['n_front']} envelope points of {a1['front_runs']} runs; "
            f"a = {_coef(a1['a'])}, b = {_coef(a1['b'])}.", ""]
  lines += _flag_line("Approach 1", a1)
  lines += _caveats(a1)
  fr = fit["frontier"]
  if fr.get("fitted"):
    lines += [f"Frontier L(C) = E + A·C^-γ on {fr['fitted_on']}: "
              f"E = {_coef(fr['E'])}, A = {_coef(fr['A'])}, "
              f"γ = {_coef(fr['gamma'])}.", ""]
  else:
    lines += [f"Frontier L(C) = E + A·C^-γ: not fitted ("
              + "; ".join(fr.get("reasons") or []) + ").", ""]
  lines += _flag_line("Frontier", fr) if fr.get("fitted") else []
  lines += img("loss versus compute", "loss_vs_compute")
  dc = fit.get("data_constrained")
  if dc:
    lines += ["## Data-constrained (Muennighoff et al. 2023)", "",
              f"Base law: {dc['base']['source']}; "
              f"R*_N = {_coef(dc['R_N_star'])}"
              f", R*_D = {_coef(dc['R_D_star'])} ({dc['n_points']} runs).", ""]
    lines += _flag_line("Data-constrained", dc)
  lines += downstream_lines(fit.get("downstream"), made)
  lines += _sensitivity(fit.get("sensitivity"), fit)
  return "\n".join(lines) + "\n"


def _extrapolation(x) -> str:
  if x is None:
    return "within the runs' compute"
  if x > 1:
    return f"**extrapolation ×{x:.3g} beyond the largest budget**"
  return f"**extrapolation ×{1 / x:.3g} below the smallest budget**"


def _sensitivity(sens, fit) -> list[str]:
  """The sensitivity section (Li, Kudugunta & Zettlemoyer 2025)."""
  out = ["## Sensitivity to the fitting choices", ""]
  if sens is None:
    return out + ["Not run (`--no-sensitivity`).", ""]
  out += ["Li, Kudugunta & Zettlemoyer 2025 (\"(Mis)Fitting Scaling Laws\", "
          "arXiv 2502.18969) show that allocations move with choices made "
          "before any fit. Each row changes one choice and refits Approach 3 "
          "(then the allocation) and Approach 2; tokens/param is D_opt/N_opt "
          "at the largest compute of that row's runs. '=' marks an approach "
          "the choice does not affect (copied from the default).", "",
          f"Default N: {_n_sentence(fit)}", ""]

  def cell(r, key, field, digits=3):
    e = r.get(key)
    if e is None:
      return "not fitted"
    v = _num(e[field], digits)
    return "= " + v if r["same_as_default"][key] else v

  rows = [[r["choice"], str(r["n_runs"]), cell(r, "approach3", "a"),
           cell(r, "approach3", "b"), cell(r, "approach3", "tokens_per_param"),
           cell(r, "approach2", "a"), cell(r, "approach2", "b"),
           cell(r, "approach2", "tokens_per_param")] for r in sens["rows"]]
  out += _table(rows, ["choice", "runs", "A3 a", "A3 b", "A3 tokens/param",
                       "A2 a", "A2 b", "A2 tokens/param"])
  out += ["", sens["sentence"], ""]
  if sens["unavailable"]:
    out += ["Choices this table does not allow:"]
    out += [f"- {u}" for u in sens["unavailable"]] + [""]
  return out


def render_groups(fit: dict) -> str:
  """Markdown report of a per-group frontier fit.json (``groups.analyze``)."""
  made = set(fit.get("plots") or ())
  s = fit["settings"]
  lvl = f"{100 * s['level']:.0f}%"
  lines = [f"# Loss-versus-compute frontier per `{fit['group_col']}`", ""]
  ok = [g for g in fit["groups"] if g.get("applicable")]
  good = [g["group"] for g in ok if g.get("identifiable")
          and not g.get("unreliable")]
  lines += [f"**{len(good)} of {len(fit['groups'])} groups have an "
            "identifiable, reliable frontier**"
            + (f" ({', '.join(good)})" if good else "") + ".", "",
            f"Source: `{fit['source']['path']}`; loss = "
            f"`{fit['loss_column']}`; compute = `{fit['columns']['C']}`. "
            "Each group's frontier L(C) = E + A·C^-γ is fitted on its "
            "compute-optimal runs (each isoFLOP budget's lowest-loss run); "
            f"intervals: {lvl} percentile bootstrap over {s['bootstrap']} "
            "resamples of the group's runs.", ""]
  rows = []
  for g in fit["groups"]:
    if not g.get("applicable"):
      rows.append([g["group"], "—", "—", "not applicable", "—", "—", "—",
                   g.get("reason") or ""])
      continue
    e_text = ("0 (assumed)" if g.get("law") == "A*C^-gamma" else
              _coef(g.get("E"), 3))
    rows.append([g["group"], str(g["n_runs"]), str(g["n_budgets"]),
                 g.get("law") or "none", e_text,
                 _coef(g.get("A"), 3), _coef(g.get("gamma"), 3),
                 identify.flag_text(g) + f"; resamples succeeded {_boot(g)}"])
  lines += _table(rows, ["group", "runs", "budgets", "law", "E", "A", "γ",
                         "flags"])
  lines += [""]
  for g in ok:
    if g.get("caveats"):
      lines += [f"{g['group']}:"] + [f"- {c}" for c in g["caveats"]] + [""]
  if "frontier_by_group.png" in made:
    lines += ["![frontier per group](frontier_by_group.png)", ""]
  lines += downstream_lines(fit.get("downstream"), made)
  return "\n".join(lines) + "\n"


def _points(entry, e, key: str = "ci") -> str:
  """An error entry in points of the metric's range, with its interval
  (``key``: "ci", or "prediction_interval", which adds the runs' scatter)."""
  lo, hi = e["settings"]["metric_range"]
  f = 100.0 / (hi - lo)
  c = entry["error"]
  scaled = dict(value=c["value"] * f, n_ok=c.get("n_ok", 0),
                ci=None if not c.get(key) else [v * f for v in c[key]])
  return _coef(scaled, 3, flag=False)


def _holdout_rows(e, held) -> list[list[str]]:
  rows = []
  for r in held.get("runs") or []:
    rel = r.get("relative_error")
    tl = r["predicted"]["task_loss"]
    rows.append([f"`{r['run']}`", _num(r["N"], 3), _num(r["D"], 3),
                 _num(r["C"], 3), _range(r.get("extrapolation")),
                 _num(r["observed"]["metric"]),
                 _coef(r["predicted"]["metric"], flag=False),
                 _points(r, e), _points(r, e, "prediction_interval"),
                 _yes(r.get("observed_in_prediction_interval")),
                 "n/a" if rel is None else f"{abs(rel):.1%}",
                 f"{_num(r['observed']['task_loss'])} → "
                 f"{_coef(tl, flag=False)}"])
  return rows


def _yes(flag) -> str:
  return "n/a" if flag is None else "yes" if flag else "**no**"


def _range(x) -> str:
  if x is None:
    return "within the fitted runs' compute"
  if x > 1:
    return f"**extrapolation ×{x:.3g} beyond the largest fitted run**"
  return f"**extrapolation ×{1 / x:.3g} below the smallest fitted run**"


HOLDOUT_TEXT = {"largest": "the run with the largest compute C",
                "largest-budget": "every run within 1% of the largest C",
                "none": "none"}


def _downstream_intro(metric: str, e: dict) -> list[str]:
  s = e["settings"]
  lo, hi = s["metric_range"]
  floor = ("fixed at the chance level " + _num(s["floor"]) if s["floor"]
           is not None else f"fitted, ≥ {lo:g}")
  rows = e["rows"]
  boot = (f"{100 * s['level']:.0f}% percentile bootstrap over "
          f"{s['bootstrap']} resamples of runs, both steps refitted on each "
          "resample and chained" if s["bootstrap"] else
          "none (bootstrap disabled): no uncertainty is known")
  return [
      f"Bhagia et al. 2024 (arXiv 2412.04403), two steps chained: (1) the "
      f"task loss L = `{e['loss']}` (the gold answer's bits per byte; "
      f"{e['loss_source']}) as L(N, D) = E + A/N^α + B/D^β, fitted as "
      f"Approach 3 (log loss, Huber δ = {s['huber_delta']:g}, summed, "
      "L-BFGS from 4,500 starts); (2) the metric as Acc(L) = a/(1 + "
      "e^(−k(L − L0))) + b, as the paper writes it, with k < 0 (the metric "
      f"falls as the task loss rises), floor b {floor}, span a ≥ 0, "
      f"ceiling a + b ≤ {hi:g}; least squares from a grid of starts. "
      f"Runs with both columns: {rows['used']} of {rows['read']}; "
      f"rejected: {rows['rejected'] or 'none'}. Held out: "
      f"{HOLDOUT_TEXT.get(s['holdout'], 'run `' + str(s['holdout']) + '`')}"
      f". Intervals: {boot}.", ""]


def _step_tables(fit: dict, label: str) -> list[str]:
  st1, st2 = fit["step1"], fit["step2"]
  out = [f"### Step 1 ({label}): task loss L(N, D) = E + A/N^α + B/D^β", ""]
  out += _flag_line("Step 1", st1)
  out += _table([[k, _coef(st1[k])] for k in ("E", "A", "B", "alpha",
                                              "beta")],
                ["parameter", "value [CI]"])
  out += ["", f"Residual RMS {st1['rms_log_residual']:.3g} in log task loss "
          f"({st1['n_points']} runs).", ""] + _caveats(st1)
  out += [f"### Step 2 ({label}): metric = a/(1 + e^(−k(L − L0))) + b", ""]
  out += _flag_line("Step 2", st2)
  rows = []
  for k, what in (("k", "slope (< 0)"), ("L0", "midpoint (task loss)"),
                  ("a", "span"), ("b", "floor"), ("ceiling", "a + b")):
    c = st2[k]
    rows.append([k, what, f"{_num(c['value'])} (fixed)" if c.get("fixed")
                 else _coef(c)])
  out += _table(rows, ["parameter", "meaning", "value [CI]"])
  lo, hi = st2["task_loss_range"]
  s_lo, s_hi = st2["rise"]
  out += ["", f"The runs' task losses [{lo:.4g}, {hi:.4g}] sit at "
          f"{s_lo:.2f} to {s_hi:.2f} of the rise from b to a + b (the "
          f"sigmoid bends at {sigmoid.LOWER_BEND:.3f} and "
          f"{sigmoid.UPPER_BEND:.3f}; slope and midpoint need runs on both "
          f"sides of 0.5). Residual RMS {st2['rms_residual']:.3g} "
          f"({st2['n_points']} runs).", ""] + _caveats(st2)
  return out


def _downstream_body(e: dict) -> list[str]:
  if not e.get("fitted"):
    return ["Not fitted: " + "; ".join(e.get("reasons") or []) + ".", ""]
  out = []
  held = e["holdout"]
  fit = held.get("fit")
  lo, hi = e["settings"]["metric_range"]
  if fit is not None:
    out += [f"**Held-out prediction**: both steps fitted on the other "
            f"{fit['runs']} runs, then the metric predicted from each "
            "held-out run's N and D.", ""]
    out += _table(_holdout_rows(e, held),
                  ["run", "N", "D", "C (FLOPs)", "range", "observed",
                   "predicted [CI]", "error, points [CI]",
                   "error, points [prediction interval]",
                   "observed within it", "relative error",
                   "task loss: observed → predicted [CI]"])
    mae = held.get("mean_abs_error")
    if mae and len(held["runs"]) > 1:
      out += ["", f"Mean absolute error: {_coef(mae, 3, flag=False)}."]
    scatter = 100 * held["runs"][0]["scatter_rms"] / (hi - lo)
    out += ["", "The error is predicted − observed, in points of the "
            "metric's range. [CI]: the prediction's bootstrap interval minus "
            "the observation (the fit's uncertainty only; it covers the true "
            "law's error at that run, the run's own noise, when the law is "
            "right). [prediction interval]: adds the fitted runs' scatter "
            f"about the chained law (RMS {scatter:.2g} points); an "
            "observation outside it is a misfit of the law, not noise.", ""]
    out += _flag_line("Held-out fit", fit)
    cav = e.get("caveats") or []
    out += [f"- {c}" for c in cav] + ([""] if cav else [])
  else:
    why = held.get("reason") or "; ".join(e.get("reasons") or [])
    out += [f"No held-out prediction: {why}.", ""]
  out += _step_tables(e["full"], "all runs")
  return out


def _downstream_groups(e: dict) -> list[str]:
  rows = []
  for g in e["groups"]:
    held = g.get("holdout") or {}
    runs = held.get("runs") or []
    if not g.get("fitted") or not runs:
      why = "; ".join(g.get("reasons") or []) or held.get("reason") or ""
      rows.append([g["group"], str(g.get("runs", 0)), "—", "—", "—", "—",
                   "—", "—", f"not fitted: {why}" if not g.get("fitted") else
                   f"no held-out run ({why})", "—"])
      continue
    r = runs[0]
    more = f" (+{len(runs) - 1} more)" if len(runs) > 1 else ""
    rows.append([g["group"], str(g["runs"]), f"`{r['run']}`{more}",
                 _range(r.get("extrapolation")),
                 _num(r["observed"]["metric"]),
                 _coef(r["predicted"]["metric"], flag=False),
                 _points(r, e), _points(r, e, "prediction_interval"),
                 identify.flag_text(held["fit"]["step1"]),
                 identify.flag_text(held["fit"]["step2"])])
  return _table(rows, ["group", "runs", "held out", "range", "observed",
                       "predicted [CI]", "error, points [CI]",
                       "error, points [prediction interval]",
                       "step 1 (held-out fit)", "step 2 (held-out fit)"]
                ) + ["", "Each group's first held-out run is shown; all are "
                     "in fit.json (`downstream.<metric>.groups[].holdout`).",
                     ""]


def downstream_lines(entries: dict | None, made: set) -> list[str]:
  """The downstream sections of report.md (one per metric)."""
  out = []
  for metric, e in (entries or {}).items():
    out += [f"## Downstream: `{metric}` from `{e['loss']}` (two-step law)",
            ""]
    out += _downstream_intro(metric, e)
    if "groups" in e:
      out += [f"One law per `{e['group_col']}`:", ""]
      out += _downstream_groups(e)
    else:
      out += _downstream_body(e)
    stem = downstream.figure_stem(metric)
    if f"{stem}.png" in made:
      out += [f"![{metric} against task loss; predicted against observed]"
              f"({stem}.png)", ""]
  return out
