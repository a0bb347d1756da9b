"""Training-step equalities: gradient accumulation, --init-from, NaN handling."""

import json

import jax
import numpy as np
import pytest

from scaling import aot
from scaling import config as config_lib
from scaling import program as program_lib
from scaling import sharding
from scaling import tokenizer as tok_lib
from scaling import train as train_lib
from scaling.data import pipeline, sources
from tests.conftest import tiny_config


def test_four_microbatches_give_the_same_update_as_one_batch():
  corpus = sources.load_corpus(tiny_config().data)
  out = {}
  for micro in (1, 4):
    c = tiny_config(**{"batch_size": 16, "train.microbatches": micro,
                       "schedule.name": "constant"})
    mesh = sharding.make_mesh(c)
    program = program_lib.build(c, mesh)
    data = pipeline.TrainStream(corpus, tok_lib.ByteTokenizer(), c.seq_len,
                                c.batch_size, 0)
    batch = data.local_batch(0)
    # Make loss-token counts differ between rows so a per-microbatch mean
    # (instead of a global token-weighted mean) would give another update.
    batch["loss_mask"][:5, 10:] = 0.0
    init = program.init_state()
    before = jax.device_get(init["params"])
    with program.context():
      state, m = program.train_step(init, sharding.to_global(batch, mesh),
                                    program.hp)
    update = jax.tree.map(np.subtract, jax.device_get(state["params"]), before)
    out[micro] = (np.concatenate([u.ravel() for u in jax.tree.leaves(update)]),
                  jax.device_get(m))
  assert abs(out[4][1]["train_loss"] / out[1][1]["train_loss"] - 1) <= 1e-6
  assert abs(out[4][1]["grad_norm"] / out[1][1]["grad_norm"] - 1) <= 1e-5
  # The AdamW update of all parameters, relative difference in norm.
  diff = np.linalg.norm(out[4][0] - out[1][0]) / np.linalg.norm(out[1][0])
  assert diff <= 1e-5, diff


def _read(workdir):
  return [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # three tiny runs: about 30-45 s on 2 cores
def test_init_from_continues_tokens_and_flops(tmp_path):
  """A WSD branch from a stable run's checkpoint at k = T - K equals the same
  WSD run trained from scratch (same length and warmup) in every
  metrics.jsonl field but the wall-clock ones."""
  src = tiny_config(**{"schedule.name": "wsd", "schedule.decay_fraction": 0.0001})
  train_lib.train(src, tmp_path / "stable")
  branch = tiny_config(**{"schedule.name": "wsd", "schedule.decay_fraction": 0.5})
  summary = train_lib.train(branch, tmp_path / "decay",
                            init_from=f"{tmp_path / 'stable'}@4")
  stable, decay = _read(tmp_path / "stable"), _read(tmp_path / "decay")
  # The branch's metrics begin with the stable run's, up to the branch point.
  assert [r["step"] for r in decay] == [1, 2, 3, 4, 5, 6, 7, 8]
  assert decay[:4] == stable[:4]
  for a, b in zip(stable[4:], decay[4:]):
    assert (a["tokens"], a["flops"]) == (b["tokens"], b["flops"])
  assert decay[-1]["lr"] < stable[-1]["lr"]  # the branch decayed
  assert summary["tokens"] == stable[-1]["tokens"] > 0
  assert summary["flops"] == stable[-1]["flops"]
  train_lib.train(branch, tmp_path / "scratch")
  wall = ("tokens_per_sec", "mfu")
  drop = lambda records: [{k: v for k, v in r.items() if k not in wall}  # noqa: E731
                          for r in records]
  assert drop(decay) == drop(_read(tmp_path / "scratch"))
  # Negative control: the stable run itself differs once its branch decays.
  assert drop(stable)[4:] != drop(decay)[4:]


def test_nan_loss_fails_the_run_and_keeps_the_last_good_checkpoint(tmp_path):
  c = tiny_config(**{"optimizer.peak_lr": 1e30, "optimizer.grad_clip": 0.0,
                     "train.steps": 12, "schedule.name": "constant"})
  summary = train_lib.train(c, tmp_path)
  assert summary["status"] == "failed"
  assert "train_loss became nan" in summary["reason"]
  saved = json.loads((tmp_path / "summary.json").read_text())
  assert saved["status"] == "failed" and saved["step"] < 12
  ckpts = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir()
                 if p.name.isdigit())
  assert all(s <= saved["step"] for s in ckpts)
  records = _read(tmp_path)
  assert records and all(r["step"] <= saved["step"] for r in records)


def test_resuming_a_directory_of_another_run_is_refused(tmp_path):
  train_lib.train(tiny_config(**{"train.steps": 4}), tmp_path)
  before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
  with pytest.raises(config_lib.ConfigError) as info:
    train_lib.train(tiny_config(**{"train.steps": 4, "model.d_ff": 128}), tmp_path)
  assert info.value.field == "--workdir" and "use a new --workdir" in str(info.value)
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before
  # Mesh and cadence are not part of the identity: the same run resumes.
  summary = train_lib.train(tiny_config(**{"train.steps": 4, "eval.every": 2}), tmp_path)
  assert summary["status"] == "finished" and summary["step"] == 4


def test_relative_workdir_checkpoints(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # orbax needs absolute paths; train resolves them
  summary = train_lib.train(
      tiny_config(**{"train.steps": 4, "checkpoint.async_save": True}), "runs/rel")
  assert summary["status"] == "finished"
  assert (tmp_path / "runs/rel/checkpoints/4/commit_success.txt").exists()


@pytest.mark.parametrize("workdir, init_from, field", [
    ("", None, "--workdir"),
    ("afile", None, "--workdir"),
    ("run", "src@3", "--init-from"),
    ("run", "src", "--init-from"),
])
def test_bad_workdir_and_init_from_are_refused_before_training(
    tmp_path, monkeypatch, workdir, init_from, field):
  monkeypatch.chdir(tmp_path)
  (tmp_path / "afile").write_text("x")
  with pytest.raises(config_lib.ConfigError) as info:
    train_lib.train(tiny_config(), workdir, init_from=init_from)
  assert info.value.field == field
  assert not (tmp_path / "run").exists()


def test_check_compiles_the_program_that_trains(tmp_path):
  c = tiny_config(**{"train.steps": 2, "model.mlp": "swiglu",
                     "optimizer.decay_embeddings": True, "train.microbatches": 2})
  report = aot.check(c)
  summary = train_lib.train(c, tmp_path / "run")
  assert report["program_fingerprint"] == summary["program_fingerprint"]
  # A different program is told apart (negative control).
  other = aot.check(tiny_config(**{"train.steps": 2, "model.mlp": "swiglu",
                                   "train.microbatches": 2}))
  assert other["program_fingerprint"] != report["program_fingerprint"]
