"""Task metrics, from the libraries the field uses, and a task's scorer.

* classification: :func:`accuracy` and :func:`macro_f1`
  (scikit-learn's ``accuracy_score`` and ``f1_score(average="macro")``; the
  macro average is over the task's label set, a label never predicted
  counting F1 0, a prediction outside the set counting as wrong);
* tagging: :func:`span_scores` / :func:`span_f1`, span-level (micro)
  precision, recall and F1 of seqeval in strict IOB2 mode (a span counts
  only when its label, start and end all match; conlleval's lenient reading
  of a span opened by ``I-`` does not apply to our tags, which always open
  with ``B-``);
* generation: :func:`bleu` and :func:`chrf`, sacrebleu's corpus-level BLEU
  (Papineni et al. 2002; 13a tokenization, exponential smoothing) and chrF
  (Popović 2015; character 6-grams, beta 2), on the 0-100 scale.

:func:`score_task` scores a task's predictions (generated target strings,
one per example of a split) with its kind's metrics.
"""

from __future__ import annotations

from typing import Sequence

import importlib

from scaling.tasks import tagging


def _lib(name: str):
  """A metric library, imported when first used: scikit-learn, seqeval and
  sacrebleu take about 1.6 s to import, which every training process would
  otherwise pay (a pretraining run scores tasks only with ``eval.tasks``)."""
  return importlib.import_module(name)


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
  """Fraction of exact matches (scikit-learn ``accuracy_score``), in [0, 1].

  Raises:
    ValueError: different lengths or no examples.
  """
  _same_length(y_true, y_pred)
  sklearn_metrics = _lib("sklearn.metrics")
  return float(sklearn_metrics.accuracy_score(list(y_true), list(y_pred)))


def macro_f1(y_true: Sequence, y_pred: Sequence,
             labels: Sequence | None = None) -> float:
  """Unweighted mean of per-class F1 (scikit-learn ``f1_score``, macro).

  Args:
    y_true, y_pred: gold and predicted labels, one per example.
    labels: the classes averaged over (default: those in ``y_true`` or
      ``y_pred``); a predicted value outside them still counts as a miss of
      its gold class. A class with no prediction and no gold has F1 0.

  Raises:
    ValueError: different lengths or no examples.
  """
  _same_length(y_true, y_pred)
  return float(_lib("sklearn.metrics").f1_score(
      list(y_true), list(y_pred), average="macro",
      labels=None if labels is None else list(labels), zero_division=0))


def span_scores(true_tags: Sequence[Sequence[str]],
                pred_tags: Sequence[Sequence[str]]) -> dict[str, float]:
  """Span-level micro precision, recall and F1 (seqeval, strict IOB2).

  Args:
    true_tags, pred_tags: per sequence, IOB2 tags (``B-X``, ``I-X``, ``O``)
      of equal lengths.

  Returns:
    ``{"precision", "recall", "f1"}`` in [0, 1] (0 where undefined).

  Raises:
    ValueError: different numbers of sequences or no sequence.
  """
  _same_length(true_tags, pred_tags)
  seqeval_metrics = _lib("seqeval.metrics")
  args = dict(mode="strict", scheme=_lib("seqeval.scheme").IOB2,
              zero_division=0)
  y_true, y_pred = [list(t) for t in true_tags], [list(p) for p in pred_tags]
  return dict(
      precision=float(seqeval_metrics.precision_score(y_true, y_pred, **args)),
      recall=float(seqeval_metrics.recall_score(y_true, y_pred, **args)),
      f1=float(seqeval_metrics.f1_score(y_true, y_pred, **args)))


def span_f1(true_tags: Sequence[Sequence[str]],
            pred_tags: Sequence[Sequence[str]]) -> float:
  """Span-level micro F1 (seqeval, strict IOB2); see :func:`span_scores`."""
  return span_scores(true_tags, pred_tags)["f1"]


