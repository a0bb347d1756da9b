"""Task metrics: the libraries' own documented examples, and the scorer."""

import math

import pytest
import sacrebleu
from seqeval import metrics as seqeval_metrics

from scaling.tasks import metrics
from scaling.tasks import tagging
from scaling.tasks.task import Example, Task

# sacrebleu's README (2.x), section "Using SacreBLEU from Python": two
# reference streams for three system sentences.
SACREBLEU_REFS = [
    ["The dog bit the man.", "It was not unexpected.",
     "The man bit him first."],
    ["The dog had bit the man.", "No one was surprised.",
     "The man had bitten the dog."],
]
SACREBLEU_SYS = ["The dog bit the man.", "It wasn't surprising.",
                 "The man had just bitten him."]

# seqeval's README, section "Usage" (default mode).
SEQEVAL_TRUE = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"],
                ["B-PER", "I-PER", "O"]]
SEQEVAL_PRED = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"],
                ["B-PER", "I-PER", "O"]]


def test_bleu_and_chrf_reproduce_the_sacrebleu_readme():
  # README: "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944
  # hyp_len = 17 ref_len = 18)" and "chrF2 = 59.73".
  assert f"{metrics.bleu(SACREBLEU_SYS, SACREBLEU_REFS):.2f}" == "48.53"
  assert f"{metrics.chrf(SACREBLEU_SYS, SACREBLEU_REFS):.2f}" == "59.73"
  full = sacrebleu.metrics.BLEU().corpus_score(SACREBLEU_SYS, SACREBLEU_REFS)
  assert str(full) == ("BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = "
                       "0.944 hyp_len = 17 ref_len = 18)")


def test_bleu_variable_references_reproduce_the_sacrebleu_readme():
  # README, "Variable Number of References": the first reference of the first
  # stream replaced by '' gives "BLEU = 29.44 82.4/42.9/27.3/12.5".
  refs = [[""] + SACREBLEU_REFS[0][1:], SACREBLEU_REFS[1]]
  assert f"{metrics.bleu(SACREBLEU_SYS, refs):.2f}" == "29.44"


def test_bleu_one_reference_per_hypothesis_is_one_stream():
  refs = SACREBLEU_REFS[1]
  assert metrics.bleu(SACREBLEU_SYS, refs) == metrics.bleu(
      SACREBLEU_SYS, [refs])
  # Negative control: the second stream alone scores below both streams.
  assert metrics.bleu(SACREBLEU_SYS, refs) < 48.5
  with pytest.raises(ValueError, match="segments for 3 hypotheses"):
    metrics.bleu(SACREBLEU_SYS, refs[:2])


def test_span_f1_reproduces_the_seqeval_readme():
  # README: f1_score(y_true, y_pred) -> 0.50; micro avg 0.50 0.50 0.50.
  assert f"{seqeval_metrics.f1_score(SEQEVAL_TRUE, SEQEVAL_PRED):.2f}" == "0.50"
  scores = metrics.span_scores(SEQEVAL_TRUE, SEQEVAL_PRED)
  assert {k: f"{v:.2f}" for k, v in scores.items()} == dict(
      precision="0.50", recall="0.50", f1="0.50")


def test_span_f1_is_strict_iob2_as_in_the_seqeval_readme():
  # README, default vs strict: an entity opened by I-NP counts in the
  # default (conlleval) mode (1.00) and not in strict IOB2 mode (0.00).
  true, pred = [["B-NP", "I-NP", "O"]], [["I-NP", "I-NP", "O"]]
  assert seqeval_metrics.f1_score(true, pred) == 1.0
  assert metrics.span_f1(true, pred) == 0.0


def test_macro_f1_and_accuracy_reproduce_the_scikit_learn_docstrings():
  # sklearn.metrics.f1_score docstring: average='macro' -> 0.267.
  y_true, y_pred = [0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 0, 1]
  assert f"{metrics.macro_f1(y_true, y_pred):.3f}" == "0.267"
  # sklearn.metrics.accuracy_score docstring: 0.5.
  assert metrics.accuracy([0, 1, 2, 3], [0, 2, 1, 3]) == 0.5


