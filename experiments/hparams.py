"""Per-scale hyperparameter rules: published presets and fitted rule files.

A rule gives, for a run config, the peak learning rate, AdamW β2, the warmup
and optionally the batch size (:class:`HParams`); :meth:`Rule.apply`
returns the config with them set. An experiment file picks its rule, by
object or by name (:func:`get_rule`):

* ``default``: :data:`DEFAULT_RULE`, this project's hand-set rule
  (lr = 0.5·N^(-1/3), β2 0.99 below 2^18 tokens per step, 5% warmup, no
  batch term); the existing experiments use it and keep their identities;
* ``porian2024``: :data:`PORIAN_2024`, Porian et al. 2024 (arXiv 2406.19146);
* ``deepseek2024``: :data:`DEEPSEEK_2024`, DeepSeek-AI 2024, DeepSeek LLM
  (arXiv 2401.02954) §3.1;
* a path to a rule file written by ``scaling analyze --hparams``
  (:class:`FittedRule`).

Changing the batch keeps the run's training tokens D: the length becomes
``train.tokens = D`` (``train.steps = -1``), so the step count is
ceil(D / new tokens per step). The batch in tokens becomes
``batch_size = max(1, round(B / seq_len))`` sequences, rounded to a multiple
of ``batch_multiple``.
"""

from __future__ import annotations

import abc
import dataclasses
import json
import math
import os
from typing import Any

import ml_collections

from analysis.hparams import RULE_SCHEMA
from scaling import accounting
from scaling import config as config_lib


@dataclasses.dataclass(frozen=True)
class HParams:
  """What a rule sets for one run.

  Attributes:
    peak_lr: peak learning rate.
    b2: AdamW β2.
    warmup_steps: warmup in updates (absolute), or None to use
      ``warmup_fraction`` of training.
    warmup_fraction: warmup as a fraction of training (when
      ``warmup_steps`` is None).
    batch_tokens: tokens per optimizer step the rule asks for, or None to
      keep the config's batch.
  """

  peak_lr: float
  b2: float
  warmup_steps: int | None = None
  warmup_fraction: float | None = None
  batch_tokens: float | None = None


def porian_n(config: ml_collections.ConfigDict) -> int:
  """Porian et al. 2024's N: params_total - params_embedding.

  The parameters with the output head but without the input embedding
  (Porian et al. §3.1 count the last layer, whose FLOPs matter at small
  scale; Kaplan et al.'s N would leave the head out too).
  """
  counts = accounting.param_counts(config.model, config_lib.vocab_size(config),
                                   config.seq_len)
  return counts["params_total"] - counts["params_embedding"]


def training_tokens(config: ml_collections.ConfigDict) -> int:
  """D: positions trained, ``train_steps × batch_size × seq_len``."""
  return accounting.train_steps(config) * accounting.tokens_per_step(config)


