"""Experiment registry, sweep generators and the experiments CLI (no training)."""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pytest

from experiments import cli
from experiments import generators
from experiments import registry
from experiments import runner
from scaling import accounting
from scaling import config as config_lib
from scaling import identity


def _isoflop_experiments():
  names = []
  for name in registry.list_experiments():
    if any(run.budget is not None for run in registry.lookup(name).runs):
      names.append(name)
  return names


def test_grid_is_the_cartesian_product_first_key_slowest():
  base = config_lib.default_config()
  runs = generators.grid(base, {"model.d_model": [64, 128],
                                "optimizer.peak_lr": [1e-3, 3e-3, 1e-2]})
  assert len(runs) == 6
  got = [(r.config.model.d_model, r.config.optimizer.peak_lr) for r in runs]
  assert got == [(64, 1e-3), (64, 3e-3), (64, 1e-2),
                 (128, 1e-3), (128, 3e-3), (128, 1e-2)]
  assert runs[0].short_name == "d_model64_peak_lr0.001"
  assert len({r.short_name for r in runs}) == 6
  assert base.model.d_model == config_lib.default_config().model.d_model  # unmodified


def test_grid_rejects_unknown_keys_naming_them():
  with pytest.raises(config_lib.ConfigError, match="model.d_modl"):
    generators.grid(config_lib.default_config(), {"model.d_modl": [1]})


def test_ladder_keeps_aspect_ratio_and_head_size():
  shapes = generators.ladder([1, 2, 4, 8], aspect_ratio=64, d_head=64)
  assert [s.d_model for s in shapes] == [64, 128, 256, 512]
  for s in shapes:
    assert s.d_model / s.n_layers == 64
    assert s.d_model // s.n_heads == 64 and s.d_model % s.n_heads == 0
    assert s.d_ff == 4 * s.d_model
  # Rounding half up to a multiple of d_head (Python round() would give 4, 8).
  shapes = generators.ladder([1, 3, 5], aspect_ratio=48, d_head=32)
  assert [s.d_model for s in shapes] == [64, 160, 256]  # 1.5, 4.5, 7.5 heads
  for s in shapes:
    assert abs(s.d_model - 48 * s.n_layers) <= 16


def test_depth_only_and_width_only_ladders():
  depth = generators.depth_ladder(128, [1, 2, 6], d_head=32)
  assert {s.d_model for s in depth} == {128}
  assert [s.n_layers for s in depth] == [1, 2, 6]
  width = generators.width_ladder(3, [32, 64, 96], d_head=16)
  assert {s.n_layers for s in width} == {3}
  assert [s.n_heads for s in width] == [2, 4, 6]
  with pytest.raises(ValueError, match="multiple of d_head"):
    generators.width_ladder(3, [40], d_head=16)
  assert generators.ladder([2], 32, 16, ffn_ratio=8 / 3,
                           ff_multiple=64)[0].d_ff == 192  # 170.7 -> 3 x 64


def test_effective_params_gives_c_equal_6nd():
  config = config_lib.default_config()
  n_eff = generators.effective_params(config)
  step = accounting.flops_per_step(config)["flops"]
  tokens = config.batch_size * config.seq_len
  assert math.isclose(6 * n_eff * tokens, step, rel_tol=1e-12)


@pytest.mark.parametrize("name", _isoflop_experiments())
def test_isoflop_runs_are_within_one_step_of_their_budget(name):
  """Done-when 3: every generated isoFLOP run's flops are C ± one step."""
  experiment = registry.lookup(name)
  sizes = {}
  for run in experiment.runs:
    if run.budget is None:
      continue
    step = accounting.flops_per_step(run.config)["flops"]
    total = accounting.train_steps(run.config) * step
    assert abs(total - run.budget) <= step, run.short_name
    assert math.isclose(run.flops, total)
    sizes.setdefault(run.budget, set()).add(run.tags["n_eff"])
  for budget, n_effs in sizes.items():
    assert len(n_effs) >= 3, (name, budget)  # a parabola needs 3 sizes


@pytest.mark.parametrize("name, decades", [("quickstart", 0.8),
                                           ("quickstart_decade", 1.0)])
