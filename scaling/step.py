"""The train step: one pure function ``(state, batch, hp) -> (state, metrics)``.

Train state is a dict ``{"params", "opt_state", "step"}``; ``hp`` is the dict
of traced hyperparameters (:func:`scaling.optim.hyperparams`). The schedule
kind, the WSD decay shape and the microbatch count are static. :mod:`scaling.program` jits it with
its shardings.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from scaling import loss
from scaling import optim
from scaling import parametrization
from scaling import schedules
from scaling.model import Transformer


def make_train_step(model: Transformer, schedule: str, microbatches: int,
                    decay_embeddings: bool, decay_shape: str = "linear"):
  """Returns ``step(state, batch, hp) -> (state, metrics)`` (not yet jitted).

  The loss is the mean NLL over the global batch's loss-bearing tokens; with
  ``microbatches`` M the batch's rows are split M ways (row i in microbatch
  i mod M), gradients of the summed loss are accumulated and divided by the
  total loss-token count, so the update equals one big batch's.

  ``schedule`` and ``decay_shape`` are static (``scaling.schedules``).

  Metrics: ``train_loss`` (nats per loss-bearing token), ``grad_norm``,
  ``lr``, ``loss_tokens`` and ``real_tokens`` (non-pad inputs).
  """

  def summed_loss(params, mb, z_loss):
    nll, zl, count = loss.nll_sums(model, params, mb, z_loss)
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
        min_lr_ratio=hp["min_lr_ratio"], decay_fraction=hp["decay_fraction"],
        decay_shape=decay_shape)
    tx = optim.optimizer(
        hp, lr, optim.decay_mask(params, decay_embeddings),
        parametrization.optimizer_multipliers(model.par, params))
    updates, opt_state = tx.update(grads, state["opt_state"], params)
    new_state = dict(params=optax.apply_updates(params, updates),
                     opt_state=opt_state, step=state["step"] + 1)
    metrics = dict(train_loss=nll / denom, grad_norm=optax.tree.norm(grads),
                   lr=lr, loss_tokens=count,
                   real_tokens=jnp.sum(batch["segment_ids"] != 0))
    return new_state, metrics

  return step