class Rule(abc.ABC):
  """A per-scale hyperparameter rule (subclasses give :meth:`hparams`)."""

  name: str = ""
  source: str = ""
  batch_multiple: int = 1

  @abc.abstractmethod
  def hparams(self, config: ml_collections.ConfigDict) -> HParams:
    """The rule's hyperparameters for this config's model and data."""

  def overrides(self, config: ml_collections.ConfigDict,
                set_batch: bool = True) -> dict[str, Any]:
    """Dotted overrides for ``config``.

    Args:
      config: the run config (its model, seq_len, batch and length).
      set_batch: apply the rule's batch (False in batch sweeps, where the
        batch is the swept variable; β2 and warmup then follow the
        config's own batch).

    Raises:
      ConfigError: the rule's batch gives a warmup longer than training.
    """
    hp = self.hparams(config)
    out: dict[str, Any] = {}
    if set_batch and hp.batch_tokens is not None:
      batch = self.batch_size(hp.batch_tokens, config.seq_len)
      if batch != config.batch_size:
        tokens = training_tokens(config)
        out.update({"batch_size": batch, "train.tokens": tokens,
                    "train.steps": -1})
        config = config_lib.with_overrides(config, out)
        hp = self.hparams(config)  # β2 and warmup follow the new batch
    out["optimizer.peak_lr"] = float(hp.peak_lr)
    out["optimizer.b2"] = float(hp.b2)
    if hp.warmup_steps is not None:
      total = accounting.train_steps(config)
      if hp.warmup_steps > total:
        raise config_lib.ConfigError(
            "schedule.warmup_steps", f"rule {self.name} warms up for "
            f"{hp.warmup_steps} steps, longer than the run's {total}; train "
            "longer (Porian et al. warm up for N tokens: give D > N)")
      out["schedule.warmup_steps"] = int(hp.warmup_steps)
    else:
      out["schedule.warmup_steps"] = -1
      out["schedule.warmup_fraction"] = float(hp.warmup_fraction)
    return out

  def apply(self, config: ml_collections.ConfigDict,
            set_batch: bool = True) -> ml_collections.ConfigDict:
    """A copy of ``config`` with the rule's hyperparameters."""
    return config_lib.with_overrides(config, self.overrides(config, set_batch))

  def batch_size(self, batch_tokens: float, seq_len: int) -> int:
    """Sequences per step for ``batch_tokens``: round(B / seq_len), at least
    one, rounded to a multiple of ``batch_multiple``."""
    m = max(1, int(self.batch_multiple))
    return max(m, int(math.floor(batch_tokens / seq_len / m + 0.5)) * m)


@dataclasses.dataclass(frozen=True)
class HParamRule(Rule):
  """This project's hand-set rule form (no batch term).

  After Porian et al. 2024 (arXiv 2406.19146), who tune AdamW per model size
  and fit the tuned learning rate as a power law of N, find β2 = 0.95 too low
  at small batch sizes (β2 = 0.99 or 0.999 instead), and warm up for about N
  tokens rather than Kaplan et al.'s long warmup:

  * ``peak_lr = min(lr_max, lr_coef * N ** -lr_exponent)`` with N counted as
    Porian et al. do (:func:`porian_n`);
  * ``b2 = b2_small_batch`` when a step has fewer than ``small_batch_tokens``
    tokens, else ``b2``;
  * warmup = ``warmup_fraction`` of training (N tokens is 5% of training at
    20 tokens per parameter).

  The constants of :data:`DEFAULT_RULE` are measured on this codebase; see
  its comment. The ``lr_sweep`` experiment checks the rule across widths.
  """

  lr_coef: float
  lr_exponent: float
  lr_max: float = 3e-2
  b2: float = 0.95
  b2_small_batch: float = 0.99
  small_batch_tokens: int = 2**18
  warmup_fraction: float = 0.05
  source: str = ""
  name: str = "default"

  @staticmethod
  def n_params(config: ml_collections.ConfigDict) -> int:
    """Porian et al.'s N: params_total - params_embedding (head included)."""
    return porian_n(config)

  def peak_lr(self, config: ml_collections.ConfigDict) -> float:
    """The rule's peak learning rate for this config's model."""
    return min(self.lr_max,
               self.lr_coef * self.n_params(config) ** -self.lr_exponent)

  def hparams(self, config: ml_collections.ConfigDict) -> HParams:
    small = accounting.tokens_per_step(config) < self.small_batch_tokens
    return HParams(peak_lr=self.peak_lr(config),
                   b2=self.b2_small_batch if small else self.b2,
                   warmup_fraction=self.warmup_fraction)


