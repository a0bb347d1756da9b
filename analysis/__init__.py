"""Reading results tables and fitting/plotting scaling laws (DESIGN.md §4).

Independent of training: every function works on plain arrays or on any CSV of
(N, D, C, loss) rows, ours or a paper's. Modules, one job each:

* ``load``: results tables (sweep directories or any CSV) → clean columns.
* ``powerlaw``: y = k·x^p, the Kaplan form and the frontier L(C) = E + A·C^-γ.
* ``chinchilla``: the parametric law L(N, D) = E + A/N^α + B/D^β, its Huber
  objective on log loss and the Approach 3 fit (Hoffmann et al. 2022 §3.3).
* ``multistart``: batched float64 L-BFGS over many starts, then a scipy polish.
* ``mle``: the Huber maximum-likelihood fit of Besiroglu et al. 2024 §3.
* ``envelope``: Approach 1 (lower envelope of loss versus FLOPs).
* ``isoflop``: Approach 2 (isoFLOP parabolas in log N).
* ``allocation``: compute-optimal N_opt(C), D_opt(C).
* ``bootstrap``: confidence intervals by resampling runs (multi-start).
* ``identify``: what the data can identify (spread, interval widths,
  bootstrap success) → ``identifiable``, ``unreliable``, ``reasons``.
* ``headline``: is the allocation exponent identified, do the approaches
  agree (the first lines of report.md).
* ``sensitivity``: refits under other N/C definitions, Huber δ, fewer runs.
* ``groups``: the loss-versus-compute frontier per group (``--group-by``).
* ``data_constrained``: effective-data law of Muennighoff et al. 2023.
* ``hparams``, ``hparams_report``: the best learning rate / batch per size
  and their power laws in N or C, and the rule file a sweep loads
  (``scaling analyze --hparams``).
* ``sigmoid``: a task metric as a bounded sigmoid of the task loss.
* ``downstream``: the two-step law of Bhagia et al. 2024 (task loss from
  N and D, then the metric), its held-out prediction and intervals
  (``--task-metric``).
* ``plots``, ``report``, ``markdown``, ``cli``: figures, ``fit.json``,
  ``report.md`` and ``scaling analyze``.

Nothing is computed at import time; float64 numpy/scipy only.
"""
