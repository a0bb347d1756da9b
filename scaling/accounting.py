"""Parameter and FLOP accounting (DESIGN.md §4).

Three FLOP counts are recorded with every run, all for TRAINING (3 x forward:
the backward pass costs twice the forward, Kaplan et al. 2020 §2.1):

* ``flops``: the exact count for our architecture, built from the terms of
  Hoffmann et al. 2022 (arXiv 2203.15556) Appendix F adapted to grouped-query
  attention, SwiGLU and untied embeddings; its version is :data:`FLOPS_FORMULA`;
* ``flops_6nd`` = 6 * params_total * D;
* ``flops_kaplan`` = 6 * params_nonembedding * D (Kaplan et al. 2020, Eq. 2.1
  with N the non-embedding parameters);

with D = ``batch_size * seq_len`` positions per optimizer step: FLOPs count
every position processed, pad or not.

Appendix F itself is implemented as written
(:func:`chinchilla_appendix_f_flops`), together with the parameter count used
for the Chinchilla configs (:func:`chinchilla_param_count`), so Table A4's
ratios can be checked.
"""

from __future__ import annotations

from typing import Any

from scaling import config as config_lib
from scaling.config import ConfigError

# Version tag recorded with every `flops` figure. "full-attention": causal
# attention scores/values are counted over all seq_len keys (not halved).
FLOPS_FORMULA = "exact-v1:full-attention"

_MLP_MATRICES = {"gelu": 2, "relu": 2, "swiglu": 3}
_NORM_VECTORS = {"rmsnorm": 1, "layernorm": 2}  # scale (+ bias) of [d_model]
_POSITIONS = ("rope", "learned", "sinusoidal")


def _dims(model_cfg: Any) -> dict[str, int]:
  """Reads the shape fields of a model config (ConfigDict or mapping).

  Raises:
    ConfigError: if ``mlp``, ``norm`` or ``positions`` is unknown, or a size
      is not positive.
  """
  d_model = int(model_cfg["d_model"])
  n_heads = int(model_cfg["n_heads"])
  n_layers = int(model_cfg["n_layers"])
  d_ff = int(model_cfg["d_ff"])
  for name, value in (("d_model", d_model), ("n_heads", n_heads),
                      ("n_layers", n_layers), ("d_ff", d_ff)):
    if value <= 0:
      raise ConfigError(f"model.{name}", f"must be > 0, got {value}")
  n_kv_heads = int(model_cfg["n_kv_heads"])
  if n_kv_heads <= 0:  # not grouped: one kv head per query head
    n_kv_heads = n_heads
  d_head = int(model_cfg["d_head"])
  if d_head <= 0:
    d_head = d_model // n_heads
  mlp, norm, positions = (model_cfg["mlp"], model_cfg["norm"],
                          model_cfg["positions"])
  for field, value, known in (("mlp", mlp, tuple(_MLP_MATRICES)),
                              ("norm", norm, tuple(_NORM_VECTORS)),
                              ("positions", positions, _POSITIONS)):
    if value not in known:
      raise ConfigError(f"model.{field}",
                        f"unknown {field} {value!r}; use one of {known}")
  return dict(d_model=d_model, n_heads=n_heads, n_kv_heads=n_kv_heads,
              d_head=d_head, n_layers=n_layers, d_ff=d_ff,
              mlp_matrices=_MLP_MATRICES[mlp],
              norm_vectors=_NORM_VECTORS[norm])


def param_counts(model_cfg: Any, vocab_size: int,
                 seq_len: int) -> dict[str, int]:
  """Analytic parameter counts of our decoder-only Transformer (DESIGN.md §4).

  Architecture (brief / scaling/model.py): token embedding [V, d_model]
  (+ learned position embedding [seq_len, d_model] when positions ==
  "learned"); per block, without biases: q [d_model, n_heads*d_head],
  k and v [d_model, n_kv_heads*d_head], out [n_heads*d_head, d_model], MLP
  2 (gelu/relu) or 3 (swiglu) matrices of d_model*d_ff, two norms; one final
  norm; an unembedding [d_model, V] unless ``tie_embeddings``. A norm is
  d_model parameters (rmsnorm: scale) or 2*d_model (layernorm: scale, bias).

  Args:
    model_cfg: the ``config.model`` section.
    vocab_size: V, the padded vocabulary (rows of the embedding).
    seq_len: tokens per sequence (rows of a learned position embedding).

  Returns:
    Integer counts ``params_total``, ``params_embedding`` (token + learned
    position embedding), ``params_unembedding`` (untied output projection, 0
    when tied) and ``params_nonembedding`` = total - embedding - unembedding,
    which is Kaplan et al. 2020's N (blocks and norms).

  Raises:
    ConfigError: for an unknown mlp/norm/positions or a non-positive size.
  """
  m = _dims(model_cfg)
  d, v = m["d_model"], int(vocab_size)
  hd, kvd = m["n_heads"] * m["d_head"], m["n_kv_heads"] * m["d_head"]
  embedding = v * d
  if model_cfg["positions"] == "learned":
    embedding += int(seq_len) * d
  unembedding = 0 if model_cfg["tie_embeddings"] else d * v
  norm = m["norm_vectors"] * d
  attention = d * hd + 2 * d * kvd + hd * d
  mlp = m["mlp_matrices"] * d * m["d_ff"]
  nonembedding = m["n_layers"] * (attention + mlp + 2 * norm) + norm
  return dict(params_total=embedding + unembedding + nonembedding,
              params_embedding=embedding,
              params_unembedding=unembedding,
              params_nonembedding=nonembedding)