def _references(hypotheses, references) -> list[list[str]]:
  """sacrebleu's layout: reference streams, each one string per hypothesis."""
  if not len(hypotheses):
    raise ValueError("no hypotheses to score")
  if references and isinstance(references[0], str):
    references = [references]  # one reference per hypothesis
  streams = [list(r) for r in references]
  for stream in streams:
    if len(stream) != len(hypotheses):
      raise ValueError(f"a reference stream has {len(stream)} segments for "
                       f"{len(hypotheses)} hypotheses")
  return streams


def bleu(hypotheses: Sequence[str], references) -> float:
  """Corpus BLEU, 0-100 (sacrebleu ``BLEU().corpus_score``, default settings).

  Args:
    hypotheses: one string per segment.
    references: one reference string per segment, or sacrebleu's list of
      reference streams (each a list with one string per segment).

  Raises:
    ValueError: a reference stream of another length, or no segment.
  """
  return float(_lib("sacrebleu.metrics").BLEU().corpus_score(
      list(hypotheses), _references(hypotheses, references)).score)


def chrf(hypotheses: Sequence[str], references) -> float:
  """Corpus chrF, 0-100 (sacrebleu ``CHRF().corpus_score``: chrF2).

  Args and raises as :func:`bleu`.
  """
  return float(_lib("sacrebleu.metrics").CHRF().corpus_score(
      list(hypotheses), _references(hypotheses, references)).score)


def tagging_tags(examples, predictions: Sequence[str]
                 ) -> tuple[list[list[str]], list[list[str]]]:
  """Gold and predicted IOB2 character tags of tagging examples.

  Each unplaced predicted span (:func:`scaling.tasks.tagging.extract_spans`)
  is one extra position, ``B-<label>`` in the prediction and ``O`` in the
  gold, so seqeval counts it as a false positive.

  Returns:
    ``(true_tags, pred_tags)``, one list per example.
  """
  true_tags, pred_tags = [], []
  for e, pred in zip(examples, predictions):
    placed, unplaced = tagging.extract_spans(pred, e.input)
    gold = tagging.iob_tags(len(e.input), e.spans)
    guess = tagging.iob_tags(len(e.input), placed)
    true_tags.append(gold + ["O"] * len(unplaced))
    pred_tags.append(guess + [f"B-{label}" for label in unplaced])
  return true_tags, pred_tags


def score_task(task, predictions: Sequence[str], split: str = "test"
               ) -> dict[str, float]:
  """Scores generated targets against a split of a task.

  Args:
    task: a :class:`scaling.tasks.task.Task`.
    predictions: one generated target string per example of the split, in
      the split's order (surrounding whitespace is stripped for
      classification).
    split: ``train``, ``validation`` or ``test``.

  Returns:
    classification: ``accuracy``, ``macro_f1`` (over ``task.labels``);
    tagging: ``span_precision``, ``span_recall``, ``span_f1``;
    generation: ``bleu``, ``chrf``. Values in [0, 1] except BLEU and chrF
    (0-100, sacrebleu's scale).

  Raises:
    ValueError: unknown split, or a prediction count that differs from the
      split's size.
  """
  if split not in task.splits:
    raise ValueError(f"unknown split {split!r}; use one of "
                     f"{', '.join(task.splits)}")
  examples = task.splits[split]
  if len(predictions) != len(examples):
    raise ValueError(f"{len(predictions)} predictions for the "
                     f"{len(examples)} examples of {task.name}/{split}")
  gold = [e.target for e in examples]
  if task.kind == "classification":
    guess = [p.strip() for p in predictions]
    return dict(accuracy=accuracy(gold, guess),
                macro_f1=macro_f1(gold, guess, task.labels))
  if task.kind == "tagging":
    s = span_scores(*tagging_tags(examples, predictions))
    return dict(span_precision=s["precision"], span_recall=s["recall"],
                span_f1=s["f1"])
  return dict(bleu=bleu(list(predictions), gold),
              chrf=chrf(list(predictions), gold))


def _same_length(a: Sequence, b: Sequence) -> None:
  if len(a) != len(b):
    raise ValueError(f"{len(a)} gold values but {len(b)} predictions")
  if not len(a):
    raise ValueError("no examples to score")
