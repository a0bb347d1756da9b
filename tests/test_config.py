"""Validation: each inconsistency names the field and the fix, exit status 2."""

import subprocess
import sys

import pytest

from scaling import cli
from scaling import config as config_lib
from tests.conftest import tiny_config


def _error(config, n_devices=8):
  with pytest.raises(config_lib.ConfigError) as info:
    config_lib.validate(config, n_devices)
  return info.value


@pytest.mark.parametrize("field, value, names", [
    ("model.n_heads", 3, "model.n_heads"),  # d_model % n_heads
    ("model.n_kv_heads", 3, "model.n_kv_heads"),  # n_heads % n_kv_heads
    ("model.d_model", 0, "model.d_model"),
    ("seq_len", -4, "seq_len"),
    ("model.d_ff", 0, "model.d_ff"),
    ("model.mlp", "tanh", "model.mlp"),
    ("schedule.name", "step", "schedule.name"),
    ("train.microbatches", 3, "train.microbatches"),
])
def test_value_errors_name_the_field(field, value, names):
  e = _error(tiny_config(**{field: value}))
  assert e.field == names
  assert f"config.{names}" in str(e)


def test_batch_not_divisible_by_data_parallel():
  e = _error(tiny_config(**{"batch_size": 12, "mesh.data": 8}))
  assert e.field == "batch_size" and "data*fsdp" in str(e)
  # Per microbatch: 16 / 4 = 4 rows cannot split over 8 devices.
  e = _error(tiny_config(**{"batch_size": 16, "train.microbatches": 4}))
  assert e.field == "batch_size" and "microbatch" in str(e)


def test_mesh_product_must_equal_device_count():
  e = _error(tiny_config(**{"mesh.data": 2, "mesh.fsdp": 2, "mesh.tensor": 1}))
  assert e.field == "mesh" and "8 devices" in str(e)


@pytest.mark.parametrize("field", ["n_heads", "n_kv_heads", "d_ff"])
def test_tensor_axis_must_divide(field):
  c = tiny_config(**{"mesh.data": 2, "mesh.fsdp": 1, "mesh.tensor": 4,
                     "model.n_heads": 8, "model.n_kv_heads": 8,
                     "model.d_ff": 64})
  if field == "n_heads":  # 6 heads of d_head 8; n_kv_heads 2 divides 6
    c.model.update(n_heads=6, n_kv_heads=2, d_head=8)
  else:
    c.model[field] = 2 if field == "n_kv_heads" else 66
  e = _error(c)
  assert e.field == f"model.{field}" and "tensor" in str(e)


def test_warmup_longer_than_training():
  e = _error(tiny_config(**{"schedule.warmup_steps": 100}))
  assert e.field == "schedule.warmup_steps" and "longer than" in str(e)


def test_exactly_one_training_length():
  e = _error(tiny_config(**{"train.tokens": 1000}))
  assert e.field == "train.steps"


def test_unknown_key_suggests_the_known_one():
  c = tiny_config()
  with pytest.raises(config_lib.ConfigError) as info:
    config_lib.apply_override(c, "model.d_modle", "64")
  assert "d_modle" in str(info.value) and "d_model" in str(info.value)
  with pytest.raises(config_lib.ConfigError) as info:
    config_lib.apply_override(c, "modle.d_model", "64")
  assert "modle" in str(info.value) and "model" in str(info.value)


def test_override_types():
  c = tiny_config()
  config_lib.apply_override(c, "model.d_model", "64")
  config_lib.apply_override(c, "optimizer.peak_lr", "1e-3")
  config_lib.apply_override(c, "model.tie_embeddings", "true")
  config_lib.apply_override(c, "train.tokens", "1e6")
  assert (c.model.d_model, c.optimizer.peak_lr, c.model.tie_embeddings,
          c.train.tokens) == (64, 1e-3, True, 1_000_000)
  with pytest.raises(config_lib.ConfigError, match="model.d_model"):
    config_lib.apply_override(c, "model.d_model", "wide")


def test_identity_ignores_mesh_and_cadence_but_not_model():
  a = tiny_config()
  b = tiny_config(**{"mesh.data": 2, "checkpoint.every": 7, "eval.every": 3,
                     "train.log_every": 5, "train.microbatches": 2})
  assert config_lib.identity_hash(a, "h") == config_lib.identity_hash(b, "h")
  assert config_lib.identity_hash(a, "h") != config_lib.identity_hash(a, "g")
  c = tiny_config(**{"model.d_ff": 128})
  assert config_lib.identity_hash(a, "h") != config_lib.identity_hash(c, "h")


def test_cli_exits_2_naming_the_field(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "scaling.cli", "train", "--workdir",
       str(tmp_path / "run"), "--config.model.n_heads=5"],
      capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  assert "config.model.n_heads" in proc.stderr
  assert not (tmp_path / "run" / "checkpoints").exists()


def test_cli_unknown_key_exits_2():
  assert cli.main(["train", "--workdir", "/nonexistent/x",
                   "--config.model.widht=3"]) == 2


def test_fsdp_axis_must_divide_d_model():
  e = _error(tiny_config(**{"mesh.data": 1, "mesh.fsdp": 8, "model.d_model": 36,
                            "model.n_heads": 2, "model.n_kv_heads": 2,
                            "batch_size": 8}))
  assert e.field == "model.d_model" and "fsdp" in str(e)


@pytest.mark.parametrize("field, value", [
    ("optimizer.peak_lr", -1.0), ("optimizer.peak_lr", float("nan")),
    ("optimizer.b2", 1.5), ("eval.every", -1)])
def test_optimizer_and_eval_values_are_checked(field, value):
  assert _error(tiny_config(**{field: value})).field == field


def test_config_file_errors_name_the_flag(tmp_path):
  bad = tmp_path / "bad.py"
  bad.write_text("def get_config(:\n")
  with pytest.raises(config_lib.ConfigError, match="--config: .*SyntaxError"):
    config_lib.load_config_file(str(bad))
  plain = tmp_path / "plain.py"
  plain.write_text("from scaling.config import default_config\n"
                   "def get_config():\n  return default_config()\n")
  with pytest.raises(config_lib.ConfigError, match="FILE:ARG"):
    config_lib.load_config_file(f"{plain}:3")
  assert config_lib.load_config_file(str(plain)).model.d_model > 0
