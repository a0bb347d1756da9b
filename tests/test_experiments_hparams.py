"""Hyperparameter rules: published presets (golden numbers), DeepSeek's M
from our exact count, the default rule unchanged, fitted rule files."""

import json

import numpy as np
import pandas as pd
import pytest

from analysis import hparams_report
from experiments import generators
from experiments import hparams
from scaling import accounting
from scaling import config as config_lib
from scaling import validation


def _config(**overrides):
  c = config_lib.default_config()
  for key, value in overrides.items():
    config_lib.set_dotted(c, key, value)
  return c


def test_porian_at_108m_gives_its_learning_rate_and_batch():
  rule = hparams.PORIAN_2024
  assert rule.peak_lr_at(1.08e8) == pytest.approx(0.0047, rel=1e-12)
  # 160 sequences of 2048 tokens, the paper's sequence length.
  assert rule.batch_tokens_at(1.08e8) == pytest.approx(327_680, rel=1e-12)
  # Exponents: lr x 8 in N -> / 2; batch x 8 in N -> x 4.
  assert rule.peak_lr_at(8 * 1.08e8) == pytest.approx(0.00235, rel=1e-9)
  assert rule.batch_tokens_at(8 * 1.08e8) == pytest.approx(4 * 327_680)


def test_porian_applied_to_a_config():
  c = _config(**{"model.d_model": 256, "model.n_heads": 4, "model.n_kv_heads": 4,
                 "model.d_ff": 1024, "model.n_layers": 4, "seq_len": 256,
                 "batch_size": 8, "train.steps": 20000})
  counts = accounting.param_counts(c.model, config_lib.vocab_size(c), c.seq_len)
  n = counts["params_total"] - counts["params_embedding"]  # head included
  assert hparams.porian_n(c) == n
  d = 20000 * 8 * 256
  out = hparams.PORIAN_2024.apply(c)
  batch = max(1, round(327_680 * (n / 1.08e8) ** (2 / 3) / 256))
  assert out.batch_size == batch != c.batch_size
  assert (out.train.tokens, out.train.steps) == (d, -1)  # D kept
  assert out.optimizer.peak_lr == pytest.approx(0.0047 * (n / 1.08e8) ** (-1 / 3))
  assert out.schedule.warmup_steps == round(n / (batch * 256))  # N tokens
  assert out.optimizer.b2 == (0.99 if batch * 256 < 2**18 else 0.95)
  validation.validate(out)
  # In a batch sweep the batch is the swept variable: left alone.
  kept = hparams.PORIAN_2024.apply(c, set_batch=False)
  assert kept.batch_size == 8 and kept.train.steps == 20000
  # Fewer tokens than parameters: warmup (N tokens) longer than training.
  with pytest.raises(config_lib.ConfigError, match="schedule.warmup_steps"):
    hparams.PORIAN_2024.apply(config_lib.with_overrides(c, {"train.steps": 1000}))


def test_deepseek_at_1e20_flops():
  rule = hparams.DEEPSEEK_2024
  assert f"{rule.peak_lr_at(1e20):.3g}" == "0.000986"
  assert f"{rule.batch_tokens_at(1e20):.4g}" == "1.017e+06"


def test_deepseek_m_is_the_papers_formula_plus_the_softmax():
  # A standard block: multi-head attention, 2-matrix MLP, d_ff = 4 d_model.
  n, d, h, s = 4, 128, 4, 256
  model = _config(**{"model.d_model": d, "model.n_layers": n,
                     "model.n_heads": h, "model.n_kv_heads": h,
                     "model.d_ff": 4 * d}).model
  m = accounting.nonembedding_flops_per_token(model, 512, s)
  assert m == 72 * n * d**2 + 12 * n * d * s + 9 * n * h * s
  # Two ways: training forward per token minus the logits matmul.
  full = 3 * accounting.forward_flops_per_token(model, 512, s)
  assert m == full - 3 * 2 * d * 512
  # At DeepSeek LLM 7B's shape the softmax adds under 0.1%.
  big = _config(**{"model.d_model": 4096, "model.n_layers": 30,
                   "model.n_heads": 32, "model.n_kv_heads": 32,
                   "model.d_ff": 4 * 4096}).model
  paper = 72 * 30 * 4096**2 + 12 * 30 * 4096 * 4096
  ratio = accounting.nonembedding_flops_per_token(big, 102400, 4096) / paper
  assert 1 < ratio < 1.001


