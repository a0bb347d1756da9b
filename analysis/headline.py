"""The report's first lines: is the allocation exponent identified, do the
approaches agree?

The allocation exponent a (N_opt ∝ C^a) is the number an isoFLOP sweep
exists to measure. Each approach estimates it (Approach 1: the envelope's
runs; Approach 2: the isoFLOP minima; Approach 3: β/(α+β), or the effective
slope under a non-6ND FLOP count). An approach *identifies* a when its fit is
identifiable and reliable (``analysis.identify``) and the 95% interval of a
has a half-width of at most ``TARGET_HALF_WIDTH`` = 0.15. The approaches
*agree* when their intervals share a common point (the largest lower end is
below the smallest upper end); approaches without an interval cannot take
part, and the check needs two that can.
"""

from __future__ import annotations

TARGET_HALF_WIDTH = 0.15
APPROACHES = (("approach1", "Approach 1"), ("approach2", "Approach 2"),
              ("approach3", "Approach 3"))


def _entry(fit: dict, key: str) -> dict:
  """a of one approach: value, ci, half_width, identified, why not."""
  source = fit["allocation"] if key == "approach3" else fit[key]
  a = (source or {}).get("a")
  out = dict(value=None, ci=None, half_width=None, identified=False,
             why=None)
  if not a:
    why = "; ".join((source or {}).get("reasons") or []) or "not fitted"
    out["why"] = f"not fitted ({why})"
    return out
  out["value"] = a["value"]
  ci = a.get("ci")
  if ci and ci[0] is not None and ci[1] is not None:
    out["ci"] = list(ci)
    out["half_width"] = (ci[1] - ci[0]) / 2
  problems = []
  reasons = source.get("reasons") or []
  if not source.get("identifiable", False):
    problems.append("not identifiable: " + "; ".join(
        r for r in reasons if "bootstrap resamples" not in r))
  if source.get("unreliable"):
    problems.append("unreliable: " + "; ".join(
        r for r in reasons if "bootstrap resamples" in r))
  said = any(r.startswith("a:") for r in reasons)
  if out["half_width"] is None:
    problems.append("no interval" + (f" ({a['flag']})" if a.get("flag")
                                     else ""))
  elif out["half_width"] > TARGET_HALF_WIDTH and not said:
    problems.append(f"half-width {out['half_width']:.3g} > "
                    f"{TARGET_HALF_WIDTH:g}")
  out["identified"] = not problems
  out["why"] = "; ".join(problems) or None
  return out


def summarize(fit: dict) -> dict:
  """The headline of a fit.json dict (see the module docstring).

  Returns:
    dict target_half_width, a (approach → value, ci, half_width,
    identified, why), identified (bool), identified_by (names), agreement
    (status "agree" | "disagree" | "cannot be checked", compared (names),
    overlap [lo, hi] or None, missing (name → why)).
  """
  per = {key: _entry(fit, key) for key, _ in APPROACHES}
  names = dict(APPROACHES)
  with_ci = [k for k, _ in APPROACHES if per[k]["ci"] is not None]
  missing = {names[k]: per[k]["why"] for k, _ in APPROACHES
             if per[k]["ci"] is None}
  if len(with_ci) < 2:
    agreement = dict(status="cannot be checked", compared=[names[k] for k in
                                                           with_ci],
                     overlap=None, missing=missing)
  else:
    lo = max(per[k]["ci"][0] for k in with_ci)
    hi = min(per[k]["ci"][1] for k in with_ci)
    agreement = dict(status="agree" if lo <= hi else "disagree",
                     compared=[names[k] for k in with_ci],
                     overlap=[lo, hi] if lo <= hi else None, missing=missing)
  by = [names[k] for k, _ in APPROACHES if per[k]["identified"]]
  return dict(target_half_width=TARGET_HALF_WIDTH, a=per,
              identified=bool(by), identified_by=by, agreement=agreement)


def _names(names: list[str]) -> str:
  """['Approach 1', 'Approach 3'] → 'Approaches 1 and 3'."""
  nums = [n.split()[-1] for n in names]
  if len(nums) == 1:
    return f"Approach {nums[0]}"
  return "Approaches " + ", ".join(nums[:-1]) + " and " + nums[-1]


def lines(summary: dict) -> list[str]:
  """The markdown headline (two bold statements, then one line each)."""
  s = summary
  per = s["a"]
  if s["identified"]:
    head = (f"**Allocation exponent a (N_opt ∝ C^a): identified** by "
            f"{_names(s['identified_by'])} (target: 95% half-width ≤ "
            f"{s['target_half_width']:g}).")
  else:
    head = ("**Allocation exponent a (N_opt ∝ C^a): not identified** by any "
            f"approach (target: 95% half-width ≤ {s['target_half_width']:g})"
            ".")
  out = [head, ""]
  for key, name in APPROACHES:
    e = per[key]
    if e["value"] is None:
      out.append(f"- {name}: {e['why']}")
      continue
    val = f"a = {e['value']:.3g}"
    if e["ci"] is not None:
      val += (f" [{e['ci'][0]:.3g}, {e['ci'][1]:.3g}], half-width "
              f"{e['half_width']:.3g}")
    verdict = ("identified" if e["identified"] else
               f"not identified — {e['why']}")
    out.append(f"- {name}: {val}: {verdict}")
  ag = s["agreement"]
  out.append("")
  if ag["status"] == "agree":
    lo, hi = ag["overlap"]
    text = (f"**{_names(ag['compared'])} agree within their "
            f"intervals** (common range of a: [{lo:.3g}, {hi:.3g}])")
  elif ag["status"] == "disagree":
    text = (f"**{_names(ag['compared'])} disagree**: their 95% intervals "
            "of a share no value")
  else:
    text = ("**Whether Approaches 1, 2 and 3 agree cannot be checked**: "
            "fewer than two have an interval of a")
  if ag["missing"] and ag["status"] != "cannot be checked":
    text += "; not compared: " + ", ".join(ag["missing"])
  out += [text + ".", ""]
  return out
