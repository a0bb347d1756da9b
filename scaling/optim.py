"""The optimizer: AdamW with clipping and a decay mask, and its traced hyperparameters.

Hyperparameters that do not change shapes (learning rate, schedule constants,
AdamW constants, weight decay, clipping, z-loss) enter the train step as a
dict of traced float32 scalars (:func:`hyperparams`), so runs that differ only
in them reuse one compiled program.
"""

from __future__ import annotations

import jax
import numpy as np
import optax

HP_KEYS = ("peak_lr", "b1", "b2", "eps", "weight_decay", "grad_clip", "z_loss",
           "warmup_steps", "total_steps", "min_lr_ratio", "decay_fraction")
_NO_DECAY = ("scale", "bias")
_EMBEDDINGS = ("embedding", "pos_embedding")


def hyperparams(config, total_steps: int, warmup_steps: int) -> dict:
  """Traced hyperparameters of the step, float32 numpy scalars keyed by HP_KEYS.

  ``grad_clip <= 0`` (no clipping) becomes +inf.
  """
  o, s = config.optimizer, config.schedule
  clip = o.grad_clip if o.grad_clip > 0 else np.inf
  values = dict(peak_lr=o.peak_lr, b1=o.b1, b2=o.b2, eps=o.eps,
                weight_decay=o.weight_decay, grad_clip=clip, z_loss=o.z_loss,
                warmup_steps=warmup_steps, total_steps=total_steps,
                min_lr_ratio=s.min_lr_ratio, decay_fraction=s.decay_fraction)
  return {k: np.float32(values[k]) for k in HP_KEYS}


def decay_mask(params, decay_embeddings: bool):
  """True for parameters that get weight decay: matrices, not norms, biases
  or (unless ``decay_embeddings``) the embedding tables."""

  def rule(path, _):
    name = path[-1].key
    if name in _NO_DECAY:
      return False
    return decay_embeddings or name not in _EMBEDDINGS

  return jax.tree_util.tree_map_with_path(rule, params)


def optimizer(hp: dict, lr, mask) -> optax.GradientTransformation:
  """Global-norm clipping then AdamW (Loshchilov & Hutter 2019, decoupled decay).

  Every argument may be traced; the state's structure does not depend on
  their values, so the abstract state can be built from any placeholder.
  """
  return optax.chain(
      optax.clip_by_global_norm(hp["grad_clip"]),
      optax.adamw(lr, b1=hp["b1"], b2=hp["b2"], eps=hp["eps"],
                  weight_decay=hp["weight_decay"], mask=mask))