def forward_flops_per_token(model_cfg: Any, vocab_size: int,
                            seq_len: int) -> float:
  """Exact forward FLOPs per position of our model (version FLOPS_FORMULA).

  Terms of Hoffmann et al. 2022 Appendix F, 2 FLOPs per multiply-add, adapted
  to our architecture; S = seq_len, H = n_heads, K = n_kv_heads, h = d_head:

    per layer: QKV projections  2*d_model*(H + 2K)*h
               out projection   2*H*h*d_model
               MLP              2*d_model*d_ff * (2 gelu/relu | 3 swiglu)
               scores + values  2*2*S*(H*h)     (causal attention in full)
               softmax          3*H*S
    logits:    2*d_model*V

  The embedding gather, norms, activations, RoPE and residual adds are not
  matmuls and are not counted (as in Appendix F).

  Args:
    model_cfg: the ``config.model`` section.
    vocab_size: V, the padded vocabulary.
    seq_len: S, keys each position attends over.

  Returns:
    FLOPs (float) of one forward pass per position; training is 3x this.

  Raises:
    ConfigError: for an unknown mlp/norm/positions or a non-positive size.
  """
  m = _dims(model_cfg)
  d, s = m["d_model"], int(seq_len)
  hd, kvd = m["n_heads"] * m["d_head"], m["n_kv_heads"] * m["d_head"]
  qkv = 2 * d * (hd + 2 * kvd)
  out = 2 * hd * d
  mlp = 2 * d * m["d_ff"] * m["mlp_matrices"]
  attention = 2 * 2 * s * hd
  softmax = 3 * m["n_heads"] * s
  layer = qkv + out + mlp + attention + softmax
  logits = 2 * d * int(vocab_size)
  return float(m["n_layers"] * layer + logits)


def nonembedding_flops_per_token(model_cfg: Any, vocab_size: int,
                                 seq_len: int) -> float:
  """DeepSeek LLM's M from our exact count: training FLOPs per token without
  the vocabulary (embedding and logits), attention included.

  DeepSeek-AI 2024 (arXiv 2401.02954) §3.1 Eq. (2) define the model scale M
  as "non-embedding FLOPs/token", M = 72 n_layer d_model² + 12 n_layer
  d_model l_seq, and the compute C = M·D. We take the same quantity from
  the terms of :func:`forward_flops_per_token`:

    M = 3 × (forward FLOPs per token − logits 2·d_model·V)
      = 3 × n_layers × (QKV + out + MLP + scores/values + softmax),

  training = 3 × forward as everywhere here. For a standard block
  (multi-head attention, d_head = d_model / n_heads, a 2-matrix MLP with
  d_ff = 4·d_model) the per-layer terms are 8d² + 16d² (QKV and out, MLP:
  2 FLOPs per multiply-add of 12d² weights) + 4·S·d + 3·H·S, so
  M = 72·n·d² + 12·n·d·S + 9·n·H·S: the paper's formula plus the softmax
  term that Appendix F counts and DeepSeek's leaves out.

  Args:
    model_cfg: the ``config.model`` section.
    vocab_size: V, the padded vocabulary.
    seq_len: S.

  Returns:
    M in FLOPs per token (float).

  Raises:
    ConfigError: as :func:`forward_flops_per_token`.
  """
  d = _dims(model_cfg)["d_model"]
  forward = forward_flops_per_token(model_cfg, vocab_size, seq_len)
  return 3.0 * (forward - 2.0 * d * int(vocab_size))


def tokens_per_step(config: Any) -> int:
  """Positions processed per optimizer step: batch_size * seq_len (global)."""
  return int(config.batch_size) * int(config.seq_len)