def test_quickstart_tiers_are_real_small_studies(name, decades):
  experiment = registry.lookup(name)
  by_budget = {}
  for run in experiment.runs:
    if "seed" not in run.tags:
      by_budget.setdefault(run.budget, []).append(run.tags["n_eff"])
  assert len(by_budget) >= 3
  assert math.log10(max(by_budget) / min(by_budget)) >= decades
  for budget, sizes in by_budget.items():
    assert len(sizes) >= 4 and len(set(sizes)) == len(sizes), budget
  assert not experiment.notes  # nothing dropped
  # Every model has at least 2 layers; at the largest size the
  # non-embedding parameters are the majority.
  assert all(r.config.model.n_layers >= 2 for r in experiment.runs)
  largest = max(experiment.runs, key=lambda r: r.tags["n_eff"])
  counts = accounting.param_counts(largest.config.model,
                                   config_lib.vocab_size(largest.config),
                                   largest.config.seq_len)
  assert counts["params_nonembedding"] > counts["params_total"] / 2
  # Seed replicates: same shape and budget, other data and init seeds.
  replicates = [r for r in experiment.runs if "seed" in r.tags]
  assert len(replicates) >= 2
  assert len({r.name() for r in experiment.runs}) == len(experiment.runs)
  # Warmup is a fraction of training; per-size learning rates fall with N.
  for run in experiment.runs:
    assert run.config.schedule.warmup_steps == -1
    assert run.config.schedule.warmup_fraction == 0.05
  lrs = sorted((r.tags["n_eff"], r.config.optimizer.peak_lr) for r in experiment.runs)
  assert all(a[1] >= b[1] for a, b in zip(lrs, lrs[1:]))


def test_isoflop_drops_short_runs_with_a_note_and_spans_the_optimum():
  base = config_lib.default_config()
  base.seq_len, base.batch_size = 128, 16
  shapes = generators.ladder(range(1, 9), aspect_ratio=32, d_head=16)
  notes = []
  runs = generators.isoflop(base, [1e12], shapes, factor=8.0, min_steps=200,
                            notes=notes)
  n_opt = math.sqrt(1e12 / 120.0)  # 91k; L1_d32 37k, L2_d64 165k, L3_d96 456k
  sizes = [r.tags["n_eff"] for r in runs]
  assert [r.short_name for r in runs] == ["C1e12_L1_d32", "C1e12_L2_d64"]
  assert min(sizes) < n_opt < max(sizes)
  assert all(n_opt / 8 <= n <= n_opt * 8 for n in sizes)
  assert notes[0] == "dropped C1e12_L3_d96: 178 steps < min_steps=200"
  assert "only 2 sizes" in notes[1]
  kept = generators.isoflop(base, [1e12], shapes, factor=4.0, max_sizes=2,
                            min_steps=1)
  assert len(kept) == 2
  # the two closest to N_opt in log N
  logs = sorted(abs(math.log(generators.effective_params(
      config_lib.with_overrides(base, s.overrides())) / n_opt)) for s in shapes)
  got = sorted(abs(math.log(r.tags["n_eff"] / n_opt)) for r in kept)
  assert got == pytest.approx(logs[:2])


def test_hparam_rule_lr_falls_with_size_and_b2_rises_at_small_batch():
  rule = generators.HParamRule(lr_coef=2.0, lr_exponent=0.5, lr_max=1.0)
  small = config_lib.with_overrides(config_lib.default_config(),
                                     generators.Shape(64, 2, 4, 256).overrides())
  big = config_lib.with_overrides(config_lib.default_config(),
                                   generators.Shape(256, 4, 8, 1024).overrides())
  n = rule.n_params(small)
  counts = accounting.param_counts(small.model, config_lib.vocab_size(small),
                                   small.seq_len)
  assert n == counts["params_nonembedding"] + counts["params_unembedding"]
  assert rule.peak_lr(small) == pytest.approx(2.0 / math.sqrt(n))
  assert rule.peak_lr(big) < rule.peak_lr(small)
  small.batch_size, small.seq_len = 16, 256
  assert rule.overrides(small)["optimizer.b2"] == 0.99  # 16 x 256 tokens
  small.batch_size = 1024  # 262144 tokens per step
  assert rule.overrides(small)["optimizer.b2"] == 0.95
  assert generators.HParamRule(1e3, 0.1, lr_max=0.02).peak_lr(small) == 0.02


def test_data_constrained_caps_unique_tokens_and_sets_length():
  base = config_lib.default_config()
  runs = generators.data_constrained(base, [100_000, 400_000], [1, 4])
  assert [r.short_name for r in runs] == ["U1e5_E1", "U1e5_E4", "U4e5_E1",
                                          "U4e5_E4"]
  run = runs[1]
  assert run.config.data.max_tokens == 100_000
  assert run.config.train.tokens == 400_000 and run.config.train.steps == -1
  assert run.steps == math.ceil(400_000 / (base.batch_size * base.seq_len))


def test_lr_sweep_runs_of_one_shape_differ_only_in_peak_lr():
  """What lets them share one compiled train step (traced hyperparameter)."""
  experiment = registry.lookup("lr_sweep")
  by_shape = {}
  for run in experiment.runs:
    by_shape.setdefault(run.tags["shape"], []).append(run)
  for runs in by_shape.values():
    dicts = [r.config.to_dict() for r in runs]
    lrs = [d["optimizer"].pop("peak_lr") for d in dicts]
    assert all(d == dicts[0] for d in dicts)
    multipliers = [r.tags["lr_multiplier"] for r in runs]
    assert lrs == pytest.approx([runs[0].tags["rule_lr"] * m for m in multipliers])
    assert 1.0 in multipliers


