"""The coordinate checks of record (issue: parametrisations that transfer).

* Under μP, for every layer type and steps 1–3, the log-log slope of the
  mean |activation change since init| against width is within ±0.13 over
  d_model 64…512 (8×; about 1.3× over the range, microsoft/mup's bound);
* under SP the same check fails (some slope ≥ 0.3): the negative control,
  the failure of a μP that is never active (EleutherAI/gpt-neox#1061, #956);
* CompleteP over n_layers 2/4/8 passes the same way;
* at the base shape SP, μP and CompleteP give bitwise-equal losses and
  activations.

The checks run ``scaling check coord`` itself; every model is built by
``scaling.program.build`` and trained by its compiled train step
(``scaling.coord_check``) at the check's one learning rate
(``coord_check.default_config``).
"""

import pandas as pd
import pytest

from analysis import coord
from scaling import cli
from scaling import coord_check
from tests.conftest import tiny_config

WIDTHS = (64, 128, 256, 512)
DEPTHS = (2, 4, 8)
STEPS = (1, 2, 3)


def _check_coord(tmp_path, argv, what):
  """Runs ``scaling check coord`` (the command users run) and reads its CSV."""
  code = cli.main(["check", "coord", "--steps", "3", "--out", str(tmp_path)]
                  + argv)
  assert code == 0
  rows = pd.read_csv(tmp_path / f"coord_check_{what}.csv")
  assert (tmp_path / f"coord_check_{what}.png").exists()
  return rows


@pytest.fixture(scope="module")
def width_slopes(tmp_path_factory):
  rows = _check_coord(tmp_path_factory.mktemp("coord"),
                      ["--widths", ",".join(map(str, WIDTHS))], "widths")
  assert sorted(rows.parametrization.unique()) == ["mup", "sp"]
  return coord.slopes(rows, "d_model")


@pytest.mark.slow
def test_mup_activation_changes_are_flat_across_width(width_slopes):
  v = coord.verdict(width_slopes, "mup", STEPS)
  assert v["flat"], v["failing"]
  assert set(width_slopes.layer) == set(coord_check.LAYERS)


@pytest.mark.slow
def test_sp_fails_the_same_check(width_slopes):
  """The negative control: the check must catch an inactive μP."""
  v = coord.verdict(width_slopes, "sp", STEPS)
  assert not v["flat"]
  assert v["max_slope"] >= 0.3, v["worst"]


@pytest.mark.slow
def test_completep_activation_changes_are_flat_across_depth(tmp_path):
  rows = _check_coord(tmp_path, ["--depths", ",".join(map(str, DEPTHS)),
                                 "--parametrizations", "completep",
                                 "--config.model.d_model=128"], "depths")
  assert set(rows.d_model) == {128}
  v = coord.verdict(coord.slopes(rows, "n_layers"), "completep", STEPS)
  assert v["flat"], v["failing"]


@pytest.mark.slow
def test_at_the_base_shape_all_parametrizations_are_bitwise_sp():
  """Same losses and same activations, to the bit, after 3 updates (a GQA,
  SwiGLU, learned-position model with weight decay and clipping on)."""
  results = {}
  for name in ("sp", "mup", "completep"):
    config = tiny_config(**{
        "model.parametrization": name, "model.base_d_model": 32,
        "model.base_n_layers": 2, "model.mlp": "swiglu",
        "model.positions": "learned", "schedule.name": "constant",
        "schedule.warmup_steps": 0, "optimizer.peak_lr": 1e-2,
        "train.steps": 3})
    results[name] = coord_check.measure(config, steps=3)
  for name in ("mup", "completep"):
    assert results[name] == [
        dict(r, parametrization=name) for r in results["sp"]], name
  losses = [r["train_loss"] for r in results["sp"] if r["train_loss"]]
  assert len(set(losses)) == 3  # it trained


@pytest.mark.parametrize("argv, message", [
    (["--steps", "2"], "--widths and/or --depths"),
    (["--widths", "64,0"], "positive integers"),
    (["--widths", "64,x"], "comma-separated integers"),
])
def test_cli_refuses_bad_flags(argv, message, capsys):
  with pytest.raises(SystemExit) as info:
    cli.main(["check", "coord"] + argv)
  assert info.value.code == 2
  assert message in capsys.readouterr().err


def test_cli_names_an_unknown_parametrization(capsys, tmp_path):
  code = cli.main(["check", "coord", "--widths", "64", "--parametrizations",
                   "umup", "--out", str(tmp_path)])
  assert code == 2
  assert "--parametrizations: 'umup'" in capsys.readouterr().err

