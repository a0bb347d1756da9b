"""Fine-tuning: config, identity, parameters-only start, task metrics, checks.

A tiny source run is pretrained once (module fixture); fine-tunes of a few
steps then check what someone could get wrong: the first step's loss is the
source parameters' loss (and a fresh init's from scratch), counters start at
0, the logged ranked-classification accuracy equals scoring every candidate
by hand, BLEU equals sacrebleu on recomputed greedy decodings, and every
check refuses before anything is written.
"""

import json
import shutil

import flax.linen as nn
import jax
import numpy as np
import pytest
from sklearn import metrics as sk_metrics

from scaling import cli
from scaling import config as config_lib
from scaling import decode
from scaling import finetune as ft
from scaling import generate
from scaling import identity as identity_lib
from scaling import loss as loss_lib
from scaling import model as model_lib
from scaling import schedules
from scaling import task_eval
from scaling import tokenizer as tok
from scaling import train as train_lib
from scaling.tasks import load_task, metrics as task_metrics
from scaling.tasks import rows as rows_lib
from tests.conftest import tiny_config

SEQ_LEN = 64  # the classification labels need >= 11 target bytes
FT = [("train.steps", "4"), ("train.log_every", "1"), ("eval.every", "2"),
      ("checkpoint.every", "2"), ("checkpoint.async_save", "false"),
      ("batch_size", "8"), ("eval.task_examples", "4")]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("source")
  c = tiny_config(seq_len=SEQ_LEN, **{"eval.continuation": False})
  assert train_lib.train(c, workdir)["status"] == "finished"
  return workdir


def _record(run_dir):
  return json.loads((run_dir / "config.json").read_text())


def _metrics(run_dir):
  return [json.loads(line) for line in
          (run_dir / "metrics.jsonl").read_text().splitlines()]


def _config(source_dir, extra=()):
  return ft.finetune_config(_record(source_dir)["config"], [*FT, *extra])


def test_config_takes_the_model_from_the_source_and_the_rest_from_defaults(
    source):
  record = _record(source)["config"]
  c = ft.finetune_config(record, [("optimizer.peak_lr", "3e-4")])
  assert c.model.to_dict() == record["model"] and c.seq_len == SEQ_LEN
  assert c.tokenizer.to_dict() == record["tokenizer"]
  assert c.optimizer.peak_lr == 3e-4  # an override beats the defaults
  assert c.schedule.name == "linear" and c.train.steps == 200
  assert c.checkpoint.async_save  # the source's cadences are not taken
  assert record["batch_size"] == 8 and c.batch_size == 16
  with pytest.raises(config_lib.ConfigError) as info:
    ft.finetune_config(record, [("finetune.source_step", "3")])
  assert info.value.field == "finetune.source_step"
  assert "--init-from" in str(info.value)


def test_identity_covers_source_step_task_and_hyperparameters(source):
  c = _config(source)
  f = c.finetune
  f.task, f.task_hash, f.source_identity, f.source_step = "t", "a" * 64, "s", 8
  base = identity_lib.identity_hash(c, "h")
  changed = []
  for dotted, value in (("finetune.source_step", 4), ("finetune.task_hash", "b"),
                        ("finetune.task", "u"), ("finetune.attention", "causal"),
                        ("optimizer.peak_lr", 1e-4), ("train.seed", 1)):
    other = config_lib.with_overrides(c, {dotted: value})
    changed.append(identity_lib.identity_hash(other, "h") != base)
  assert all(changed)
  for dotted, value in (("eval.every", 3), ("eval.task_examples", 7),
                        ("checkpoint.every", 3)):
    other = config_lib.with_overrides(c, {dotted: value})
    assert identity_lib.identity_hash(other, "h") == base, dotted
  # A pretraining config's identity has no finetune section.
  assert "finetune" not in identity_lib.identity_fields(tiny_config())