def test_run_name_is_short_name_and_the_trainers_identity_hash():
  run = registry.lookup("tiny").runs[0]
  name = run.name()
  assert re.fullmatch(r"peak_lr0\.001-[0-9a-f]{12}", name)
  assert name.endswith(identity.identity_hash(
      run.config, registry.corpus_hash(run.config.data)))
  other = config_lib.with_overrides(run.config, {"optimizer.peak_lr": 2e-3})
  assert registry.identity(other) != name.rsplit("-", 1)[1]
  moved = config_lib.with_overrides(run.config, {"mesh.data": 2,
                                                  "checkpoint.every": 7})
  assert registry.identity(moved) == name.rsplit("-", 1)[1]


def test_short_names_must_be_filesystem_safe_and_unique():
  base = config_lib.default_config()
  with pytest.raises(ValueError, match="no '-'"):
    registry.Run("a-b", base)
  twice = registry.Experiment("x", "", "", base, [registry.Run("a", base),
                                                  registry.Run("a", base)])
  with pytest.raises(ValueError, match="two runs are named 'a'"):
    twice.check()


def test_unknown_experiment_lists_known_names(capsys, tmp_path):
  with pytest.raises(registry.UnknownExperiment) as info:
    registry.lookup("no_such_experiment")
  for name in ("tiny", "quickstart", "lr_sweep"):
    assert name in str(info.value)
  assert cli.main_sweep(["no_such_experiment", "--workdir", str(tmp_path)]) == 2
  err = capsys.readouterr().err
  assert "unknown experiment 'no_such_experiment'" in err and "quickstart" in err
  assert cli.main_list(["no_such_experiment"]) == 2
  assert not (tmp_path / "no_such_experiment").exists()


def test_every_experiment_is_registered_and_dry_runs(tmp_path):
  """Done-when 4: the registry lists them all; --dry-run of each works."""
  names = registry.list_experiments()
  for name in ("tiny", "quickstart", "chinchilla_isoflop",
               "kaplan_width_depth", "data_size", "lr_sweep"):
    assert name in names
  for name in names:
    out = io.StringIO()
    result = runner.run_sweep(name, str(tmp_path), dry=True, out=out)
    experiment = registry.lookup(name)
    text = out.getvalue()
    assert len(result.rows) == len(experiment.runs)
    assert f"{len(experiment.runs)} runs, {experiment.total_flops:.3g} FLOPs" in text
    assert all(row["status"] == "pending" for row in result.rows)
  assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_main_sweep_dry_run_with_only(capsys, tmp_path):
  assert cli.main_sweep(["tiny", "--workdir", str(tmp_path), "--dry-run",
                         "--only", "0.01$"]) == 0
  out = capsys.readouterr().out
  assert "1 runs" in out and "peak_lr0.01-" in out and "peak_lr0.001-" not in out


def test_main_list_prints_every_experiment(capsys):
  assert cli.main_list([]) == 0
  out = capsys.readouterr().out
  for name in registry.list_experiments():
    assert re.search(rf"^{name}\s+\d+\s+\S+", out, flags=re.M), name
  assert "assumed MFU" in out


def test_a_gs_workdir_needs_a_posix_lock_dir():
  with pytest.raises(config_lib.ConfigError, match="lock_dir"):
    runner.run_sweep("tiny", "gs://bucket/sweeps", progress=False,
                     out=io.StringIO())


def test_lr_transfer_gives_every_width_the_same_rates_per_parametrization():
  """The transfer check's grid: one set of rates ×2 apart for every width
  (the rule's rate of the base width × 1/8 … 8), under SP and μP."""
  experiment = registry.lookup("lr_transfer")
  assert len(experiment.runs) == 2 * 4 * 7
  rates = {}
  for run in experiment.runs:
    m = run.config.model
    assert run.tags["parametrization"] == m.parametrization
    assert (m.base_d_model, m.base_n_layers) == (32, 2)
    rates.setdefault((m.parametrization, m.d_model), []).append(
        run.config.optimizer.peak_lr)
  grids = {tuple(v) for v in rates.values()}
  assert len(grids) == 1
  grid = np.array(sorted(grids.pop()))
  np.testing.assert_allclose(grid[1:] / grid[:-1], 2.0)
  assert {p for p, _ in rates} == {"sp", "mup"}
  assert sorted({w for _, w in rates}) == [32, 64, 128, 256]
  # At the base width the two arms are the same model and optimizer.
  sp, mup = (next(r for r in experiment.runs
                  if r.short_name == f"{p}_L2_d32_lrx1") for p in ("sp", "mup"))
  a, b = sp.config.to_dict(), mup.config.to_dict()
  assert a["model"].pop("parametrization") == "sp"
  assert b["model"].pop("parametrization") == "mup"
  assert a == b
