"""Tests of scaling/accounting.py: parameter counts, FLOP counts, Appendix F."""

import json
import math
import os
import pathlib
import subprocess
import sys
import textwrap
import types

import jax
import pytest

from scaling import accounting
from scaling import peak
from scaling import config as config_lib
from scaling.config import ConfigError, default_config

# Hoffmann et al. 2022 Table A4 configs (n_layers, d_model, d_ff, n_heads) and
# the ratios Appendix-F / (6 N D) at S = 2048, V = 32000 (DESIGN.md §4).
CHINCHILLA_A4 = [
    ((10, 640, 2560, 10), 1.0250),
    ((20, 1024, 4096, 16), 1.1008),
    ((24, 1280, 5120, 10), 1.0829),
    ((26, 1792, 7168, 14), 1.0441),
    ((28, 2048, 8192, 16), 1.0329),
    ((40, 3584, 14336, 28), 0.9941),
]


def _model(**overrides):
  model = default_config().model
  model.update(overrides)
  return model


# Config A: grouped-query attention + SwiGLU, rope, rmsnorm, untied.
GQA_SWIGLU = dict(d_model=256, n_layers=4, n_heads=8, n_kv_heads=2, d_head=-1,
                  d_ff=768, mlp="swiglu", norm="rmsnorm", positions="rope",
                  tie_embeddings=False)
GQA_V, GQA_S = 384, 128
# Config B: multi-head attention + GELU with d_head != d_model / n_heads,
# learned positions, layernorm, tied embeddings.
MHA_GELU = dict(d_model=192, n_layers=3, n_heads=4, n_kv_heads=4, d_head=64,
                d_ff=512, mlp="gelu", norm="layernorm", positions="learned",
                tie_embeddings=True)
MHA_V, MHA_S = 512, 64


@pytest.mark.parametrize("config,ratio", CHINCHILLA_A4)
def test_appendix_f_reproduces_table_a4_ratios(config, ratio):
  n_layers, d_model, d_ff, n_heads = config
  seq_len, vocab_size = 2048, 32000
  forward = accounting.chinchilla_appendix_f_flops(
      n_layers, d_model, d_ff, n_heads, seq_len, vocab_size,
      include_embeddings=False, include_logits=False)
  n = accounting.chinchilla_param_count(n_layers, d_model, d_ff, vocab_size)
  # Training = forward + backward (2x forward); D = one sequence of S tokens.
  assert round(3 * forward / (6 * n * seq_len), 4) == ratio


def test_chinchilla_param_count_by_hand():
  d, f, v, layers = 640, 2560, 32000, 10
  per_layer = (3 * d * d + 3 * d) + (d * d + 2 * d) + (d * d + d) + (
      2 * d * f + f + d) + 4 * d
  assert per_layer == 5_334_400
  assert accounting.chinchilla_param_count(layers, d, f, v) == (
      layers * per_layer + 2 * d + d * v) == 73_825_280


def test_appendix_f_embedding_and_logit_terms():
  args = (2, 128, 512, 4, 64, 1000)
  full = accounting.chinchilla_appendix_f_flops(*args)
  no_emb = accounting.chinchilla_appendix_f_flops(*args,
                                                  include_embeddings=False)
  neither = accounting.chinchilla_appendix_f_flops(
      *args, include_embeddings=False, include_logits=False)
  assert full - no_emb == 2 * 64 * 1000 * 128
  assert no_emb - neither == 2 * 64 * 128 * 1000
  # One layer by hand: QKV, K@Q, softmax, softmax@V, final linear, dense.
  s, d, kh, h, f = 64, 128, 128, 4, 512
  layer = (2 * 3 * s * d * kh + 2 * s * s * kh + 3 * h * s * s
           + 2 * s * s * kh + 2 * s * kh * d + 2 * s * (d * f * 2))
  assert neither == 2 * layer == 54_624_256


def test_exact_flops_gqa_swiglu_by_hand():
  d, h, k, dh, f, layers, s, v = 256, 8, 2, 32, 768, 4, GQA_S, GQA_V
  per_layer = (2 * d * (h * dh)        # q
               + 2 * d * (2 * k * dh)  # k, v (grouped)
               + 2 * (h * dh) * d      # out
               + 3 * 2 * d * f         # swiglu: 3 matrices
               + 2 * 2 * s * (h * dh)  # scores + values
               + 3 * h * s)            # softmax
  expected = layers * per_layer + 2 * d * v
  assert expected == 6_762_496
  assert accounting.forward_flops_per_token(_model(**GQA_SWIGLU), v,
                                            s) == expected


def test_exact_flops_mha_gelu_by_hand():
  d, h, dh, f, layers, s, v = 192, 4, 64, 512, 3, MHA_S, MHA_V
  per_layer = (2 * d * (3 * h * dh)    # q, k, v
               + 2 * (h * dh) * d      # out
               + 2 * 2 * d * f         # gelu: 2 matrices
               + 2 * 2 * s * (h * dh)  # scores + values
               + 3 * h * s)            # softmax
  expected = layers * per_layer + 2 * d * v
  assert expected == 2_754_816
  assert accounting.forward_flops_per_token(_model(**MHA_GELU), v,
                                            s) == expected