def _batch0_loss(config, params, seed):
  """The first fine-tuning batch's loss of ``params``, computed directly."""
  task = load_task("stdlib_package", config.data, seq_len=config.seq_len)
  rows = rows_lib.task_rows(task.splits["train"], config.seq_len).batch
  batch = ft.TaskStream(rows, config.batch_size, seed).local_batch(0)
  nll, _, count = loss_lib.nll_sums(model_lib.build(config), params, batch)
  return float(nll.sum() / count.sum()), int((batch["segment_ids"] != 0).sum())


@pytest.fixture(scope="module")
def tuned(source, tmp_path_factory):
  workdir = tmp_path_factory.mktemp("tuned")
  summary = ft.finetune(_config(source), workdir, "stdlib_package",
                        f"{source}@8")
  assert summary["status"] == "finished", summary
  return workdir, summary


def test_a_finetune_starts_from_the_source_parameters_only(source, tuned):
  workdir, summary = tuned
  config = config_lib.from_dict(_record(workdir)["config"])
  _, _, params = generate.load_run(f"{source}@8")
  loss, tokens = _batch0_loss(config, params, config.train.seed)
  records = _metrics(workdir)
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  assert records[0]["tokens"] == tokens  # counters start at 0
  assert records[0]["train_loss"] == pytest.approx(loss, rel=1e-6)
  # A fresh schedule of 4 updates: update 0's learning rate.
  first_lr = schedules.learning_rate(
      0, schedule="linear", peak_lr=config.optimizer.peak_lr,
      warmup_steps=schedules.resolve_warmup(config.schedule, 4),
      total_steps=4, min_lr_ratio=0.0, decay_fraction=0.0)
  assert records[0]["lr"] == pytest.approx(float(first_lr), rel=1e-6)
  assert summary["step"] == 4 and summary["tokens"] == records[-1]["tokens"]
  saved = _record(workdir)
  assert saved["identity"] == identity_lib.identity_hash(
      config, saved["provenance"]["corpus_hash"])
  assert saved["source"]["identity"] == _record(source)["identity"]
  assert saved["config"]["finetune"]["source_step"] == 8
  assert saved["config"]["finetune"]["task"] == "stdlib_package"


def test_ranked_accuracy_equals_scoring_each_candidate_by_hand(tuned):
  workdir, summary = tuned
  config, program, params = generate.load_run(f"{workdir}@4")
  task = load_task("stdlib_package", config.data, seq_len=SEQ_LEN)
  model = program.model
  for split, prefix in (("validation", "val_"), ("test", "test_")):
    examples = task.splits[split]
    gold, guess, nll_sum, byte_sum = [], [], 0.0, 0
    for e in examples:
      rows = rows_lib.task_rows([(e.input, c) for c in task.labels], SEQ_LEN)
      b = rows.batch
      logits = decode._forward(model, params, b["inputs"], b["segment_ids"],
                               b["positions"], b["prefix_mask"])
      logprobs = np.asarray(jax.nn.log_softmax(logits, axis=-1))
      nll = [rows_lib.answer_sums({k: v[i] for k, v in b.items()},
                                  logprobs[i])[0][0]
             for i in range(len(task.labels))]
      guess.append(task.labels[int(np.argmin(nll))])
      gold.append(e.target)
      nll_sum += nll[task.labels.index(e.target)]
      byte_sum += len(e.target.encode())
    assert summary[f"{prefix}accuracy"] == pytest.approx(
        sk_metrics.accuracy_score(gold, guess), abs=1e-12)
    assert summary[f"{prefix}macro_f1"] == pytest.approx(sk_metrics.f1_score(
        gold, guess, average="macro", labels=list(task.labels),
        zero_division=0), abs=1e-12)
    assert summary[f"{prefix}gold_bpb"] == pytest.approx(
        nll_sum / (np.log(2) * byte_sum), rel=1e-5)
  evals = [r for r in _metrics(workdir) if "val_accuracy" in r]
  assert [r["step"] for r in evals] == [2, 4]
  assert evals[-1]["val_accuracy"] == summary["val_accuracy"]


