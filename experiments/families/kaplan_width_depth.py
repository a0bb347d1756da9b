"""``kaplan_width_depth``: depth-only, width-only and fixed-aspect ladders at
fixed data, as in Kaplan et al. 2020 §3.1 (Figure 5: loss depends on N, the
non-embedding parameters, and only weakly on the shape).

Every run trains on the same 4M tokens (2000 steps of 16 x 128); shapes:
fixed aspect d_model / n_layers = 32 (L1..L6), depth-only at d_model 128
(L1, 2, 4, 6, 8), width-only at 4 layers (d_model 32 … 256); d_head 16, d_ff =
4 d_model. A shape on two ladders is trained once (tagged with both).

Cost: about 4e14 FLOPs; some 8 hours on 2 CPU cores (estimate), minutes on a GPU.
"""

from __future__ import annotations

import json

from experiments import generators
from experiments import registry
from scaling import config as config_lib


@registry.register(
    "kaplan_width_depth",
    description="depth-only, width-only and fixed-aspect ladders at 4M tokens",
    cost="~4e14 FLOPs: ~8 hours on 2 CPU cores, minutes on a GPU")
def build():
  base = config_lib.default_config()
  base.seq_len = 128
  base.batch_size = 16
  base.train.steps = 2000
  base.eval.every = 500
  base.checkpoint.every = 500
  ladders = dict(
      aspect=generators.ladder(range(1, 7), aspect_ratio=32, d_head=16),
      depth=generators.depth_ladder(128, (1, 2, 4, 6, 8), d_head=16),
      width=generators.width_ladder(4, (32, 64, 96, 128, 192, 256), d_head=16),
  )
  runs, by_config = [], {}
  for ladder_name, shapes in ladders.items():
    for run in generators.shape_runs(base, shapes, rule=generators.DEFAULT_RULE):
      key = json.dumps(run.config.to_dict(), sort_keys=True, default=list)
      if key in by_config:
        by_config[key].tags["ladder"] += f"+{ladder_name}"
        continue
      run.tags["ladder"] = ladder_name
      by_config[key] = run
      runs.append(run)
  return registry.Family(base, runs)
