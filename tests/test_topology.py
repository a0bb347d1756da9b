"""TPU slice names, the chips' datasheet, the roofline arithmetic and the
per-program grouping of ``scaling check``: none of it needs libtpu.

The compiles for a TPU topology themselves are in tests/test_check_tpu.py.
"""

import os
import subprocess
import sys

import pytest

from launch import tpu as launch_tpu
from scaling import aot
from scaling import config as config_lib
from scaling import identity
from scaling import peak
from scaling import roofline
from scaling import topology
from scaling import validation
from tests.conftest import REPO, tiny_config


@pytest.mark.parametrize("name, canonical, chips, accelerator_type", [
    # Cloud TPU docs' configuration tables (v5e, v6e: chips; v4, v5p: cores).
    ("v5litepod-256", "v5e:16x16", 256, "v5litepod-256"),
    ("v5e:16x16", "v5e:16x16", 256, "v5litepod-256"),
    ("v5litepod-8", "v5e:2x4", 8, "v5litepod-8"),
    ("v6e-64", "v6e:8x8", 64, "v6e-64"),
    ("v6e:8x8", "v6e:8x8", 64, "v6e-64"),
    ("v4-32", "v4:2x2x4", 16, "v4-32"),
    ("v4-8", "v4:2x2x1", 4, "v4-8"),
    ("v5p-128", "v5p:4x4x4", 64, "v5p-128"),
    ("v5p:8x8x4", "v5p:8x8x4", 256, "v5p-512"),
])
def test_slice_names_parse_to_their_topology(name, canonical, chips,
                                             accelerator_type):
  t = topology.parse(name)
  assert (t.name, t.chips, t.accelerator_type) == (canonical, chips,
                                                  accelerator_type)
  # The launcher counts the same chips for the accelerator type.
  assert launch_tpu.tpu_chips(t.accelerator_type) == chips


def test_single_host_slices_are_one_host():
  assert topology.parse("v5litepod-1").host_bounds() == (1, 1, 1)
  assert topology.parse("v5litepod-8").host_bounds() == (2, 4, 1)
  assert topology.parse("v5litepod-16").host_bounds() == (2, 2, 1)
  assert topology.parse("v4-8").host_bounds() == (2, 2, 1)


@pytest.mark.parametrize("name, words", [
    ("v3-8", "v2 and v3 are not supported"),
    ("v5e:4x4x4", "AxB"),
    ("v5p:8x8", "AxBxC"),
    ("v5litepod-12", "v5litepod-16"),  # lists the known sizes
    ("v5p-7", "v5p-8"),
    ("tpu", "FAMILY:AxB"),
])
def test_bad_slice_names_are_refused_naming_the_flag(name, words):
  with pytest.raises(config_lib.ConfigError) as info:
    topology.parse(name)
  assert info.value.field == "--topology" and words in str(info.value)


def test_every_accepted_topology_has_its_chips_figures():
  """Each family --topology accepts has FLOP/s, HBM and bandwidth, sourced."""
  for family in topology.FAMILIES:
    sheet = peak.datasheet(family.device_kind)
    assert sheet is not None, family.device_kind
    assert sheet.bfloat16 > 1e14 and sheet.hbm_bytes > 8 * 2**30
    assert sheet.hbm_bytes_per_sec > 5e11
    assert f"cloud.google.com/tpu/docs/{family.name}" in sheet.memory_source
    for chips in family.slices:  # every accelerator type in the table parses
      t = topology.parse(f"{family.type_prefix}-"
                         f"{chips * (2 if family.cores_in_type else 1)}")
      assert t.chips == chips and t.family is family
  v5e = peak.datasheet("TPU v5 lite")
  assert (v5e.hbm_bytes, v5e.hbm_bytes_per_sec) == (16 * 2**30, 819e9)
  assert peak.datasheet("TPU v5").hbm_bytes == 95 * 2**30  # v5p


def test_launch_check_compiles_for_the_slice_where_it_can():
  assert launch_tpu.check_topology("v5litepod-256") == "v5litepod-256"
  assert launch_tpu.check_topology("v3-8") is None  # fake CPU devices instead


