"""report.md: a short human-readable view of fit.json with its figures."""

from __future__ import annotations


def _num(v, digits: int = 4) -> str:
  if v is None:
    return "n/a"
  if isinstance(v, (int, float)):
    return f"{v:.{digits}g}"
  return str(v)


def _coef(c, digits: int = 4) -> str:
  """'value [lo, hi]' or 'not identifiable'."""
  if c is None:
    return "n/a"
  if c.get("identifiable") is False:
    return f"not identifiable ({_num(c['value'], digits)} is arbitrary)"
  s = _num(c["value"], digits)
  ci = c.get("ci")
  if ci and ci[0] is not None:
    s += f" [{_num(ci[0], digits)}, {_num(ci[1], digits)}]"
  return s


def _table(rows, header) -> list[str]:
  out = ["| " + " | ".join(header) + " |",
         "|" + "---|" * len(header)]
  out += ["| " + " | ".join(r) + " |" for r in rows]
  return out


def render(fit: dict) -> str:
  """Markdown report of a fit.json dict (figures referenced by file name)."""
  made = set(fit.get("plots") or ())

  def img(alt: str, stem: str) -> list[str]:
    return [f"![{alt}]({stem}.png)", ""] if f"{stem}.png" in made else []

  s = fit["settings"]
  lvl = f"{100 * s['level']:.0f}%"
  rows = fit["rows"]
  lines = ["# Scaling-law analysis", "",
           f"Source: `{fit['source']['path']}` ({fit['source']['kind']}). "
           f"Runs used: {rows['used']} of {rows['read']}; rejected: "
           f"{rows['rejected'] or 'none'}.", "",
           "Columns: " + ", ".join(f"{k} = `{v}`" for k, v in
                                   fit["columns"].items() if v) + ".", ""]
  fm = fit["flops_model"]
  lines += ["FLOPs: " + ("C = 6ND (closed-form allocation)" if fm["is_6nd"]
                          else f"C = {fm['kappa']:.4g}·N^{fm['q']:.4g}·D "
                          "fitted "
                          f"to the runs (max error {fm['max_rel_error']:.1%}; "
                          "numerical allocation)") + ".", ""]
  lines += [f"Intervals: {lvl} percentile bootstrap over {s['bootstrap']} "
            "resamples of runs" if s["bootstrap"] else
            "Intervals: none (bootstrap disabled)", ""]
  lines += [f"- {n}" for n in fit.get("notes", [])]
  lines += ["", "## Warnings", ""]
  lines += [f"- **{w}**" for w in fit["warnings"]] or ["- none"]

  a3 = fit["approach3"]
  lines += ["", "## Approach 3: L(N, D) = E + A/N^α + B/D^β", "",
            f"Huber δ = {a3['huber_delta']:g} on log loss, summed; L-BFGS from "
            f"{a3['n_starts']} starts; objective {a3['objective']:.6g} "
            f"({a3['n_points']} runs, {a3['seconds']:.2f} s).", ""]
  lines += _table([[k, _coef(a3[k])] for k in ("E", "A", "B", "alpha", "beta")],
                  ["parameter", f"value [{lvl} CI]"])
  ml = fit["mle"]
  lines += ["", "Maximum likelihood (Besiroglu et al. 2024 §3, start: "
            f"{ml['start']}): " + ", ".join(
                f"{k} = {_coef(ml[k])}" for k in
                ("E", "A", "B", "alpha", "beta", "sigma")) + ".", ""]
  lines += img("contours of L(N, D)", "contours") + img("residuals",
                                                         "residuals")

  al = fit["allocation"]
  lines += ["## Compute-optimal allocation", ""]
  if not al.get("identifiable"):
    lines += ["Not identifiable from these runs (see warnings).", ""]
  else:
    lines += [f"Method: {al['method']}."]
    if "a" in al:
      extra = f", G = {_coef(al['G'])}" if "G" in al else ""
      lines += [f"N_opt ∝ C^a with a = {_coef(al['a'])}; D_opt ∝ C^b with "
                f"b = {_coef(al['b'])}{extra}.", ""]
    lines += _table([[f"{r['flops']:.3g}", _coef(r["N_opt"], 3),
                      _coef(r["D_opt"], 3), _coef(r["tokens_per_param"], 3),
                      _num(r["loss"])] for r in al["table"]],
                    ["C (FLOPs)", "N_opt (params)", "D_opt (tokens)",
                     "tokens/param", "loss (nats)"])
  lines += [""] + img("optimal N and D versus C", "optimal_allocation")

  a2 = fit["approach2"]
  lines += ["## Approach 2: isoFLOP parabolas", "",
            f"Budgets grouped by {a2['grouping']}"
            + (f"; {a2['unassigned']} runs in no budget" if a2.get("unassigned")
               else "") + ".", ""]
  lines += _table([[f"{b['flops']:.3g}", str(b["n_points"]),
                    _num(b.get("N_opt")), _num(b.get("D_opt")),
                    "; ".join(b["flags"]) or "used"] for b in a2["budgets"]],
                  ["budget C", "runs", "N_opt", "D_opt", "status"])
  lines += ["", f"a = {_coef(a2['a'])}, b = {_coef(a2['b'])}.", ""]
  lines += img("isoFLOP curves", "isoflop")
  a1 = fit["approach1"]
  lines += ["## Approach 1: envelope of loss versus FLOPs", "",
            f"Points: {a1['points']}. {a1['n_front']} points of "
            f"{a1['front_runs']} runs on the envelope; a = {_coef(a1['a'])}, "
            f"b = {_coef(a1['b'])}.", ""]
  fr = fit["frontier"]
  if fr:
    lines += [f"Frontier L(C) = E + A·C^-γ on {fr['fitted_on']}: "
              f"E = {_coef(fr['E'])}, A = {_coef(fr['A'])}, "
              f"γ = {_coef(fr['gamma'])}.", ""]
  lines += img("loss versus compute", "loss_vs_compute")
  dc = fit.get("data_constrained")
  if dc:
    lines += ["## Data-constrained (Muennighoff et al. 2023)", "",
              f"Base law: {dc['base']['source']}; "
              f"R*_N = {_coef(dc['R_N_star'])}"
              f", R*_D = {_coef(dc['R_D_star'])} ({dc['n_points']} runs).", ""]
  return "\n".join(lines) + "\n"
