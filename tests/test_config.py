"""Config, validation and identity: each inconsistency names the field and
the fix and exits 2 before anything is written; identities stay stable."""

import subprocess
import sys

import pytest

from scaling import cli
from scaling import config as config_lib
from scaling import identity
from scaling import validation
from tests.conftest import tiny_config


def _error(config, n_devices=8):
  with pytest.raises(config_lib.ConfigError) as info:
    validation.validate(config, n_devices)
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
  assert identity.identity_hash(a, "h") == identity.identity_hash(b, "h")
  assert identity.identity_hash(a, "h") != identity.identity_hash(a, "g")
  c = tiny_config(**{"model.d_ff": 128})
  assert identity.identity_hash(a, "h") != identity.identity_hash(c, "h")


def test_identities_recorded_before_the_growth_rule_are_unchanged():
  # The first schema's hash (every field of the identity sections), as
  # recorded in run directories before fields at their introduced value
  # were left out: the same config must keep this exact identity. Rows read
  # in stream order is what every run did before data.row_order existed;
  # the shuffled default trains on other batches, so it is another run.
  def as_before(config):
    config.data.row_order = "stream"
    return config
  assert identity.identity_hash(as_before(config_lib.default_config()),
                                "h") == "5cc172af528d"
  assert identity.identity_hash(as_before(tiny_config()), "h") == "cab8599809a9"
  assert identity.identity_hash(tiny_config(), "h") != "cab8599809a9"


def test_a_new_field_at_its_introduced_value_renames_no_run(monkeypatch):
  base = tiny_config()
  before = identity.identity_hash(base, "h")
  grown = tiny_config()
  with grown.model.unlocked():
    grown.model.new_knob = "off"
  with pytest.raises(identity.UnregisteredField, match="model.new_knob"):
    identity.identity_hash(grown, "h")  # a field must be registered
  monkeypatch.setitem(identity.INTRODUCED, "model.new_knob", "off")
  assert identity.identity_hash(grown, "h") == before
  grown.model.new_knob = "on"
  assert identity.identity_hash(grown, "h") != before


def test_every_identity_field_of_the_schema_is_registered():
  schema = config_lib.default_config()
  for section, v1 in identity.V1_FIELDS.items():
    for key in schema[section]:
      assert key in v1 or f"{section}.{key}" in identity.INTRODUCED, (
          f"{section}.{key}: add it to scaling.identity.INTRODUCED")
  for section in identity.ADDED_SECTIONS:
    for key in schema[section]:
      assert f"{section}.{key}" in identity.INTRODUCED, (
          f"{section}.{key}: add it to scaling.identity.INTRODUCED")
      assert schema[section][key] == identity.INTRODUCED[f"{section}.{key}"]
  for dotted in identity.INTRODUCED:
    assert config_lib.get_dotted(schema, dotted) is not None


@pytest.mark.parametrize("flag, field", [
    ("--config.model.n_heads=5", "config.model.n_heads"),
    ("--config.eval.batches=0", "config.eval.batches"),
    ("--config.data.max_tokens=0", "config.data.max_tokens"),
    ("--config.data.seed=-1", "config.data.seed"),
    ("--config.mesh.data=3", "config.mesh"),
])
def test_cli_exits_2_naming_the_field_and_writes_nothing(tmp_path, flag, field):
  proc = subprocess.run(
      [sys.executable, "-m", "scaling.cli", "train", "--workdir",
       str(tmp_path / "run"), flag], capture_output=True, text=True,
      timeout=120)
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.startswith("error: ") and field in proc.stderr
  assert "compiling" not in proc.stdout + proc.stderr
  assert not (tmp_path / "run").exists()


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


@pytest.mark.parametrize("overrides, field", [
    ({"schedule.name": "wsd", "schedule.decay_shape": "step"},
     "schedule.decay_shape"),
    ({"schedule.name": "cosine", "schedule.decay_shape": "1-sqrt"},
     "schedule.decay_shape"),  # used only by wsd: never silently ignored
    ({"checkpoint.at_steps": (0,)}, "checkpoint.at_steps"),
    ({"checkpoint.at_steps": (9,)}, "checkpoint.at_steps"),  # train.steps 8
])
def test_schedule_shape_and_checkpoint_steps_are_checked(overrides, field):
  assert _error(tiny_config(**overrides)).field == field
  validation.validate(tiny_config(**{"schedule.name": "wsd",
                                     "schedule.decay_shape": "1-sqrt",
                                     "checkpoint.at_steps": (3, 8)}), 8)


def test_decay_shape_joins_the_identity_only_off_its_introduced_value():
  base = identity.identity_hash(tiny_config(**{"schedule.name": "wsd"}), "h")
  same = tiny_config(**{"schedule.name": "wsd", "schedule.decay_shape": "linear"})
  assert identity.identity_hash(same, "h") == base
  other = tiny_config(**{"schedule.name": "wsd", "schedule.decay_shape": "cosine"})
  assert identity.identity_hash(other, "h") != base
  # Checkpoint steps are cadence, not identity.
  kept = tiny_config(**{"schedule.name": "wsd", "checkpoint.at_steps": (4,)})
  assert identity.identity_hash(kept, "h") == base