# lr_exponent 1/3: Adam's best learning rate falls like 1 / width in the
# standard parametrisation (Yang et al. 2022), and N grows like width^3 at a
# fixed aspect ratio. lr_coef 0.5 checked on the stdlib byte corpus at
# 16 x 128 tokens per step: for L2_d64 (N = 131k, 250 steps) the rule's lr
# 0.0098 beat x0.5, x2 and x4 (eval_loss 2.369 vs 2.408, 2.393, 2.572); for
# L1_d24 (N = 19k, 800 steps) x1 and x4 were within 0.02 nats (2.273, 2.255)
# and x0.5, x2 worse (2.321, 2.346). Commands: experiments/lr_sweep.py.
DEFAULT_RULE = HParamRule(
    lr_coef=0.5, lr_exponent=1.0 / 3.0,
    source=("lr = 0.5 N^(-1/3) (N without input embedding, Porian et al. "
            "2024), beta2 0.99 below 2^18 tokens per step, 5% warmup; "
            "checked by the lr_sweep experiment"))


@dataclasses.dataclass(frozen=True)
class PorianRule(Rule):
  """Porian et al. 2024 (arXiv 2406.19146), the rules of their tuned runs.

  With N = :func:`porian_n` (parameters including the output head,
  excluding the input embedding) and N0 = 1.08e8:

  * learning rate  η*(N) = 0.0047 · (N / N0)^(−1/3);
  * batch          B*(N) = 160 · 2048 · (N / N0)^(2/3) tokens (160 sequences
    of 2048 tokens at N0, the paper's sequence length), set as
    round(B / seq_len) sequences of this run's ``seq_len``;
  * warmup         N tokens: round(N / tokens per step) updates, at least 1
    (the paper's fix of Kaplan et al.'s long warmup);
  * AdamW β2       0.99 when a step has fewer than 2^18 tokens, else 0.95
    (the paper finds β2 = 0.95 too low at small batch sizes; the 2^18
    threshold is this project's reading, the one of ``DEFAULT_RULE``).

  These are the constants OLMo-core's model ladder hard-codes with this
  paper as their source. At N = 1.08e8 the rule gives lr 0.0047 and a batch
  of 327,680 tokens.
  """

  lr_coef: float = 0.0047
  lr_exponent: float = 1.0 / 3.0
  batch_coef_tokens: float = 160.0 * 2048.0
  batch_exponent: float = 2.0 / 3.0
  n_ref: float = 1.08e8
  warmup_tokens_per_param: float = 1.0
  b2: float = 0.95
  b2_small_batch: float = 0.99
  small_batch_tokens: int = 2**18
  batch_multiple: int = 1
  name: str = "porian2024"
  source: str = ("Porian et al. 2024, arXiv 2406.19146: lr = 0.0047 "
                 "(N/1.08e8)^(-1/3), batch = 160*2048 (N/1.08e8)^(2/3) "
                 "tokens, warmup N tokens, beta2 0.99 at small batches; N "
                 "= params_total - params_embedding")

  def peak_lr_at(self, n: float) -> float:
    """η*(N) for N parameters."""
    return self.lr_coef * (n / self.n_ref) ** -self.lr_exponent

  def batch_tokens_at(self, n: float) -> float:
    """B*(N) in tokens for N parameters."""
    return self.batch_coef_tokens * (n / self.n_ref) ** self.batch_exponent

  def hparams(self, config: ml_collections.ConfigDict) -> HParams:
    n = float(porian_n(config))
    per_step = accounting.tokens_per_step(config)
    warmup = max(1, int(math.floor(
        self.warmup_tokens_per_param * n / per_step + 0.5)))
    return HParams(
        peak_lr=self.peak_lr_at(n),
        b2=self.b2_small_batch if per_step < self.small_batch_tokens else self.b2,
        warmup_steps=warmup, batch_tokens=self.batch_tokens_at(n))


def deepseek_m(config: ml_collections.ConfigDict) -> float:
  """DeepSeek LLM's M: non-embedding training FLOPs per token (with attention).

  ``accounting.nonembedding_flops_per_token`` of the run's model; C = M · D
  with D the training tokens.
  """
  return accounting.nonembedding_flops_per_token(
      config.model, config_lib.vocab_size(config), config.seq_len)