def test_roofline_on_a_hand_computed_step():
  # v5e: P = 197e12 FLOP/s, W = 819e9 B/s. F = 1.97e12 FLOPs: 10 ms of
  # compute; B = 3.276e9 bytes: 4 ms of memory traffic.
  r = roofline.step_bound(1.97e12, 3.276e9, model_flops=0.985e12,
                          peak_flops_per_sec=197e12, hbm_bytes_per_sec=819e9)
  assert r.compute_seconds == pytest.approx(0.010)
  assert r.memory_seconds == pytest.approx(0.004)
  assert (r.seconds, r.bound) == (pytest.approx(0.010), "compute")
  assert r.mfu == pytest.approx(0.5)  # half of the executed FLOPs are model
  r = roofline.step_bound(1.97e11, 3.276e9, 1.97e11, 197e12, 819e9)
  assert (r.seconds, r.bound) == (pytest.approx(0.004), "memory")
  assert r.mfu == pytest.approx(0.001 / 0.004)
  with pytest.raises(ValueError, match="must be > 0"):
    roofline.step_bound(1.0, 1.0, 1.0, 0.0, 819e9)


def test_per_step_cost_extrapolates_layers_and_microbatches():
  one = {"flops": 10.0, "bytes accessed": 100.0}
  two = {"flops": 16.0, "bytes accessed": 130.0}
  # cost(L) = c1 + (L - 1)(c2 - c1); M microbatches run it M times.
  assert roofline.per_step_cost(one, two, 30) == {
      "flops": 10 + 29 * 6, "bytes accessed": 100 + 29 * 30}
  assert roofline.per_step_cost(one, two, 30, microbatches=2)["flops"] == \
      2 * (10 + 29 * 6)
  assert roofline.per_step_cost(one, two, 1) == one


@pytest.mark.slow
def test_check_compiles_each_distinct_program_once():
  """Runs differing only in traced hyperparameters share a compile; a
  different shape does not (negative control)."""
  runs = [(f"lr{lr}", tiny_config(**{"optimizer.peak_lr": lr}))
          for lr in (1e-3, 3e-3)]
  runs.append(("long", tiny_config(**{"train.steps": 20})))
  runs.append(("wide", tiny_config(**{"model.d_ff": 128})))
  compiles = []
  groups = list(aot.check_runs(runs, progress=compiles.append))
  assert [names for names, _ in groups] == [["lr0.001", "lr0.003", "long"],
                                            ["wide"]]
  assert sum(line.startswith("[") for line in compiles) == 2
  a, b = (report for _, report in groups)
  assert a["program_fingerprint"] != b["program_fingerprint"]
  assert b["param_bytes_per_device"] > a["param_bytes_per_device"]
  # XLA:CPU's own figures: the step holds at least its parameters and state.
  assert a["argument_bytes_per_device"] >= (a["param_bytes_per_device"]
                                            + a["optimizer_bytes_per_device"])


def test_a_run_that_does_not_validate_is_named():
  runs = [("fine", tiny_config()),
          ("odd", tiny_config(**{"model.n_heads": 5}))]
  with pytest.raises(config_lib.ConfigError, match=r"\(run 'odd'\)"):
    list(aot.check_runs(runs))


def test_libtpu_missing_says_how_to_install_it(tmp_path):
  """With libtpu not importable, --topology exits 2 with the install command."""
  code = ("import sys; sys.modules['libtpu'] = None\n"
          "from scaling import cli\n"
          "sys.exit(cli.main(['check', 'train', '--topology', 'v5e:2x2']))\n")
  env = dict(os.environ, PYTHONPATH=REPO, XDG_CACHE_HOME=str(tmp_path))
  proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stdout + proc.stderr
  assert "libtpu" in proc.stderr and "pip install -e '.[tpu]'" in proc.stderr
  assert "compiling" not in proc.stdout


def test_auto_dtype_is_float32_on_cpu_and_bfloat16_on_accelerators():
  assert config_lib.compute_dtype("auto", "cpu") == "float32"
  assert config_lib.compute_dtype("auto", "tpu") == "bfloat16"
  assert config_lib.compute_dtype("auto", "gpu") == "bfloat16"
  assert config_lib.compute_dtype("float32", "tpu") == "float32"
  before = {"data.row_order": "stream"}  # rows as read before the field
  c = tiny_config(**before)
  assert c.model.dtype == "auto"
  bf16 = tiny_config(**before, **{"model.dtype": "bfloat16"})
  f32 = tiny_config(**before, **{"model.dtype": "float32"})
  # The hash records what runs: auto is float32 on CPU (every identity
  # recorded before the choice existed) and bfloat16 on TPU.
  assert identity.identity_hash(c, "h", platform="cpu") == \
      identity.identity_hash(f32, "h", platform="cpu") == "cab8599809a9"
  assert identity.identity_hash(c, "h", platform="tpu") == \
      identity.identity_hash(bf16, "h", platform="tpu")
  assert identity.identity_hash(c, "h", platform="tpu") != \
      identity.identity_hash(c, "h", platform="cpu")
  with pytest.raises(config_lib.ConfigError, match="model.dtype"):
    validation.validate(tiny_config(**{"model.dtype": "float16"}))