def test_macro_f1_counts_an_unknown_prediction_as_a_miss():
  labels = ("a", "b")
  # "zzz" is not a class: a's recall is 1/2, b is perfect.
  f1 = metrics.macro_f1(["a", "a", "b"], ["a", "zzz", "b"], labels)
  assert f1 == pytest.approx((2 * 1 * 0.5 / 1.5 + 1.0) / 2)
  with pytest.raises(ValueError, match="2 gold values but 1 predictions"):
    metrics.accuracy(["a", "b"], ["a"])


def _tagging_task(examples):
  return Task(name="t", kind="tagging",
              splits=dict(train=(), validation=(), test=tuple(examples)),
              labels=tagging.LABELS, provenance={})


def _tag_example(text):
  spans = tuple(tagging.source_spans(text))
  return Example(id=text, input=text, target=tagging.encode_spans(text, spans),
                 spans=spans)


def test_span_f1_of_gold_is_one_and_of_a_perturbation_is_hand_computed():
  e = _tag_example("if x: return 1  # c\n")
  assert [s[0] for s in e.spans] == ["keyword", "keyword", "number", "comment"]
  task = _tagging_task([e])
  gold = metrics.score_task(task, [e.target])
  assert gold == dict(span_precision=1.0, span_recall=1.0, span_f1=1.0)
  # Perturbed: `return` relabelled (1 FP + 1 FN), a span that is not in the
  # input (1 FP, unplaced), the rest right (3 TP): P = 3/5, R = 3/4.
  pred = "keyword if\nstring return\nnumber 1\nstring 'zz'\ncomment # c"
  got = metrics.score_task(task, [pred])
  p, r = 3 / 5, 3 / 4
  assert got["span_precision"] == pytest.approx(p)
  assert got["span_recall"] == pytest.approx(r)
  assert got["span_f1"] == pytest.approx(2 * p * r / (p + r))
  # The same counts by plain set matching of (label, start, end).
  placed, unplaced = tagging.extract_spans(pred, e.input)
  tp = len(set(placed) & set(e.spans))
  assert (tp, len(placed) + len(unplaced), len(e.spans)) == (3, 5, 4)
  # Negative control: dropping the unplaced span would raise precision.
  assert 3 / len(placed) > got["span_precision"]


def test_score_task_classification_and_generation():
  examples = tuple(Example(id=str(i), input=f"x{i}", target=t)
                   for i, t in enumerate(["a", "b", "a", "c"]))
  task = Task(name="c", kind="classification",
              splits=dict(train=(), validation=(), test=examples),
              labels=("a", "b", "c"), provenance={})
  got = metrics.score_task(task, [" a", "b", "b\n", "a"])
  assert got["accuracy"] == 0.5
  # Per class F1: a 1/2 (P 1/2, R 1/2), b 2/3 (P 1/2, R 1), c 0.
  assert got["macro_f1"] == pytest.approx((0.5 + 2 / 3 + 0) / 3)
  gen = Task(name="g", kind="generation",
             splits=dict(train=(), validation=(),
                         test=tuple(Example(id=str(i), input="f", target=t)
                                    for i, t in enumerate(SACREBLEU_REFS[0]))),
             labels=(), provenance={})
  got = metrics.score_task(gen, SACREBLEU_SYS)
  assert got["bleu"] == pytest.approx(
      sacrebleu.corpus_bleu(SACREBLEU_SYS, [SACREBLEU_REFS[0]]).score)
  assert 0 < got["chrf"] < 100 and not math.isnan(got["chrf"])
  with pytest.raises(ValueError, match="2 predictions for the 3 examples"):
    metrics.score_task(gen, SACREBLEU_SYS[:2])
