"""``data_size``: one model trained on a range of data sizes, and the
data-constrained variant (Muennighoff et al. 2023: repeated epochs of a
capped set of unique tokens).

Model L2_d64 (d_head 16), 16 x 128 tokens per step, hyperparameters from
``generators.DEFAULT_RULE``:

* ``D<tokens>``: fresh data, train.tokens in 0.25M … 8M (the L(D) curve at
  fixed N, Kaplan et al. 2020 Eq. 1.2);
* ``U<unique>_E<epochs>``: data.max_tokens = 0.5M or 2M unique tokens seen
  for 1, 2, 4, 8 epochs (the value of repeated data).

Cost: about 5e13 FLOPs; about an hour on 2 CPU cores (estimate).
"""

from __future__ import annotations

from experiments import generators
from experiments import registry
from scaling import config as config_lib

TOKENS = (250_000, 500_000, 1_000_000, 2_000_000, 4_000_000, 8_000_000)
UNIQUE_TOKENS = (500_000, 2_000_000)
EPOCHS = (1, 2, 4, 8)


@registry.register(
    "data_size",
    description="L2_d64 on 0.25M-8M tokens, and 0.5M/2M unique tokens x 1-8 epochs",
    cost="~5e13 FLOPs: about an hour on 2 CPU cores")
def build():
  base = config_lib.default_config()
  base.seq_len = 128
  base.batch_size = 16
  base.train.steps = -1
  base.train.tokens = TOKENS[0]
  base.eval.every = 500
  base.checkpoint.every = 500
  shape = generators.Shape(d_model=64, n_layers=2, n_heads=4, d_ff=256)
  base = generators.DEFAULT_RULE.apply(
      config_lib.with_overrides(base, shape.overrides()))
  runs = [config_lib.with_overrides(base, {"train.tokens": t}) for t in TOKENS]
  runs = [registry.Run(f"D{generators.fmt_value(float(t))}", c, tags=dict(
      variant="fresh")) for t, c in zip(TOKENS, runs)]
  for run in generators.data_constrained(base, UNIQUE_TOKENS, EPOCHS):
    run.tags["variant"] = "repeated"
    runs.append(run)
  return registry.Family(base, runs)
