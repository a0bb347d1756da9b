"""What the data itself says about noise and repetition, before any law.

* Noise floor: runs with the same N and D (replicates: other seeds of one
  configuration) differ only by noise. Their pooled standard deviation of
  the loss, with a chi-square interval, is the scatter a law cannot explain;
  a fit whose residuals are much larger than it is missing structure, one
  whose residuals are about as large fits to the noise.
* Repetition: a run that trained for more than one epoch of its unique data
  (D / unique tokens > 1) saw repeated data; Muennighoff et al. 2023 (arXiv
  2305.16264) find up to about 4 epochs nearly as good as fresh data, but a
  law fitted across such runs mixes the two regimes, so the report says so.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

_SAME = 1e-9  # relative tolerance for "the same N and D"


def noise_floor(n, d, loss, level: float = 0.95) -> dict | None:
  """Pooled spread of the loss among replicate runs (same N and D).

  Args:
    n, d, loss: [k] parameters, tokens and losses of the runs.
    level: coverage of the interval of the standard deviation.

  Returns:
    None without replicates, else dict groups (number of (N, D) with >= 2
    runs), runs (in them), dof, sd (pooled SD of the loss), sd_log (of log
    loss), sd_log_ci ([lo, hi], chi-square interval) and members (per group:
    N, D, losses).
  """
  n, d, loss = (np.asarray(x, np.float64) for x in (n, d, loss))
  keys: dict = {}
  for i, (ni, di) in enumerate(zip(n, d)):
    key = next((k for k in keys if abs(k[0] - ni) <= _SAME * ni
                and abs(k[1] - di) <= _SAME * di), (ni, di))
    keys.setdefault(key, []).append(i)
  groups = [idx for idx in keys.values() if len(idx) >= 2]
  if not groups:
    return None
  ss = ss_log = 0.0
  dof = 0
  for idx in groups:
    x = loss[idx]
    ss += float(np.sum((x - x.mean()) ** 2))
    ss_log += float(np.sum((np.log(x) - np.log(x).mean()) ** 2))
    dof += len(idx) - 1
  sd, sd_log = math.sqrt(ss / dof), math.sqrt(ss_log / dof)
  tail = (1 - level) / 2
  lo = sd_log * math.sqrt(dof / stats.chi2.ppf(1 - tail, dof))
  hi = sd_log * math.sqrt(dof / stats.chi2.ppf(tail, dof))
  return dict(groups=len(groups), runs=sum(len(g) for g in groups), dof=dof,
              sd=sd, sd_log=sd_log, sd_log_ci=[lo, hi],
              members=[dict(N=float(n[g[0]]), D=float(d[g[0]]),
                            losses=loss[g].tolist()) for g in groups])


def repetition(d, unique_tokens) -> dict | None:
  """Epochs of unique data per run: D / unique tokens.

  Returns:
    None without unique-token counts, else dict max_epochs, repeated (runs
    with more than one epoch), runs.
  """
  if unique_tokens is None:
    return None
  d, u = np.asarray(d, np.float64), np.asarray(unique_tokens, np.float64)
  ok = np.isfinite(u) & (u > 0)
  if not ok.any():
    return None
  epochs = d[ok] / u[ok]
  return dict(max_epochs=float(epochs.max()),
              repeated=int(np.sum(epochs > 1 + 1e-9)), runs=int(ok.sum()))


def lines(noise: dict | None, repeat: dict | None,
          rms_log_residual: float | None, level: float) -> list[str]:
  """The report's paragraph on noise and repetition (markdown lines)."""
  out = []
  if noise is None:
    out.append("Noise floor: no replicate runs (same N and D, other seeds), "
               "so the seed-to-seed scatter the fits assume is not measured.")
  else:
    lo, hi = noise["sd_log_ci"]
    text = (f"Noise floor: {noise['runs']} replicate runs in "
            f"{noise['groups']} configuration(s) differ by a pooled standard "
            f"deviation of {noise['sd']:.3g} nats ({noise['sd_log']:.3g} in "
            f"log loss, {100 * level:.0f}% interval [{lo:.3g}, {hi:.3g}], "
            f"{noise['dof']} degrees of freedom).")
    if rms_log_residual:
      ratio = rms_log_residual / noise["sd_log"]
      verdict = ("about the seed noise: the law fits as well as the data allow"
                 if ratio < 2 else "well above the seed noise: the law "
                 "misses structure in the runs (or the noise varies with size)")
      text += (f" Approach 3's residual RMS in log loss is "
               f"{rms_log_residual:.3g}, {ratio:.1f}× that: {verdict}.")
    out.append(text)
  if repeat is not None:
    if repeat["repeated"]:
      out.append(f"Repetition: {repeat['repeated']} of {repeat['runs']} runs "
                 f"trained on repeated data (up to {repeat['max_epochs']:.2f} "
                 "epochs of their unique tokens); Muennighoff et al. 2023 find "
                 "up to about 4 epochs nearly as good as fresh data, but "
                 "these runs are not single-epoch.")
    else:
      out.append(f"Repetition: none (at most {repeat['max_epochs']:.2f} "
                 "epochs of unique data).")
  return out
