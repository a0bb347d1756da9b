"""Per-row loss sums of the model on a batch: the training loss and the eval sums.

Sums, not means: callers divide by token or byte counts summed over the
whole batch or eval set (DESIGN.md §4, bits per byte).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from scaling.model import Transformer


def nll_sums(model: Transformer, params, batch, z_loss=0.0):
  """Per-row sums of the masked NLL (nats), z-loss and loss-token counts.

  Args:
    model: the Transformer.
    params: its parameters.
    batch: batch dict, arrays [B, L] (``scaling.data.BATCH_KEYS``).
    z_loss: coefficient of log(Z)^2 (PaLM, Chowdhery et al. 2022 §5).

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


def eval_sums(model: Transformer, params, batch):
  """Per-row NLL sums (nats), byte counts and loss-token counts, each [B].

  A loss-bearing target counts one byte when it is a byte id (< 256) and
  zero bytes when it is a special token (DESIGN.md §4, bits per byte).
  """
  nll_B, _, count_B = nll_sums(model, params, batch)
  is_byte = (batch["targets"] < 256).astype(jnp.float32)
  bytes_B = jnp.sum(is_byte * batch["loss_mask"], axis=-1)
  return nll_B, bytes_B, count_B