def test_exact_flops_equals_appendix_f_where_architectures_agree():
  # MHA, 2-matrix MLP, d_head = d_model / n_heads: our count per token times
  # S is Appendix F without the embedding term.
  model = _model(d_model=128, n_layers=3, n_heads=4, n_kv_heads=4, d_head=-1,
                 d_ff=512, mlp="relu")
  ours = accounting.forward_flops_per_token(model, 640, 96) * 96
  paper = accounting.chinchilla_appendix_f_flops(3, 128, 512, 4, 96, 640,
                                                 include_embeddings=False)
  assert ours == paper


def test_param_counts_gqa_swiglu_by_hand():
  d, k, dh, f, layers, v = 256, 2, 32, 768, 4, GQA_V
  per_layer = d * d + 2 * d * (k * dh) + d * d + 3 * d * f + 2 * d
  nonembedding = layers * per_layer + d  # + final rmsnorm
  counts = accounting.param_counts(_model(**GQA_SWIGLU), v, GQA_S)
  assert counts == dict(params_total=3_213_568, params_embedding=v * d,
                        params_unembedding=d * v,
                        params_nonembedding=nonembedding)
  assert nonembedding == 3_016_960


def test_param_counts_mha_gelu_by_hand():
  d, hd, f, layers, v, s = 192, 256, 512, 3, MHA_V, MHA_S
  per_layer = d * hd + 2 * d * hd + hd * d + 2 * d * f + 2 * (2 * d)
  nonembedding = layers * per_layer + 2 * d  # + final layernorm
  counts = accounting.param_counts(_model(**MHA_GELU), v, s)
  assert counts == dict(params_total=1_292_928,
                        params_embedding=v * d + s * d,  # token + learned pos
                        params_unembedding=0,  # tied
                        params_nonembedding=nonembedding)


@pytest.mark.parametrize("change,field,delta", [
    (dict(tie_embeddings=True), "params_unembedding", -256 * 384),
    (dict(positions="learned"), "params_embedding", 128 * 256),
    (dict(positions="sinusoidal"), "params_embedding", 0),
    (dict(norm="layernorm"), "params_nonembedding", (2 * 4 + 1) * 256),
    (dict(mlp="gelu"), "params_nonembedding", -4 * 256 * 768),
    (dict(n_kv_heads=8), "params_nonembedding", 4 * 2 * 256 * 6 * 32),
])
def test_param_count_variants(change, field, delta):
  base = accounting.param_counts(_model(**GQA_SWIGLU), GQA_V, GQA_S)
  new = accounting.param_counts(_model(**{**GQA_SWIGLU, **change}), GQA_V,
                                GQA_S)
  assert new[field] - base[field] == delta
  assert new["params_total"] - base["params_total"] == delta
  assert new["params_total"] == (new["params_embedding"]
                                 + new["params_unembedding"]
                                 + new["params_nonembedding"])


def test_flops_per_step_and_train_steps():
  config = default_config()
  config.model.update(GQA_SWIGLU)
  config.batch_size, config.seq_len = 16, 128
  v = config_lib.vocab_size(config)
  assert v == 512  # 266 + 128 sentinels = 394 real ids, padded to 512
  d = 16 * 128
  n = accounting.param_counts(config.model, v, 128)
  step = accounting.flops_per_step(config)
  assert step["flops"] == 3 * accounting.forward_flops_per_token(
      config.model, v, 128) * d
  assert step["flops_6nd"] == 6 * n["params_total"] * d
  assert step["flops_kaplan"] == 6 * n["params_nonembedding"] * d
  assert accounting.FLOPS_FORMULA == "exact-v1:full-attention"

  config.train.steps = 7
  assert accounting.train_steps(config) == 7
  config.train.steps, config.train.tokens = -1, 10 * d + 1
  assert accounting.train_steps(config) == 11 == math.ceil((10 * d + 1) / d)
  config.train.tokens = -1
  with pytest.raises(ConfigError, match="train.steps"):
    accounting.train_steps(config)


def test_unknown_mlp_names_the_field():
  with pytest.raises(ConfigError, match="model.mlp"):
    accounting.param_counts(_model(mlp="geglu"), 512, 64)


# --- peak FLOP/s for MFU (scaling/peak.py) ----------------------------------


def _fake_devices(kind, n, platform="gpu"):
  return [types.SimpleNamespace(device_kind=kind, platform=platform,
                                process_index=0, id=i) for i in range(n)]