def flops_per_step(config: Any) -> dict[str, float]:
  """Training FLOPs of ONE optimizer step (all microbatches, all devices).

  D = batch_size * seq_len positions; training = 3 x forward; V is the
  padded vocabulary ``scaling.config.vocab_size(config)``.

  Returns:
    ``flops`` = 3 * forward_flops_per_token * D (formula FLOPS_FORMULA),
    ``flops_6nd`` = 6 * params_total * D,
    ``flops_kaplan`` = 6 * params_nonembedding * D. Total for a run =
    train_steps(config) x each.

  Raises:
    ConfigError: as :func:`param_counts`.
  """
  v, s = config_lib.vocab_size(config), int(config.seq_len)
  n = param_counts(config.model, v, s)
  d = tokens_per_step(config)
  return dict(
      flops=3.0 * forward_flops_per_token(config.model, v, s) * d,
      flops_6nd=6.0 * n["params_total"] * d,
      flops_kaplan=6.0 * n["params_nonembedding"] * d)


def train_steps(config: Any) -> int:
  """Optimizer steps of a run.

  ``train.steps`` if > 0, else ceil(train.tokens / (batch_size * seq_len)).

  Raises:
    ConfigError: if neither ``train.steps`` nor ``train.tokens`` is > 0.
  """
  steps = int(config.train.steps)
  if steps > 0:
    return steps
  tokens = int(config.train.tokens)
  if tokens <= 0:
    raise ConfigError(
        "train.steps", "set train.steps > 0 or train.tokens > 0 (the training "
        "length); both are <= 0")
  return -(-tokens // tokens_per_step(config))


# --- Hoffmann et al. 2022, Appendix F, as written ---------------------------


def chinchilla_appendix_f_flops(n_layers: int, d_model: int, d_ff: int,
                                n_heads: int, seq_len: int, vocab_size: int,
                                include_embeddings: bool = True,
                                include_logits: bool = True,
                                key_size: int | None = None) -> float:
  """Forward FLOPs per sequence, Hoffmann et al. 2022 Appendix F (Table A4).

  With S = seq_len, V = vocab_size, d = d_model, k = key_size (default
  d_model // n_heads), H = n_heads, 2 FLOPs per multiply-add:

    embeddings        2*S*V*d
    per layer:
      QKV             2*3*S*d*(k*H)
      key @ query     2*S*S*(k*H)
      softmax         3*H*S*S
      softmax @ value 2*S*S*(k*H)
      final linear    2*S*(k*H)*d
      dense block     2*S*(d*d_ff*2)
    logits            2*S*d*V

  forward = embeddings + n_layers * (per layer) + logits; the paper takes the
  backward pass as 2x forward, so training FLOPs per sequence = 3x this.

  Returns:
    Forward FLOPs (float) for one sequence of seq_len tokens.
  """
  s, d, v, h = int(seq_len), int(d_model), int(vocab_size), int(n_heads)
  k = int(key_size) if key_size else d // h
  kh = k * h
  layer = (2 * 3 * s * d * kh       # QKV
           + 2 * s * s * kh         # key @ query logits
           + 3 * h * s * s          # softmax
           + 2 * s * s * kh         # softmax @ value reductions
           + 2 * s * kh * d         # final linear
           + 2 * s * (d * int(d_ff) * 2))  # dense block
  total = int(n_layers) * layer
  if include_embeddings:
    total += 2 * s * v * d
  if include_logits:
    total += 2 * s * d * v
  return float(total)


def chinchilla_param_count(n_layers: int, d_model: int, d_ff: int,
                           vocab_size: int) -> int:
  """Parameters of a Chinchilla-family config, as Table A4's N was counted.

  The decomposition recomputed in karpathy/nanoGPT ``scaling_laws.ipynb``
  (DESIGN.md §4), d = d_model, f = d_ff, V = vocab_size; per layer:

    attention QKV weights + biases   3d^2 + 3d
    relative positions               d^2 + 2d  (relative keys, 2 biases)
    attention output proj + bias     d^2 + d
    MLP (2 matrices + biases)        2df + f + d
    two layernorms                   4d

  plus the final layernorm 2d and the output projection dV; the input token
  embedding is not counted (as in the notebook).

  Returns:
    N (int), the count for which Appendix F / (6 N D) gives Table A4's ratios
    (D = seq_len tokens per sequence). N must include the dV term: without
    it the first config's ratio would be 1.42, not 1.03.
  """
  d, f, v = int(d_model), int(d_ff), int(vocab_size)
  layer = (3 * d * d + 3 * d) + (d * d + 2 * d) + (d * d + d) + (
      2 * d * f + f + d) + 4 * d
  return int(n_layers) * layer + 2 * d + d * v