def test_deepseek_applied_to_a_config_keeps_its_compute():
  c = _config(**{"train.steps": 3000, "seq_len": 128, "batch_size": 64})
  rule = hparams.DEEPSEEK_2024
  d = 3000 * 64 * 128
  c_flops = hparams.deepseek_m(c) * d
  assert rule.compute(c) == c_flops
  out = rule.apply(c)
  assert out.batch_size == max(1, round(0.2920 * c_flops**0.3271 / 128))
  # D rounds up to whole steps of the new batch: C moves by < 1e-3.
  assert out.optimizer.peak_lr == pytest.approx(0.3118 * c_flops**-0.125,
                                                rel=1e-3)
  assert rule.compute(out) == pytest.approx(c_flops, rel=1e-3)  # D kept
  # 2000 warmup steps, capped at 10% of a short run.
  steps = accounting.train_steps(out)
  assert out.schedule.warmup_steps == min(2000, round(0.1 * steps))
  assert out.optimizer.b2 == 0.95


def test_default_rule_sets_what_it_always_did():
  assert generators.DEFAULT_RULE is hparams.DEFAULT_RULE
  assert generators.HParamRule is hparams.HParamRule
  c = _config(**{"batch_size": 16, "seq_len": 128})
  counts = accounting.param_counts(c.model, config_lib.vocab_size(c), 128)
  n = counts["params_total"] - counts["params_embedding"]
  assert hparams.DEFAULT_RULE.overrides(c) == {
      "optimizer.peak_lr": 0.5 * n ** (-1 / 3), "optimizer.b2": 0.99,
      "schedule.warmup_steps": -1, "schedule.warmup_fraction": 0.05}
  big = _config(**{"batch_size": 2048, "seq_len": 128})  # 2^18 tokens
  assert hparams.DEFAULT_RULE.overrides(big)["optimizer.b2"] == 0.95


def _synthetic_lr_table(path, exponent=-1 / 3):
  rows = []
  rng = np.random.default_rng(1)
  for i, n in enumerate((2e4, 6e4, 2e5, 6e5)):
    best = 0.4 * n**exponent
    for m in 2.0 ** np.arange(-3, 4):
      lr = 0.1 * n**-0.25 * m
      rows.append(dict(run=f"r{i}_{m}", params_total=n, peak_lr=lr,
                       eval_loss=2.0 + 0.05 * np.log2(lr / best) ** 2
                       + rng.normal(0, 1e-3), status="finished"))
  pd.DataFrame(rows).to_csv(path, index=False)


def test_a_fitted_rule_file_is_loaded_by_a_sweep_rule(tmp_path):
  table = tmp_path / "lr_sweep.csv"
  _synthetic_lr_table(table)
  hparams_report.analyze_hparams(str(table), str(tmp_path / "fit"),
                                 bootstrap=20, plots=False)
  path = str(tmp_path / "fit" / "rule.json")
  fit = json.loads(open(path).read())
  rule = hparams.get_rule(path)
  assert isinstance(rule, hparams.FittedRule)
  assert fit["provenance"]["table_sha256"] and "lr_sweep.csv" in rule.source
  c = _config()
  n = accounting.param_counts(c.model, config_lib.vocab_size(c),
                              c.seq_len)["params_total"]
  out = rule.apply(c)
  assert out.optimizer.peak_lr == pytest.approx(
      fit["lr"]["coef"] * n ** fit["lr"]["exponent"], rel=1e-12)
  assert fit["lr"]["exponent"] == pytest.approx(-1 / 3, abs=0.05)
  # No batch law: the batch stays; beta2 and warmup from the fallback rule.
  assert out.batch_size == c.batch_size
  assert out.schedule.warmup_fraction == 0.05
  # A sweep generator takes it like any rule.
  runs = generators.lr_sweep(c, [generators.Shape(32, 1, 2, 64)], [1.0], rule)
  assert runs[0].tags["rule_lr"] == pytest.approx(rule.hparams(
      config_lib.with_overrides(c, generators.Shape(32, 1, 2, 64).overrides())
  ).peak_lr)


def test_bad_rule_files_and_names_are_refused(tmp_path):
  with pytest.raises(ValueError, match="porian2024"):
    hparams.get_rule("no_such_rule")
  bad = tmp_path / "bad.json"
  bad.write_text(json.dumps({"schema": "other"}))
  with pytest.raises(ValueError, match="not a rule file"):
    hparams.get_rule(str(bad))
  bad.write_text(json.dumps({"schema": "scaling.hparams.rule/1",
                             "x": {"column": "Model Size"}}))
  with pytest.raises(ValueError, match="x variable"):
    hparams.get_rule(str(bad))
  bad.write_text(json.dumps({"schema": "scaling.hparams.rule/1",
                             "x": {"column": "params_total"},
                             "batch": {"coef": 1, "exponent": 1,
                                       "unit": "sequences"}}))
  with pytest.raises(ValueError, match="tokens"):
    hparams.get_rule(str(bad))
  bad.write_text(json.dumps({"schema": "scaling.hparams.rule/1",
                             "x": {"column": "params_total"},
                             "lr": None, "batch": None}))
  with pytest.raises(ValueError, match="no fitted law"):
    hparams.get_rule(str(bad))