@pytest.mark.parametrize("kind,name,bf16,fp32", [
    ("NVIDIA H100 80GB HBM3", "NVIDIA H100 SXM", 989.5e12, 494.5e12),
    ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe", 756.5e12, 378e12),
    ("NVIDIA H200", "NVIDIA H200 SXM", 989.5e12, 494.5e12),
    ("NVIDIA A100-SXM4-40GB", "NVIDIA A100", 312e12, 156e12),
    ("NVIDIA A100 80GB PCIe", "NVIDIA A100", 312e12, 156e12),
    ("TPU v4", "TPU v4", 275e12, 275e12),
    ("TPU v5 lite", "TPU v5e", 197e12, 197e12),
    ("TPU v5", "TPU v5p", 459e12, 459e12),
    ("TPU v6 lite", "TPU v6e (Trillium)", 918e12, 918e12),
    ("TPU v3", "TPU v3 (per core)", 61.5e12, 61.5e12),
])
def test_datasheet_peaks(kind, name, bf16, fp32):
  sheet = peak.datasheet(kind)
  assert (sheet.name, sheet.bfloat16, sheet.float32) == (name, bf16, fp32)
  total, source = peak.peak_flops(_fake_devices(kind, 8), "bfloat16")
  assert total == 8 * bf16
  assert source.startswith(f"datasheet {name} bfloat16")
  assert peak.peak_flops(_fake_devices(kind, 2), "float32")[0] == 2 * fp32


def test_peak_rejects_unknown_dtype_and_mixed_kinds():
  assert peak.datasheet("NVIDIA L40S") is None
  assert peak.datasheet("cpu") is None
  with pytest.raises(ValueError, match="float16"):
    peak.peak_flops(_fake_devices("TPU v4", 1), "float16")
  with pytest.raises(ValueError, match="mixed"):
    peak.peak_flops(_fake_devices("TPU v4", 1) + _fake_devices("TPU v5", 1),
                    "bfloat16")
  assert peak.mfu(2e12, 4e12) == 0.5


def test_measured_cpu_peak_is_cached_and_remeasured_once_per_process(
    tmp_path, monkeypatch):
  monkeypatch.setattr(peak, "_MEASURED", {})
  rate, source = peak.peak_flops(jax.local_devices(backend="cpu"), "float32",
                                 cache_dir=tmp_path, target_seconds=0.01)
  assert 1e8 < rate < 1e14  # a plausible CPU, FLOP/s
  assert source.startswith("measured matmul float32")
  assert str(tmp_path / "peak_flops.json") in source
  assert " ago (" in source and "this process measured" in source
  (entry,) = json.loads((tmp_path / "peak_flops.json").read_text()).values()
  assert entry["flops_per_sec"] == rate
  assert entry["n"] % 128 == 0

  def no_measuring(*args, **kwargs):
    raise AssertionError("measured twice in one process")

  monkeypatch.setattr(peak, "measure_matmul_flops", no_measuring)
  assert peak.peak_flops(None, "float32", cache_dir=tmp_path)[0] == rate
  # A new process measures once, at the cached size; the cache keeps the
  # higher figure: load only ever lowers a measurement.
  for new, kept in ((5.0, rate), (1e15, 1e15)):
    monkeypatch.setattr(peak, "_MEASURED", {})
    monkeypatch.setattr(peak, "measure_matmul_flops",
                        lambda *a, new=new, **k: dict(
                            flops_per_sec=new, n=k["n"], seconds=1.0,
                            n_devices=1))
    assert peak.peak_flops(None, "float32", cache_dir=tmp_path)[0] == kept
    (entry,) = json.loads((tmp_path / "peak_flops.json").read_text()).values()
    assert entry["flops_per_sec"] == kept


def test_peak_is_never_measured_inside_a_mesh_context(tmp_path, monkeypatch):
  monkeypatch.setattr(peak, "_MEASURED", {})
  mesh = jax.make_mesh((1,), ("data",))
  with jax.set_mesh(mesh):
    with pytest.raises(RuntimeError, match="outside the run's mesh"):
      peak.peak_flops(None, "float32", cache_dir=tmp_path)


def test_default_cache_dir_follows_xdg(monkeypatch, tmp_path):
  monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
  assert peak.default_cache_dir() == tmp_path / "scaling"
  monkeypatch.delenv("XDG_CACHE_HOME")
  assert peak.default_cache_dir().parts[-2:] == (".cache", "scaling")


def test_measured_peak_over_8_cpu_devices(tmp_path):
  code = textwrap.dedent(f"""
      import jax
      from scaling import peak
      devices = jax.devices()
      assert len(devices) == 8
      rate, source = peak.peak_flops(devices, "bfloat16",
                                     cache_dir={str(tmp_path)!r},
                                     target_seconds=0.01)
      assert rate > 1e8, rate
      assert "on 8 cpu device(s)" in source, source
      """)
  env = dict(os.environ,
             XLA_FLAGS="--xla_force_host_platform_device_count=8",
             JAX_PLATFORMS="cpu")
  root = pathlib.Path(__file__).resolve().parents[1]
  subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=root,
                 timeout=120)
