"""In-loop zero-shot task evals of a pretraining run (``eval.tasks``).

A tiny causal-LM run scores the ``stdlib_package`` classification task at
every eval by ranking each candidate label by its likelihood. The logged
accuracy, length-normalised accuracy and gold-answer bits per byte equal
scoring every candidate of the final checkpoint by hand with causal rows
(the negative control: the same scoring of the test split's examples gives
another task loss); the summary says what share of the run the task evals
took; a bad ``eval.tasks`` is refused before anything is written. The same
figures at two process counts: ``tests/launch/test_launch_train.py``.
"""

import json

import jax
import numpy as np
import pytest

from experiments import tables
from scaling import config as config_lib
from scaling import decode
from scaling import generate
from scaling import identity as identity_lib
from scaling import train as train_lib
from scaling.config import ConfigError
from scaling.data import sources
from scaling.tasks import load_task
from scaling.tasks import registry as tasks_registry
from scaling.tasks import rows as rows_lib
from tests.conftest import tiny_config

SEQ_LEN = 64  # the package labels need 11 target bytes
TASKS = "stdlib_package,stdlib_docstring"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  workdir = tmp_path_factory.mktemp("in_loop") / "run"
  config = tiny_config(seq_len=SEQ_LEN, **{"eval.tasks": TASKS,
                                           "eval.continuation": False})
  summary = train_lib.train(config, workdir)
  assert summary["status"] == "finished"
  return workdir, summary


def _hand_scores(workdir, attention, split="validation"):
  """Accuracy, normalised accuracy and gold bits per byte of the final
  checkpoint on ``split``, every candidate scored by hand."""
  config, program, params = generate.load_run(f"{workdir}@8")
  task = load_task("stdlib_package", config.data, seq_len=SEQ_LEN)
  hits, hits_norm, nll_gold, bytes_gold = [], [], 0.0, 0
  for e in task.splits[split]:
    rows = rows_lib.task_rows([(e.input, c) for c in task.labels], SEQ_LEN,
                              attention=attention)
    b = rows.batch
    logits = decode._forward(program.model, params, b["inputs"],  # pylint: disable=protected-access
                             b["segment_ids"], b["positions"],
                             b["prefix_mask"])
    logprobs = np.asarray(jax.nn.log_softmax(logits, axis=-1))
    nll = np.array([rows_lib.answer_sums({k: v[i] for k, v in b.items()},
                                         logprobs[i])[0][0]
                    for i in range(len(task.labels))])
    n_bytes = np.array([len(c.encode()) for c in task.labels])
    gold = task.labels.index(e.target)
    hits.append(int(np.argmin(nll)) == gold)
    hits_norm.append(int(np.argmin(nll / n_bytes)) == gold)
    nll_gold += nll[gold]
    bytes_gold += n_bytes[gold]
  return (np.mean(hits), np.mean(hits_norm),
          nll_gold / (np.log(2) * bytes_gold), len(hits))


def test_in_loop_scores_equal_ranking_every_candidate_by_hand(run):
  workdir, summary = run
  accuracy, accuracy_norm, gold_bpb, n = _hand_scores(workdir, "causal")
  key = "task_stdlib_package_"
  assert summary[key + "accuracy"] == pytest.approx(accuracy, abs=1e-12)
  assert summary[key + "accuracy_norm"] == pytest.approx(accuracy_norm,
                                                         abs=1e-12)
  assert summary[key + "gold_bpb"] == pytest.approx(gold_bpb, rel=1e-5)
  assert summary[key + "accuracy_se"] == pytest.approx(
      np.sqrt(accuracy * (1 - accuracy) / n))
  # Negative control: the same scoring of another split's examples.
  _, _, other_bpb, _ = _hand_scores(workdir, "causal", split="test")
  assert summary[key + "gold_bpb"] != pytest.approx(other_bpb, rel=1e-5)


def test_in_loop_scores_are_logged_at_every_eval_with_their_cost(run):
  workdir, summary = run
  rows = [json.loads(line) for line in
          (workdir / "metrics.jsonl").read_text().splitlines()]
  scored = [r for r in rows if "task_stdlib_package_accuracy" in r]
  assert [r["step"] for r in scored] == [4, 8]
  for r in scored:  # generation: the gold answer's figures, no decoding
    assert r["task_stdlib_docstring_gold_bpb"] > 0
    assert "task_stdlib_docstring_bleu" not in r
    assert r["task_eval_seconds"] > 0
  assert summary["task_eval_seconds_total"] == pytest.approx(
      sum(r["task_eval_seconds"] for r in scored))
  assert 0 < summary["task_eval_share"] < 1
  assert (scored[-1]["task_stdlib_package_gold_bpb"]
          == summary["task_stdlib_package_gold_bpb"])


def test_eval_tasks_leave_the_identity_unchanged():
  corpus_hash = sources.load_corpus(tiny_config().data).corpus_hash
  plain = identity_lib.identity_hash(tiny_config(), corpus_hash)
  with_tasks = identity_lib.identity_hash(
      tiny_config(**{"eval.tasks": TASKS}), corpus_hash)
  assert plain == with_tasks


@pytest.mark.parametrize("overrides, message", [
    ({"eval.tasks": "stdlib_pakage"}, "neither a built-in task"),
    ({"eval.tasks": "missing.jsonl"}, "neither a built-in task"),
    ({"eval.tasks": "stdlib_package", "objective.name": "masked_lm"},
     "no likelihood of an answer"),
    ({"eval.tasks": "stdlib_package", "seq_len": 32},
     "longer than max_target_bytes"),
])
def test_a_bad_eval_tasks_is_refused_before_anything_is_written(
    tmp_path, overrides, message):
  workdir = tmp_path / "run"
  config = tiny_config(**{"eval.continuation": False, **overrides})
  with pytest.raises(ConfigError, match=message) as info:
    train_lib.train(config, workdir)
  assert info.value.field == "eval.tasks"
  assert not workdir.exists()


def test_eval_tasks_names_are_parsed_from_the_config_string():
  c = config_lib.default_config()
  assert c.eval.tasks == ""
  config_lib.set_dotted(c, "eval.tasks", " stdlib_package , stdlib_tokens,")
  assert tasks_registry.eval_task_names(c.eval.tasks) == ("stdlib_package",
                                                    "stdlib_tokens")


def test_curves_carry_the_task_scores(run):
  workdir, summary = run
  rows = tables.curve_rows("run", workdir)
  scored = {r["step"]: r for r in rows if "task_stdlib_package_accuracy" in r}
  assert sorted(scored) == [4, 8]
  assert (scored[8]["task_stdlib_package_accuracy"]
          == summary["task_stdlib_package_accuracy"])