@dataclasses.dataclass(frozen=True)
class DeepSeekRule(Rule):
  """DeepSeek-AI 2024, DeepSeek LLM (arXiv 2401.02954) §3.1, Eq. (1):

    η_opt = 0.3118 · C^(−0.1250),    B_opt = 0.2920 · C^(0.3271) tokens,

  fitted on their data with C = M · D, where M is the non-embedding FLOPs
  per token *including attention* (their Eq. (2),
  M = 72 n_layer d_model² + 12 n_layer d_model l_seq, training FLOPs, the
  vocabulary computation left out) and D the training tokens.

  Our conversion (:func:`deepseek_m`, ``accounting.
  nonembedding_flops_per_token``): M = 3 × (our exact forward FLOPs per
  token − the logits matmul 2·d_model·V), i.e. every per-layer term of the
  exact count (QKV, output, MLP, attention scores and values over the full
  sequence, softmax). For a standard block (multi-head attention, 2-matrix
  MLP with d_ff = 4 d_model) this is their M plus the softmax's
  9·n_layers·n_heads·seq_len; D = train steps × batch_size × seq_len. The
  rule keeps D: a new batch changes the step count, not C.

  Warmup: DeepSeek LLM warms up for 2000 steps; runs of fewer than 2000 /
  ``max_warmup_fraction`` steps (every CPU run here) warm up for
  ``max_warmup_fraction`` of training instead. β2 = 0.95 (their AdamW
  β1 = 0.9, β2 = 0.95). At C = 1e20 the rule gives η 9.86e-4 and B 1.017e6
  tokens.
  """

  lr_coef: float = 0.3118
  lr_exponent: float = -0.1250
  batch_coef_tokens: float = 0.2920
  batch_exponent: float = 0.3271
  warmup_steps: int = 2000
  max_warmup_fraction: float = 0.1
  b2: float = 0.95
  batch_multiple: int = 1
  name: str = "deepseek2024"
  source: str = ("DeepSeek-AI 2024, arXiv 2401.02954 Eq. (1): lr = 0.3118 "
                 "C^-0.1250, batch = 0.2920 C^0.3271 tokens, C = M D with M "
                 "the non-embedding FLOPs per token including attention")

  def peak_lr_at(self, c: float) -> float:
    """η_opt(C) for C = M·D FLOPs."""
    return self.lr_coef * c ** self.lr_exponent

  def batch_tokens_at(self, c: float) -> float:
    """B_opt(C) in tokens for C = M·D FLOPs."""
    return self.batch_coef_tokens * c ** self.batch_exponent

  def compute(self, config: ml_collections.ConfigDict) -> float:
    """C = M · D of this run (FLOPs)."""
    return deepseek_m(config) * training_tokens(config)

  def hparams(self, config: ml_collections.ConfigDict) -> HParams:
    c = self.compute(config)
    total = accounting.train_steps(config)
    warmup = min(self.warmup_steps,
                 int(math.floor(self.max_warmup_fraction * total + 0.5)))
    return HParams(peak_lr=self.peak_lr_at(c), b2=self.b2,
                   warmup_steps=max(1, warmup),
                   batch_tokens=self.batch_tokens_at(c))


PORIAN_2024 = PorianRule()
DEEPSEEK_2024 = DeepSeekRule()
PRESETS: dict[str, Rule] = {"default": DEFAULT_RULE, "porian2024": PORIAN_2024,
                            "deepseek2024": DEEPSEEK_2024}

# The x variables a rule file may use -> how to compute them from a config.
_X = {
    "params_total": lambda c: accounting.param_counts(
        c.model, config_lib.vocab_size(c), c.seq_len)["params_total"],
    "params_nonembedding": lambda c: accounting.param_counts(
        c.model, config_lib.vocab_size(c), c.seq_len)["params_nonembedding"],
    "params_porian": porian_n,
    "flops": lambda c: accounting.train_steps(c) * accounting.flops_per_step(
        c)["flops"],
}


