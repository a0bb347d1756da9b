"""The pure step functions: loss, optimizer, sharded init, train step and eval step.

Train state is a dict ``{"params", "opt_state", "step"}``. Hyperparameters
that do not change shapes (learning rate, schedule constants, AdamW
constants, weight decay, clipping, z-loss) enter the step as a dict of traced
float32 scalars (:func:`hyperparams`), so runs that differ only in them reuse
one compiled program; the schedule kind and the microbatch count are static.
"""

from __future__ import annotations


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from scaling import schedules
from scaling import sharding as sharding_lib
from scaling.model import Transformer

BATCH_KEYS = ("inputs", "targets", "loss_mask", "segment_ids", "positions",
              "prefix_mask")
_NO_DECAY = ("scale", "bias")
_EMBEDDINGS = ("embedding", "pos_embedding")


def hyperparams(config, total_steps: int, warmup_steps: int) -> dict:
  """Traced hyperparameters of the step, as float32 numpy scalars."""
  o, s = config.optimizer, config.schedule
  clip = o.grad_clip if o.grad_clip > 0 else np.inf
  values = dict(peak_lr=o.peak_lr, b1=o.b1, b2=o.b2, eps=o.eps,
                weight_decay=o.weight_decay, grad_clip=clip, z_loss=o.z_loss,
                warmup_steps=warmup_steps, total_steps=total_steps,
                min_lr_ratio=s.min_lr_ratio, decay_fraction=s.decay_fraction)
  return {k: np.float32(v) for k, v in values.items()}


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

  Every argument may be traced; the state's structure does not depend on them.
  """
  return optax.chain(
      optax.clip_by_global_norm(hp["grad_clip"]),
      optax.adamw(lr, b1=hp["b1"], b2=hp["b2"], eps=hp["eps"],
                  weight_decay=hp["weight_decay"], mask=mask))


def nll_sums(model: Transformer, params, batch, z_loss=0.0):
  """Per-row sums of the masked NLL (nats), z-loss and loss-token counts.

  Args:
    batch: batch dict, arrays [B, L].
  Returns:
    (nll_B, zloss_B, count_B): float32 [B] each. ``nll`` excludes z-loss.
  """
  logits_BxLxV = model.apply({"params": params}, batch["inputs"],
                             batch["segment_ids"], batch["positions"],
                             batch["prefix_mask"])
  logz_BxL = jax.nn.logsumexp(logits_BxLxV, axis=-1)
  target_logit = jnp.take_along_axis(
      logits_BxLxV, batch["targets"][..., None], axis=-1)[..., 0]
  w = batch["loss_mask"].astype(jnp.float32)
  nll_B = jnp.sum((logz_BxL - target_logit) * w, axis=-1)
  zloss_B = z_loss * jnp.sum(jnp.square(logz_BxL) * w, axis=-1)
  return nll_B, zloss_B, jnp.sum(w, axis=-1)


def make_train_step(model: Transformer, schedule: str, microbatches: int,
                    decay_embeddings: bool):
  """Returns ``step(state, batch, hp) -> (state, metrics)`` (not yet jitted).

  The loss is the mean NLL over the global batch's loss-bearing tokens; with
  ``microbatches`` M the batch's rows are split M ways (row i in microbatch
  i mod M), gradients of the summed loss are accumulated and divided by the
  total loss-token count, so the update equals one big batch's.
  """

  def summed_loss(params, mb, z_loss):
    nll, zl, count = nll_sums(model, params, mb, z_loss)
    return jnp.sum(nll) + jnp.sum(zl), (jnp.sum(nll), jnp.sum(count))

  grad_fn = jax.grad(summed_loss, has_aux=True)

  def step(state, batch, hp):
    params = state["params"]
    if microbatches == 1:
      grads, (nll, count) = grad_fn(params, batch, hp["z_loss"])
    else:
      def split(x):
        b = x.shape[0]
        x = x.reshape((b // microbatches, microbatches) + x.shape[1:])
        return jnp.swapaxes(x, 0, 1)

      micro = {k: split(v) for k, v in batch.items()}

      def body(carry, mb):
        mb = {k: nn.with_logical_constraint(v, ("batch", "length"))
              for k, v in mb.items()}
        g, (n, c) = grad_fn(params, mb, hp["z_loss"])
        acc_g, acc_n, acc_c = carry
        return (jax.tree.map(jnp.add, acc_g, g), acc_n + n, acc_c + c), None

      zeros = jax.tree.map(jnp.zeros_like, params)
      (grads, nll, count), _ = jax.lax.scan(
          body, (zeros, jnp.float32(0), jnp.float32(0)), micro)
    denom = jnp.maximum(count, 1.0)
    grads = jax.tree.map(lambda g: g / denom, grads)
    lr = schedules.learning_rate(
        state["step"], schedule=schedule, peak_lr=hp["peak_lr"],
        warmup_steps=hp["warmup_steps"], total_steps=hp["total_steps"],
        min_lr_ratio=hp["min_lr_ratio"], decay_fraction=hp["decay_fraction"])
    tx = optimizer(hp, lr, decay_mask(params, decay_embeddings))
    updates, opt_state = tx.update(grads, state["opt_state"], params)
    new_state = dict(params=optax.apply_updates(params, updates),
                     opt_state=opt_state, step=state["step"] + 1)
    metrics = dict(train_loss=nll / denom, grad_norm=optax.tree.norm(grads),
                   lr=lr, loss_tokens=count,
                   real_tokens=jnp.sum(batch["segment_ids"] != 0))
    return new_state, metrics

  return step


def eval_sums(model: Transformer, params, batch):
  """Per-row NLL sums (nats), byte counts and loss-token counts, each [B].

  A loss-bearing target counts one byte when it is a byte id (< 256) and
  zero bytes when it is a special token (DESIGN.md §4, bits per byte).
  """
  nll_B, _, count_B = nll_sums(model, params, batch)
  is_byte = (batch["targets"] < 256).astype(jnp.float32)
  bytes_B = jnp.sum(is_byte * batch["loss_mask"], axis=-1)
  return nll_B, bytes_B, count_B


def dummy_batch(batch_size: int, seq_len: int) -> dict:
  shape = (batch_size, seq_len)
  return dict(inputs=jnp.zeros(shape, jnp.int32),
              targets=jnp.zeros(shape, jnp.int32),
              loss_mask=jnp.zeros(shape, jnp.float32),
              segment_ids=jnp.ones(shape, jnp.int32),
              positions=jnp.zeros(shape, jnp.int32),
              prefix_mask=jnp.zeros(shape, bool))


def abstract_state(model: Transformer, mesh, seed: int):
  """Shapes and shardings of the train state, without allocating anything.

  Returns:
    (init_fn, abstract_state_with_shardings, state_shardings); ``init_fn()``
    builds the state directly in its shardings when jitted with them.
  """
  batch = dummy_batch(1, model.seq_len)

  def init_params():
    variables = model.init(jax.random.key(seed), batch["inputs"],
                           batch["segment_ids"], batch["positions"],
                           batch["prefix_mask"])
    return variables["params"]

  with sharding_lib.rules_context():
    boxed = jax.eval_shape(init_params)
  param_shardings = sharding_lib.logical_shardings(mesh, boxed)
  params_shape = jax.tree.map(
      lambda x: x.unbox(apply_constraint=False), boxed,
      is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))
  # The AdamW state's structure does not depend on hyperparameter values.
  tx = optimizer(hyperparams_for_init(), 0.0, decay_mask(params_shape, False))
  opt_shape = jax.eval_shape(tx.init, params_shape)
  opt_shardings = optax.tree_map_params(
      tx, lambda _, s: s, opt_shape, param_shardings,
      transform_non_params=lambda _: sharding_lib.replicated(mesh))
  shardings = dict(params=param_shardings, opt_state=opt_shardings,
                   step=sharding_lib.replicated(mesh))

  def init_fn():
    params = nn.unbox(init_params())
    return dict(params=params, opt_state=tx.init(params),
                step=jnp.zeros((), jnp.int32))

  shapes = jax.eval_shape(init_fn)
  abstract = jax.tree.map(
      lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
      shapes, shardings)
  return init_fn, abstract, shardings


def hyperparams_for_init() -> dict:
  return {k: np.float32(1.0) for k in ("b1", "b2", "eps", "weight_decay",
                                        "grad_clip")}


