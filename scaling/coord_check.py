"""Coordinate check: how far activations move in a run's first steps, per
width (or depth), under each parametrisation.

Yang et al. 2022 (arXiv 2203.03466, §D.1 and Fig. 5; microsoft/mup
``coord_check``): train models that differ only in width for a few steps at
one learning rate and record the size of each layer type's activation
coordinates. Under a parametrisation that transfers (μP), the *change* of
every activation since initialisation stays the same size as width grows;
under SP with Adam it grows (about ∝ width), the failure a μP that is not
active shows (EleutherAI/gpt-neox#956, #1061). CompleteP (Dey et al. 2025)
makes the same hold across depth.

Each model is built by :func:`scaling.program.build` (what trains is what is
checked) and trained by its compiled train step on the run's own data
stream. Before the first update and after each update t = 1..steps the
model is run on one fixed probe batch (the first training batch) with its
``intermediates`` collection (``scaling.model``), and each layer type gets

* ``mean_abs``: mean |x| over every coordinate (batch, positions, features
  and, for the per-block types ``attn_out``, ``mlp_hidden``, ``mlp_out``,
  every block; ``residual`` is the stream after the last block, what the
  readout reads), and
* ``mean_abs_change``: mean |x_t − x_0| over the same coordinates.

The slopes of these against width in log-log space are
:mod:`analysis.coord` (which also plots them).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import jax
import ml_collections
import numpy as np

from scaling import config as config_lib
from scaling import program as program_lib
from scaling import sharding
from scaling import tokenizer as tok_lib
from scaling import validation
from scaling.data import pipeline
from scaling.data import sources

LAYERS = ("embed", "attn_out", "mlp_hidden", "mlp_out", "residual", "logits")
FIELDS = ("parametrization", "d_model", "n_layers", "step", "layer",
          "mean_abs", "mean_abs_change", "train_loss")


def default_config(steps: int = 4, peak_lr: float = 1e-3
                   ) -> ml_collections.ConfigDict:
  """The check's run: 2 layers of d_model 64, d_head 16, 8 × 64 tokens per
  step, a constant learning rate ``peak_lr`` from the first update (no
  warmup; 1e-3, microsoft/mup's Adam rate for its checks, keeps three
  updates in the regime the scaling rules describe: at 1e-2 the residual
  stream moves several times its own size by t = 3), no weight decay and
  the readout zero-initialised (``model.zero_init = readout``), as
  microsoft/mup's coordinate checks train: the random readout's part of the
  logits' change falls as width^(−1/2) and would hide the Θ(1) learned part
  at small widths. With a zero readout no gradient reaches the other layers
  in the first update, so at t = 1 only the logits move. Widths and depths
  are set by :func:`shape_config`."""
  c = config_lib.default_config()
  c.batch_size = 8
  c.seq_len = 64
  c.model.d_model = 64
  c.model.n_layers = 2
  c.model.zero_init = "readout"
  c.optimizer.weight_decay = 0.0
  c.optimizer.peak_lr = peak_lr
  c.schedule.name = "constant"
  c.schedule.warmup_steps = 0
  c.train.steps = steps
  c.train.log_every = 1
  c.eval.every = steps
  c.checkpoint.every = steps
  c.checkpoint.async_save = False
  return c


def shape_config(base: ml_collections.ConfigDict, d_model: int,
                 n_layers: int, d_head: int = 16, ffn_ratio: int = 4,
                 parametrization: str = "sp", base_d_model: int = -1,
                 base_n_layers: int = -1) -> ml_collections.ConfigDict:
  """``base`` at width ``d_model`` (heads of ``d_head``, d_ff = ffn_ratio ·
  d_model) and depth ``n_layers``, under ``parametrization``.

  Raises:
    ConfigError: ``d_model`` not a multiple of ``d_head``.
  """
  if d_model % d_head:
    raise config_lib.ConfigError(
        "--widths", f"{d_model} is not a multiple of d_head={d_head}; "
        "give widths that are.")
  heads = d_model // d_head
  return config_lib.with_overrides(base, {
      "model.d_model": d_model, "model.n_layers": n_layers,
      "model.n_heads": heads, "model.n_kv_heads": heads, "model.d_head": -1,
      "model.d_ff": ffn_ratio * d_model,
      "model.parametrization": parametrization,
      "model.base_d_model": base_d_model,
      "model.base_n_layers": base_n_layers})


def _stats(acts, acts0) -> dict[str, tuple[float, float]]:
  """(mean |x|, mean |x − x0|) per layer type, over every coordinate."""
  out = {}
  for layer in LAYERS:
    x, x0 = acts[layer], acts0[layer]
    out[layer] = (float(np.mean(np.abs(x))), float(np.mean(np.abs(x - x0))))
  return out


def _by_layer(intermediates, n_layers: int) -> dict[str, np.ndarray]:
  """Sown activations per layer type, float64: every block's for the
  per-block types, the last block's for ``residual``."""
  blocks: dict[str, list] = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(intermediates):
    names = [str(getattr(p, "key", "")) for p in path]
    layer = next(n for n in reversed(names) if n in LAYERS)
    x = np.asarray(jax.device_get(leaf), np.float64)
    scanned = "blocks" in names
    block = next((int(n[len("block_"):]) for n in names
                  if n.startswith("block_")), 0)
    per_block = list(x) if scanned else [x]
    for i, xi in enumerate(per_block):
      blocks.setdefault(layer, []).append((block + i, xi))
  missing = set(LAYERS) - set(blocks)
  if missing:
    raise RuntimeError(f"the model sowed no {sorted(missing)} activations")
  out = {}
  for layer, items in blocks.items():
    items.sort(key=lambda item: item[0])
    if layer == "residual":
      assert len(items) == n_layers, (layer, len(items))
      items = items[-1:]
    out[layer] = np.concatenate([xi.ravel() for _, xi in items])
  return out


