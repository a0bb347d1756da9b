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


def optimizer(hp: dict, lr, mask, multipliers: dict | None = None
              ) -> optax.GradientTransformation:
  """Global-norm clipping then AdamW (Loshchilov & Hutter 2019, decoupled decay).

  Every argument may be traced; the state's structure does not depend on
  their values, so the abstract state can be built from any placeholder.

  Args:
    hp: the traced hyperparameters (:func:`hyperparams`).
    lr: this step's learning rate.
    mask: tree of bools, True where weight decay applies (:func:`decay_mask`).
    multipliers: None (the standard parametrisation: plain ``optax.adamw``),
      or per-parameter trees of Python floats ``lr``, ``eps`` and
      ``weight_decay`` (``scaling.parametrization.optimizer_multipliers``).
      Parameter p then moves by ``−lr·(lr_p·Adam(g; eps·eps_p) +
      weight_decay·lr_p·wd_p·p)``: a per-parameter learning rate and
      decoupled decay as in PyTorch's AdamW parameter groups (Dey et al.
      2025, Table 1). A multiplier of exactly 1 adds no operation, so with
      all multipliers 1 the update is optax.adamw's, bit for bit.
  """
  clip = optax.clip_by_global_norm(hp["grad_clip"])
  if multipliers is None:
    return optax.chain(
        clip, optax.adamw(lr, b1=hp["b1"], b2=hp["b2"], eps=hp["eps"],
                          weight_decay=hp["weight_decay"], mask=mask))
  decay = jax.tree.map(lambda m, a, b: a * b if m else 0.0, mask,
                       multipliers["lr"], multipliers["weight_decay"])
  return optax.chain(
      clip, optax.chain(
          _scale_by_adam(hp["b1"], hp["b2"], hp["eps"], multipliers["eps"],
                         multipliers["lr"]),
          _add_decayed_weights(hp["weight_decay"], decay),
          optax.scale_by_learning_rate(lr)))


def _times(x, multiplier: float):
  return x if multiplier == 1.0 else x * multiplier


def _scale_by_adam(b1, b2, eps, eps_multipliers, lr_multipliers
                   ) -> optax.GradientTransformation:
  """``lr_p · Adam(g)`` with Adam's ε multiplied by ``eps_p`` per parameter.

  Adam's direction is invariant to scaling a parameter's gradients except
  through ε: with g' = g / k the moments are m / k and v / k², so
  m̂' / (sqrt(v̂') + ε) = m̂ / (sqrt(v̂) + k·ε) exactly (eps_root = 0). Dividing
  each gradient by its ε multiplier therefore gives a per-parameter ε with
  optax's own Adam and state (whose moments are then stored in those units).
  """
  inner = optax.scale_by_adam(b1=b1, b2=b2, eps=eps)

  def update(updates, state, params=None):
    updates = jax.tree.map(lambda g, k: g if k == 1.0 else g / k, updates,
                           eps_multipliers)
    updates, state = inner.update(updates, state, params)
    return jax.tree.map(_times, updates, lr_multipliers), state

  return optax.GradientTransformation(inner.init, update)


def _add_decayed_weights(weight_decay, coefficients
                         ) -> optax.GradientTransformation:
  """``g + weight_decay · c_p · p`` per parameter; c_p = 0 means no decay
  (optax.add_decayed_weights with a mask when every c_p is 0 or 1)."""

  def update(updates, state, params):
    def one(g, p, c):
      if c == 0.0:
        return g
      return g + _times(weight_decay, c) * p

    return jax.tree.map(one, updates, params, coefficients), state

  return optax.GradientTransformation(lambda _: optax.EmptyState(), update)