def test_generation_logs_bleu_of_the_greedy_decodings(source, tmp_path):
  summary = ft.finetune(_config(source), tmp_path, "stdlib_docstring",
                        f"{source}@8")
  assert summary["status"] == "finished"
  evals = [r for r in _metrics(tmp_path) if "val_bleu" in r]
  assert [r["step"] for r in evals] == [2, 4]
  assert all(0 <= r["val_chrf"] <= 100 for r in evals)
  config, program, params = generate.load_run(f"{tmp_path}@4")
  task = load_task("stdlib_docstring", config.data, seq_len=SEQ_LEN)
  test = task.splits["test"]
  prompts = [rows_lib.prompt_fields(e.input) for e in test]
  tokens = decode.generate_uncached(
      program.model, params, [p for p, _ in prompts], [n for _, n in prompts],
      max_new_tokens=task.provenance["params"]["max_target_bytes"] + 1,
      n_real=tok.ByteTokenizer().n_real)
  hypotheses = decode.texts(tokens)
  references = [e.target for e in test]
  assert summary["test_bleu"] == pytest.approx(
      task_metrics.bleu(hypotheses, references), abs=1e-9)
  assert summary["test_chrf"] == pytest.approx(
      task_metrics.chrf(hypotheses, references), abs=1e-9)


@pytest.mark.parametrize("case, field, text", [
    ("shape", "--init-from", "blocks/mlp/wi"),
    ("tokenizer", "--init-from", "tokenizer"),
    ("corpus", "--task", "was pretrained on corpus"),
    ("task", "--task", "unknown task"),
])
def test_checks_refuse_before_anything_is_written(source, tmp_path, case,
                                                  field, text):
  src, task, extra = source, "stdlib_package", []
  if case == "shape":
    extra = [("model.d_ff", "128")]
  elif case == "tokenizer":  # same vocabulary size (512), other ids
    extra = [("tokenizer.n_sentinels", "120")]
  elif case == "corpus":
    src = tmp_path / "other_corpus"
    shutil.copytree(source, src)
    record = _record(src)
    record["provenance"]["corpus_hash"] = "0" * 64
    (src / "config.json").write_text(json.dumps(record))
  else:
    task = "no_such_task"
  workdir = tmp_path / "run"
  with pytest.raises(config_lib.ConfigError) as info:
    ft.finetune(_config(source, extra), workdir, task, f"{src}@8")
  assert info.value.field == field and text in str(info.value)
  assert not workdir.exists()


def test_pretraining_refuses_a_finetune_config(source, tmp_path):
  c = _config(source)
  c.finetune.task = "stdlib_package"
  with pytest.raises(config_lib.ConfigError) as info:
    train_lib.train(c, tmp_path / "run")
  assert info.value.field == "finetune.task"
  assert not (tmp_path / "run").exists()