def measure(config: ml_collections.ConfigDict, steps: int) -> list[dict]:
  """Trains ``config`` for ``steps`` updates and records its activations.

  Args:
    config: a run config (validated here for the visible devices).
    steps: optimizer updates (the check reads t = 0 … steps).

  Returns:
    Rows (dicts with :data:`FIELDS`): one per (t, layer type); ``step`` is
    t, the number of updates applied; ``train_loss`` is the loss of the
    update that led to t (None at t = 0).

  Raises:
    ConfigError: an invalid config.
  """
  validation.validate(config, jax.device_count())
  mesh = sharding.make_mesh(config)
  program = program_lib.build(config, mesh)
  corpus = sources.load_corpus(config.data)
  data = pipeline.TrainStream(
      corpus, tok_lib.ByteTokenizer(config.tokenizer.n_sentinels),
      config.seq_len, config.batch_size, config.data.seed,
      max_tokens=config.data.max_tokens, objective_cfg=config.objective,
      row_order=config.data.row_order)
  model = program.model

  def intermediates(params, batch):
    _, state = model.apply({"params": params}, batch["inputs"],
                           batch["segment_ids"], batch["positions"],
                           batch["prefix_mask"], mutable=["intermediates"])
    return state["intermediates"]

  forward = jax.jit(intermediates)
  m = config.model
  rows = []
  with program.context():
    state = program.init_state()
    train_step = program.compile()
    probe = sharding.to_global(data.local_batch(0), mesh)
    acts0 = _by_layer(forward(state["params"], probe), m.n_layers)
    loss = None
    for t in range(steps + 1):
      acts = acts0 if t == 0 else _by_layer(
          forward(state["params"], probe), m.n_layers)
      for layer, (mean_abs, change) in _stats(acts, acts0).items():
        rows.append(dict(parametrization=m.parametrization, d_model=m.d_model,
                         n_layers=m.n_layers, step=t, layer=layer,
                         mean_abs=mean_abs, mean_abs_change=change,
                         train_loss=loss))
      if t < steps:
        batch = sharding.to_global(data.local_batch(t), mesh)
        state, metrics = train_step(state, batch, program.hp)
        loss = float(jax.device_get(metrics["train_loss"]))
  return rows


def run(base: ml_collections.ConfigDict, parametrizations: Sequence[str],
        widths: Iterable[int] = (), depths: Iterable[int] = (), *,
        steps: int, d_head: int = 16, base_d_model: int | None = None,
        base_n_layers: int | None = None, progress=None) -> list[dict]:
  """The coordinate check over widths (at ``base``'s n_layers) and depths
  (at ``base``'s d_model).

  Args:
    base: the run config every model starts from (:func:`default_config`).
    parametrizations: ``sp``, ``mup``, ``completep``.
    widths: d_model values (multiples of ``d_head``).
    depths: n_layers values.
    steps: updates per model.
    d_head: head size of every model (width grows by heads).
    base_d_model: the base width (default: the smallest width, else
      ``base``'s d_model).
    base_n_layers: the base depth (default: the smallest depth, else
      ``base``'s n_layers).
    progress: optional callable receiving one line per model.

  Returns:
    The rows of :func:`measure` of every model, widths first.
  """
  widths, depths = list(widths), list(depths)
  base_d = base_d_model or (min(widths) if widths else base.model.d_model)
  base_l = base_n_layers or (min(depths) if depths else base.model.n_layers)
  shapes = [(w, base.model.n_layers) for w in widths]
  shapes += [(base.model.d_model, n) for n in depths]
  rows = []
  for name in parametrizations:
    for d_model, n_layers in dict.fromkeys(shapes):
      config = shape_config(base, d_model, n_layers, d_head,
                            parametrization=name, base_d_model=base_d,
                            base_n_layers=base_l)
      if progress is not None:
        progress(f"{name}: d_model={d_model} n_layers={n_layers}")
      rows.extend(measure(config, steps))
  return rows