@dataclasses.dataclass(frozen=True)
class FittedRule(Rule):
  """A rule read from a file of ``scaling analyze --hparams`` (JSON).

  The file holds the fitted power laws lr*(x) = coef · x^exponent and
  B*(x) = coef · x^exponent tokens (either may be null), the x variable
  (``x.column``: ``params_total``, ``params_nonembedding``,
  ``params_porian`` = params_total − params_embedding, or ``flops``, the
  exact training FLOPs) and the provenance of the fit. What the file does
  not fit (β2, warmup, and lr or batch when null) comes from ``fallback``.

  Attributes:
    path: the rule file.
    fit: its content.
    fallback: rule for what the file does not give.
  """

  path: str = ""
  fit: dict = dataclasses.field(default_factory=dict)
  fallback: Rule = DEFAULT_RULE
  name: str = "fitted"
  source: str = ""

  @classmethod
  def load(cls, path: str, fallback: Rule = DEFAULT_RULE) -> "FittedRule":
    """Reads and checks a rule file.

    Raises:
      FileNotFoundError: no such file.
      ValueError: not a rule file of schema :data:`RULE_SCHEMA`, or an x
        variable this codebase cannot compute from a config.
    """
    with open(path, encoding="utf-8") as f:
      fit = json.load(f)
    if fit.get("schema") != RULE_SCHEMA:
      raise ValueError(f"{path}: not a rule file (schema {fit.get('schema')!r},"
                       f" expected {RULE_SCHEMA!r}); write one with "
                       "`scaling analyze TABLE --out DIR --hparams`")
    column = (fit.get("x") or {}).get("column")
    if column not in _X:
      raise ValueError(
          f"{path}: its x variable {column!r} is not one a config gives "
          f"({', '.join(_X)}); refit with --n-col params_total (or "
          "--hparams-x C on a table with the exact flops)")
    for key in ("lr", "batch"):
      law = fit.get(key)
      if law is not None and not {"coef", "exponent"} <= set(law):
        raise ValueError(f"{path}: '{key}' needs coef and exponent")
    if not fit.get("lr") and not fit.get("batch"):
      raise ValueError(f"{path}: holds no fitted law (no size had an "
                       "identifiable optimum, see hparams.md next to it); "
                       "widen the sweep's grid")
    if fit.get("batch") and fit["batch"].get("unit") != "tokens":
      raise ValueError(f"{path}: its batch law is in {fit['batch'].get('unit')!r}"
                       ", not tokens per step; refit with a batch column in "
                       "tokens (--batch-col)")
    prov = fit.get("provenance", {})
    return cls(path=os.fspath(path), fit=fit, fallback=fallback,
               name=f"fitted:{os.path.basename(path)}",
               source=f"fitted by scaling analyze --hparams from "
               f"{prov.get('table')} (sha256 {prov.get('table_sha256', '?')[:12]})")

  def x(self, config: ml_collections.ConfigDict) -> float:
    """The rule's x variable for this config."""
    return float(_X[self.fit["x"]["column"]](config))

  def hparams(self, config: ml_collections.ConfigDict) -> HParams:
    base = self.fallback.hparams(config)
    x = self.x(config)
    lr, batch = self.fit.get("lr"), self.fit.get("batch")
    return dataclasses.replace(
        base,
        peak_lr=lr["coef"] * x ** lr["exponent"] if lr else base.peak_lr,
        batch_tokens=(batch["coef"] * x ** batch["exponent"] if batch
                      else base.batch_tokens))


def get_rule(name_or_path: str, fallback: Rule = DEFAULT_RULE) -> Rule:
  """A preset by name (:data:`PRESETS`) or a rule file by path.

  Raises:
    ValueError: neither a preset name nor an existing file (lists the
      presets), or a file that is not a rule file.
  """
  if name_or_path in PRESETS:
    return PRESETS[name_or_path]
  if os.path.isfile(name_or_path):
    return FittedRule.load(name_or_path, fallback)
  raise ValueError(f"unknown hyperparameter rule {name_or_path!r}: use one of "
                   f"{', '.join(PRESETS)} or the path of a rule file written "
                   "by `scaling analyze --hparams`")