@pytest.mark.slow  # 13 s on 2 idle cores, over 70 s on 2 loaded ones
def test_finetune_and_generate_commands(source, tuned, tmp_path, capsys):
  flags = [f"--config.{k}={v}" for k, v in FT]
  assert cli.main(["finetune", "--init-from", f"{source}@8", "--model-from",
                   str(source), "--task", "stdlib_package", "--workdir",
                   str(tmp_path / "bad"), *flags]) == 2
  assert "--model-from: only with --init-from none" in capsys.readouterr().err
  scratch = tmp_path / "scratch"
  assert cli.main(["finetune", "--init-from", "none", "--model-from",
                   str(source), "--task", "stdlib_package", "--workdir",
                   str(scratch), *flags]) == 0
  assert "test_accuracy" in capsys.readouterr().out
  # From scratch: the first loss is that of a fresh init of train.seed.
  config = config_lib.from_dict(_record(scratch)["config"])
  assert config.model.to_dict() == _record(source)["config"]["model"]
  assert config.finetune.source_step == -1
  model = model_lib.build(config)
  params = jax.jit(lambda: nn.unbox(
      model_lib.init_params(model, config.train.seed)))()
  loss, _ = _batch0_loss(config, params, config.train.seed)
  first = _metrics(scratch)[0]["train_loss"]
  assert first == pytest.approx(loss, rel=1e-6)
  assert first != pytest.approx(_metrics(tuned[0])[0]["train_loss"], rel=1e-3)
  # `scaling generate` on a fine-tuned run reads the prompt as a task input.
  workdir = tuned[0]
  example = load_task("stdlib_package", config.data,
                      seq_len=SEQ_LEN).splits["test"][0]
  assert cli.main(["generate", f"{workdir}@4", "--prompt", example.input,
                   "--max-new-tokens", "16"]) == 0
  printed = capsys.readouterr().out
  tokens, n_prefix = rows_lib.prompt_fields(example.input)
  run_config, program, params = generate.load_run(f"{workdir}@4")
  expected = decode.generate_uncached(program.model, params, [tokens],
                                      [n_prefix], max_new_tokens=16,
                                      n_real=tok.ByteTokenizer().n_real)
  assert printed == decode.texts(expected)[0] + "\n"
  assert run_config.finetune.task == "stdlib_package"


def test_task_stream_is_a_pure_function_of_seed_and_step():
  n = 10
  rows = {k: np.zeros((n, 4), np.int32) for k in ("targets", "positions")}
  rows["inputs"] = np.arange(n, dtype=np.int32)[:, None].repeat(4, 1)
  rows["segment_ids"] = np.ones((n, 4), np.int32)
  stream = ft.TaskStream(rows, batch_size=4, seed=0)
  seen = np.concatenate([stream.local_batch(s)["inputs"][:, 0]
                         for s in range(5)])
  # Each epoch of 10 examples visits every row once, in a fresh order.
  assert sorted(seen[:10]) == list(range(n))
  assert sorted(seen[10:20]) == list(range(n))
  assert list(seen[:10]) != list(seen[10:20])
  assert stream.epochs_at(5) == 2.0 and stream.unique_tokens == 40
  # Two processes' blocks make the same global batch; another seed differs.
  halves = [ft.TaskStream(rows, 4, 0, i, 2).local_batch(3)["inputs"]
            for i in (0, 1)]
  np.testing.assert_array_equal(np.concatenate(halves),
                                stream.local_batch(3)["inputs"])
  np.testing.assert_array_equal(ft.TaskStream(rows, 4, 0).local_batch(3)[
      "inputs"], stream.local_batch(3)["inputs"])
  other = ft.TaskStream(rows, 4, 1)
  assert any((other.local_batch(s)["inputs"] != stream.local_batch(s)[
      "inputs"]).any() for s in range(3))


def test_tagging_is_scored_on_the_greedy_decodings(source):
  _, program, params = generate.load_run(f"{source}@8")
  config = _config(source)
  task = load_task("stdlib_tokens", config.data, seq_len=SEQ_LEN)
  evaluator = task_eval.TaskEvaluator(config, task, program, "validation",
                                      limit=3, prefix="val_")
  with program.context():
    got = evaluator(params)
  examples = task.splits["validation"][:3]
  prompts = [rows_lib.prompt_fields(e.input) for e in examples]
  tokens = decode.generate_uncached(
      program.model, params, [p for p, _ in prompts], [n for _, n in prompts],
      max_new_tokens=task.provenance["params"]["max_target_bytes"] + 1,
      n_real=tok.ByteTokenizer().n_real)
  sub = task_metrics.span_scores(*task_metrics.tagging_tags(
      examples, decode.texts(tokens)))
  assert got["val_span_f1"] == pytest.approx(sub["f1"], abs=1e-12)
  assert got["val_span_precision"] == pytest.approx(sub["precision"], abs=1e-12)
  assert set(got) == {"val_span_precision", "val_span_recall", "val_span_f1",
                      "val_gold_bpb", "val_gold_bpb_se", "val_loss"}
