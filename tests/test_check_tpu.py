"""``scaling check --topology``: the train step compiled with XLA:TPU for a
v5e slice on this CPU machine (libtpu as the compiler, DESIGN.md §8).

Skipped, with the reason, where libtpu cannot be installed (``.ci/run``
installs the ``tpu`` extra). Large shapes (chinchilla_isoflop on v5e:16x16)
are commands in the README, not tests.
"""

import os
import re
import subprocess
import sys

import pytest

pytest.importorskip(
    "libtpu", reason="libtpu (the TPU compiler) is not installed here: "
    "pip install -e '.[tpu]' (Linux only) to run the --topology tests")

from experiments.families import tiny  # noqa: E402
from scaling import aot  # noqa: E402
from scaling import config as config_lib  # noqa: E402
from scaling import program as program_lib  # noqa: E402
from scaling import sharding  # noqa: E402
from tests.conftest import REPO  # noqa: E402

V = 512  # the byte tokenizer's padded vocabulary
F32 = 4


def _params(d, n_layers, n_heads, n_kv_heads, d_head, d_ff, mlp_mats=2):
  """Parameters of our Transformer (untied, RMSNorm, RoPE), by hand."""
  attn = d * n_heads * d_head + 2 * d * n_kv_heads * d_head + n_heads * d_head * d
  return 2 * V * d + n_layers * (attn + mlp_mats * d * d_ff + 2 * d) + d


def _cli(args, tmp_path, timeout=600):
  env = dict(os.environ, PYTHONPATH=REPO, XDG_CACHE_HOME=str(tmp_path / "xdg"),
             JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", "scaling.cli", *args], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=timeout)


def _bytes(key, text):
  return int(re.search(rf"{key}: [\d.]+ GiB \(([\d,]+) B\)", text)[1]
             .replace(",", ""))


def _config_file(tmp_path, **overrides):
  """A --config file: the tiny experiment's base config with overrides."""
  path = tmp_path / "tiny_config.py"
  path.write_text(
      "from experiments.families import tiny\n"
      "from scaling import config as config_lib\n"
      "def get_config():\n"
      f"  return config_lib.with_overrides(tiny.base_config(), {overrides!r})\n")
  return str(path)


@pytest.mark.slow
def test_check_sweep_tiny_for_v5e_2x2(tmp_path):
  """The tiny experiment's 3 runs share one XLA:TPU compile for 4 v5e chips."""
  proc = _cli(["check", "sweep", "tiny", "--topology", "v5e:2x2"], tmp_path)
  out = proc.stdout
  assert proc.returncode == 0, out + proc.stderr[-3000:]
  assert "[1/1] compiling peak_lr0.001, peak_lr0.003, peak_lr0.01" in out
  assert re.search(r"device_kind: TPU v5 lite\n", out)
  assert re.search(r"devices: 4\n", out) and re.search(r"fits: True\n", out)
  assert re.search(r"compute_dtype: bfloat16\n", out)  # model.dtype=auto
  # d_model 32, 1 layer, 2 heads of 16, d_ff 64, replicated over data=4.
  p = _params(32, 1, 2, 2, 16, 64)
  assert _bytes("param_bytes_per_device", out) == F32 * p
  assert _bytes("optimizer_bytes_per_device", out) == 2 * F32 * p + 4  # + count
  # XLA:TPU's argument buffers hold them and the batch, padded to tiles.
  assert _bytes("argument_bytes_per_device", out) >= 3 * F32 * p
  assert _bytes("total_bytes_per_device", out) < 16 * 2**30
  assert re.search(r"mfu_upper_bound: [\d.]+%", out)
  assert len(re.findall(r"^peak_lr\S+ .* yes ", out, re.M)) == 3  # summary


# Lane-aligned (every parameter dimension a multiple of 128), so XLA:TPU pads
# no parameter or optimizer array: its argument bytes are theirs plus the
# batch rows and ~16 scalars (step, Adam's count, the hyperparameters), each
# scalar padded to a 512-byte tile: about 20 KiB here.
ALIGNED = {"model.d_model": 128, "model.n_heads": 1, "model.n_kv_heads": 1,
           "model.d_ff": 256, "seq_len": 128, "batch_size": 16,
           "eval.batch_size": 16, "mesh.data": 2, "mesh.fsdp": 2}
SMALL_REST = 64 * 1024


@pytest.mark.slow
def test_argument_bytes_are_the_parameter_and_optimizer_shards():
  reports = {}
  for d_ff in (256, 512):
    config = config_lib.with_overrides(tiny.base_config(),
                                       {**ALIGNED, "model.d_ff": d_ff})
    reports[d_ff] = aot.check(config, "v5e:2x2", roofline=False)
  for d_ff, report in reports.items():
    # fsdp=2 shards every parameter's d_model dimension: half per device;
    # AdamW keeps two float32 moments per parameter.
    shard = _params(128, 1, 1, 1, 128, d_ff) // 2
    expected = 3 * F32 * shard + 4
    args = report["argument_bytes_per_device"]
    assert 0 <= args - expected <= SMALL_REST, (d_ff, args, expected)
    # Negative control: replicated parameters would be far off.
    assert abs(args - 3 * F32 * 2 * shard) > 10 * SMALL_REST
    assert report["param_bytes_per_device"] == F32 * shard
  # What changes with d_ff is exactly the MLP's two matrices and moments.
  assert (reports[512]["argument_bytes_per_device"]
          - reports[256]["argument_bytes_per_device"]) == \
      3 * F32 * 2 * 128 * (512 - 256) // 2


@pytest.mark.slow
def test_a_run_that_exceeds_the_hbm_exits_2_naming_it_and_its_bytes(tmp_path):
  config = _config_file(tmp_path, **{
      "model.d_model": 4096, "model.n_heads": 32, "model.n_kv_heads": 32,
      "model.d_ff": 16384, "model.n_layers": 8, "seq_len": 128,
      "batch_size": 16, "eval.batch_size": 16})
  proc = _cli(["check", "train", "--config", config, "--workdir",
               "runs/too_big", "--topology", "v5e:2x2"], tmp_path)
  assert proc.returncode == 2, proc.stdout + proc.stderr[-3000:]
  err = proc.stderr
  assert "error: run too_big does not fit TPU v5 lite" in err
  # ~1.6B float32 parameters with two moments, replicated: 18 GiB > 16 GiB.
  state = re.search(r"parameters \+ optimizer state alone are ([\d.]+) GiB", err)
  assert 17.5 < float(state[1]) < 18.5
  assert re.search(r"needs [\d.]+ GiB .* of the 15.750 GiB", err)
  assert re.search(r"fits: False\n", proc.stdout)


def test_auto_choices_resolve_for_the_tpu_being_compiled_for():
  """On a v5e mesh, auto is bfloat16 compute and the splash kernel (a Mosaic
  custom call); set explicitly to float32 and reference, neither appears."""
  where = aot.target("v5e:2x2")
  texts = {}
  for name, over in (("auto", {}), ("explicit", {
      "model.dtype": "float32", "model.attention": "reference"})):
    config = config_lib.with_overrides(
        tiny.base_config(), {"seq_len": 128, **over})
    program = program_lib.build(config, sharding.make_mesh(config, where.devices))
    texts[name] = program.lower().as_text()
  assert "tpu_custom_call" in texts["auto"] and "bf16" in texts["auto"]
  assert "tpu_custom_call" not in texts["explicit"]
  assert "bf16" not in texts["explicit"]
